"""Images in and out, image folders and the paper's preprocessing (the resumable sampler and
loader: ``swycc.data_order``).

Images inside the library are float tensors in [-1, 1], (3, H, W) or (N, 3, H, W), RGB.
Training augmentation is a pure function of (seed, epoch, index), never of a global RNG, so a
resumed run sees exactly the batches an uninterrupted one would have seen, in any number of
processes and data-loader workers.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import warnings
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from swycc.config import DataConfig

log = logging.getLogger(__name__)
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


class ImageError(ValueError):
    """An image file that is missing, unreadable or not an image."""


class ImageTooLargeError(ImageError):
    """An image with more pixels than the limit of the command (checked from its header)."""


# Reasons a file of an image folder is left out of training (``ImageFolderDataset.skip_counts``).
SKIP_REASONS = ("unreadable", "too_large", "unsupported_extension", "symlink_loop")
_REASON_TEXT = {"unreadable": "unreadable", "too_large": "too large",
                "unsupported_extension": "with an unsupported extension",
                "symlink_loop": "symlink loop(s) or folder(s) reached twice"}


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> uint8 (H, W, 3). 16-bit is scaled by 1/257; alpha is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        a = np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8)
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
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    with _opened(path) as img:
        _check_pixels(path, img.size, max_pixels)
        return img.size


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
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    with _opened(path) as img:
        _check_pixels(path, img.size, max_pixels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
            return array_to_tensor(to_rgb_array(ImageOps.exif_transpose(img)))
        except Image.DecompressionBombError as e:
            raise ImageTooLargeError(f"{path}: {e}") from None
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


def center_crop_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """The largest centre square, resized to size x size."""
    h, w = x.shape[-2:]
    c = min(h, w)
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


def _split(item: int | tuple[int, int]) -> tuple[int, int]:
    """Dataset keys are an index or (epoch, index), as yielded by ResumableSampler."""
    return (0, item) if isinstance(item, int) else (int(item[0]), int(item[1]))


class ImageFolderDataset(torch.utils.data.Dataset):
    """Any image folder, recursive. Train: shorter side -> size, random crop, random flip.
    Eval: largest centre square resized to size. Labels from first-level sub-folder names.

    A file that cannot be loaded (corrupt, or over Pillow's decompression-bomb pixel limit) is
    skipped with a warning the first time and the next image stands in for it, so a long run
    never dies on one bad file. ``skip_counts()`` gives, by reason, the files left out when
    listing and the distinct files skipped so far in this process (shared with data-loader
    workers); the training loop writes them to the metrics log.
    """

    CACHE_BYTES = 1 << 30  # decoded 8-bit pictures kept in memory (per process)

    def __init__(self, root: str | os.PathLike, size: int, train: bool, labels: bool = False,
                 seed: int = 0, crop_scale_min: float = 1.0, eval_grid: int = 1):
        self.root, self.size, self.train, self.seed = Path(root), size, train, seed
        self.crop_scale_min, self.eval_grid = crop_scale_min, eval_grid
        self.cells = 1 if train else eval_grid * eval_grid  # evaluation images per file
        scan = checked_scan(root)  # warns about what it leaves out
        self.files, self.listing = scan.files, scan.skipped
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache_bytes = 0
        self.classes = sorted({p.relative_to(self.root).parts[0] for p in self.files
                               if len(p.relative_to(self.root).parts) > 1}) if labels else []
        self.labels = labels
        # per file: 0 not skipped, 1 unreadable, 2 too large; in shared memory so that counts
        # made in data-loader worker processes reach the main process
        self._skip_flags = torch.zeros(len(self.files), dtype=torch.int8)
        try:
            self._skip_flags.share_memory_()
        except RuntimeError:  # no shared memory here: counts from workers are lost
            pass

    def __len__(self) -> int:
        return len(self.files) * self.cells

    @property
    def skipped(self) -> int:
        """Distinct files skipped when loading, so far."""
        return int((self._skip_flags > 0).sum())

    def skip_counts(self) -> dict[str, int]:
        """``skipped_<reason>`` for every reason in SKIP_REASONS (listing + loading)."""
        flags = self._skip_flags
        loaded = {"unreadable": int((flags == 1).sum()), "too_large": int((flags == 2).sum())}
        return {f"skipped_{r}": int(self.listing.get(r, 0)) + loaded.get(r, 0)
                for r in SKIP_REASONS}

    def label_of(self, path: Path) -> int:
        if not self.labels:
            return -1
        parts = path.relative_to(self.root).parts
        return self.classes.index(parts[0]) if len(parts) > 1 else -1

    def _load(self, i: int, path: Path) -> torch.Tensor:
        """The decoded picture, from an in-memory cache of 8-bit pictures (a budget of
        ``CACHE_BYTES``): crops of a few large photos would otherwise decode the whole file for
        every crop (0.5 s each for a 1638 x 1024 PNG here). Values are bit-identical."""
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return hit
        x = load_image(path)
        u8 = ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        self._cache[i] = u8
        self._cache_bytes += u8.numel()
        while self._cache_bytes > self.CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.numel()
        return u8  # 8-bit: callers crop first, then convert (elementwise, so the same values)

    def _skip(self, i: int, reason: int, message: str) -> None:
        if int(self._skip_flags[i]) == 0:
            self._skip_flags[i] = reason
            warnings.warn(f"skipping {message}", stacklevel=3)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = _split(item)
        index, cell = divmod(index, self.cells)
        for attempt in range(len(self.files)):
            i = (index + attempt) % len(self.files)
            path = self.files[i]
            try:
                x = self._load(i, path)  # Pillow's bomb limit: ImageTooLargeError, no crash
            except ImageTooLargeError as e:
                self._skip(i, 2, f"too large an image {e}")
                continue
            except MemoryError:
                self._skip(i, 2, f"image {path}: out of memory while decoding it")
                continue
            except ImageError as e:
                self._skip(i, 1, f"unreadable image {e}")
                continue
            if self.train and self.crop_scale_min < 1:
                g = sample_generator(self.seed, epoch, index)
                x = random_scale_crop(x, self.size, self.crop_scale_min, g)
                x = x.flip(-1) if bool(torch.rand(1, generator=g) < 0.5) else x
            elif self.train:
                g = sample_generator(self.seed, epoch, index)
                x = random_crop_flip(resize_shorter_side(to_float(x), self.size), self.size, g)
            elif self.eval_grid > 1:
                x = grid_crop(x, self.size, self.eval_grid, cell)
            else:
                x = center_crop_square(to_float(x), self.size)
            return x, self.label_of(path)
        raise ImageError(f"{self.root}: no readable image left")


def build_dataset(cfg: DataConfig, size: int, train: bool, seed: int = 0):
    """The embedded photo set (cfg.path is None) or an image folder."""
    if cfg.path is None:
        from swycc.embedded import EmbeddedCropDataset

        return EmbeddedCropDataset(size, "train" if train else "heldout", held_out=cfg.held_out,
                                   train_crops=cfg.train_crops, seed=seed)
    return ImageFolderDataset(cfg.path, size, train=train, labels=cfg.labels, seed=seed,
                              crop_scale_min=cfg.crop_scale_min, eval_grid=cfg.eval_grid)
