"""Whole photos against their reconstructions: what ``ship-check`` and the held-out evaluation
during training (``swycc train --eval-data``) both measure.

- :func:`load_square_photos`: every image of a folder, its largest centre square resized to one
  size and quantised to the 8-bit levels a PNG holds;
- :func:`bicubic_from_eighth`: the baseline a 1/8-resolution latent must beat (each 8x8 patch's
  mean colour, bicubic-upsampled back);
- :func:`channel_mean_error` and :func:`colour_shift`: the per-channel colour bias of a
  reconstruction, in 8-bit levels.

Images are float tensors (N, 3, H, W) in [-1, 1] (127.5 levels per unit).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from swycc.metrics.maths import quantized

FACTOR = 8  # the latent's downsampling the bicubic baseline stands for


def load_square_photos(folder: str | Path, size: int) -> tuple[list[str], torch.Tensor]:
    """(file names, (N, 3, size, size) 8-bit levels in [-1, 1]) for every image of ``folder``.
    ValueError when it is not a folder; ImageError (naming the file) for an unreadable image or
    a folder without any."""
    from swycc.data.images import center_crop_square, list_images, load_image

    if not Path(folder).is_dir():
        raise ValueError(f"{folder}: no such image folder")
    files = list_images(folder)
    x = torch.stack([center_crop_square(load_image(p), size) for p in files])
    return [p.name for p in files], quantized(x)


def bicubic_from_eighth(x: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1], H and W multiples of ``factor`` -> the same size: each patch's
    mean colour (area downsampling), bicubic-upsampled back and clamped."""
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} is not a multiple of {factor}")
    small = F.avg_pool2d(x.float(), factor)
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)


def channel_mean_error(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N, 3) float64: mean over pixels of y_c - mean over pixels of x_c for each RGB channel c,
    in 8-bit levels (signed: positive = the reconstruction is too bright in that channel)."""
    if y.shape != x.shape:
        raise ValueError(f"expected two batches of one shape, got {tuple(y.shape)} and "
                         f"{tuple(x.shape)}")
    return (y.double().mean((-2, -1)) - x.double().mean((-2, -1))) * 127.5


def colour_shift(y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (N,) the colour shift in 8-bit levels (the largest channel's) and (N, 3) each
    channel's |mean(y_c) - mean(x_c)|."""
    per_channel = channel_mean_error(y, x).abs()
    return per_channel.amax(1), per_channel


__all__ = ["bicubic_from_eighth", "channel_mean_error", "colour_shift", "load_square_photos"]
