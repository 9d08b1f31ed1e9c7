"""``swycc distill``: progressive distillation of a SWYCC teacher, one resumable run per round.

    from swycc.distill.task import distill
    result = distill(DistillConfig(teacher_steps=8), "small-swycc-f8c2", "runs/d")

Round k (1-based) trains under ``RUN/round-k`` with the generic loop (resume, EMA, checkpoints,
DDP and bf16 come from it): its teacher is the given model for k = 1 (guided, w folded in) and
round k-1's EMA export after that; its student starts as a copy of that teacher. A finished round
leaves ``done.json`` and is skipped when the command is run again; an interrupted one resumes
exactly from its last checkpoint. The last student is copied to ``RUN/export`` and the whole run
summarised in ``RUN/distill.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from swycc.autoencoders.base import WEIGHTS_NAME, Autoencoder, read_config
from swycc.autoencoders import DistilledSWYCC
from swycc.config import Config
from swycc.data import build_dataset
from swycc.distill.config import DistillConfig
from swycc.train.distributed import barrier, init_distributed
from swycc.train.loop import ConfigMismatchError, TrainResult, train

TEACHER_KINDS = ("swycc", "swycc-distilled")


def weights_file(path: str | os.PathLike) -> Path:
    """An export directory's weights file, or the file itself (checked by ``read_config``)."""
    p = Path(path)
    return p / WEIGHTS_NAME if p.is_dir() else p


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class RoundPlan:
    index: int  # 0-based
    teacher_steps: int
    student_steps: int
    teacher_guidance: float  # applied by the teacher's sampler (0 once folded)
    folded_guidance: float  # what the student reproduces (its config.sampling.guidance)
    steps: int  # optimiser steps


def plan_rounds(dcfg: DistillConfig, teacher_cfg: Config) -> list[RoundPlan]:
    if teacher_cfg.model.method not in TEACHER_KINDS:
        raise ValueError(f"distillation needs a SWYCC teacher (kind {' or '.join(TEACHER_KINDS)}),"
                         f" got a {teacher_cfg.model.method!r} model")
    w = teacher_cfg.sampling.guidance if dcfg.guidance is None else dcfg.guidance
    if teacher_cfg.model.method == "swycc-distilled":  # its guidance is already in the network
        if dcfg.guidance is not None and dcfg.guidance != teacher_cfg.sampling.guidance:
            raise ValueError(f"the teacher is a distilled decoder with guidance "
                             f"{teacher_cfg.sampling.guidance} folded in; it cannot teach "
                             f"guidance {dcfg.guidance}")
        first = 0.0
    else:
        first = w
    plans, n = [], dcfg.teacher_steps
    for k in range(dcfg.rounds):
        plans.append(RoundPlan(k, n, n // 2, first if k == 0 else 0.0, w, dcfg.steps_of_round(k)))
        n //= 2
    return plans


def student_config(teacher_cfg: Config, dcfg: DistillConfig, plan: RoundPlan) -> Config:
    """The teacher's config as a ``swycc-distilled`` model of ``plan.student_steps`` steps with
    the guidance folded in; data and train sections as this round uses them."""
    data = teacher_cfg.data if dcfg.data_path is None else replace(teacher_cfg.data,
                                                                   path=dcfg.data_path)
    return replace(teacher_cfg,
                   model=replace(teacher_cfg.model, method=DistilledSWYCC.kind),
                   sampling=replace(teacher_cfg.sampling, steps=plan.student_steps,
                                    guidance=plan.folded_guidance),
                   train=dcfg.round_train(plan.index), data=data)


class DistillTask:
    """The loop's ``TrainTask`` for one round of progressive distillation."""

    def __init__(self, dcfg: DistillConfig, plan: RoundPlan, teacher_path: str | Path,
                 rounds: int, time_budget_s: float | None = None):
        self.dcfg, self.plan = dcfg, plan
        self.teacher_file = weights_file(teacher_path)
        self.teacher_cfg = read_config(self.teacher_file)
        self.cfg = student_config(self.teacher_cfg, dcfg, plan)
        self.train_config = dcfg.round_train(plan.index, time_budget_s)
        self.teacher_sha256 = file_sha256(self.teacher_file)
        self.name = (f"distill {plan.index + 1}/{rounds} "
                     f"({plan.teacher_steps}->{plan.student_steps} steps)")
        self._teacher_state: dict | None = None

    # ---- identity of the run directory ----
    def identity(self) -> dict:
        """What must not change for a resume (as JSON gives it back: lists, not tuples)."""
        return json.loads(json.dumps({"round": self.plan.index + 1, "teacher_sha256": self.teacher_sha256,
                "teacher_steps": self.plan.teacher_steps,
                "student_steps": self.plan.student_steps,
                "teacher_guidance": self.plan.teacher_guidance,
                "folded_guidance": self.plan.folded_guidance,
                "weighting": self.dcfg.weighting, "model": self.cfg.to_dict()["model"],
                "data": self.cfg.to_dict()["data"], "seed": self.train_config.seed,
                "batch_size": self.train_config.batch_size}))

    def config_dict(self) -> dict:
        return {"identity": self.identity(), "teacher": str(self.teacher_file),
                "distill": self.dcfg.to_dict(), "student": self.cfg.to_dict()}

    def check_resume(self, old: dict) -> None:
        prev = old.get("identity") if isinstance(old, dict) else None
        if not isinstance(prev, dict):
            raise ConfigMismatchError("the run directory does not hold a distillation round; "
                                      "use a new --out directory")
        for key, value in self.identity().items():
            if prev.get(key) != value:
                raise ConfigMismatchError(
                    f"the run directory holds a distillation round with another {key} "
                    f"({'the teacher changed' if key == 'teacher_sha256' else 'options differ'}); "
                    f"use a new --out directory (or the same options as before to resume)")

    # ---- what the loop trains ----
    def build_dataset(self):
        return build_dataset(self.cfg.data, self.cfg.model.image_size, train=True,
                             seed=self.train_config.seed)

    def _teacher_weights(self) -> dict:
        if self._teacher_state is None:
            self._teacher_state = Autoencoder.from_pretrained(self.teacher_file).state_dict()
        return self._teacher_state

    def build_model(self) -> DistilledSWYCC:
        """The student: the teacher's weights; encoder and D_Initial frozen (latents stay
        compatible), only D_Refine trains."""
        student = DistilledSWYCC(self.cfg)
        student.load_state_dict(self._teacher_weights())
        student.encoder.requires_grad_(False)
        student.d_initial.requires_grad_(False)
        return student

    def build_objective(self, model: DistilledSWYCC, device: torch.device):
        from swycc.distill.objective import ProgressiveDistillObjective

        teacher = Autoencoder.from_pretrained(self.teacher_file).to(device)
        return ProgressiveDistillObjective(teacher, model, self.plan.student_steps,
                                           self.plan.teacher_guidance, self.train_config.seed,
                                           self.dcfg.weighting, self.train_config.bf16)

    def to_device(self, batch: tuple, device: torch.device) -> torch.Tensor:
        return batch[0].to(device, non_blocking=True)

    def preview_inputs(self) -> torch.Tensor:
        held = build_dataset(self.cfg.data, self.cfg.model.image_size, train=False)
        return torch.stack([held[i][0] for i in range(min(8, len(held)))])

    def write_preview(self, model, inputs: torch.Tensor, path: Path) -> None:
        from swycc.train.reporting import write_sample_grid

        write_sample_grid(model, inputs, path, steps=self.plan.student_steps)

    def export(self, model, path: Path) -> Path:
        from swycc.autoencoders.base import read_latent_stats

        model.latent_stats = read_latent_stats(self.teacher_file)  # the teacher's encoder
        return model.save_pretrained(path)

    def compile(self, model) -> None:
        model.compile_networks()


@dataclass
class DistillResult:
    rounds_done: int
    rounds: int
    stopped_by: str  # "done", "max_steps", "time_budget" or "signal"
    export: Path | None  # RUN/export when every round is done
    round_exports: list[Path]


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def _round_done(rdir: Path, task: DistillTask) -> bool:
    done = rdir / "done.json"
    if not done.is_file() or not (rdir / "export" / WEIGHTS_NAME).is_file():
        return False
    rec = json.loads(done.read_text())
    return (rec.get("steps") == task.plan.steps and rec.get("identity") == task.identity()
            and rec.get("export_sha256") == file_sha256(rdir / "export" / WEIGHTS_NAME))


def distill(dcfg: DistillConfig, teacher: str | os.PathLike, out: str | os.PathLike,
            device: str | None = None, max_steps: int | None = None,
            progress: bool = True) -> DistillResult:
    """Run (or resume) every round. ``max_steps`` stops after that many optimiser steps counted
    over all rounds (re-run without it to finish); ``dcfg.train.time_budget_s`` bounds this
    invocation's training time over all rounds."""
    out = Path(out)
    teacher_file = weights_file(teacher)
    teacher_cfg = read_config(teacher_file)
    plans = plan_rounds(dcfg, teacher_cfg)
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    data = student_config(teacher_cfg, dcfg, plans[0]).data
    if data.path is not None and not Path(data.path).is_dir():
        raise ValueError(f"training images {data.path}: no such folder (the teacher's data "
                         f"config names it; pass --data FOLDER)")
    info = init_distributed(device)  # only the main process writes the driver's files
    start, base = time.monotonic(), 0
    exports: list[Path] = []
    stopped = "done"
    for plan in plans:
        rdir = out / f"round-{plan.index + 1}"
        budget = dcfg.train.time_budget_s
        left = None if budget is None else budget - (time.monotonic() - start)
        if left is not None and left <= 0:
            stopped = "time_budget"
            break
        src = teacher_file if plan.index == 0 else exports[-1]
        task = DistillTask(dcfg, plan, src, len(plans), time_budget_s=left)
        if _round_done(rdir, task):
            exports.append(rdir / "export" / WEIGHTS_NAME)
            base += plan.steps
            continue
        limit = None if max_steps is None else max_steps - base
        if limit is not None and limit <= 0:
            stopped = "max_steps"
            break
        res: TrainResult = train(task, rdir, device=device, max_steps=limit, progress=progress)
        if res.step < plan.steps:
            stopped = res.stopped_by
            break
        export = rdir / "export" / WEIGHTS_NAME
        if info.is_main:
            _write_json(rdir / "done.json", {"steps": res.step, "identity": task.identity(),
                                             "export_sha256": file_sha256(export)})
        barrier(info)
        exports.append(export)
        base += plan.steps
    if len(exports) < len(plans) or not info.is_main:
        return DistillResult(len(exports), len(plans), stopped, None, exports)
    final = out / "export" / WEIGHTS_NAME
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_suffix(".tmp")
    shutil.copyfile(exports[-1], tmp)
    os.replace(tmp, final)
    _write_json(out / "distill.json", {
        "teacher": str(teacher_file), "teacher_sha256": file_sha256(teacher_file),
        "distill": dcfg.to_dict(),
        "rounds": [{"round": p.index + 1, "teacher_steps": p.teacher_steps,
                    "student_steps": p.student_steps, "teacher_guidance": p.teacher_guidance,
                    "steps": p.steps, "export": str(e.relative_to(out))}
                   for p, e in zip(plans, exports)],
        "export": str(final.relative_to(out)), "student_steps": plans[-1].student_steps,
        "folded_guidance": plans[-1].folded_guidance})
    return DistillResult(len(plans), len(plans), "done", final, exports)


def round_exports(run: str | os.PathLike) -> dict[int, Path]:
    """{student steps: export} of every round of a finished run (RUN/distill.json)."""
    summary = Path(run) / "distill.json"
    if not summary.is_file():
        return {}
    return {r["student_steps"]: Path(run) / r["export"]
            for r in json.loads(summary.read_text())["rounds"]}
