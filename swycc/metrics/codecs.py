"""Classical codecs at a byte budget: what JPEG and WebP make of an image in as many bytes as a
latent takes (``swycc.metrics.photo.latent_bytes``).

For each image and format, every Pillow quality in ``QUALITIES`` (0-100) is tried, with
Pillow's defaults otherwise (JPEG: 4:2:0 chroma subsampling, baseline; WebP: lossy, method 4);
the file kept is the largest one not above the budget (ties: the higher quality), decoded back
to 8-bit RGB. An image no quality fits into has no result (None). Trying every quality, not a
bisection, keeps the rule exact: file size is not always monotone in WebP's quality.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from swycc.metrics.maths import quantize_uint8

FORMATS = {"jpeg": "JPEG", "webp": "WEBP"}
QUALITIES = range(0, 101)


def encode(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    """uint8 (H, W, 3) -> the bytes of a ``fmt`` file ("jpeg" or "webp") at ``quality``."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, FORMATS[fmt], quality=quality)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def largest_within(rgb: np.ndarray, fmt: str, budget: int) -> dict | None:
    """{"quality", "bytes", "image" (decoded uint8 (H, W, 3))} of the largest ``fmt`` file of
    ``rgb`` not above ``budget`` bytes, or None when even the lowest quality is larger."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    best = None
    for q in QUALITIES:
        data = encode(rgb, fmt, q)
        if len(data) <= budget and (best is None or len(data) >= len(best[1])):
            best = (q, data)
    if best is None:
        return None
    return {"quality": best[0], "bytes": len(best[1]), "image": decode(best[1])}


def codec_at_bytes(x: torch.Tensor, fmt: str, budget: int) -> list[dict | None]:
    """Per image of (N, 3, H, W) in [-1, 1] (quantised to 8 bits first): ``largest_within``'s
    result, its image back as (3, H, W) in [-1, 1]."""
    rgb = quantize_uint8(x).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out: list[dict | None] = []
    for a in rgb:
        r = largest_within(np.ascontiguousarray(a), fmt, budget)
        if r is not None:
            r["image"] = torch.from_numpy(r["image"].copy()).permute(2, 0, 1).float() / 127.5 - 1.0
        out.append(r)
    return out


__all__ = ["FORMATS", "QUALITIES", "codec_at_bytes", "decode", "encode", "largest_within"]
