"""Per-channel statistics of a model's latents over its training data, stored in the export.

A latent diffusion model wants latents of roughly unit scale; like diffusers' ``scaling_factor``
(SD: 0.18215) and SDXL/SD3's per-channel ``latents_mean`` / ``latents_std``, every export
records the mean and std of each latent channel c over its training images:

    mean_c = E[z_c],  std_c = sqrt(Var[z_c])  (unbiased; over images and positions)
    normalised latent  z' = (z - mean_c) / std_c       (``LatentStats.normalize``)
    whole-tensor form  z' = (z - shift_factor) * scaling_factor,
        shift_factor = E[z] over all channels, scaling_factor = 1 / std(z) over all channels

They are computed at the end of training (``swycc train``'s final export) or for an export
by ``swycc latent-stats EXPORT [--data DIR]``, and stored as JSON in the safetensors metadata
(``latent_stats``); the weights and their sha256 stay the same. Moments are accumulated in
float64 with Chan et al.'s pairwise update, one batch in memory.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from swycc.config_types import loads_json

STATS_KEY = "latent_stats"  # safetensors metadata key
DEFAULT_IMAGES = 512  # images encoded by `swycc latent-stats` (spread over the set)
TRAINING_IMAGES = 256  # encoded at the end of `swycc train`


class LatentStatsError(ValueError):
    """Statistics that are missing, malformed, or of another number of channels."""


class RunningMoments:
    """Per-channel count, mean and sum of squared deviations, merged batch by batch (Chan et
    al. 1979): delta = mean_b - mean, mean += delta n_b / n, M2 += M2_b + delta^2 n n_b / n."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, None, None

    def update(self, z: torch.Tensor) -> None:
        """z: (N, C, h, w); every value of channel c is one observation of it."""
        zc = z.detach().double().transpose(0, 1).flatten(1)  # (C, N h w)
        n_b, mean_b = zc.shape[1], zc.mean(1)
        m2_b = (zc - mean_b[:, None]).square().sum(1)
        if self.mean is None:
            self.count, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        delta, total = mean_b - self.mean, self.count + n_b
        self.mean = self.mean + delta * n_b / total
        self.m2 = self.m2 + m2_b + delta.square() * self.count * n_b / total
        self.count = total

    def std(self) -> torch.Tensor:
        return (self.m2 / max(self.count - 1, 1)).sqrt()  # unbiased, as torch.std


@dataclass(frozen=True)
class LatentStats:
    mean: tuple[float, ...]  # per channel
    std: tuple[float, ...]
    images: int  # images encoded
    data: str  # what they were ("embedded photo set (train crops)", a folder, ...)

    def __post_init__(self):
        if len(self.mean) != len(self.std) or not self.mean:
            raise LatentStatsError(f"latent statistics need one mean and one std per channel, "
                                   f"got {len(self.mean)} and {len(self.std)}")
        if not all(math.isfinite(m) for m in self.mean) or \
                not all(math.isfinite(s) and s > 0 for s in self.std):
            raise LatentStatsError("latent statistics must be finite with std > 0")

    @property
    def channels(self) -> int:
        return len(self.mean)

    @property
    def shift_factor(self) -> float:
        """E[z] over every channel (channels weigh equally: each has the same count)."""
        return sum(self.mean) / self.channels

    @property
    def scaling_factor(self) -> float:
        """1 / std(z) over every channel: Var = mean_c(std_c^2 + mean_c^2) - E[z]^2."""
        second = sum(s * s + m * m for m, s in zip(self.mean, self.std)) / self.channels
        return 1.0 / math.sqrt(max(second - self.shift_factor ** 2, 1e-30))

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """(z - mean_c) / std_c; z: (N, C, h, w) or (C, h, w)."""
        return (z - self._ch(self.mean, z)) / self._ch(self.std, z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """z * std_c + mean_c: a normalised latent back to what the decoder takes."""
        return z * self._ch(self.std, z) + self._ch(self.mean, z)

    def _ch(self, v: tuple[float, ...], z: torch.Tensor) -> torch.Tensor:
        if z.shape[-3] != self.channels:
            raise LatentStatsError(f"latents of {z.shape[-3]} channels, statistics of "
                                   f"{self.channels}")
        return torch.tensor(v, dtype=z.dtype, device=z.device).view(-1, 1, 1)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LatentStats:
        try:
            d = loads_json(text)
            return cls(tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]),
                       int(d["images"]), str(d["data"]))
        except (KeyError, TypeError, ValueError) as e:
            raise LatentStatsError(f"malformed latent statistics ({type(e).__name__}: {e})") \
                from None


@torch.no_grad()
def measure(model, images: Iterable[torch.Tensor], data: str, progress: bool = False,
            total: int | None = None) -> LatentStats:
    """Statistics of ``model.encode`` over batches of images (B, 3, H, W) in [-1, 1]."""
    moments, n = RunningMoments(), 0
    device = next(model.parameters()).device
    for x in tqdm(images, total=total, disable=not progress, desc="latent statistics",
                  unit="batch"):
        moments.update(model.encode(x.to(device)).float())
        n += x.shape[0]
    if moments.mean is None:
        raise LatentStatsError(f"{data}: no image to measure latent statistics on")
    return LatentStats(tuple(moments.mean.tolist()), tuple(moments.std().tolist()), n, data)


def dataset_batches(dataset, max_images: int = DEFAULT_IMAGES,
                    batch_size: int = 32) -> tuple[list[list[int]], Iterable[torch.Tensor]]:
    """Up to ``max_images`` indices spread evenly over ``dataset`` (items (image, label)), and
    the batches of their images."""
    n = min(len(dataset), max_images)
    picks = sorted({i * len(dataset) // n for i in range(n)})
    chunks = [picks[i:i + batch_size] for i in range(0, len(picks), batch_size)]
    return chunks, (torch.stack([dataset[i][0] for i in c]) for c in chunks)


def training_data_stats(model, max_images: int = DEFAULT_IMAGES, data_dir: str | None = None,
                        progress: bool = False) -> LatentStats:
    """The statistics over the model's training data (its config's ``data``: the embedded set's
    training crops or a folder), or over ``data_dir``'s images (centre squares at the model's
    image size) when given."""
    from dataclasses import replace

    from swycc.data import build_dataset

    cfg = model.config
    if data_dir is not None:
        data = replace(cfg.data, path=str(data_dir), labels=False)
        dataset, what = build_dataset(data, cfg.model.image_size, train=False), str(data_dir)
    else:
        dataset = build_dataset(cfg.data, cfg.model.image_size, train=True, seed=cfg.train.seed)
        what = cfg.data.path or "embedded photo set"
        what += " (training crops)"
    chunks, batches = dataset_batches(dataset, max_images)
    return measure(model, batches, what, progress, total=len(chunks))


def write_stats(file: str | os.PathLike, stats: LatentStats) -> None:
    """The export ``file`` with ``stats`` in its metadata: the same tensors (dtypes kept,
    weights_sha256 unchanged), written atomically."""
    from safetensors import safe_open

    from swycc.io.files import save_safetensors

    file = Path(file)
    with safe_open(str(file), framework="pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta[STATS_KEY] = stats.to_json()
    tmp = file.with_name(f".{file.name}.tmp")
    try:
        save_safetensors(tensors, tmp, metadata=meta)
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
