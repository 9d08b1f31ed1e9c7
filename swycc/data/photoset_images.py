"""Per-image work of the photo set builder (``swycc.data.photoset``): decoding, statistics, hashes.

Everything here looks at one image (or one pair); the package-level steps are in
``swycc.data.photoset``. Thresholds live in :class:`PhotoSetConfig`; they were measured on the five
Debian desktop-background packages (see ``illustration_reason``).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from scipy.fft import dctn
from scipy.ndimage import gaussian_filter, maximum_filter, minimum_filter, sobel

from swycc.data.images import to_rgb_array


class PhotoSetError(ValueError):
    """Bad sources or options for the photo set builder."""


@dataclass(frozen=True)
class PhotoSetConfig:
    max_short_side: int = 1024  # shorter side of written images at most this; 0 = keep size
    image_format: str = "png"  # "png" (lossless) or "jpg" (JPEG quality 95)
    keep_illustrations: bool = False
    holdout_fraction: float = 0.15
    holdout_salt: str = "swycc-photoset-v1"
    hash_threshold: int = 12  # of 63 bits; duplicates here: <= 10, distinct pictures: >= 30
    colour_tolerance: float = 24.0  # max |difference| of 4x4 RGB thumbnails, 0..255
    aspect_tolerance: float = 0.12  # |log aspect| difference; 16:9 vs 16:10 crops: 0.105
    analysis_side: int = 512  # statistics are taken with the shorter side resized to this
    # illustration_reason thresholds (see its docstring for what each measures)
    max_transparent_share: float = 0.01
    max_flat_share: float = 0.45
    min_noise: float = 0.40
    max_smooth_share: float = 0.90

    def __post_init__(self):
        if self.image_format not in ("png", "jpg"):
            raise PhotoSetError(f"image format must be png or jpg, got {self.image_format!r}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise PhotoSetError(f"holdout fraction must be in [0, 1), got {self.holdout_fraction}")
        if self.max_short_side < 0 or self.analysis_side < 16:
            raise PhotoSetError("max_short_side must be >= 0 and analysis_side >= 16")


def perceptual_hash(grey: np.ndarray) -> int:
    """63-bit DCT hash: grey resized to 32x32, the 8x8 lowest frequencies without DC, each bit
    = coefficient > their median. Unchanged by resizing, mild blur and JPEG compression."""
    small = np.asarray(Image.fromarray(grey.astype(np.float32)).resize((32, 32), Image.BOX))
    coeffs = dctn(small.astype(np.float64), norm="ortho")[:8, :8].ravel()[1:]
    bits = coeffs > np.median(coeffs)
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def image_statistics(rgb: np.ndarray) -> dict[str, float]:
    """Statistics of a uint8 (H, W, 3) image (use it at ~512 px on the shorter side).

    flat_share: share of 3x3 windows whose luma (0..255, rounded) spans at most 1 level: exactly
        flat colour or gradients too smooth for any sensor (vector art, renders).
    noise: 1.4826 * median |luma - gaussian(luma, 1)|, a robust fine-scale noise level; photos
        keep sensor noise and texture (>= 0.43 on the packages' photos), renders do not.
    smooth_share: share of pixels where the gradient of gaussian(luma, 2) is below 0.5 level per
        pixel: near-structureless pictures (dithered flat art) reach > 0.9, photos here <= 0.87.
    """
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    rounded = np.round(luma)
    span = (maximum_filter(rounded, 3) - minimum_filter(rounded, 3))[1:-1, 1:-1]
    coarse = gaussian_filter(luma, 2.0)
    grad = np.hypot(sobel(coarse, 0), sobel(coarse, 1)) / 8.0
    return {"flat_share": float((span <= 1).mean()),
            "noise": float(1.4826 * np.median(np.abs(luma - gaussian_filter(luma, 1.0)))),
            "smooth_share": float((grad < 0.5).mean())}


def illustration_reason(stats: dict[str, float], cfg: PhotoSetConfig) -> str:
    """"" for a photo, else why the statistics say illustration (first rule that fires).

    Measured on the 78 distinct pictures of the five Debian packages against labels by eye: the
    rules catch the flat, noise-free and dithered drawings; renders with texture (e.g. 3D
    scenes, paintings) pass as photos, hence the override list beside the builder.
    """
    if stats["transparent_share"] > cfg.max_transparent_share:
        return f"transparent overlay ({stats['transparent_share']:.0%} of pixels)"
    if stats["flat_share"] > cfg.max_flat_share:
        return f"flat regions {stats['flat_share']:.2f} > {cfg.max_flat_share}"
    if stats["noise"] < cfg.min_noise:
        return f"noise-free {stats['noise']:.2f} < {cfg.min_noise}"
    if stats["smooth_share"] > cfg.max_smooth_share:
        return f"structureless {stats['smooth_share']:.2f} > {cfg.max_smooth_share}"
    return ""


def load_rgb(path: Path) -> tuple[np.ndarray, float]:
    """-> (uint8 (H, W, 3), share of pixels not fully opaque).

    Transparent pixels are composited on black: the transparent MATE wallpapers are white or
    black shapes meant to be drawn over a colour the user picks, and on white several of them
    would all be one blank picture."""
    with Image.open(path) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA", "P") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            transparent = float((np.asarray(rgba)[..., 3] < 255).mean())
            if transparent > 0:
                black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
                return np.asarray(Image.alpha_composite(black, rgba).convert("RGB")), transparent
        return to_rgb_array(img), 0.0


def resize_short_side(rgb: np.ndarray, side: int, method=Image.LANCZOS) -> np.ndarray:
    h, w = rgb.shape[:2]
    if side <= 0 or min(h, w) <= side:
        return rgb
    s = side / min(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(rgb).resize(size, method, reducing_gap=3.0))


def analyse(path: Path, cfg: PhotoSetConfig) -> dict:
    """Size, hashes and statistics of one image; OSError/ValueError for an unreadable one."""
    rgb, transparent = load_rgb(path)
    small = resize_short_side(rgb, cfg.analysis_side, Image.BOX)
    thumb = np.asarray(Image.fromarray(small).resize((4, 4), Image.BOX), dtype=np.int64)
    stats = image_statistics(small)
    stats["transparent_share"] = transparent
    h, w = rgb.shape[:2]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"width": w, "height": h, "phash": perceptual_hash(small @ [0.299, 0.587, 0.114]),
            "thumb": thumb.ravel().tolist(), "stats": stats, "sha256": digest}


# --- grouping, classification, holdout --------------------------------------------------------

def same_structure(a: dict, b: dict, cfg: PhotoSetConfig) -> bool:
    """Same picture, perhaps recoloured: DCT hashes and aspect ratios agree (``analyse`` dicts)."""
    aspect = abs(math.log(a["width"] / a["height"]) - math.log(b["width"] / b["height"]))
    return hamming(a["phash"], b["phash"]) <= cfg.hash_threshold and aspect <= cfg.aspect_tolerance


def are_duplicates(a: dict, b: dict, cfg: PhotoSetConfig) -> bool:
    """Same picture at another resolution or a slightly other crop: structure and colour agree."""
    colour = np.abs(np.subtract(a["thumb"], b["thumb"])).max()
    return same_structure(a, b, cfg) and colour <= cfg.colour_tolerance


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return list(out.values())


def write_image(src: Path, dest: Path, cfg: PhotoSetConfig) -> tuple[int, int]:
    """RGB, shorter side at most ``max_short_side`` (Lanczos), PNG or JPEG q95, atomically."""
    rgb = resize_short_side(load_rgb(src)[0], cfg.max_short_side)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    img = Image.fromarray(rgb)
    if cfg.image_format == "png":
        img.save(tmp, format="PNG", optimize=False)
    else:
        img.save(tmp, format="JPEG", quality=95, subsampling=0)
    os.replace(tmp, dest)
    return rgb.shape[1], rgb.shape[0]
