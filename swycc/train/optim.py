"""Optimisers, the learning-rate schedule, and the one optimiser-step routine every trainer uses
(the training loop, the GAN's discriminator step and the benchmarks)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from swycc.config import TrainConfig


def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warm-up from 0 over ``warmup_steps``; then constant (``lr_schedule="constant"``)
    or cosine decay to 0 at ``total_steps``."""
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    if tc.lr_schedule == "constant":
        return tc.lr
    span = max(1, tc.total_steps - tc.warmup_steps)
    progress = min(1.0, (step - tc.warmup_steps) / span)
    return tc.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(params, tc: TrainConfig) -> torch.optim.Optimizer:
    if tc.weight_decay > 0:
        return torch.optim.AdamW(params, lr=tc.lr, betas=tc.betas, eps=tc.adam_eps,
                                 weight_decay=tc.weight_decay)
    return torch.optim.Adam(params, lr=tc.lr, betas=tc.betas, eps=tc.adam_eps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@dataclass
class StepResult:
    grad_norm: torch.Tensor  # global norm before clipping
    skipped: bool  # True: a non-finite loss or gradient; no update was made


def optimizer_step(optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter],
                   grad_clip: float, loss_finite: bool = True,
                   any_rank: Callable[[bool], bool] = lambda flag: flag) -> StepResult:
    """Clip the global gradient norm, then step, unless the loss or the gradient is non-finite
    on any process (``any_rank`` reduces the flag), in which case the update is skipped. The
    gradients are cleared either way."""
    grad_norm = torch.nn.utils.clip_grad_norm_(list(params), grad_clip)
    bad = any_rank((not loss_finite) or not bool(torch.isfinite(grad_norm)))
    if not bad:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(grad_norm.detach(), bad)
