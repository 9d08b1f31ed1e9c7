"""A learning-rate schedule whose length comes from a time budget (``swycc train --time-budget S``
without ``--total-steps``): the run measures its own step rate, then fixes ``total_steps`` so the
cosine decay ends when the budget does.

Exact resumption: the length is measured once, over the first ``PROBE_STEPS`` steps of the run
(after ``SETTLE_STEPS`` that pay one-off costs), and written to ``<out>/schedule.json``; every
later invocation reads it back. Before the step at which it was fixed, the learning rate is the
schedule's value at zero progress (warm-up, then the base rate), which does not depend on the
length; so a run resumed from any checkpoint, before or after that step, repeats the same
learning rates.

    total_steps = step_at_measurement + floor(rate x (budget - elapsed) x SAFETY)

``SAFETY`` leaves room for the checkpoints, previews and evaluations the probe did not see.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from swycc.config import TrainConfig
from swycc.io.outputs import write_text_atomic

SETTLE_STEPS = 3  # not timed: the first steps pay allocation and warm-up costs
PROBE_STEPS = 20  # timed steps
SAFETY = 0.95
FILE = "schedule.json"


class BudgetSchedule:
    """``total_steps`` of a budgeted run: ``None`` until measured, then fixed.

    ``measure(...)`` after every step, then ``fix(total)`` once it returns a length;
    ``train_config`` is the run's TrainConfig with the fixed length once there is one."""

    def __init__(self, out: Path, tc: TrainConfig):
        self.path = Path(out) / FILE
        self.tc = tc
        self.total: int | None = None
        self.fixed_at = 0  # the step at which the length was fixed
        self._mark: tuple[int, float] | None = None  # (step, seconds) where timing started
        if self.path.exists():
            rec = json.loads(self.path.read_text())
            self.total, self.fixed_at = int(rec["total_steps"]), int(rec["measured_at_step"])

    @property
    def fixed(self) -> bool:
        return self.total is not None

    @property
    def train_config(self) -> TrainConfig:
        return self.tc if self.total is None else replace(self.tc, total_steps=self.total)

    def lr_config(self, step: int) -> TrainConfig:
        """The config ``lr_at`` reads for ``step``: the fixed length from the step at which it
        was fixed on; before, a constant schedule after the warm-up (the cosine's value at zero
        progress)."""
        if self.fixed and step >= self.fixed_at:
            return self.train_config
        return replace(self.tc, lr_schedule="constant")

    def measure(self, step: int, now: float, start_step: int) -> int | None:
        """After ``step`` steps, ``now`` seconds into this invocation (which began at
        ``start_step``): None while measuring, then the measured length (``fix`` it)."""
        if self.fixed:
            return None
        if self._mark is None:
            if step - start_step >= SETTLE_STEPS:
                self._mark = (step, now)
            return None
        steps, seconds = step - self._mark[0], now - self._mark[1]
        if steps < PROBE_STEPS:
            return None
        self._rate = steps / max(seconds, 1e-9)
        self._left = max(0.0, self.tc.time_budget_s - now)
        self._measured = (step, steps, seconds)
        return max(step + 1, step + math.floor(self._rate * self._left * SAFETY))

    def fix(self, total: int, write: bool = True) -> None:
        """Fix the length (the slowest process's, under DDP); ``write``: record it in the run
        directory (the main process)."""
        self.total, self.fixed_at = int(total), self._measured[0]
        if not write:
            return
        step, steps, seconds = self._measured
        write_text_atomic(self.path, json.dumps({
            "total_steps": self.total, "measured_at_step": step, "timed_steps": steps,
            "timed_seconds": seconds, "steps_per_s": self._rate,
            "time_budget_s": self.tc.time_budget_s, "seconds_left": self._left,
            "safety": SAFETY}, indent=2) + "\n")
