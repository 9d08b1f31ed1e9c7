"""The training loop: one function, any method (SWYCC or GAN), one or many processes.

Re-running the same command resumes from ``<out>/checkpoints/latest`` exactly where it stopped:
model, optimiser, EMA, method state (e.g. the discriminator), step, RNG states and the data
position are all restored. Adam(W), linear warm-up then cosine decay to 0, global-norm clipping,
EMA, bf16 autocast, gradient accumulation, torchrun DDP. A non-finite loss skips the update and
is counted.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from swycc.autoencoder import SWYCC
from swycc.config import Config, TrainConfig
from swycc.data import ResumableSampler, build_dataset, make_loader
from swycc.train.checkpoint import CheckpointDir
from swycc.train.distributed import DistInfo, any_true, barrier, init_distributed
from swycc.train.ema import EMA
from swycc.train.objectives import build_objective
from swycc.train.reporting import MetricsLog, write_sample_grid


class ConfigMismatchError(ValueError):
    """The run directory holds a run of another configuration."""


@dataclass
class TrainResult:
    step: int
    nonfinite_steps: int
    stopped_by: str  # "total_steps", "max_steps", "time_budget" or "signal"
    out_dir: Path
    export: Path | None


def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    span = max(1, tc.total_steps - tc.warmup_steps)
    progress = min(1.0, (step - tc.warmup_steps) / span)
    return tc.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(params, tc: TrainConfig) -> torch.optim.Optimizer:
    if tc.weight_decay > 0:
        return torch.optim.AdamW(params, lr=tc.lr, betas=tc.betas, eps=tc.adam_eps,
                                 weight_decay=tc.weight_decay)
    return torch.optim.Adam(params, lr=tc.lr, betas=tc.betas, eps=tc.adam_eps)


def check_run_dir(out: Path, cfg: Config, info: DistInfo) -> None:
    """Store the config beside the run; refuse to resume a run of another model or method."""
    file = out / "config.json"
    if file.exists():
        old = Config.from_json(file.read_text())
        for part in ("model", "loss", "data"):
            if getattr(old, part) != getattr(cfg, part):
                raise ConfigMismatchError(
                    f"{out} holds a run with another {part} config; use a new --out directory "
                    f"(or the same options as before to resume)")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cfg.to_dict(), indent=2))
        tmp.replace(file)


def train(cfg: Config, out_dir: str | Path, device: str | None = None,
          max_steps: int | None = None, progress: bool = True) -> TrainResult:
    tc = cfg.train
    out = Path(out_dir)
    info = init_distributed(device)
    check_run_dir(out, cfg, info)
    micro, rem = divmod(tc.batch_size, info.world_size * tc.grad_accum)
    if rem or micro < 1:
        raise ValueError(f"train.batch_size={tc.batch_size} must be a multiple of "
                         f"processes x grad_accum = {info.world_size} x {tc.grad_accum}")

    # Adam's second moments and zero-initialised layers produce denormal floats, which ran
    # 100x slower on CPU here (the optimiser step took longer than the convolutions).
    torch.set_flush_denormal(True)
    torch.manual_seed(tc.seed)  # identical initial weights on every rank
    model = SWYCC(cfg).to(info.device)
    objective = build_objective(cfg, model, info.device)
    if tc.compile:
        model.compile_networks()
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], tc)
    ema = EMA(model, tc.ema_decay, tc.ema_warmup)
    dataset = build_dataset(cfg.data, cfg.model.image_size, train=True, seed=tc.seed)
    sampler = ResumableSampler(len(dataset), tc.seed, info.rank, info.world_size)
    ckpt = CheckpointDir(out)
    log = MetricsLog(out / "metrics.jsonl", enabled=info.is_main)

    step, nonfinite = 0, 0
    state = ckpt.load(device="cpu")
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
    if info.enabled:
        ids = [info.device.index] if info.device.type == "cuda" else None
        objective.wrap(lambda m: DDP(m, device_ids=ids))

    heldout = None
    if info.is_main and tc.sample_every > 0:
        held = build_dataset(cfg.data, cfg.model.image_size, train=False)
        heldout = torch.stack([held[i][0] for i in range(min(8, len(held)))])

    def save() -> Path | None:
        if not info.is_main:
            return None
        rng = {"cpu": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(info.device) if info.device.type == "cuda" else None}
        ckpt.save(step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "ema": ema.state_dict(), "objective": objective.state_dict(),
                         "sampler": sampler.state_dict(), "step": step,
                         "nonfinite_steps": nonfinite, "rng": rng, "config": cfg.to_dict()})
        return export_ema(model, ema, out / "export")

    stop_signal = {"hit": False}
    old_handler = signal.getsignal(signal.SIGTERM)
    if info.is_main or not info.enabled:
        signal.signal(signal.SIGTERM, lambda *_: stop_signal.update(hit=True))

    loader = make_loader(dataset, micro, sampler, tc.num_workers)
    limit = tc.total_steps if max_steps is None else min(tc.total_steps, max_steps)
    bar = tqdm(total=limit, initial=step, disable=not (progress and info.is_main),
               desc=f"train {cfg.model.method}", unit="step", dynamic_ncols=True)
    start, last_t, last_step = time.monotonic(), time.monotonic(), step
    stopped_by = "total_steps" if limit == tc.total_steps else "max_steps"
    export = None
    model.train()
    while step < limit:
        lr = lr_at(step, tc)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        logs_sum: dict[str, float] = {}
        bad = False
        for a in range(tc.grad_accum):
            x, _ = next(loader)
            x = x.to(info.device, non_blocking=True)
            # global row of each local example: rank r, k-th local example -> r + k * world
            k = torch.arange(a * micro, (a + 1) * micro)
            rows = info.rank + k * info.world_size
            sync = (a == tc.grad_accum - 1) or not info.enabled
            with (objective.wrapped.no_sync() if not sync else _null()):
                loss, logs = objective.micro_loss(x, step, rows, tc.batch_size)
                bad = bad or not bool(torch.isfinite(loss))
                (loss / tc.grad_accum).backward()
            sampler.advance(micro)
            for k_, v in logs.items():
                logs_sum[k_] = logs_sum.get(k_, 0.0) + float(v) / tc.grad_accum
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        bad = any_true(bad or not bool(torch.isfinite(grad_norm)), info)
        if bad:  # skip the update, keep the run alive
            nonfinite += 1
            optimizer.zero_grad(set_to_none=True)
        else:
            optimizer.step()
            ema.update(model)
            for k_, v in objective.after_step(x, step).items():
                logs_sum[k_] = float(v)
        step += 1
        bar.update(1)

        if step % tc.log_every == 0 or step == limit:
            now = time.monotonic()
            ips = (step - last_step) * tc.batch_size / max(now - last_t, 1e-9)
            last_t, last_step = now, step
            rec = {"step": step, "lr": lr, "grad_norm": float(grad_norm), **logs_sum,
                   "images_per_s": ips, "nonfinite_steps": nonfinite,
                   "elapsed_s": now - start}
            log.write(rec)
            bar.set_postfix(loss=f"{logs_sum.get('loss', float('nan')):.4f}", img_s=f"{ips:.1f}")
        if heldout is not None and (step % tc.sample_every == 0 or step == limit):
            write_sample_grid(model, ema, heldout, out / "samples" / f"step-{step:08d}.png")
        over_time = tc.time_budget_s is not None and time.monotonic() - start > tc.time_budget_s
        stop = any_true(over_time or stop_signal["hit"], info)
        if step % tc.checkpoint_every == 0 or step == limit or stop:
            export = save()
            barrier(info)
        if stop:
            stopped_by = "signal" if stop_signal["hit"] else "time_budget"
            break
    bar.close()
    if step >= limit and export is None:
        export = save()  # nothing to do: the run had already finished; re-export
    if info.is_main or not info.enabled:
        signal.signal(signal.SIGTERM, old_handler)
    return TrainResult(step, nonfinite, stopped_by, out, export)


def export_ema(model: SWYCC, ema: EMA, path: Path) -> Path:
    """The slim artefact: EMA weights + config in one safetensors file."""
    slim = SWYCC(model.config)
    ema.copy_to(slim)
    return slim.save_pretrained(path)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
