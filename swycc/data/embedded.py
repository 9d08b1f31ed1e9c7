"""The embedded photo set: real photos that ship inside installed packages, no download.

scikit-image's ``skimage.data`` (astronaut, chelsea, coffee, rocket, the left view of the
stereo motorcycle, Hubble deep field, immunohistochemistry, retina; public domain / CC0 or
their authors' free licences), scikit-learn's sample images (china, flower; CC BY 2.0) and
matplotlib's ``grace_hopper.jpg``.

Held-back crops never share a pixel with training crops: the right-most quarter of every photo
is reserved for evaluation, and training crops are drawn from the rest. Training crops take a
random scale, position and flip and, by default, a random hue rotation on half of them (the set
leans to browns and greys; without it a small model learns a sepia colour cast). All of it is
a pure function of (seed, epoch, index).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from swycc.data.images import array_to_tensor, hue_rotation, resize, sample_generator

HELD_OUT_FRACTION = 0.25  # right-most strip of each photo, for evaluation only


@lru_cache(maxsize=1)
def embedded_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """(name, uint8 (H, W, 3) RGB) for every photo that loads offline here."""
    photos: list[tuple[str, np.ndarray]] = []

    def add(name, load):
        try:
            a = np.asarray(load())
        except Exception:  # a missing optional file or package: leave that photo out
            return
        if a.ndim == 3 and a.shape[2] >= 3 and a.dtype == np.uint8:
            photos.append((name, np.ascontiguousarray(a[..., :3])))

    import skimage.data as sk

    for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                 "immunohistochemistry", "retina"):
        add(name, getattr(sk, name, lambda: None))
    add("motorcycle", lambda: sk.stereo_motorcycle()[0])
    try:
        from sklearn.datasets import load_sample_images

        for fname, img in zip(("china", "flower"), load_sample_images().images):
            add(fname, lambda img=img: img)
    except ImportError:
        pass

    def hopper():
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(Image.open(f).convert("RGB"))

    add("grace_hopper", hopper)
    if not photos:
        raise RuntimeError("no embedded photos found: install scikit-image, scikit-learn, "
                           "matplotlib")
    return tuple(photos)


@lru_cache(maxsize=1)
def _photo_tensors() -> tuple[torch.Tensor, ...]:
    return tuple(array_to_tensor(a) for _, a in embedded_photos())


def train_width(w: int) -> int:
    return w - max(1, int(round(w * HELD_OUT_FRACTION)))


class EmbeddedCropDataset(torch.utils.data.Dataset):
    """split "train": ``train_crops`` random crops per epoch; "heldout": ``held_out`` fixed crops.

    Items are (image (3, size, size) in [-1, 1], -1). Keys are an index or (epoch, index).
    """

    def __init__(self, size: int, split: str = "train", held_out: int = 16,
                 train_crops: int = 4096, seed: int = 0, colour_jitter: bool = True):
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        self.size, self.split, self.seed, self.colour_jitter = size, split, seed, colour_jitter
        self.photos = _photo_tensors()
        self.skipped = 0
        self.length = train_crops if split == "train" else held_out
        self.boxes = self._heldout_boxes(held_out) if split == "heldout" else []

    def __len__(self) -> int:
        return self.length

    def _heldout_boxes(self, n: int) -> list[tuple[int, int, int, int]]:
        """(photo, top, left, side) of each held-back crop, inside the reserved strips."""
        per_photo = [n // len(self.photos) + (k < n % len(self.photos))
                     for k in range(len(self.photos))]
        boxes = []
        for k, m in enumerate(per_photo):
            h, w = self.photos[k].shape[-2:]
            x0 = train_width(w)
            strip = w - x0
            side = min(strip, h, 2 * self.size)
            for j in range(m):
                top = (h - side) * (j + 1) // (m + 1)
                boxes.append((j, k, top, x0 + (strip - side) // 2, side))
        return [b[1:] for b in sorted(boxes)]  # one crop of every photo before the second

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = (0, item) if isinstance(item, int) else (int(item[0]), int(item[1]))
        if self.split == "heldout":
            k, top, left, side = self.boxes[index]
            crop = self.photos[k][:, top:top + side, left:left + side]
            return resize(crop, self.size, self.size), -1
        g = sample_generator(self.seed, epoch, index)
        photo = self.photos[index % len(self.photos)]
        h, w = photo.shape[-2:]
        w = train_width(w)
        hi = min(4 * self.size, h, w)
        lo = min(self.size, hi)
        side = int(round(math.exp(math.log(lo) + float(torch.rand(1, generator=g))
                                  * (math.log(hi) - math.log(lo)))))
        top = int(torch.randint(0, h - side + 1, (1,), generator=g))
        left = int(torch.randint(0, w - side + 1, (1,), generator=g))
        x = resize(photo[:, top:top + side, left:left + side], self.size, self.size)
        if bool(torch.rand(1, generator=g) < 0.5):
            x = x.flip(-1)
        jitter = float(torch.rand(1, generator=g))
        angle = (float(torch.rand(1, generator=g)) * 2 - 1) * math.pi
        if self.colour_jitter and jitter < 0.5:
            x = hue_rotation(x, angle)
        return x, -1
