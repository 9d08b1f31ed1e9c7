"""Image-folder datasets and ``build_dataset`` (the embedded photo set or a folder).

Training augmentation is a pure function of (seed, epoch, index), never of a global RNG, so a
resumed run sees exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from pathlib import Path

import torch

from swycc.config import DataConfig
from swycc.data.embedded import EmbeddedCropDataset
from swycc.data.images import (SKIP_REASONS, ImageError, ImageTooLargeError, too_thin,
                               center_crop_square,
                               checked_scan, grid_crop, hue_rotation, load_image, random_crop_flip,
                               random_scale_crop, resize_shorter_side, sample_generator, to_float)


def _split(item: int | tuple[int, ...]) -> tuple[int, int]:
    """Dataset keys are an index, (epoch, index) as yielded by ResumableSampler, or (epoch,
    index, crop side) with data.crop_sizes (swycc.data.order)."""
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
                 seed: int = 0, crop_scale_min: float = 1.0, eval_grid: int = 1,
                 hue_rotation: float = 0.0, batch_crop_sizes: tuple[int, ...] = (),
                 quarter_turns: float = 0.0):
        self.root, self.size, self.train, self.seed = Path(root), size, train, seed
        self.batch_crop_sizes = tuple(batch_crop_sizes) if train else ()
        self.hue_rotation, self.quarter_turns = hue_rotation, quarter_turns
        self.crop_scale_min, self.eval_grid = crop_scale_min, eval_grid
        self.cells = 1 if train else eval_grid * eval_grid  # evaluation images per file
        scan = checked_scan(root)  # warns about what it leaves out
        self.files, self.listing = scan.files, scan.skipped
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache_bytes = 0
        self.classes = sorted({p.relative_to(self.root).parts[0] for p in self.files
                               if len(p.relative_to(self.root).parts) > 1}) if labels else []
        self.labels = labels
        # per file: 0 not skipped, 1 unreadable, 2 too large, 3 too small or thin; in shared
        # memory so that counts
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
        loaded = {"unreadable": int((flags == 1).sum()), "too_large": int((flags == 2).sum()),
                  "too_small": int((flags == 3).sum())}
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

    def _training_view(self, x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
        """A random size x size crop of the 8-bit picture x, flipped, turned and hue-rotated as
        configured; every draw comes from g (the sample's own generator)."""
        if self.crop_scale_min < 1:
            x = random_scale_crop(x, size, self.crop_scale_min, g)
            x = x.flip(-1) if bool(torch.rand(1, generator=g) < 0.5) else x
        else:
            x = random_crop_flip(resize_shorter_side(to_float(x), size), size, g)
        # each drawn only when on, so that runs without it see the same crops as before
        if self.quarter_turns > 0 and float(torch.rand(1, generator=g)) < self.quarter_turns:
            turns = int(torch.randint(1, 4, (1,), generator=g))
            x = torch.rot90(x, turns, dims=(-2, -1))  # square crops: same shape
        if self.hue_rotation > 0 and float(torch.rand(1, generator=g)) < self.hue_rotation:
            x = hue_rotation(x, (float(torch.rand(1, generator=g)) * 2 - 1) * math.pi)
        return x

    def __getitem__(self, item: int | tuple[int, ...]) -> tuple[torch.Tensor, int]:
        epoch, index = _split(item)
        # the batch's crop side (same random crop, only its resolution differs)
        size = int(item[2]) if not isinstance(item, int) and len(item) > 2 else self.size
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
            if too_thin(*x.shape[-2:]) or min(x.shape[-2:]) < self.eval_grid:
                self._skip(i, 3, f"image {path}: {x.shape[-1]}x{x.shape[-2]} pixels is too small "
                                 f"or too thin to crop")
                continue
            if self.train:
                x = self._training_view(x, size, sample_generator(self.seed, epoch, index))
            elif self.eval_grid > 1:
                x = grid_crop(x, self.size, self.eval_grid, cell)
            else:
                x = center_crop_square(to_float(x), self.size)
            return x, self.label_of(path)
        raise ImageError(f"{self.root}: no readable image left")


def build_dataset(cfg: DataConfig, size: int, train: bool, seed: int = 0):
    """The embedded photo set (cfg.path is None) or an image folder."""
    if cfg.path is None:
        if cfg.crop_sizes and train:
            raise ValueError("data.crop_sizes needs an image folder (--data); the embedded set's "
                             "crops have one size")
        if cfg.quarter_turns and train:
            raise ValueError("data.quarter_turns needs an image folder (--data); the embedded "
                             "set draws its own views (--set data.quarter_turns=0)")
        return EmbeddedCropDataset(size, "train" if train else "heldout", held_out=cfg.held_out,
                                   train_crops=cfg.train_crops, seed=seed)
    return ImageFolderDataset(cfg.path, size, train=train, labels=cfg.labels, seed=seed,
                              crop_scale_min=cfg.crop_scale_min, eval_grid=cfg.eval_grid,
                              hue_rotation=cfg.hue_rotation, batch_crop_sizes=cfg.crop_sizes,
                              quarter_turns=cfg.quarter_turns)
