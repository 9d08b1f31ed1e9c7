"""The options of a distillation run (``swycc distill``), typed and checked like every config.

The rounds halve the step count: teacher_steps -> teacher_steps / 2 -> ... -> student_steps, so
teacher_steps / student_steps must be a power of two (>= 2). ``round_steps`` gives the optimiser
steps of each round (one value: every round).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from swycc.config import TrainConfig
from swycc.config_types import JsonConfig, choice

ROUND_TRAIN_DEFAULTS = TrainConfig(
    batch_size=16, lr=1e-4, warmup_steps=10, total_steps=1, lr_schedule="constant",
    grad_clip=1.0, ema_decay=0.99, ema_warmup=1000, log_every=10, checkpoint_every=50,
    sample_every=0)


@dataclass(frozen=True)
class DistillConfig(JsonConfig):
    teacher_steps: int = 16  # DDIM steps of the guided teacher that the first round imitates
    student_steps: int = 1  # the last round's student (its decode() default)
    guidance: float | None = None  # w folded in by the first round (None: the teacher's config)
    round_steps: tuple[int, ...] = (100,)  # optimiser steps per round (one value: every round)
    weighting: str = choice("truncated-snr", ("truncated-snr", "snr+1"))  # of ||y^ - y~||^2
    data_path: str | None = None  # training images (None: the teacher's data config)
    # total_steps and seed are set per round (round_steps[k], seed + k)
    train: TrainConfig = field(default_factory=lambda: ROUND_TRAIN_DEFAULTS)

    @property
    def rounds(self) -> int:
        return (self.teacher_steps // self.student_steps).bit_length() - 1

    def check(self) -> None:
        self.require(self.student_steps >= 1, "student_steps", "must be >= 1")
        ratio, rem = divmod(self.teacher_steps, self.student_steps)
        self.require(rem == 0 and ratio >= 2 and ratio & (ratio - 1) == 0, "teacher_steps",
                     f"must be student_steps ({self.student_steps}) times a power of two >= 2 "
                     f"(each round halves the steps), got {self.teacher_steps}")
        self.require(len(self.round_steps) in (1, self.rounds), "round_steps",
                     f"needs one value, or one per round ({self.rounds})")
        self.require(all(n >= 1 for n in self.round_steps), "round_steps", "must be >= 1")

    def steps_of_round(self, k: int) -> int:
        return self.round_steps[0] if len(self.round_steps) == 1 else self.round_steps[k]

    def round_train(self, k: int, time_budget_s: float | None = None) -> TrainConfig:
        n = self.steps_of_round(k)
        t = self.train
        return replace(t, total_steps=n, seed=t.seed + k, warmup_steps=min(t.warmup_steps, n),
                       ema_warmup=min(t.ema_warmup, n), time_budget_s=time_budget_s)
