"""Images in and out, image folders, the paper's preprocessing and a resumable sampler.

Images inside the library are float tensors in [-1, 1], (3, H, W) or (N, 3, H, W), RGB.
Training augmentation is a pure function of (seed, epoch, index), never of a global RNG, so a
resumed run sees exactly the batches an uninterrupted one would have seen, in any number of
processes and data-loader workers.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
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


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """(3, H, W) in [-1, 1]; ImageError naming the file when it is missing or not an image."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    try:
        with Image.open(path) as img:
            img.load()
            return array_to_tensor(to_rgb_array(ImageOps.exif_transpose(img)))
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
    Image.fromarray(a.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
    os.replace(tmp, path)


def list_images(root: str | os.PathLike) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root}: no such image folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise ImageError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_EXTS))})")
    return files


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
    return resize(x[:, top:top + side, left:left + side], size, size)


def grid_crop(x: torch.Tensor, size: int, grid: int, cell: int) -> torch.Tensor:
    """Cell ``cell`` (row-major) of a grid x grid split of the largest centre square, resized."""
    h, w = x.shape[-2:]
    c = min(h, w) // grid * grid
    top, left = (h - c) // 2, (w - c) // 2
    k = c // grid
    r, q = divmod(cell, grid)
    return resize(x[:, top + r * k:top + (r + 1) * k, left + q * k:left + (q + 1) * k], size, size)


def _split(item: int | tuple[int, int]) -> tuple[int, int]:
    """Dataset keys are an index or (epoch, index), as yielded by ResumableSampler."""
    return (0, item) if isinstance(item, int) else (int(item[0]), int(item[1]))


class ImageFolderDataset(torch.utils.data.Dataset):
    """Any image folder, recursive. Train: shorter side -> size, random crop, random flip.
    Eval: largest centre square resized to size. Labels from first-level sub-folder names.

    A corrupt or unreadable file is skipped with a warning and counted in ``skipped``; the next
    image stands in for it, so a long run never dies on one bad file.
    """

    def __init__(self, root: str | os.PathLike, size: int, train: bool, labels: bool = False,
                 seed: int = 0, crop_scale_min: float = 1.0, eval_grid: int = 1):
        self.root, self.size, self.train, self.seed = Path(root), size, train, seed
        self.crop_scale_min, self.eval_grid = crop_scale_min, eval_grid
        self.cells = 1 if train else eval_grid * eval_grid  # evaluation images per file
        self.files = list_images(root)
        self.classes = sorted({p.relative_to(self.root).parts[0] for p in self.files
                               if len(p.relative_to(self.root).parts) > 1}) if labels else []
        self.labels = labels
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.files) * self.cells

    def label_of(self, path: Path) -> int:
        if not self.labels:
            return -1
        parts = path.relative_to(self.root).parts
        return self.classes.index(parts[0]) if len(parts) > 1 else -1

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = _split(item)
        index, cell = divmod(index, self.cells)
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                x = load_image(path)
            except ImageError as e:
                self.skipped += 1
                warnings.warn(f"skipping unreadable image {e}", stacklevel=2)
                continue
            if self.train and self.crop_scale_min < 1:
                g = sample_generator(self.seed, epoch, index)
                x = random_scale_crop(x, self.size, self.crop_scale_min, g)
                x = x.flip(-1) if bool(torch.rand(1, generator=g) < 0.5) else x
            elif self.train:
                g = sample_generator(self.seed, epoch, index)
                x = random_crop_flip(resize_shorter_side(x, self.size), self.size, g)
            elif self.eval_grid > 1:
                x = grid_crop(x, self.size, self.eval_grid, cell)
            else:
                x = center_crop_square(x, self.size)
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


# ---- resumable, rank-aware infinite sampling ----

class ResumableSampler:
    """Infinite stream of (epoch, index) for one rank of ``world_size``.

    Each epoch is a permutation seeded by (seed, epoch), wrapped to a multiple of world_size;
    rank r takes positions r, r + world, ... so the ranks together see the same examples, in the
    same global order, as one process. ``advance(n)`` records n examples *consumed* by the loop
    (prefetching does not count); ``state_dict`` is that position, and iteration starts there.
    """

    def __init__(self, dataset_len: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        if dataset_len < 1:
            raise ValueError("empty dataset")
        self.n, self.seed, self.rank, self.world, self.shuffle = (dataset_len, seed, rank,
                                                                  world_size, shuffle)
        self.per_rank = -(-dataset_len // world_size)
        self.epoch, self.offset = 0, 0

    def epoch_indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
        else:
            perm = list(range(self.n))
        total = self.per_rank * self.world
        perm = (perm * (-(-total // self.n)))[:total]
        return perm[self.rank::self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = self.epoch, self.offset
        while True:
            for idx in self.epoch_indices(epoch)[offset:]:
                yield epoch, idx
            epoch, offset = epoch + 1, 0

    def advance(self, n: int) -> None:
        self.offset += n
        while self.offset >= self.per_rank:
            self.offset -= self.per_rank
            self.epoch += 1

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])


class _Chunks:
    def __init__(self, sampler: ResumableSampler, batch_size: int):
        self.sampler, self.batch_size = sampler, batch_size

    def __iter__(self):
        it, batch = iter(self.sampler), []
        for key in it:
            batch.append(key)
            if len(batch) == self.batch_size:
                yield batch
                batch = []


def make_loader(dataset, batch_size: int, sampler: ResumableSampler,
                num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Infinite iterator of (images (B, 3, S, S), labels (B,)) from the sampler's position."""
    batches = _Chunks(sampler, batch_size)
    if num_workers > 0:
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches,
                                             num_workers=num_workers, persistent_workers=True)
        return iter(loader)

    def gen():
        for keys in batches:
            items = [dataset[k] for k in keys]
            yield (torch.stack([x for x, _ in items]),
                   torch.tensor([y for _, y in items], dtype=torch.long))
    return gen()
