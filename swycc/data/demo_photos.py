"""The quick start's whole photos: six 256 px centre squares of the photo set's test split,
shipped in ``swycc/data/photos/`` (sources and licences: its README.md), so that ``swycc demo``
shows whole photos of varied colour with no download."""

from __future__ import annotations

from pathlib import Path

import torch

PHOTOS_DIR = Path(__file__).resolve().parent / "photos"
SHIPPED_SIZE = 256  # side of the shipped files


def demo_photo_files() -> list[Path]:
    """The shipped photos, sorted by name."""
    return sorted(PHOTOS_DIR.glob("*.jpg"))


def demo_photos(size: int = SHIPPED_SIZE) -> tuple[list[str], torch.Tensor]:
    """(names, (N, 3, size, size) in [-1, 1] at 8-bit levels): every shipped photo resized to
    ``size`` (antialiased bicubic; 256 keeps the files' pixels)."""
    from swycc.data.images import ImageError, center_crop_square, load_image

    files = demo_photo_files()
    if not files:
        raise ImageError(f"{PHOTOS_DIR}: the quick start's photos are missing from this install")
    x = torch.stack([center_crop_square(load_image(p), size) for p in files])
    levels = ((x.double() + 1.0) * 127.5).round().clamp(0.0, 255.0)
    return [p.stem for p in files], (levels / 127.5 - 1.0).float()
