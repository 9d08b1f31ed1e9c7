"""``--until-plateau``: train an arm in chunks of ``--plateau-every`` steps, score it on held-out
data after each chunk, and stop where its learning curve flattens (``swycc.experiments.plateau``)
or at the budget (``--steps``), whichever comes first.

The curve lives in the run directory (``plateau.json``: the settings, the rule, the points), and
is written after every evaluation; the training run checkpoints at each chunk's end. Re-running
the same command therefore resumes exactly, mid-window included: training continues from its
checkpoint, the stored points are kept, and the rule decides on the same values. A curve made
with other settings is refused (a new ``--out``, or the same options as before).

Autoencoder arms are scored with ``swycc.metrics.evaluate.evaluate_model`` on the first
``--plateau-images`` held-out images: by default PSNR of the arm's own decoder (SWYCC: its
D_Refine samples at ``--decode-steps``, with the experiment's seed, so every point decodes the
same noise; the GAN: its decoder).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swycc.experiments.plateau import LearningCurve, PlateauRule

CURVE_FILE = "plateau.json"


class ExperimentStopped(Exception):
    """SIGTERM stopped an arm's training (its checkpoint is written): the experiment stops
    there too, instead of scoring a half-trained arm and starting the next one."""


def finished(res):
    """``res`` (a TrainResult), unless a signal stopped that run: then ExperimentStopped."""
    if res.stopped_by == "signal":
        raise ExperimentStopped(str(res.out_dir))
    return res


def train_to(cfg, run: Path, steps: int, device: str | None, progress: bool):
    """Train (or resume) the arm ``cfg`` in ``run`` to exactly ``steps``: its TrainResult;
    ExperimentStopped on SIGTERM, ValueError where the run is already past ``steps``."""
    from swycc.train.autoencoder_task import train_autoencoder

    res = finished(train_autoencoder(cfg, run, device=device, max_steps=steps,
                                     progress=progress))
    if res.step != steps:
        raise ValueError(f"{run}: the run is at step {res.step}, past the {steps} steps of this "
                         f"experiment; use a new --out directory")
    return res


@dataclass(frozen=True)
class PlateauSettings:
    """The command line's ``--plateau-*`` options."""

    every: int = 100  # training steps between evaluations
    window: int = 3  # evaluations
    tol: float = 0.005  # relative (0.005 = 0.5% of the best value so far)
    metric: str = "psnr"  # autoencoder arms: a metric of swycc.metrics.evaluate.METRICS
    images: int = 64  # autoencoder arms: held-out images per evaluation
    dit_every: int | None = None  # DiT arms: DiT steps between scores (None: ``every``)

    def __post_init__(self):
        from swycc.metrics.evaluate import METRICS

        if self.metric not in METRICS:
            raise ValueError(f"--plateau-metric {self.metric!r}: choose from "
                             f"{', '.join(METRICS)}")
        self.rule(1, METRICS[self.metric][0])  # a metric with a direction, valid numbers

    def rule(self, budget: int, label: str, every: int | None = None) -> PlateauRule:
        """The rule for a run of at most ``budget`` steps, scored on a metric whose table label
        (``label``) ends with its direction, ↑ or ↓."""
        direction = label.strip()[-1:]
        if direction not in "↑↓" or not direction:
            raise ValueError(f"--until-plateau needs a metric that is better higher or lower; "
                             f"{label!r} is neither")
        return PlateauRule(every or self.every, self.window, self.tol, budget, direction == "↑")


def run_until_plateau(path: Path, rule: PlateauRule, key: dict,
                      train_to: Callable[[int], int],
                      evaluate: Callable[[int], float]) -> LearningCurve:
    """Train (``train_to(step)`` -> the step reached) and evaluate (``evaluate(step)`` -> the
    metric) chunk by chunk until ``rule`` stops the curve; ``path`` holds the curve between runs.
    ``key`` (JSON) names everything a point depends on besides the run itself."""
    key = json.loads(json.dumps({**key, "rule": rule.key()}))
    curve = LearningCurve()
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") != key:
            raise ValueError(f"{path}: a learning curve of other --until-plateau settings "
                             f"({_differences(stored.get('key') or {}, key)}); use a new --out "
                             f"directory (or the same options as before to resume)")
        curve = LearningCurve.from_dict(stored["points"])
    while curve.stopped(rule) is None:
        target = rule.next_step(curve.last_step)
        cpu0, wall0 = time.process_time(), time.monotonic()
        reached = train_to(target)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        if reached != target:
            raise ValueError(f"{path.parent}: the run is at step {reached}, past the evaluation "
                             f"at step {target} that --until-plateau needs (trained without "
                             f"it?); use a new --out directory")
        curve.add(rule, target, evaluate(target), cpu, wall)
        _write_json(path, {"key": key, "points": curve.to_dict(),
                           "stopped": curve.stopped(rule)})
    return curve


def curve_record(curve: LearningCurve, rule: PlateauRule, metric: str) -> dict:
    """What a result row keeps of a curve: where it stopped and why, and its points."""
    return {"stopped_on": curve.stopped(rule), "curve_metric": metric,
            "curve": curve.to_dict()}


def autoencoder_until_plateau(cfg, run: Path, settings: PlateauSettings, budget: int,
                              dataset, extractors: dict, *, data_id: str, decode_steps: int,
                              guidance: float | None, device: str, progress: bool
                              ) -> tuple[LearningCurve, dict]:
    """Train the autoencoder ``cfg`` in ``run`` until its held-out metric plateaus; (the curve,
    its row record)."""
    from swycc.autoencoders.base import Autoencoder
    from swycc.metrics.evaluate import METRICS, evaluate_model
    from swycc.train.autoencoder_task import train_autoencoder

    rule = settings.rule(budget, METRICS[settings.metric][0])
    n = min(settings.images, len(dataset))

    def train_to(step: int) -> int:
        res = finished(train_autoencoder(cfg, run, device=device, max_steps=step,
                                         progress=progress))
        train_to.export = res.export
        return res.step

    def evaluate(step: int) -> float:
        model = Autoencoder.from_pretrained(train_to.export).to(device)
        ev = evaluate_model(model, dataset, [settings.metric], extractors, num_images=n,
                            steps=decode_steps, guidance=guidance, samples=1,
                            seed=cfg.train.seed, device=device, data_id=data_id,
                            progress=False)
        return ev["metrics"][settings.metric]

    key = {"metric": settings.metric, "images": n, "data": data_id,
           "decode_steps": decode_steps, "guidance": guidance, "seed": cfg.train.seed}
    curve = run_until_plateau(run / CURVE_FILE, rule, key, train_to, evaluate)
    return curve, curve_record(curve, rule, settings.metric)


def _differences(old: dict, new: dict) -> str:
    keys = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys) or "unreadable"


def _write_json(path: Path, obj) -> None:
    from swycc.io.outputs import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=2))


__all__ = ["CURVE_FILE", "PlateauSettings", "autoencoder_until_plateau", "curve_record",
           "run_until_plateau"]
