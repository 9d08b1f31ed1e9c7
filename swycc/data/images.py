"""Images in and out, folder scans and the paper's preprocessing (datasets:
``swycc.data.folder``; the resumable sampler and loader: ``swycc.data.order``).

Images inside the library are float tensors in [-1, 1], (3, H, W) or (N, 3, H, W), RGB.
Training augmentation is a pure function of (seed, epoch, index), never of a global RNG, so a
resumed run sees exactly the batches an uninterrupted one would have seen, in any number of
processes and data-loader workers.
"""

from __future__ import annotations

import errno
import math
import logging
import os
import stat
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from swycc.io.files import file_kind


log = logging.getLogger(__name__)
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


class ImageError(ValueError):
    """An image file that is missing, unreadable or not an image."""


class ImageTooLargeError(ImageError):
    """An image with more pixels than the limit of the command (checked from its header)."""


# Reasons a file of an image folder is left out of training (``ImageFolderDataset.skip_counts``).
SKIP_REASONS = ("unreadable", "too_large", "unsupported_extension", "symlink_loop", "too_small")
_REASON_TEXT = {"unreadable": "unreadable", "too_large": "too large",
                "too_small": "too small or too thin",
                "unsupported_extension": "with an unsupported extension",
                "symlink_loop": "symlink loop(s) or folder(s) reached twice"}


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> uint8 (H, W, 3). 16-bit is scaled by 1/257; alpha is composited on white.
    32-bit integer pictures (TIFF) are taken as 16-bit when their values fit 0..65535, float
    ones as [0, 1] intensities when they fit that; others have no faithful 8-bit form and are
    refused (ImageError) rather than clipped to a black or white picture."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        if img.mode == "I" and a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageError(f"a 32-bit integer picture with values {a.min():.0f}..{a.max():.0f}"
                             f" (outside 0..65535): no faithful 8-bit conversion; save it as an "
                             f"8- or 16-bit image")
        a = np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        if a.size and not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1):
            raise ImageError("a floating-point picture with values outside [0, 1]: no faithful "
                             "8-bit conversion; save it as an 8- or 16-bit image")
        a = np.round(a * 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def array_to_tensor(a: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(a, dtype=np.uint8)).permute(2, 0, 1).float() / 127.5 - 1.0


# Pictures a dataset can crop: the shorter side at least MIN_SIDE pixels and the longer at most
# MAX_ASPECT times it (a 1 x 5000 strip has no centre square to speak of, and resizing its
# shorter side to 256 would make it 256 x 1.28 million pixels).
MIN_SIDE = 8
MAX_ASPECT = 16


def too_thin(height: int, width: int) -> bool:
    """A picture no dataset crops (see MIN_SIDE, MAX_ASPECT)."""
    short, long = min(height, width), max(height, width)
    return short < MIN_SIDE or long > MAX_ASPECT * short


def pixel_limit(max_pixels: int | None = None) -> tuple[int | None, str]:
    """The pixel-count limit in force and how to name it in messages: ``max_pixels`` when
    given, otherwise Pillow's decompression-bomb guard ``Image.MAX_IMAGE_PIXELS``."""
    if max_pixels is not None:
        return max_pixels, "--max-pixels"
    return Image.MAX_IMAGE_PIXELS, "Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS)"


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    limit, name = pixel_limit(max_pixels)
    w, h = size
    if limit is not None and w * h > limit:
        raise ImageTooLargeError(f"{path}: {w}x{h} = {w * h:,} pixels is over the limit of "
                                 f"{limit:,} ({name})")


def image_size(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels; ImageError when
    missing or not an image, ImageTooLargeError when over the pixel limit (``pixel_limit``)."""
    path = _image_file(path)
    with _opened(path) as img:
        _check_pixels(path, img.size, max_pixels)
        return img.size


def _image_file(path: str | os.PathLike) -> Path:
    """``path`` if it is a regular file; ImageError saying what it is otherwise ("file not
    found" only for what does not exist: a FIFO, directory or symlink loop is named)."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "missing":
        raise ImageError(f"{path}: file not found")
    if kind is not None:
        raise ImageError(f"{path}: is {kind}, not a regular file")
    return path


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` (header only) with Pillow's bomb warning silenced, since the caller checks
    the size itself, and its errors turned into ImageError / ImageTooLargeError naming the file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{path}: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: not a readable image ({type(e).__name__})") from None
    with img:
        yield img


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> torch.Tensor:
    """(3, H, W) in [-1, 1]; ImageError naming the file when it is missing or not an image,
    ImageTooLargeError (before decoding) when it has more than ``max_pixels`` pixels (default:
    Pillow's decompression-bomb limit)."""
    path = _image_file(path)
    with _opened(path) as img:
        _check_pixels(path, img.size, max_pixels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
            return array_to_tensor(to_rgb_array(ImageOps.exif_transpose(img)))
        except Image.DecompressionBombError as e:
            raise ImageTooLargeError(f"{path}: {e}") from None
        except ImageError as e:  # a picture with no faithful 8-bit form
            raise ImageError(f"{path}: {e}") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise ImageError(f"{path}: not a readable image ({type(e).__name__})") from None


def save_image(x: torch.Tensor, path: str | os.PathLike) -> None:
    """Write (3, H, W) in [-1, 1] as PNG, atomically (a temporary file renamed into place)."""
    if x.ndim == 4:
        x = x[0]
    a = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(a.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class FolderScan:
    """What ``scan_images`` found: the image files (sorted) and, by reason, what it left out:
    ``unsupported_extension`` (.gif, .txt, ...; ``other_exts`` counts them by extension),
    ``symlink_loop`` (a link that loops, or a folder reached a second time through a link),
    ``unreadable`` (a dangling link, a folder that cannot be listed, a device file)."""

    files: list[Path]
    skipped: Counter = field(default_factory=Counter)
    other_exts: Counter = field(default_factory=Counter)

    def describe_skipped(self) -> str:
        return describe_skips(self.skipped, self.other_exts)


def describe_skips(counts: dict[str, int], other_exts: dict[str, int] | None = None) -> str:
    """``1 unreadable, 2 with an unsupported extension (.gif: 2)`` from counts keyed by reason
    (or ``skipped_<reason>``, as in ``ImageFolderDataset.skip_counts``); "" when all are 0."""
    counts = {k.removeprefix("skipped_"): v for k, v in counts.items()}
    parts = []
    for reason in SKIP_REASONS:
        if counts.get(reason):
            text = f"{counts[reason]} {_REASON_TEXT[reason]}"
            if reason == "unsupported_extension" and other_exts:
                text += " (" + ", ".join(f"{e}: {n}" for e, n in sorted(other_exts.items())) + ")"
            parts.append(text)
    return ", ".join(parts)


def scan_images(root: str | os.PathLike) -> FolderScan:
    """Image files under ``root``, recursive, following symlinked folders (each folder once)."""
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root}: no such image folder")
    scan = FolderScan([])

    def unreadable(_err: OSError) -> None:
        scan.skipped["unreadable"] += 1

    st = root.stat()
    seen = {(st.st_dev, st.st_ino)}  # folders visited or about to be
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        keep = []
        # real folders before links to them, so a folder is listed under its own name
        for d in sorted(dirnames, key=lambda d: (os.path.islink(os.path.join(dirpath, d)), d)):
            try:
                sd = os.stat(os.path.join(dirpath, d))
            except OSError:
                scan.skipped["unreadable"] += 1
                continue
            if (sd.st_dev, sd.st_ino) in seen:
                scan.skipped["symlink_loop"] += 1
            else:
                seen.add((sd.st_dev, sd.st_ino))
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            p = Path(dirpath, name)
            try:
                mode = p.stat().st_mode
            except OSError as e:
                scan.skipped["symlink_loop" if e.errno == errno.ELOOP else "unreadable"] += 1
                continue
            if not stat.S_ISREG(mode):
                scan.skipped["unreadable"] += 1
            elif p.suffix.lower() not in IMAGE_EXTS:
                scan.skipped["unsupported_extension"] += 1
                scan.other_exts[p.suffix.lower() or "(none)"] += 1
            else:
                scan.files.append(p)
    scan.files.sort()
    return scan


def list_images(root: str | os.PathLike) -> list[Path]:
    """``scan_images``'s files; a warning names what was left out; ImageError when none."""
    return checked_scan(root).files


def checked_scan(root: str | os.PathLike) -> FolderScan:
    """``scan_images``, with a warning naming what was left out; ImageError when no image."""
    scan = scan_images(root)
    exts = ", ".join(sorted(IMAGE_EXTS))
    if not scan.files:
        left = scan.describe_skipped()
        raise ImageError(f"{root}: no images found (looked for {exts}"
                         f"{'; left out: ' + left if left else ''})")
    if scan.skipped:
        warnings.warn(f"{root}: left out {scan.describe_skipped()} (supported: {exts})",
                      stacklevel=3)
    return scan


# ---- preprocessing (paper: resize shorter side, random crop; eval: largest centre square) ----

def resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Antialiased bicubic resize of (3, H, W), clamped back to [-1, 1]."""
    if x.shape[-2:] == (h, w):
        return x
    y = F.interpolate(x[None], size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return y[0].clamp(-1, 1)


def resize_shorter_side(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    s = size / min(h, w)
    return resize(x, max(size, round(h * s)), max(size, round(w * s)))


def center_crop_square(x: torch.Tensor, size: int, share: float = 1.0) -> torch.Tensor:
    """The centre square of side ``share`` x the shorter side (1: the largest), resized to
    size x size."""
    if not 0 < share <= 1:
        raise ValueError(f"share must lie in (0, 1], got {share}")
    h, w = x.shape[-2:]
    c = max(1, round(share * min(h, w)))
    top, left = (h - c) // 2, (w - c) // 2
    return resize(x[:, top:top + c, left:left + c], size, size)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_033 + index)


def random_crop_flip(x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    h, w = x.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (1,), generator=g))
    left = int(torch.randint(0, w - size + 1, (1,), generator=g))
    x = x[:, top:top + size, left:left + size]
    return x.flip(-1) if bool(torch.rand(1, generator=g) < 0.5) else x


def random_scale_crop(x: torch.Tensor, size: int, scale_min: float,
                      g: torch.Generator) -> torch.Tensor:
    """A square of side s * (shorter side), s ~ U[scale_min, 1], at a random place, resized to
    size: many training crops of few large photos, from whole-picture views to close-ups."""
    h, w = x.shape[-2:]
    s = scale_min + (1.0 - scale_min) * float(torch.rand(1, generator=g))
    side = max(size // 2, round(s * min(h, w)))
    side = min(side, h, w)
    top = int(torch.randint(0, h - side + 1, (1,), generator=g))
    left = int(torch.randint(0, w - side + 1, (1,), generator=g))
    return resize(to_float(x[:, top:top + side, left:left + side]), size, size)


def grid_crop(x: torch.Tensor, size: int, grid: int, cell: int) -> torch.Tensor:
    """Cell ``cell`` (row-major) of a grid x grid split of the largest centre square, resized."""
    h, w = x.shape[-2:]
    c = min(h, w) // grid * grid
    top, left = (h - c) // 2, (w - c) // 2
    k = c // grid
    r, q = divmod(cell, grid)
    crop = x[:, top + r * k:top + (r + 1) * k, left + q * k:left + (q + 1) * k]
    return resize(to_float(crop), size, size)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """8-bit (3, H, W) -> float in [-1, 1]; float input unchanged."""
    return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x


def hue_rotation(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate colours about the grey axis by ``angle`` radians; x (3, H, W) in [-1, 1]."""
    k = torch.full((3,), 1 / math.sqrt(3.0))
    cross = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = (math.cos(angle) * torch.eye(3) + math.sin(angle) * cross
           + (1 - math.cos(angle)) * torch.outer(k, k))
    y = torch.einsum("ij,jhw->ihw", rot, (x + 1) / 2)
    return (y.clamp(0, 1) * 2 - 1)
