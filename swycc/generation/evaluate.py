"""Scores of generated images against reference images: gFID, IS, FD-DINOv2, CMMD and the
offline proxies, streamed (features are kept, images are not).

- gFID: the Frechet distance of pytorch-fid InceptionV3 pool features (2048-d) between N
  generated images and the reference set (the DiT's training images, at the autoencoder's
  resolution: largest centre square, resized), or a precomputed reference ``mu``/``sigma``
  (e.g. ADM's ImageNet 256 statistics, ``--reference-stats``).
- IS: Inception Score of the generated images (10 splits; no reference).
- FD-DINOv2, CMMD: as in ``swycc eval``, generated against reference.
- ``fd_effnetlite0``, ``mmd_effnetlite0``: the offline proxies (EfficientNet-Lite0 features),
  measurable on any machine; not comparable with the Inception/CLIP/DINOv2 numbers.

Generated and reference images are quantised to 8 bits first (what a PNG holds). Frechet
distances are biased upwards at small N: compare only numbers over the same N (the paper: 50k).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from swycc.metrics.evaluate import METRICS, FeatureSet, ReferenceCache, distribution_scores
from swycc.metrics import maths

# name -> (table label, definition, extractor); the reconstruction metrics' rows where the
# definition is the same, gFID in place of rFID
GEN_METRICS: dict[str, tuple[str, str, str]] = {
    "gfid": ("gFID ↓", "FID (pytorch-fid InceptionV3 pool features) between generated images "
             "and the reference images", "inception"),
    "is": ("IS ↑", "Inception Score of the generated images, 10 splits", "inception"),
    "fd_dinov2": ("FD-DINOv2 ↓", "Frechet distance on DINOv2 ViT-L/14 CLS features, generated "
                  "vs reference", "dinov2"),
    "cmmd": ("CMMD ↓", METRICS["cmmd"][1] + ", generated vs reference", "clip"),
    "fd_effnetlite0": METRICS["fd_effnetlite0"],
    "mmd_effnetlite0": METRICS["mmd_effnetlite0"],
}
OFFLINE_GEN_METRICS = ("fd_effnetlite0", "mmd_effnetlite0")
WEIGHTED_GEN_METRICS = ("gfid", "is", "cmmd", "fd_dinov2")  # where their weights load
# the reconstruction metric whose extractor gFID uses (pytorch-fid's Inception, as rFID)
_LOADS_AS = {"gfid": "rfid"}


def parse_gen_metrics(text: str | None) -> list[str] | None:
    """"gfid,is" -> names; None or "auto": None (every metric whose weights load)."""
    if not text or text == "auto":
        return None
    names = list(GEN_METRICS) if text == "all" else [t.strip() for t in text.split(",")
                                                     if t.strip()]
    unknown = [n for n in names if n not in GEN_METRICS]
    if unknown or not names:
        raise ValueError(f"unknown generation metric(s) {unknown}; choose from "
                         f"{', '.join(GEN_METRICS)}")
    return list(dict.fromkeys(names))


def load_gen_extractors(wanted: list[str] | None, weights_dir: str | None = None,
                        device: str = "cpu") -> tuple[list[str], dict[str, nn.Module], list[str]]:
    """(metrics, extractors, left out). ``wanted``: all must load (a missing weight file is an
    error). None: the offline proxies always, gFID/IS/CMMD/FD-DINOv2 where their weights load."""
    from swycc.metrics.evaluate import load_available

    metrics, extractors = load_available(wanted, weights_dir, device, OFFLINE_GEN_METRICS,
                                         WEIGHTED_GEN_METRICS, _LOADS_AS)
    left_out = [] if wanted else [m for m in WEIGHTED_GEN_METRICS if m not in metrics]
    return metrics, extractors, left_out


def _stream(sets: dict[str, FeatureSet], nets: dict[str, nn.Module], x: torch.Tensor,
            batch: int) -> None:
    x = maths.quantized(x)  # the 8-bit levels a PNG holds
    for k, feats in sets.items():
        feats.add(nets[k], x, batch)


@torch.no_grad()
def reference_features(dataset, n: int, metrics: list[str], extractors: dict[str, nn.Module],
                       *, data_id: str | None = None, cache: ReferenceCache | None = None,
                       batch_size: int = 32, device: str = "cpu", progress: bool = True
                       ) -> dict[str, FeatureSet]:
    """Features of the first ``n`` reference images per extractor the metrics need (from the
    cache when ``data_id`` names them and they are there)."""
    from tqdm import tqdm

    from swycc.metrics.evaluate import KEEP_FEATURES, image_batches

    cache = cache or ReferenceCache(None)
    needed = {GEN_METRICS[m][2] for m in metrics if m != "is"}
    out, keys, todo = {}, {}, {}
    for k in sorted(needed):
        keys[k] = ReferenceCache.key(data_id, extractors[k]) if data_id else None
        cached = cache.load(keys[k]) if keys[k] else None
        if cached:
            out[k] = FeatureSet.from_arrays(extractors[k], cached)
        else:
            todo[k] = FeatureSet(extractors[k], k in KEEP_FEATURES, logits=False)
    if todo:
        bar = tqdm(total=n, unit="img", desc="reference", disable=not progress, leave=False)
        for x in image_batches(dataset, n, batch_size):
            _stream(todo, extractors, x.to(device), batch_size)
            bar.update(x.shape[0])
        bar.close()
        for k, feats in todo.items():
            out[k] = feats
            if keys[k]:
                cache.save(keys[k], feats.arrays())
    return out


def stats_from_npz(path: str | os.PathLike) -> maths.FeatureStats:
    """Precomputed Inception statistics (``mu`` (2048,), ``sigma`` (2048, 2048), e.g. ADM's
    reference batches) as FeatureStats that give back exactly that mean and covariance."""
    try:
        with np.load(path) as z:
            mu, sigma = np.asarray(z["mu"], np.float64), np.asarray(z["sigma"], np.float64)
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"--reference-stats {path}: not an npz with 'mu' and 'sigma' "
                         f"({e})") from None
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise ValueError(f"--reference-stats {path}: mu {mu.shape} and sigma {sigma.shape} do "
                         "not match")
    return maths.FeatureStats.from_moments(mu, sigma)


@torch.no_grad()
def score_generated(batches: Iterable[torch.Tensor], metrics: list[str],
                    extractors: dict[str, nn.Module], reference: dict[str, FeatureSet],
                    *, batch_size: int = 32, device: str = "cpu") -> tuple[dict, int]:
    """Stream generated image batches ((B, 3, H, W) in [-1, 1]) through the extractors and score
    them against ``reference`` (from reference_features; ``reference["inception"]`` may hold
    stats only). Returns ({metric: value}, number of images)."""
    from swycc.metrics.evaluate import KEEP_FEATURES

    nets = {GEN_METRICS[m][2] for m in metrics}
    sets = {k: FeatureSet(extractors[k], k in KEEP_FEATURES, logits=k == "inception" and "is"
                          in metrics) for k in nets}
    n = 0
    for x in batches:
        _stream(sets, extractors, x.to(device), batch_size)
        n += x.shape[0]
    if "is" in metrics and n < 10:
        raise ValueError(f"the Inception Score needs at least 10 images (10 splits), got {n}")
    if n < 2:
        raise ValueError(f"need at least 2 generated images to score, got {n}")
    values: dict[str, float] = {}
    for m in metrics:  # gfid, fd_*: Frechet; cmmd, mmd_*: MMD; is: Inception Score
        ext = GEN_METRICS[m][2]
        values.update(distribution_scores(m, sets[ext], reference.get(ext)))
    return values, n


__all__ = ["GEN_METRICS", "OFFLINE_GEN_METRICS", "WEIGHTED_GEN_METRICS", "load_gen_extractors",
           "parse_gen_metrics", "reference_features", "score_generated", "stats_from_npz"]
