"""Training the latent DiT with the generic loop: what ``swycc train-dit`` runs.

    from swycc.generation.task import train_dit
    result = train_dit(get_dit_preset("dit-L/2"), "latents/", "runs/dit")   # re-run to resume
    model, meta = load_dit("runs/dit/export")

The latent dataset fixes the DiT's latent channels, latent size and number of classes. The export
is ``export/dit.safetensors``: EMA weights, and in the metadata ``format`` = "swycc-dit",
``config`` (the run config JSON) and ``latents`` (JSON: the autoencoder's identity, the latents'
per-channel mean and std, shape and class names), everything ``swycc generate`` needs besides the
autoencoder itself. Loading never unpickles.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from swycc.config_types import ConfigError
from swycc.generation.config import DiTRunConfig
from swycc.generation.objective import DiTObjective
from swycc.generation.latents import LatentDataset, LatentDatasetError
from swycc.generation.dit import DiT
from swycc.train.loop import ConfigMismatchError, TrainResult, train

DIT_FORMAT, DIT_WEIGHTS = "swycc-dit", "dit.safetensors"


class DiTCheckpointError(ValueError):
    """A DiT export that is missing, unreadable or not a swycc DiT."""


def fit_to_latents(cfg: DiTRunConfig, data: LatentDataset) -> DiTRunConfig:
    """``cfg`` with the latent channels, latent size and class count of ``data``."""
    c, h, w = data.latent_shape
    p = cfg.dit.patch
    if h % p or w % p:
        raise LatentDatasetError(f"{data.root}: latents of shape {c}x{h}x{w} do not split into "
                                 f"{p}x{p} patches (dit.patch={p}); pick another patch size")
    try:
        dit = replace(cfg.dit, latent_channels=c, latent_size=h, num_classes=data.num_classes)
    except ConfigError as e:
        raise LatentDatasetError(f"{data.root}: latents of shape {c}x{h}x{w} do not fit this "
                                 f"DiT ({e})") from None
    return replace(cfg, dit=dit)


def latents_meta(data: LatentDataset) -> dict:
    """What a DiT trained on ``data`` must remember of it."""
    return {"identity": data.identity, "mean": data.index["mean"], "std": data.index["std"],
            "latent_shape": list(data.latent_shape), "class_names": data.class_names}


class DiTTask:
    """The loop's ``TrainTask`` for the class-conditional latent DiT."""

    name = "train dit"

    def __init__(self, cfg: DiTRunConfig, latents_dir: str | os.PathLike):
        self.dataset = LatentDataset(latents_dir)  # bad or damaged dir fails here
        self.dataset.verify()
        if len(self.dataset) == 0:
            raise LatentDatasetError(f"{latents_dir}: holds no latents")
        self.cfg = fit_to_latents(cfg, self.dataset)
        self.train_config = self.cfg.train
        self.latents = latents_meta(self.dataset)

    def config_dict(self) -> dict:
        return {"run": self.cfg.to_dict(), "latents": self.latents}

    def check_resume(self, old: dict) -> None:
        try:
            prev = DiTRunConfig.from_dict(old.get("run"))
        except (ValueError, AttributeError) as e:
            raise ConfigMismatchError(f"the run directory's config.json is not a DiT run config "
                                      f"of this version ({e}); use a new --out directory") from None
        if prev.dit != self.cfg.dit:
            raise ConfigMismatchError("the run directory holds a DiT with another dit config; "
                                      "use a new --out directory (or the same options as before "
                                      "to resume)")
        if _jsonable(old.get("latents")) != _jsonable(self.latents):
            raise ConfigMismatchError("the run directory holds a DiT trained on other latents "
                                      "(another autoencoder, images or statistics); use a new "
                                      "--out directory")

    def build_dataset(self) -> LatentDataset:
        return self.dataset

    def build_model(self) -> DiT:
        return DiT(self.cfg.dit)

    def build_objective(self, model: DiT, device: torch.device) -> DiTObjective:
        return DiTObjective(self.cfg, model, device)

    def to_device(self, batch: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return (batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True))

    def preview_inputs(self) -> None:
        return None  # latents need the autoencoder to be seen: `swycc generate` shows samples

    def write_preview(self, model: DiT, inputs, path: Path) -> None:
        pass

    def export(self, model: DiT, path: Path) -> Path:
        return save_dit(model, self.cfg, self.latents, path)

    def compile(self, model: DiT) -> None:
        model.compile()


def _jsonable(obj):
    return json.loads(json.dumps(obj))


def save_dit(model: DiT, cfg: DiTRunConfig, latents: dict, path: str | os.PathLike) -> Path:
    """Write ``path/dit.safetensors`` atomically (weights + format, config, latents metadata)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    file = out / DIT_WEIGHTS
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = file.with_name(f".{file.name}.tmp")
    from swycc.io.files import save_safetensors

    save_safetensors(state, tmp, metadata={"format": DIT_FORMAT, "config": cfg.to_json(),
                                           "latents": json.dumps(latents, sort_keys=True)})
    os.replace(tmp, file)
    return file


def load_dit(path: str | os.PathLike, map_location: str = "cpu") -> tuple[DiT, dict]:
    """(DiT in eval mode, meta) from an export directory or its .safetensors file; meta holds
    ``config`` (a DiTRunConfig) and ``latents`` (identity, mean, std, latent_shape, class_names).
    """
    p = Path(path)
    file = p / DIT_WEIGHTS if p.is_dir() else p
    from swycc.io.files import file_kind

    kind = file_kind(file)
    if kind is not None:  # a FIFO would block the read: never opened
        what = "no such DiT export" if kind == "missing" else f"is {kind}, not a regular file"
        raise DiTCheckpointError(f"{file}: {what} (expected a directory holding "
                                 f"{DIT_WEIGHTS}, e.g. RUN/export)")
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise DiTCheckpointError(f"{file}: not a safetensors file ({e})") from None
    if meta.get("format") != DIT_FORMAT:
        raise DiTCheckpointError(f"{file}: not a swycc DiT export (format "
                                 f"{meta.get('format')!r}, expected {DIT_FORMAT!r})")
    try:
        cfg = DiTRunConfig.from_json(meta["config"])
        latents = json.loads(meta["latents"])
        for key in ("identity", "mean", "std", "latent_shape", "class_names"):
            latents[key]
    except (KeyError, TypeError, ValueError) as e:
        raise DiTCheckpointError(f"{file}: damaged DiT metadata ({type(e).__name__}: {e})") \
            from None
    model = DiT(cfg.dit)
    try:
        state = load_file(str(file), device=map_location)
        model.load_state_dict(state)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise DiTCheckpointError(f"{file}: weights do not load into its config "
                                 f"({str(e).splitlines()[0]})") from None
    return model.eval(), {"config": cfg, "latents": latents}


def train_dit(cfg: DiTRunConfig, latents_dir: str | os.PathLike, out_dir: str | os.PathLike,
              device: str | None = None, max_steps: int | None = None,
              progress: bool = True) -> TrainResult:
    return train(DiTTask(cfg, latents_dir), out_dir, device=device, max_steps=max_steps,
                 progress=progress)
