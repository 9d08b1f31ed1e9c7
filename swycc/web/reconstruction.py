"""What the web page computes, as plain functions of arrays and a model (no Gradio here).

One photo in (uint8 (H, W, 3)), out: the original, the deterministic reconstruction (SWYCC's
D_Initial, the GAN's decoder; none for DGAE), S samples of p(x | z) and the per-pixel variance
across them (the paper's Fig. 9), plus the latents and PNGs to download. Large images run
tiled, as ``swycc reconstruct`` does (``swycc.autoencoders.tiling``).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from swycc.config import GUIDANCE_RANGE
from swycc.autoencoders.base import Autoencoder
from swycc.data.images import array_to_tensor, resize, save_image
from swycc.autoencoders.tiling import DEFAULT_OVERLAP, DEFAULT_TILE
from swycc.io.visual import to_uint8, variance_heatmap

TEST_PHOTO_SIDE = 128  # held-back squares are shown at most this large (CPU seconds per run)


class WebInputError(ValueError):
    """A photo or a setting the page cannot use; the page shows the message."""


@dataclass(frozen=True)
class Tiling:
    """``swycc reconstruct``'s tiling options: tile True / False / None (automatic)."""

    tile: bool | None = None
    tile_size: int = DEFAULT_TILE
    tile_overlap: int = DEFAULT_OVERLAP

    def kwargs(self) -> dict:
        return {"tile": self.tile, "tile_size": self.tile_size, "tile_overlap": self.tile_overlap}


@dataclass
class Reconstruction:
    """Tensors in [-1, 1]: original (3, H, W), initial (3, H, W) or None, samples (S, 3, H, W);
    z (C, h, w) the latents of the padded image; size the original (H, W)."""

    original: torch.Tensor
    initial: torch.Tensor | None
    samples: torch.Tensor
    z: torch.Tensor
    size: tuple[int, int]
    samples_drawn: bool  # the decoder samples (else ``samples`` holds its one reconstruction)


# ---- test photos ---------------------------------------------------------------------------------

def held_back_photo_names() -> list[str]:
    """The embedded photo set's photos that load here (``swycc.data.embedded``)."""
    from swycc.data.embedded import embedded_photos

    return [name for name, _ in embedded_photos()]


@lru_cache(maxsize=16)
def held_back_photo(name: str, side: int = TEST_PHOTO_SIDE) -> np.ndarray:
    """A held-back square of an embedded photo, uint8 (side', side', 3) with side' <= side: the
    largest square of its right-most strip (never seen in training), centred, downscaled."""
    from swycc.data.embedded import embedded_photos, train_width

    photos = dict(embedded_photos())
    if name not in photos:
        raise WebInputError(f"no test photo named {name!r}; choose one of {', '.join(photos)}")
    a = photos[name]
    h, w = a.shape[:2]
    left = train_width(w)
    s = min(w - left, h)
    top = (h - s) // 2
    x = array_to_tensor(a[top:top + s, left:left + s])
    if s > side:
        x = resize(x, side, side)
    return to_uint8(x)


# ---- the reconstruction -----------------------------------------------------------------------

def image_tensor(image: np.ndarray | None, max_pixels: int) -> torch.Tensor:
    """An uploaded photo (uint8 (H, W), (H, W, 3) or (H, W, 4)) as (3, H, W) in [-1, 1]."""
    if image is None:
        raise WebInputError("upload a photo or pick a test photo first")
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise WebInputError(f"expected an RGB image, got an array of shape {a.shape}")
    if a.dtype != np.uint8:
        raise WebInputError(f"expected 8-bit pixels, got {a.dtype}")
    h, w = a.shape[:2]
    if h * w > max_pixels:
        raise WebInputError(f"the photo has {w}x{h} = {h * w:,} pixels, over this page's limit "
                            f"of {max_pixels:,} (swycc web --max-pixels)")
    return array_to_tensor(np.ascontiguousarray(a[..., :3]))


def check_settings(steps: float, guidance: float, samples: float, seed: float) -> tuple:
    """Slider values as (int steps >= 1, float guidance, int samples >= 1, int seed)."""
    values = {"steps": steps, "samples": samples, "seed": seed}
    for name, v in values.items():
        if v is None or float(v) != int(float(v)):
            raise WebInputError(f"{name} must be a whole number, got {v!r}")
    if int(steps) < 1 or int(samples) < 1:
        raise WebInputError(f"steps and samples must be >= 1, got {steps} and {samples}")
    if guidance is None or not np.isfinite(float(guidance)):
        raise WebInputError(f"guidance must be a finite number, got {guidance!r}")
    lo, hi = GUIDANCE_RANGE
    if not lo <= float(guidance) <= hi:
        raise WebInputError(f"guidance must be in [{lo:g}, {hi:g}], got {guidance!r}")
    return int(steps), float(guidance), int(samples), int(seed)


@torch.no_grad()
def reconstruct(model: Autoencoder, x: torch.Tensor, steps: int, guidance: float, samples: int,
                seed: int, tiling: Tiling = Tiling()) -> Reconstruction:
    """Encode x (3, H, W) once; decode it deterministically (if the kind can) and ``samples``
    times (one batch, one seeded generator, as ``swycc reconstruct --seed``)."""
    from swycc.autoencoders.kinds import kind_of

    device = next(model.parameters()).device
    size = (x.shape[-2], x.shape[-1])
    z = model.encode(x[None].to(device), **tiling.kwargs())
    initial = None
    if kind_of(model).initial_label is not None:
        plan = model.tile_plan(z, tiling.tile, tiling.tile_size, tiling.tile_overlap)
        initial = plan.latent_map(model.decode_initial, z)[0, :, : size[0], : size[1]].cpu()
    drawn = model.samples
    g = torch.Generator(device=device).manual_seed(seed)
    xs = model.decode(z, steps, guidance, samples=samples if drawn else 1, generator=g,
                      size=size, **tiling.kwargs())[0].cpu()
    return Reconstruction(x.cpu(), initial, xs, z[0].cpu(), size, drawn)


def variance_image(samples: torch.Tensor) -> tuple[np.ndarray, float]:
    """(S, 3, H, W) -> the per-pixel variance over the samples (channel mean) as a magma
    colour image uint8 (H, W, 3), scaled to its maximum, and that maximum."""
    from matplotlib import colormaps

    var = variance_heatmap(samples).numpy()
    top = float(var.max())
    scaled = var / top if top > 0 else var
    rgb = colormaps["magma"](scaled)[..., :3]
    return (rgb * 255).round().astype(np.uint8), top


# ---- downloads ----------------------------------------------------------------------------------

def write_downloads(rec: Reconstruction, model: Autoencoder, folder: Path,
                    name: str = "photo") -> list[Path]:
    """The latents (a ``swycc decode``-able latents file, with the original size) and every
    reconstruction as PNG, in ``folder``."""
    from swycc.io.latents import LatentEntry, save_latents
    from swycc.io.outputs import safe_stem

    stem = safe_stem(name, "photo")
    folder.mkdir(parents=True, exist_ok=True)
    latents = folder / f"{stem}_latents.safetensors"
    save_latents([LatentEntry(stem, rec.size, rec.z)], latents, model.config.to_json())
    files = [latents]
    if rec.initial is not None:
        files.append(folder / f"{stem}_initial.png")
        save_image(rec.initial, files[-1])
    for k, sample in enumerate(rec.samples):
        files.append(folder / (f"{stem}_s{k + 1}.png" if rec.samples_drawn else f"{stem}.png"))
        save_image(sample, files[-1])
    return files


class RunFolders:
    """A fresh folder per run under one temporary directory (removed with this object); only
    the ``keep`` newest runs are kept (Gradio serves each run's files after it returns)."""

    def __init__(self, keep: int = 16):
        self.root = Path(tempfile.mkdtemp(prefix="swycc-web-"))
        self.keep = keep
        self.count = 0

    def new(self) -> Path:
        self.count += 1
        folder = self.root / f"run-{self.count:06d}"
        folder.mkdir()
        for old in sorted(self.root.iterdir())[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
