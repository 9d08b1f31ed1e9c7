"""The training loop: one function for anything that offers a model, an objective and data
(every autoencoder kind through ``swycc.train.autoencoder_task``, the latent DiT, ...).

Re-running the same command resumes from ``<out>/checkpoints/latest`` exactly where it stopped:
model, optimiser, EMA, objective state (e.g. a discriminator), step, RNG states and the data
position are all restored. Adam(W), linear warm-up then cosine decay (or constant; its length
measured from a time budget: ``swycc.train.budget``), global-norm clipping, EMA, bf16 autocast,
gradient accumulation, torchrun DDP, held-out evaluation with a best export (a task's optional
``build_evaluator``: ``swycc.train.held_out``). A non-finite loss or gradient skips the update
and is counted; a long streak of them stops the run (``TrainingDivergedError``).

Before anything is written, the task builds its data, model and objective (a bad option or an
empty folder fails here, leaving no trace), the directory's config is compared with this one,
and the directory's lock is taken (a second live run into the same ``--out`` is refused).
"""

from __future__ import annotations

import math
import signal
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from swycc.config import TrainConfig
from swycc.data.order import ResumableSampler, make_loader
from swycc.train.budget import BudgetSchedule
from swycc.train.checkpoint import CheckpointDir
from swycc.train.distributed import DistInfo, any_true, barrier, init_distributed, min_over_ranks
from swycc.train.ema import EMA
from swycc.train.optim import lr_at, make_optimizer, optimizer_step, set_lr
from swycc.train.reporting import MetricsLog
from swycc.train.run_dir import (ConfigMismatchError, RunLock, check_data_manifest,
                                 data_manifest, read_run_config, write_data_manifest,
                                 write_run_config)

__all__ = ["ConfigMismatchError", "TrainResult", "TrainTask", "TrainingDivergedError", "train"]


class TrainingDivergedError(RuntimeError):
    """Too many optimiser steps in a row were skipped as non-finite."""


class TrainTask(Protocol):
    """What the loop trains. ``swycc.train.autoencoder_task.AutoencoderTask`` is one."""

    name: str  # progress-bar label
    train_config: TrainConfig

    def config_dict(self) -> dict: ...  # written to <out>/config.json
    def check_resume(self, old: dict) -> None: ...  # raise ConfigMismatchError if incompatible
    def build_dataset(self) -> Any: ...  # items (input, label); validates the data
    def build_model(self) -> nn.Module: ...
    def build_objective(self, model: nn.Module, device: torch.device) -> Any: ...
    def to_device(self, batch: tuple, device: torch.device) -> Any: ...  # loader item -> input
    def preview_inputs(self) -> Any | None: ...  # held-back inputs for preview grids, or None
    def write_preview(self, model: nn.Module, inputs: Any, path: Path) -> None: ...
    def export(self, model: nn.Module, path: Path) -> Path: ...  # the slim EMA artefact
    def compile(self, model: nn.Module) -> None: ...
    # optional: def build_evaluator(self, out: Path) -> HeldOutEval | None (checks its data)


@dataclass
class TrainResult:
    step: int
    nonfinite_steps: int
    stopped_by: str  # "total_steps", "max_steps", "time_budget" or "signal"
    out_dir: Path
    export: Path | None
    data_counts: dict[str, int] = field(default_factory=dict)  # files the data skipped


def _rng_state(info: DistInfo) -> dict:
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(info.device) if info.device.type == "cuda" else None}


class _Divergence:
    """Counts skipped steps: a warning when more than half of a recent window was skipped, an
    error after ``limit`` in a row."""

    def __init__(self, limit: int, window: int):
        self.limit, self.in_row = limit, 0
        self.recent: deque[bool] = deque(maxlen=max(2, window))
        self.warned_at = -1

    def record(self, skipped: bool, step: int) -> None:
        self.in_row = self.in_row + 1 if skipped else 0
        self.recent.append(skipped)
        if self.in_row >= self.limit:
            raise TrainingDivergedError(
                f"training diverged: the last {self.in_row} steps (to step {step}) had a "
                f"non-finite loss or gradient; lower the learning rate (train.lr) or raise "
                f"train.max_nonfinite_in_row; the last good checkpoint is kept")
        full = len(self.recent) == self.recent.maxlen
        if full and sum(self.recent) * 2 > len(self.recent) and step - self.warned_at > len(
                self.recent):
            self.warned_at = step
            warnings.warn(f"step {step}: {sum(self.recent)} of the last {len(self.recent)} "
                          f"steps were skipped as non-finite; the run may be diverging",
                          RuntimeWarning, stacklevel=2)


def image_passes(batch: Any, rows: torch.Tensor,
                 pass_pixels: int) -> list[tuple[Any, torch.Tensor]]:
    """A micro-batch of images (N, C, H, W) cut into passes of at most ``pass_pixels`` pixels
    (at least one image each), with their global rows; anything else, or 0, stays whole.
    Exact for objectives whose loss is a mean of per-image terms with per-row randomness
    (``objective.separable``; GroupNorm normalises each image alone): the loop weights each
    pass by its share. On a CPU, large activations run memory-bound: a 256 px step of the
    f8c4 autoencoder took 5.4 s per image in passes of 8 images and 2.6 s in passes of one."""
    if not pass_pixels or not torch.is_tensor(batch) or batch.dim() != 4:
        return [(batch, rows)]
    per = max(1, pass_pixels // (batch.shape[-2] * batch.shape[-1]))
    if per >= len(batch):
        return [(batch, rows)]
    return [(batch[i:i + per], rows[i:i + per]) for i in range(0, len(batch), per)]


def train(task: TrainTask, out_dir: str | Path, device: str | None = None,
          max_steps: int | None = None, progress: bool = True,
          tensorboard: bool = False, allow_data_change: bool = False,
          pass_pixels: int | None = None) -> TrainResult:
    """``tensorboard``: also log scalars and preview grids to ``<out>/tb``. A run resumed on a
    data folder whose files (names, sizes) changed is refused unless ``allow_data_change``.
    ``pass_pixels``: the most pixels in one forward/backward pass (``image_passes``); None:
    the device's default (``swycc.train.hardware.default_pass_pixels``), 0: no limit."""
    # Adam's second moments and zero-initialised layers produce denormal floats, which ran
    # 100x slower on CPU here (the optimiser step took longer than the convolutions). The flag
    # is the whole process's (Python floats included), so it is switched back off afterwards.
    torch.set_flush_denormal(True)
    try:
        return _train(task, out_dir, device, max_steps, progress, tensorboard, allow_data_change,
                      pass_pixels)
    finally:
        torch.set_flush_denormal(False)


def _train(task: TrainTask, out_dir: str | Path, device: str | None, max_steps: int | None,
           progress: bool, tensorboard: bool, allow_data_change: bool,
           pass_pixels: int | None) -> TrainResult:
    tc = task.train_config
    out = Path(out_dir)
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    info = init_distributed(device)
    micro, rem = divmod(tc.batch_size, info.world_size * tc.grad_accum)
    if rem or micro < 1:
        raise ValueError(f"train.batch_size={tc.batch_size} must be a multiple of "
                         f"processes x grad_accum = {info.world_size} x {tc.grad_accum}")

    # ---- everything that can fail on bad input, before the first write ----
    if tensorboard:
        from swycc.train.tensorboard_log import require_tensorboard

        require_tensorboard()
    dataset = task.build_dataset()
    torch.manual_seed(tc.seed)  # identical initial weights on every rank
    model = task.build_model().to(info.device)
    objective = task.build_objective(model, info.device)
    build_evaluator = getattr(task, "build_evaluator", None)
    evaluator = build_evaluator(out) if build_evaluator is not None else None
    # the directory's config.json and, independently, the config inside its newest checkpoint
    # (a directory whose config.json was lost must not resume another model's weights)
    for old in (read_run_config(out), CheckpointDir(out).latest_config()):
        if old is not None:
            task.check_resume(old)
    manifest = data_manifest(dataset)
    if CheckpointDir(out).latest() is not None:
        check_data_manifest(out, manifest, allow_data_change)

    lock = RunLock(out).acquire() if info.is_main else None
    try:
        if info.is_main:
            write_run_config(out, task.config_dict())
            write_data_manifest(out, manifest)
        if pass_pixels is None:
            from swycc.train.hardware import default_pass_pixels

            pass_pixels = default_pass_pixels(info.device.type)
        return _run(task, out, info, micro, dataset, model, objective, max_steps, progress,
                    tensorboard, evaluator, pass_pixels)
    finally:
        if lock is not None:
            lock.release()


def _run(task, out: Path, info: DistInfo, micro: int, dataset, model: nn.Module, objective,
         max_steps: int | None, progress: bool, tensorboard: bool = False,
         evaluator=None, pass_pixels: int = 0) -> TrainResult:
    tc = task.train_config
    if not getattr(objective, "separable", False):
        pass_pixels = 0  # its loss is not a mean of per-image terms: never cut its batches
    budget = BudgetSchedule(out, tc) if tc.schedule_from_budget else None
    if budget is not None:
        tc = budget.train_config  # the measured length, once an earlier invocation fixed it
    if tc.compile:
        task.compile(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, tc)
    ema = EMA(model, tc.ema_decay, tc.ema_warmup)
    sampler = ResumableSampler(len(dataset), tc.seed, info.rank, info.world_size)
    ckpt = CheckpointDir(out)
    log = MetricsLog(out / "metrics.jsonl", enabled=info.is_main)

    step, nonfinite = 0, 0
    state = ckpt.load_latest(device="cpu")
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        objective.load_state_dict(state["objective"])
        sampler.load_state_dict(state["sampler"])
        step, nonfinite = int(state["step"]), int(state["nonfinite_steps"])
        torch.set_rng_state(state["rng"]["cpu"])
        if info.device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], info.device)
        log.truncate_after(step)
    tb = None
    if tensorboard and info.is_main:
        from swycc.train.tensorboard_log import TensorBoardLog

        tb = TensorBoardLog(out, step)
        tqdm.write(f"TensorBoard: tensorboard --logdir {tb.log_dir}")
    if info.enabled:
        ids = [info.device.index] if info.device.type == "cuda" else None
        objective.wrap(lambda m: DDP(m, device_ids=ids))

    preview = task.preview_inputs() if info.is_main and tc.sample_every > 0 else None

    def ema_model() -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # a fresh module must not move the run's RNG
            slim = task.build_model()
        ema.copy_to(slim)
        return slim.eval()

    def save() -> Path | None:
        if not info.is_main:
            return None
        ckpt.save(step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "ema": ema.state_dict(), "objective": objective.state_dict(),
                         "sampler": sampler.state_dict(), "step": step,
                         "nonfinite_steps": nonfinite, "rng": _rng_state(info),
                         "config": task.config_dict()})
        return task.export(ema_model(), out / "export")

    stop_signal = {"hit": False}
    old_handler = signal.getsignal(signal.SIGTERM)
    if info.is_main or not info.enabled:
        signal.signal(signal.SIGTERM, lambda *_: stop_signal.update(hit=True))

    loader = make_loader(dataset, micro, sampler, tc.num_workers)

    def run_limit() -> float:  # the schedule's end (unknown while a budget's rate is measured)
        total = tc.total_steps if budget is None or budget.fixed else math.inf
        return total if max_steps is None else min(total, max_steps)

    limit = run_limit()
    bar = tqdm(total=None if math.isinf(limit) else limit, initial=step,
               disable=not (progress and info.is_main), desc=task.name, unit="step",
               dynamic_ncols=True)
    start, last_t, last_step = time.monotonic(), time.monotonic(), step
    start_step = step
    stopped_by = "total_steps" if limit == tc.total_steps else "max_steps"
    divergence = _Divergence(tc.max_nonfinite_in_row, tc.log_every)
    export = None
    model.train()
    try:
        while step < limit:
            lr = lr_at(step, tc if budget is None else budget.lr_config(step))
            set_lr(optimizer, lr)
            optimizer.zero_grad(set_to_none=True)
            logs_sum: dict[str, float] = {}
            finite = True
            for a in range(tc.grad_accum):
                batch = task.to_device(next(loader), info.device)
                # global row of each local example: rank r, k-th local example -> r + k * world
                k = torch.arange(a * micro, (a + 1) * micro)
                rows = info.rank + k * info.world_size
                passes = image_passes(batch, rows, pass_pixels)
                for j, (part, part_rows) in enumerate(passes):
                    sync = ((a == tc.grad_accum - 1 and j == len(passes) - 1)
                            or not info.enabled)
                    share = len(part_rows) / (micro * tc.grad_accum)  # of the batch's mean
                    with (objective.wrapped.no_sync() if not sync else _null()):
                        loss, logs = objective.micro_loss(part, step, part_rows, tc.batch_size)
                        finite = finite and bool(torch.isfinite(loss))
                        (loss * share).backward()
                    for k_, v in logs.items():
                        logs_sum[k_] = logs_sum.get(k_, 0.0) + float(v) * share
                sampler.advance(micro)
            res = optimizer_step(optimizer, params, tc.grad_clip, finite,
                                 any_rank=lambda flag: any_true(flag, info))
            if res.skipped:  # skip the update, keep the run alive
                nonfinite += 1
            else:
                ema.update(model)
                for k_, v in objective.after_step(batch, step).items():
                    logs_sum[k_] = float(v)
            step += 1
            bar.update(1)
            divergence.record(res.skipped, step)
            if budget is not None and not budget.fixed:
                total = budget.measure(step, time.monotonic() - start, start_step)
                if total is not None:  # every rank measured at this step: the slowest decides
                    budget.fix(min_over_ranks(total, info), write=info.is_main)
                    tc = budget.train_config
                    limit = run_limit()
                    bar.total = limit
                    bar.refresh()
                    stopped_by = "total_steps" if limit == tc.total_steps else "max_steps"

            if step % tc.log_every == 0 or step == limit:
                now = time.monotonic()
                ips = (step - last_step) * tc.batch_size / max(now - last_t, 1e-9)
                last_t, last_step = now, step
                rec = {"step": step, "lr": lr, "grad_norm": _finite_or_none(res.grad_norm),
                       **logs_sum, "images_per_s": ips, "nonfinite_steps": nonfinite,
                       "elapsed_s": now - start, **_data_counts(dataset)}
                log.write(rec)
                if tb is not None:
                    tb.scalars(rec)
                extra = {k: f"{logs_sum[k]:.3g}"
                         for k in getattr(objective, "progress_keys", ()) if k in logs_sum}
                bar.set_postfix(loss=f"{logs_sum.get('loss', float('nan')):.4f}", **extra,
                                img_s=f"{ips:.1f}")
            if preview is not None and (step % tc.sample_every == 0 or step == limit):
                grid = out / "samples" / f"step-{step:08d}.png"
                task.write_preview(ema_model().to(info.device), preview, grid)
                if tb is not None:
                    tb.image_file("samples", grid, step)
            over_time = (tc.time_budget_s is not None
                         and time.monotonic() - start > tc.time_budget_s)
            stop = any_true(over_time or stop_signal["hit"], info)
            if evaluator is not None and info.is_main and (
                    step % tc.eval_every == 0 or step == limit or stop):
                _evaluate(task, evaluator, ema_model().to(info.device), step, out, log, tb)
            numbered = tc.export_every > 0 and step % tc.export_every == 0
            if step % tc.checkpoint_every == 0 or step == limit or stop or numbered:
                export = save()
                if numbered and info.is_main:
                    task.export(ema_model(), out / "exports" / f"step-{step:08d}")
                barrier(info)
            if stop:
                if step < limit or stop_signal["hit"]:  # a budget spent on the last step: done
                    stopped_by = "signal" if stop_signal["hit"] else "time_budget"
                break
    finally:
        bar.close()
        if tb is not None:
            tb.close()
        if info.is_main or not info.enabled:
            signal.signal(signal.SIGTERM, old_handler)
    if step >= limit and export is None:
        export = save()  # nothing to do: the run had already finished; re-export
    return TrainResult(step, nonfinite, stopped_by, out, export, _data_counts(dataset))


def _evaluate(task, evaluator, model: nn.Module, step: int, out: Path, log: MetricsLog,
              tb) -> None:
    """Held-out numbers of the EMA model to the log; a new best is exported to ``<out>/best``."""
    rec = evaluator.evaluate(model)
    log.write({"step": step, **rec})
    if tb is not None:
        tb.scalars({"step": step, **rec})
    if evaluator.is_better(rec):
        task.export(model, out / "best")
        evaluator.record_best(step, rec)


def _finite_or_none(x: torch.Tensor) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _data_counts(dataset) -> dict:
    """Files the dataset left out so far, by reason (``skipped_unreadable``, ...), if it counts
    them (``ImageFolderDataset.skip_counts``)."""
    counts = getattr(dataset, "skip_counts", None)
    return dict(counts()) if callable(counts) else {}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
