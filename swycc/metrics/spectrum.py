"""Radially averaged power spectra and a spectral distance between images and their originals.

Blur removes power at high spatial frequencies; noise adds it. Gradient energy sees only the sum
(noise can make up for blur); the spectrum sees each frequency band:

    P(u, v)  = |FFT2(x_c - mean(x_c))|^2 / (H W), averaged over the channels c
    S(r)     = mean of P(u, v) over the integer radius bin r = round(sqrt(u^2 + v^2)),
               u, v the signed integer frequencies, r = 1 .. min(H, W) // 2 (DC left out)
    d(y, x)  = sqrt(mean_r (10 log10 (S_y(r) + e) - 10 log10 (S_x(r) + e))^2)   in dB

with e = 1e-10 keeping empty bands finite (two empty bands are 0 dB apart). Images in [-1, 1].
"""

from __future__ import annotations

import torch

EPS = 1e-10


def radial_bins(h: int, w: int, device=None) -> tuple[torch.Tensor, int]:
    """(H, W) integer radius of each FFT frequency, and the number of bins 1..min(H, W)//2."""
    u = torch.fft.fftfreq(h, d=1.0 / h, device=device).round().long()
    v = torch.fft.fftfreq(w, d=1.0 / w, device=device).round().long()
    r = torch.sqrt((u[:, None] ** 2 + v[None, :] ** 2).double()).round().long()
    return r, min(h, w) // 2


def radial_power_spectrum(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, R): S(r) for r = 1..R, R = min(H, W) // 2, float64."""
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got {tuple(x.shape)}")
    n, _, h, w = x.shape
    x = x.double()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    p = torch.fft.fft2(x).abs().pow(2).mean(dim=1) / (h * w)  # (N, H, W)
    r, nbins = radial_bins(h, w, x.device)
    keep = (r >= 1) & (r <= nbins)
    idx = (r[keep] - 1).expand(n, -1)
    sums = torch.zeros(n, nbins, dtype=torch.float64, device=x.device)
    sums.scatter_add_(1, idx, p[:, keep])
    counts = torch.bincount(r[keep] - 1, minlength=nbins).double()
    return sums / counts


def spectrum_distance(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per pair (N,): RMS over radius bins of the dB difference of the radial spectra."""
    if y.shape != x.shape:
        raise ValueError(f"expected two batches of one shape, got {tuple(y.shape)} and "
                         f"{tuple(x.shape)}")
    sy, sx = radial_power_spectrum(y), radial_power_spectrum(x)
    diff = 10.0 * (torch.log10(sy + EPS) - torch.log10(sx + EPS))
    return diff.pow(2).mean(dim=1).sqrt()


def high_band_power_ratio(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per pair (N,): power of y over power of x in the upper half of the radius bins
    (r > R/2): < 1 blurrier than the original, > 1 more high-frequency content (or noise)."""
    sy, sx = radial_power_spectrum(y), radial_power_spectrum(x)
    half = sy.shape[1] // 2
    return sy[:, half:].sum(1) / sx[:, half:].sum(1).clamp_min(EPS)
