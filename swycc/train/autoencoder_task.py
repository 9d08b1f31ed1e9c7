"""Training any autoencoder kind with the generic loop: what ``swycc train`` runs.

    from swycc.train.autoencoder_task import train_autoencoder
    result = train_autoencoder(get_preset("small"), "runs/a")   # re-run to resume
"""

from __future__ import annotations

from pathlib import Path

import torch

from swycc.autoencoders.base import Autoencoder
from swycc.config import Config
from swycc.data import build_dataset
from swycc.autoencoders.kinds import get_kind
from swycc.train.loop import ConfigMismatchError, TrainingDivergedError, TrainResult, train


class AutoencoderTask:
    """The loop's ``TrainTask`` for an autoencoder of any registered kind."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.kind = get_kind(cfg.model.method)
        self.name = f"train {cfg.model.method}"
        self.train_config = cfg.train
        self._init_loaded = False

    def config_dict(self) -> dict:
        return self.cfg.to_dict()

    def check_resume(self, old: dict) -> None:
        try:
            prev = Config.from_dict(old)
        except ValueError as e:
            raise ConfigMismatchError(f"the run directory's config.json is not a config of this "
                                      f"version ({e}); use a new --out directory") from None
        if prev.init != self.cfg.init:
            if prev.init.path == self.cfg.init.path:
                raise ConfigMismatchError(
                    f"init {prev.init.path}: its weights changed since this run was started "
                    f"from it; use a new --out directory")
            raise ConfigMismatchError(
                "the run directory was started from other initial weights (init); use a new "
                "--out directory (or the same --init as before to resume)")
        for part in ("model", "loss", "data"):
            if getattr(prev, part) != getattr(self.cfg, part):
                raise ConfigMismatchError(
                    f"the run directory holds a run with another {part} config; use a new --out "
                    f"directory (or the same options as before to resume)")

    def build_dataset(self):
        size = max(self.cfg.data.crop_sides(self.cfg.model.image_size))  # a key's default
        return build_dataset(self.cfg.data, size, train=True, seed=self.cfg.train.seed)

    def build_model(self) -> Autoencoder:
        """The model to train, from ``init`` when fine-tuning. The loop's later calls build the
        modules its EMA weights are copied into, so the init export is hashed and read once."""
        model = Autoencoder.from_config(self.cfg)
        if self.cfg.init.path is not None and not self._init_loaded:
            load_initial_weights(model, self.cfg)
            self._init_loaded = True
        return model

    def build_objective(self, model: Autoencoder, device: torch.device):
        return self.kind.build_objective(self.cfg, model, device)

    def to_device(self, batch: tuple, device: torch.device) -> torch.Tensor:
        return batch[0].to(device, non_blocking=True)

    def preview_inputs(self) -> torch.Tensor:
        held = build_dataset(self.cfg.data, self.cfg.model.image_size, train=False)
        return torch.stack([held[i][0] for i in range(min(8, len(held)))])

    def write_preview(self, model: Autoencoder, inputs: torch.Tensor, path: Path) -> None:
        from swycc.train.reporting import write_sample_grid

        write_sample_grid(model, inputs, path)

    def export(self, model: Autoencoder, path: Path) -> Path:
        return model.save_pretrained(path)

    def compile(self, model: Autoencoder) -> None:
        model.compile_networks()

    def build_evaluator(self, out: Path):
        """``train.eval_data``'s photos (``swycc.train.held_out``), or None without them."""
        tc = self.cfg.train
        if tc.eval_data is None:
            return None
        if self.kind.initial_label is None:
            raise ValueError(f"train.eval_data: a {self.kind.name} model has no deterministic "
                             f"decoder for the held-out evaluation")
        from swycc.train.held_out import HeldOutEval

        if not Path(tc.eval_data).is_dir():
            raise ValueError(f"train.eval_data (--eval-data) {tc.eval_data}: no such image "
                             f"folder")
        return HeldOutEval(tc.eval_data, tc.eval_size, out, self.cfg.model.encoder.downsample)


def load_initial_weights(model: Autoencoder, cfg: Config) -> None:
    """Fine-tuning: copy the weights of the export ``cfg.init.path`` into ``model``. The export
    must hold the same networks (its model config equal to ``cfg.model``), or smaller ones that
    ``cfg.model`` deepens or widens (``swycc.autoencoders.grow``), and still be the file the run
    was started from (``cfg.init.weights_sha256``)."""
    from swycc.autoencoders.base import weights_sha256
    from swycc.autoencoders.grow import grown_state_dict, growth_of

    path = cfg.init.path
    if weights_sha256(path) != cfg.init.weights_sha256:
        raise ValueError(f"init {path}: its weights changed since this run was started from it "
                         f"(hash {cfg.init.weights_sha256[:12]}...)")
    source = Autoencoder.from_pretrained(path)
    if source.config.model.method != cfg.model.method:
        raise ValueError(f"init {path}: a {source.config.model.method} model, this run trains "
                         f"a {cfg.model.method} model")
    try:  # the same networks, or deeper or wider ones (swycc.autoencoders.grow)
        growth_of(source.config.model, cfg.model)
        model.load_state_dict(grown_state_dict(source, model))
    except ValueError as e:
        raise ValueError(f"init {path}: {e}") from None


def train_autoencoder(cfg: Config, out_dir: str | Path, device: str | None = None,
                      max_steps: int | None = None, progress: bool = True,
                      tensorboard: bool = False, allow_data_change: bool = False,
                      pass_pixels: int | None = None) -> TrainResult:
    """Train (or resume) ``cfg`` in ``out_dir``; at the end, the export gets the per-channel
    statistics of its latents over the training data (``swycc.autoencoders.latent_stats``).
    ``tensorboard``: also log to ``out_dir/tb``; ``pass_pixels`` as in
    ``swycc.train.loop.train``."""
    from swycc.autoencoders.latent_stats import TRAINING_IMAGES, LatentStatsError
    from swycc.autoencoders.stats_export import store_latent_stats

    res = train(AutoencoderTask(cfg), out_dir, device=device, max_steps=max_steps,
                progress=progress, tensorboard=tensorboard, allow_data_change=allow_data_change,
                pass_pixels=pass_pixels)
    if res.export is not None and res.stopped_by != "signal":  # rank 0 wrote it; a SIGTERM
        # (pre-emption) exits at once: the run's resumption measures them
        where = device or ("cuda" if torch.cuda.is_available() else "cpu")  # as the loop's
        for export in (res.export, Path(out_dir) / "best"):
            if not export.exists():  # best: the held-out evaluation's (--eval-data)
                continue
            try:
                store_latent_stats(export, TRAINING_IMAGES, device=where, progress=progress)
            except LatentStatsError as e:  # non-finite (or constant) latents: weights blew up
                raise TrainingDivergedError(
                    f"training diverged: the exported model's latents are not usable ({e}); "
                    f"lower the learning rate (train.lr); the checkpoints are kept") from None
    return res
