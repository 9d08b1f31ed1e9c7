"""Whole-photo numbers shared by ship-check, the quick start and in-training evaluation.

Images are (N, 3, H, W) in [-1, 1]; one 8-bit level is 1 / 127.5 of that range.

- ``bicubic_from_eighth``: the baseline every latent must beat: each 8x8 patch averaged to its
  mean colour (area downsampling by 8: 3 numbers per patch), bicubic-upsampled back
  (a = -0.75, align_corners=False, edges replicated) and clamped.
- ``load_square_photos``: every image of a folder, its largest centre square (or a centre
  close-up of a share of the shorter side) at one size, in the 8-bit levels a PNG holds.
- ``colour_shift`` / ``channel_mean_error``: per RGB channel the signed error of the means in
  8-bit levels (both images quantised to levels 0-255 first), e_c = mean(y_c) - mean(x_c); the
  image's colour shift is max_c |e_c|.
- ``gradient_energy_ratio``: sum of the reconstructions' gradient energy
  (``swycc.io.visual.gradient_energy``) over the originals' (1: as sharp; below: blurrier).
- ``latent_bytes``: what a latent of C channels at 1/f of the side costs in fp16:
  C x (H / f) x (W / f) x 2 bytes.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from swycc.io.visual import gradient_energy
from swycc.metrics.maths import quantize_uint8, quantized

FACTOR = 8
LEVELS_PER_UNIT = 127.5  # 8-bit levels per unit of the [-1, 1] range
FP16_BYTES = 2


def load_square_photos(folder: str | Path, size: int,
                       share: float = 1.0) -> tuple[list[str], torch.Tensor]:
    """(file names, (N, 3, size, size) 8-bit levels in [-1, 1]) for every image of ``folder``:
    its centre square of side ``share`` x the shorter side (1: the largest, the whole photo).
    ValueError when it is not a folder; ImageError (naming the file) for an unreadable image or
    a folder without any."""
    from swycc.data.images import center_crop_square, list_images, load_image

    if not Path(folder).is_dir():
        raise ValueError(f"{folder}: no such image folder")
    files = list_images(folder)
    x = torch.stack([center_crop_square(load_image(p), size, share) for p in files])
    return [p.name for p in files], quantized(x)


def bicubic_from_eighth(x: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1], H and W multiples of ``factor`` -> the same size: each patch's
    mean colour (area downsampling), bicubic-upsampled back and clamped."""
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} is not a multiple of {factor}")
    small = F.avg_pool2d(x.float(), factor)
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)


def colour_shift(y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (N,) the colour shift in 8-bit levels (the largest |channel error|) and (N, 3)
    each channel's signed mean error mean(y_c) - mean(x_c), both quantised to 8-bit levels
    first (float64, exact: a sum of integers over the pixel count)."""
    if y.shape != x.shape or y.ndim != 4:
        raise ValueError(f"expected two (N, C, H, W) batches of one shape, got "
                         f"{tuple(y.shape)} and {tuple(x.shape)}")
    signed = quantize_uint8(y).mean((-2, -1)) - quantize_uint8(x).mean((-2, -1))
    return signed.abs().amax(1), signed


def channel_mean_error(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N, 3) float64: each channel's signed mean error in 8-bit levels (``colour_shift``'s
    second value; positive = the reconstruction is too bright in that channel)."""
    return colour_shift(y, x)[1]


def gradient_energy_ratio(y: torch.Tensor, x: torch.Tensor) -> float:
    """Sum over the set of y's gradient energy over x's (NaN when x is flat everywhere)."""
    if y.shape != x.shape:
        raise ValueError(f"expected two batches of one shape, got {tuple(y.shape)} and "
                         f"{tuple(x.shape)}")
    den = float(gradient_energy(x).double().sum())
    return float(gradient_energy(y).double().sum()) / den if den > 0 else float("nan")


def latent_bytes(channels: int, height: int, width: int, factor: int = FACTOR) -> int:
    """Bytes of a ``channels`` x H/f x W/f latent stored as fp16."""
    if height % factor or width % factor:
        raise ValueError(f"image size {height}x{width} is not a multiple of {factor}")
    return channels * (height // factor) * (width // factor) * FP16_BYTES


__all__ = ["FACTOR", "LEVELS_PER_UNIT", "bicubic_from_eighth", "colour_shift",
           "gradient_energy_ratio", "latent_bytes"]
