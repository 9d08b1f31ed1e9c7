"""The plateau rule of ``--until-plateau``: when does a training run stop improving? Pure (no
training, no files): a rule and the learning curve it reads, unit-tested on synthetic sequences.

A run is evaluated on a held-out metric at steps ``every``, ``2 every``, ... and at the budget
(``--steps``, an upper bound: the last evaluation is at min(k every, budget)). After the n-th
evaluation, with values v_1..v_n (higher better; a lower-is-better metric is negated first):

    plateau  <=>  n > window  and  max(v_{n-window+1..n}) - max(v_{1..n-window})
                                   <= tol * |max(v_{1..n-window})|

i.e. the last ``window`` evaluations did not beat the best before them by more than the
**relative** tolerance ``tol`` (0.005 = 0.5% of the best value: 0.1 dB at 20 dB PSNR). The run
stops at the first evaluation where the rule holds ("plateau"), or at the budget ("budget"),
whichever comes first; a plateau found at the budget's own evaluation counts as "plateau".

The whole state is the curve's points; the decision is a function of them, so a run resumed from
a stored curve decides exactly as the uninterrupted one (``LearningCurve.to_dict/from_dict``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PLATEAU, BUDGET = "plateau", "budget"


@dataclass(frozen=True)
class PlateauRule:
    every: int  # training steps between two evaluations
    window: int  # evaluations without a large enough improvement that make a plateau
    tol: float  # relative: an improvement counts only above tol x |best before the window|
    budget: int  # at most this many training steps (the last evaluation is here)
    higher_is_better: bool = True

    def __post_init__(self):
        if self.every < 1 or self.window < 1 or self.budget < 1:
            raise ValueError(f"--plateau-every, --plateau-window and --steps must be >= 1, got "
                             f"{self.every}, {self.window}, {self.budget}")
        if not self.tol >= 0:
            raise ValueError(f"--plateau-tol must be >= 0 (a fraction), got {self.tol}")

    def next_step(self, step: int) -> int:
        """The step of the evaluation after one at ``step`` (never past the budget)."""
        return min(step + self.every, self.budget)

    def flat(self, values: list[float]) -> bool:
        """The rule on v_1..v_n (see the module's docstring)."""
        w = self.window
        if len(values) <= w:
            return False
        v = values if self.higher_is_better else [-x for x in values]
        before, recent = max(v[:-w]), max(v[-w:])
        return recent - before <= self.tol * abs(before)

    def key(self) -> dict:
        return asdict(self)


@dataclass
class CurvePoint:
    step: int
    value: float
    cpu_s: float  # process CPU time (all threads) spent training up to this step
    wall_s: float  # wall time spent training up to this step (evaluations excluded)


@dataclass
class LearningCurve:
    """A run's evaluations in order, and where the rule stops it."""

    points: list[CurvePoint] = field(default_factory=list)

    @property
    def last_step(self) -> int:
        return self.points[-1].step if self.points else 0

    def stopped(self, rule: PlateauRule) -> str | None:
        """"plateau", "budget", or None (go on training to ``rule.next_step(last_step)``)."""
        if not self.points:
            return None
        if rule.flat([p.value for p in self.points]):
            return PLATEAU
        return BUDGET if self.last_step >= rule.budget else None

    def add(self, rule: PlateauRule, step: int, value: float, cpu_s: float,
            wall_s: float) -> None:
        """Append the evaluation at ``step``, which must be the next one the rule asks for."""
        if self.stopped(rule) is not None:
            raise ValueError(f"the curve already stopped ({self.stopped(rule)}) at step "
                             f"{self.last_step}")
        if step != rule.next_step(self.last_step):
            raise ValueError(f"expected the evaluation at step {rule.next_step(self.last_step)}, "
                             f"got step {step}")
        last = self.points[-1] if self.points else CurvePoint(0, 0.0, 0.0, 0.0)
        self.points.append(CurvePoint(step, float(value), last.cpu_s + cpu_s,
                                      last.wall_s + wall_s))

    def to_dict(self) -> list[dict]:
        return [asdict(p) for p in self.points]

    @classmethod
    def from_dict(cls, points: list[dict]) -> LearningCurve:
        return cls([CurvePoint(int(p["step"]), float(p["value"]), float(p["cpu_s"]),
                               float(p["wall_s"])) for p in points])


__all__ = ["BUDGET", "CurvePoint", "LearningCurve", "PLATEAU", "PlateauRule"]
