"""Numbers that show what the diffusion decoder samples (paper Fig. 8 and 9), on a batch.

- PSNR of D_Initial and of the samples against the original (distortion);
- the EfficientNet-Lite0 perceptual distance of both (a perception proxy, named as such);
- image-gradient energy of samples and of D_Initial relative to the original's (sharpness:
  a blurry decoder scores far below 1, one that samples texture near 1);
- the Pearson correlation between per-pixel variance over samples and the original's local
  gradient energy (Fig. 9: samples should differ on textures, agree on flat regions).
"""

from __future__ import annotations

import torch

from swycc.metrics.maths import psnr
from swycc.io.visual import gradient_energy, local_gradient_energy, variance_heatmap


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


@torch.no_grad()
def sample_statistics(x: torch.Tensor, initial: torch.Tensor | None, samples: torch.Tensor,
                      perceptual_net: torch.nn.Module | None = None) -> dict[str, float]:
    """x, initial: (N, 3, H, W); samples: (N, S, 3, H, W); all in [-1, 1]. ``initial`` None:
    the kind has no deterministic reconstruction (DGAE); its "_initial" entries are left out."""
    n, s = samples.shape[:2]
    flat = samples.flatten(0, 1)
    x_rep = x.repeat_interleave(s, dim=0)
    outputs = {"samples": (flat, x_rep)}
    if initial is not None:
        outputs["initial"] = (initial, x)
    stats: dict[str, float] = {"images": n, "samples_per_image": s}
    g_orig = float(gradient_energy(x).mean())
    for name, (y, ref) in outputs.items():
        stats[f"psnr_{name}"] = float(psnr(y, ref).mean())
        if perceptual_net is not None:
            from swycc.losses.perceptual import perceptual_distance

            stats[f"perceptual_effnetlite0_{name}"] = float(
                perceptual_distance(perceptual_net, y, ref).mean())
        stats[f"gradient_energy_ratio_{name}"] = float(gradient_energy(y).mean()) / g_orig
    stats["gradient_energy_original"] = g_orig
    var = torch.stack([variance_heatmap(samples[i]) for i in range(n)])
    if s > 1 and bool(var.max() > 0):  # a deterministic decoder has nothing to correlate
        stats["sample_std_mean"] = float(var.clamp_min(0).sqrt().mean())
        stats["variance_texture_correlation"] = pearson(var, local_gradient_energy(x))
    return stats
