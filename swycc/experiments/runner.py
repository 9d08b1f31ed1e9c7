"""Running an experiment: train each arm on the same data, steps and seed, evaluate each on the
same held-back images, and write ``results.json``, ``results.md`` and ``results.png``.

Resumable by re-running the same command: an arm's training resumes from its own run directory
(``<out>/arms/<arm>``), and an arm whose evaluation for this step count is already on disk
(``eval.json``) is not evaluated again. Nothing of an arm is trusted if its config changed: the
training loop refuses a run directory of another config.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path


from swycc.config import Config
from swycc.experiments.converge import ExperimentStopped, finished, train_to
from swycc.io.outputs import write_text_atomic

OFFLINE_METRICS = ("psnr", "ssim", "fd_effnetlite0", "mmd_effnetlite0")
WEIGHTED_METRICS = ("rfid", "is", "cmmd", "fd_dinov2")  # only where their weights are present


@dataclass(frozen=True)
class Arm:
    """One trained model of an experiment: a name, its full config, and the values it varies
    (table columns and plot axes, e.g. {"method": "swycc", "K": 4})."""

    name: str
    config: Config
    factors: dict


@dataclass
class Budget:
    steps: int  # training steps per arm
    eval_images: int = 64  # held-back images scored per arm
    decode_steps: int = 20  # DDIM steps when scoring sampling decoders
    guidance: float | None = None  # None: each arm's config
    # --until-plateau (swycc.experiments.converge.PlateauSettings): ``steps`` is then an upper
    # bound, and each arm stops where its held-out learning curve flattens
    plateau: object | None = None


def with_budget(cfg: Config, budget: Budget, data: str | None) -> Config:
    """The arm's config for ``budget.steps``: warm-up at most a tenth of the steps, and a GAN's
    adversarial term switched on within the budget: a start at or past it (e.g. the default
    2000 in a 1000-step arm, which would leave a plain MSE + perceptual decoder) moves to a
    quarter of the steps; a start inside the budget is kept."""
    t = replace(cfg.train, total_steps=budget.steps,
                warmup_steps=min(cfg.train.warmup_steps, max(1, budget.steps // 10)),
                ema_warmup=min(cfg.train.ema_warmup, budget.steps))
    loss = cfg.loss
    if cfg.model.method == "gan" and loss.adversarial_weight > 0 and \
            loss.adversarial_start >= budget.steps:
        loss = replace(loss, adversarial_start=budget.steps // 4)
    return replace(cfg, train=t, loss=loss, data=replace(cfg.data, path=data))


def available_metrics(weights_dir: str | None, device: str,
                      wanted: list[str] | None = None) -> tuple[list[str], dict]:
    """``wanted`` (all must load), or: the offline metrics always, and rFID, IS, CMMD and
    FD-DINOv2 where their weights load."""
    from swycc.metrics.evaluate import load_available

    return load_available(wanted, weights_dir, device, OFFLINE_METRICS, WEIGHTED_METRICS)


def run_experiment(name: str, arms: list[Arm], out: str | os.PathLike, budget: Budget,
                   data: str | None, eval_data: str | None, device: str = "cpu",
                   weights_dir: str | None = None, progress: bool = True,
                   plot=None, metrics: list[str] | None = None, extras=None,
                   conclude=None) -> dict:
    """``extras(model, run_dir, dataset, num_images, device)`` (optional): more measurements of
    each trained arm, kept in its row as ``extras``; ``conclude(report)`` (optional): a
    (summary dict, markdown text) pair kept as ``conclusion`` and appended to results.md."""
    from swycc.autoencoders.base import Autoencoder
    from swycc.metrics.evaluate import data_identity, evaluate_model

    out = Path(out)
    metrics_chosen = bool(metrics)
    if budget.steps < 1 or budget.eval_images < 2:
        raise ValueError("an experiment needs --steps >= 1 and --eval-images >= 2")
    if data is not None and not Path(data).is_dir():
        raise ValueError(f"--data {data}: no such image folder")
    if eval_data is not None and not Path(eval_data).is_dir():
        raise ValueError(f"--eval-data {eval_data}: no such image folder")
    if data is not None and eval_data is None:
        raise ValueError("with --data, give --eval-data: a folder of held-back images that "
                         "training never sees (whole pictures, not crops of training ones)")
    sizes = {a.config.model.image_size for a in arms}
    if len(sizes) != 1:
        raise ValueError(f"the arms of an experiment share one image size, got {sorted(sizes)}")
    size = sizes.pop()
    metrics, extractors = available_metrics(weights_dir, device, metrics)
    plateau_extractors = plateau_metric_extractors(budget, extractors, weights_dir, device)
    from swycc.data import build_dataset

    eval_cfg = replace(arms[0].config.data, path=eval_data)  # e.g. its eval_grid
    dataset = build_dataset(eval_cfg, size, train=False)
    n = min(budget.eval_images, len(dataset))
    data_id = data_identity(eval_data, dataset, size, n)
    rows = []
    for arm in arms:
        cfg = with_budget(arm.config, budget, data)
        run = out / "arms" / arm.name
        curve = {}
        if budget.plateau is not None:
            from swycc.experiments.converge import autoencoder_until_plateau

            curve_obj, curve = autoencoder_until_plateau(
                cfg, run, budget.plateau, budget.steps, dataset, plateau_extractors,
                data_id=data_id, decode_steps=budget.decode_steps, guidance=budget.guidance,
                device=device, progress=progress)
        target = curve_obj.last_step if curve else budget.steps
        done = run / "eval.json"
        rec = json.loads(done.read_text()) if done.exists() else {}
        if rec.get("steps_trained") != target or rec.get("metrics_list") != metrics:
            res = train_to(cfg, run, target, device, progress)
            model = Autoencoder.from_pretrained(res.export).to(device)
            ev = evaluate_model(model, dataset, metrics, extractors, num_images=n,
                                steps=budget.decode_steps, guidance=budget.guidance, samples=1,
                                seed=cfg.train.seed, device=device, data_id=data_id,
                                progress=progress)
            rec = {"arm": arm.name, **arm.factors, "method": model.kind,
                   "latent_channels": cfg.model.latent_channels, "steps_trained": res.step,
                   "metrics_list": metrics, "metrics": ev["metrics"],
                   "decode_steps": budget.decode_steps if model.samples else None}
            if extras is not None:
                rec["extras"] = extras(model, run, dataset, n, device)
        fresh = {k: v for k, v in rec.items() if k not in ("stopped_on", "curve_metric",
                                                           "curve")}
        fresh.update(curve)  # this run's curve (none without --until-plateau)
        if fresh != rec or not done.exists():
            write_json(done, fresh)
        rows.append(fresh)
    report = {"experiment": name, "data": data or "embedded photo set",
              "eval_data": eval_data or "embedded held-back crops", "images": n,
              "image_size": size, "steps_per_arm": budget.steps, "metrics": metrics,
              "plateau": plateau_summary(budget.plateau),
              "left_out": [] if metrics_chosen else [m for m in WEIGHTED_METRICS
                                                     if m not in metrics],
              "device": device, "results": rows}
    text = markdown(report)
    if conclude is not None:
        report["conclusion"], more = conclude(report)
        text += "\n" + more
    write_json(out / "results.json", report)
    write_text_atomic(out / "results.md", text)
    if plot is not None:
        plot(report, out / "results.png")
        if budget.plateau is not None:
            from swycc.experiments.curves import append_curves, autoencoder_curves

            append_curves(out / "results.png", autoencoder_curves(rows))
    return report


def plateau_metric_extractors(budget: Budget, loaded: dict, weights_dir: str | None,
                               device: str) -> dict:
    """The networks ``--plateau-metric`` needs (those already loaded are shared)."""
    if budget.plateau is None:
        return {}
    from swycc.metrics.evaluate import METRICS, load_extractors

    net = METRICS[budget.plateau.metric][2]
    if net is None or net in loaded:
        return loaded
    return {**loaded, **load_extractors([budget.plateau.metric], weights_dir, device)}


def plateau_summary(settings) -> dict | None:
    from dataclasses import asdict

    return None if settings is None else asdict(settings)


def stopped_cell(row: dict, steps_key: str = "steps_trained") -> str:
    """A table cell: the steps an arm trained, marked with why it stopped under --until-plateau
    ("budget": it reached --steps before its curve flattened)."""
    mark = row.get("stopped_on")
    return f"{row[steps_key]}" + (f" ({mark})" if mark else "")


def plateau_lines(settings: dict | None, budget_steps: int, metric_label: str) -> list[str]:
    """The paragraph that says how --until-plateau stopped the arms (nothing without it)."""
    if not settings:
        return []
    return [f"Each arm trained until its held-out {metric_label} stopped improving: scored "
            f"every {settings['every']} steps, stopped when the last {settings['window']} "
            f"scores did not beat the best before them by more than {settings['tol']:g} "
            f"(relative), or at the budget of {budget_steps} steps. **(budget)** marks an arm "
            f"that reached the budget first: not converged by this rule.", ""]


def markdown(report: dict) -> str:
    from swycc.metrics.evaluate import METRICS

    rows = report["results"]
    factors = [k for k in rows[0] if k not in ("arm", "metrics", "metrics_list", "method",
                                                 "latent_channels", "steps_trained",
                                                 "decode_steps", "extras", "stopped_on",
                                                 "curve_metric", "curve")]
    plateau = report.get("plateau")
    cols = ["arm", "method", "C", *factors, *(["steps"] if plateau else [])]
    head = cols + [METRICS[m][0] for m in report["metrics"]]
    lines = [f"# {report['experiment']}", "",
             f"Trained on {report['data']} for {'at most ' if plateau else ''}"
             f"{report['steps_per_arm']} steps per arm; scored "
             f"on {report['images']} images of {report['eval_data']} at "
             f"{report['image_size']} px; device {report['device']}.", ""]
    if plateau:
        lines += plateau_lines(plateau, report["steps_per_arm"], METRICS[plateau["metric"]][0])
    lines += table_head(head, report["left_out"])
    for r in rows:
        cells = [r["arm"], r["method"], str(r["latent_channels"]),
                 *[str(r.get(f)) for f in factors], *([stopped_cell(r)] if plateau else [])]
        cells += [f"{r['metrics'][m]:.4g}" for m in report["metrics"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_head(head: list[str], left_out: list[str]) -> list[str]:
    """A results table's first lines: the metrics left out (no weights here), the header."""
    note = [f"Not measured here (weights not present): {', '.join(left_out)}.", ""]
    return (note if left_out else []) + ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]


def write_json(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2))


__all__ = ["Arm", "Budget", "ExperimentStopped", "OFFLINE_METRICS", "finished", "markdown",
           "run_experiment", "write_json"]
