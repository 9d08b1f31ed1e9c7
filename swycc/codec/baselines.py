"""The codecs people use, through Pillow: JPEG, WebP and AVIF at a chosen quality, and the
quality whose file comes nearest a target size.

Settings: JPEG with optimised Huffman tables (``optimize=True``) and Pillow's default 4:2:0
chroma subsampling; WebP lossy at ``method=6`` (its slowest, best); AVIF at Pillow's default
speed and 4:2:0. Bits per pixel are counted from the whole file each writes.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

# quality settings swept per image: dense at the low end, where a learned codec competes
QUALITY_GRIDS = {
    "jpeg": (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95),
    "webp": (0, 1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100),
    "avif": (0, 1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 80, 90, 100),
}
_SAVE = {"jpeg": ("JPEG", {"optimize": True}), "webp": ("WEBP", {"method": 6}),
         "avif": ("AVIF", {})}


def available_codecs() -> list[str]:
    """The baseline codecs this Pillow build can write."""
    from PIL import features

    names = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}
    return [c for c, f in names.items() if features.check(f)]


def to_pil(x: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> an 8-bit RGB image."""
    a = ((x.detach().double().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(a.permute(1, 2, 0).numpy())


def encode(img: Image.Image, codec: str, quality: int) -> bytes:
    fmt, extra = _SAVE[codec]
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=quality, **extra)
    return buf.getvalue()


def decode(data: bytes) -> torch.Tensor:
    """File bytes -> (3, H, W) in [-1, 1]."""
    with Image.open(io.BytesIO(data)) as img:
        a = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 127.5 - 1.0


def sweep_sizes(img: Image.Image, codec: str) -> dict[int, int]:
    """{quality: file bytes} over the codec's grid."""
    return {q: len(encode(img, codec, q)) for q in QUALITY_GRIDS[codec]}


def nearest_quality(sizes: dict[int, int], target_bytes: float) -> int:
    """The quality whose file is nearest ``target_bytes`` (ties: the smaller file)."""
    return min(sizes, key=lambda q: (abs(sizes[q] - target_bytes), sizes[q]))


__all__ = ["QUALITY_GRIDS", "available_codecs", "decode", "encode", "nearest_quality",
           "sweep_sizes", "to_pil"]
