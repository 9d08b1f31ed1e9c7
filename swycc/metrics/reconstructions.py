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

from dataclasses import dataclass

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


def _subset(net: nn.Module, rows: torch.Tensor, keep: torch.Tensor) -> FeatureSet:
    """A FeatureSet (statistics and rows) of the rows ``keep`` selects."""
    f = FeatureSet(net, keep=True, logits=False)
    f.stats.update(rows[keep])
    f.rows = [rows[keep]]
    return f


@dataclass
class _Measured:
    """What the metrics are computed from: per metric (in the order asked) either its per-pair
    values (a tensor) or the name of the extractor whose features it compares; per extractor,
    the (reconstruction, reference) FeatureSets."""

    values: dict[str, torch.Tensor | str]
    features: dict[str, tuple[FeatureSet, FeatureSet]]


@torch.no_grad()
def _measure(y: torch.Tensor, x: torch.Tensor, metrics: list[str],
             extractors: dict[str, nn.Module], batch_size: int, keep_rows: bool) -> _Measured:
    """Per-pair values and feature sets of reconstructions ``y`` of ``x``; ``keep_rows``: keep
    every extractor's feature rows (for subsets), not only KEEP_FEATURES'."""
    from swycc.metrics.proxies import perceptual_pairs
    from swycc.metrics.spectrum import spectrum_distance

    if y.shape != x.shape or y.ndim != 4 or len(x) < 2:
        raise ValueError(f"expected two batches of >= 2 images of one shape, got "
                         f"{tuple(y.shape)} and {tuple(x.shape)}")
    unknown = [m for m in metrics if m not in METRICS or m in ("is", "gradient_energy_ratio")]
    if unknown:
        raise ValueError(f"score_reconstructions does not compute {unknown}")
    y, x = maths.quantized(y), maths.quantized(x)
    out = _Measured({}, {})
    for m in metrics:
        ext = METRICS[m][2]
        if m == "perceptual_effnetlite0":
            out.values[m] = torch.cat([perceptual_pairs(extractors["perceptual"],
                                                        y[i:i + batch_size], x[i:i + batch_size])
                                       for i in range(0, len(x), batch_size)])
        elif m == "spectrum_distance_db":
            out.values[m] = spectrum_distance(y, x)
        elif m in _PAIRED_MATHS:
            out.values[m] = _PAIRED_MATHS[m](y, x)
        else:
            if ext not in out.features:
                net = extractors[ext]
                keep = keep_rows or ext in KEEP_FEATURES
                pair = (FeatureSet(net, keep, False), FeatureSet(net, keep, False))
                pair[0].add(net, y, batch_size)
                pair[1].add(net, x, batch_size)
                out.features[ext] = pair
            out.values[m] = ext
    return out


def _scores(measured: _Measured, extractors: dict[str, nn.Module],
            keep: torch.Tensor | None = None) -> dict[str, float]:
    """The metrics of the pairs ``keep`` selects (all when None) from ``_measure``'s output."""
    features = measured.features if keep is None else {
        ext: tuple(_subset(extractors[ext], f.matrix(), keep) for f in pair)
        for ext, pair in measured.features.items()}  # each extractor's subset once
    out: dict[str, float] = {}
    for m, v in measured.values.items():
        if isinstance(v, str):
            out.update(_distribution(m, *features[v]))
        else:
            out[m] = float((v if keep is None else v[keep]).double().mean())
    return out


def score_reconstructions(y: torch.Tensor, x: torch.Tensor, metrics: list[str],
                          extractors: dict[str, nn.Module], batch_size: int = 16
                          ) -> dict[str, float]:
    """{metric: value} of reconstructions ``y`` of ``x`` ((N, 3, H, W) in [-1, 1], one each).
    Paired metrics are means over pairs; distribution metrics compare y's set with x's."""
    return _scores(_measure(y, x, metrics, extractors, batch_size, keep_rows=False), extractors)


def score_with_leave_one_out(y: torch.Tensor, x: torch.Tensor, metrics: list[str],
                             extractors: dict[str, nn.Module], batch_size: int = 16
                             ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """``score_reconstructions``'s values and, for each metric, its N jackknife replicates: the
    value over the pairs with pair i left out (i = 0 .. N-1), from the same features. Needs
    N >= 3 (a distribution metric needs two rows)."""
    if len(x) < 3:
        raise ValueError(f"leave-one-out scores need at least 3 image pairs, got {len(x)}")
    measured = _measure(y, x, metrics, extractors, batch_size, keep_rows=True)
    replicates: dict[str, list[float]] = {m: [] for m in metrics}
    for i in range(len(x)):
        keep = torch.arange(len(x)) != i
        for m, v in _scores(measured, extractors, keep).items():
            replicates[m].append(v)
    return _scores(measured, extractors), replicates


def jackknife_se(replicates: list[float]) -> float:
    """The jackknife standard error from N leave-one-out values t_i (Efron & Stein 1981):
    sqrt((N - 1) / N * sum_i (t_i - mean t)^2); NaN when a value is not finite."""
    t = np.asarray(replicates, dtype=np.float64)
    if not np.isfinite(t).all():  # e.g. a perfect reconstruction's infinite PSNR
        return float("nan")
    return float(np.sqrt((len(t) - 1) / len(t) * np.square(t - t.mean()).sum()))


__all__ = ["frechet_distance_rows", "jackknife_se", "score_reconstructions",
           "score_with_leave_one_out"]
