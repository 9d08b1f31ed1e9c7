"""``swycc eval``'s metrics on reconstructions already in hand (no second decoding pass).

``score_reconstructions(y, x, metrics, extractors)`` gives what
``swycc.metrics.evaluate.evaluate_model`` gives for a model whose reconstructions of ``x`` are
``y`` (both quantised to 8 bits first), with one difference in method, not in value: Frechet
distances over fewer feature rows than dimensions are computed from the rows,

    Tr (S1 S2)^(1/2) = || A^T B ||_*  (nuclear norm),   S1 = A A^T, S2 = B B^T,

A = (F1 - mean F1)^T / sqrt(n1 - 1) (d x n1), because A A^T B B^T has the nonzero eigenvalues
of (A^T B)(A^T B)^T, the squared singular values of A^T B. That is an n1 x n2 SVD instead of the
d x d matrix square root (4 s for d = 1280 here), and exact (no singular-matrix retry).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from swycc.metrics import maths
from swycc.metrics.evaluate import (KEEP_FEATURES, METRICS, MMD_METRICS, FeatureSet,
                                    distribution_scores)

_PAIRED_MATHS = {"psnr": maths.psnr, "ssim": maths.ssim, "msssim": maths.ms_ssim}


def frechet_distance_rows(f1: np.ndarray | torch.Tensor, f2: np.ndarray | torch.Tensor) -> float:
    """The Frechet distance of the Gaussians fitted to two sets of (n, d) feature rows
    (unbiased covariances), through the nuclear norm above; float64."""
    a = torch.as_tensor(np.asarray(f1) if not torch.is_tensor(f1) else f1).double().cpu()
    b = torch.as_tensor(np.asarray(f2) if not torch.is_tensor(f2) else f2).double().cpu()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"expected two (n >= 2, d) feature sets, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    mu1, mu2 = a.mean(0), b.mean(0)
    ca = (a - mu1) / (len(a) - 1) ** 0.5  # rows: S1 = ca^T ca
    cb = (b - mu2) / (len(b) - 1) ** 0.5
    trace_sqrt = torch.linalg.svdvals(ca @ cb.T).sum()
    diff = mu1 - mu2
    return float(diff @ diff + ca.square().sum() + cb.square().sum() - 2.0 * trace_sqrt)


def _distribution(metric: str, recon: FeatureSet, ref: FeatureSet) -> dict[str, float]:
    few = recon.rows is not None and recon.stats.n <= recon.stats.dim and \
        ref.stats.n <= ref.stats.dim
    if metric in MMD_METRICS or metric == "is" or not few:
        return distribution_scores(metric, recon, ref)
    return {metric: frechet_distance_rows(recon.matrix(), ref.matrix())}


@torch.no_grad()
def score_reconstructions(y: torch.Tensor, x: torch.Tensor, metrics: list[str],
                          extractors: dict[str, nn.Module], batch_size: int = 16
                          ) -> dict[str, float]:
    """{metric: value} of reconstructions ``y`` of ``x`` ((N, 3, H, W) in [-1, 1], one each).
    Paired metrics are means over pairs; distribution metrics compare y's set with x's."""
    from swycc.metrics.proxies import perceptual_pairs
    from swycc.metrics.spectrum import spectrum_distance

    if y.shape != x.shape or y.ndim != 4 or len(x) < 2:
        raise ValueError(f"expected two batches of >= 2 images of one shape, got "
                         f"{tuple(y.shape)} and {tuple(x.shape)}")
    unknown = [m for m in metrics if m not in METRICS or m in ("is", "gradient_energy_ratio")]
    if unknown:
        raise ValueError(f"score_reconstructions does not compute {unknown}")
    y, x = maths.quantized(y), maths.quantized(x)
    out: dict[str, float] = {}
    feats: dict[str, tuple[FeatureSet, FeatureSet]] = {}
    for m in metrics:
        ext = METRICS[m][2]
        if m == "perceptual_effnetlite0":
            v = torch.cat([perceptual_pairs(extractors["perceptual"], y[i:i + batch_size],
                                            x[i:i + batch_size])
                           for i in range(0, len(x), batch_size)])
        elif m == "spectrum_distance_db":
            v = spectrum_distance(y, x)
        elif m in _PAIRED_MATHS:
            v = _PAIRED_MATHS[m](y, x)
        else:
            if ext not in feats:
                net = extractors[ext]
                pair = (FeatureSet(net, ext in KEEP_FEATURES, False),
                        FeatureSet(net, ext in KEEP_FEATURES, False))
                pair[0].add(net, y, batch_size)
                pair[1].add(net, x, batch_size)
                feats[ext] = pair
            out.update(_distribution(m, *feats[ext]))
            continue
        out[m] = float(v.double().mean())
    return out


__all__ = ["frechet_distance_rows", "score_reconstructions"]
