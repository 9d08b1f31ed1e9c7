"""The second stage as an experiment (the paper's Fig. 2; DGAE's "faster convergence"): for each
arm, train the autoencoder, encode the labelled data set, train one DiT on its latents with the
same recipe, and score generated images against the training images at several DiT steps.

Layout under ``--out`` (shared with the reconstruction experiments: an arm of the same name and
config is trained once and reused, e.g. ``k-sweep``'s ``swycc-K4``):

    arms/<arm>/              the autoencoder run (its export: arms/<arm>/export)
    arms/<arm>/latents/      encode-dataset's shards
    arms/<arm>/dit/          the DiT run; arms/<arm>/gen-<step>.json its score at that step
    arms/<arm>/samples.png   generated images of the last DiT step, one row per class
    results-<experiment>.json / .md / .png

Resumable by re-running: every stage resumes (training runs, shards) or is skipped (a score
already on disk for the same metrics, image count and settings).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from swycc.experiments.converge import train_to
from swycc.experiments.runner import (Arm, Budget, finished, plateau_lines, plateau_summary,
                                      stopped_cell, with_budget, write_json)


@dataclass(frozen=True)
class GenerationBudget:
    """The DiT recipe and the generation scores (one DiT per arm, the same for all)."""

    dit_preset: str = "dit-small-cpu"
    dit_steps: int = 2000  # DiT training steps per arm
    dit_evals: int = 3  # evaluation points, evenly spaced over the DiT steps (last = dit_steps)
    dit_sets: tuple[str, ...] = ()  # --dit-set KEY=VALUE overrides of the DiT preset
    images: int = 1000  # generated images per evaluation, classes in turn
    reference_images: int | None = None  # None: every training image
    sample_steps: int = 25  # DiT DDIM steps
    guidance: float | None = None  # DiT guidance (None: the preset's, the paper's 0.5)
    decoder_steps: int = 10  # sampling decoders' DDIM steps
    decoder_guidance: float = 0.5
    seed: int = 0
    batch_size: int = 50
    grid_per_class: int = 8

    def eval_steps(self) -> list[int]:
        n = max(1, min(self.dit_evals, self.dit_steps))
        return sorted({round(self.dit_steps * (i + 1) / n) for i in range(n)})

    def score_key(self) -> dict:
        """What a stored score must match to be reused."""
        keep = ("images", "reference_images", "sample_steps", "guidance", "decoder_steps",
                "decoder_guidance", "seed")
        return {k: v for k, v in asdict(self).items() if k in keep}


def dit_config(gen: GenerationBudget):
    from swycc.config import apply_overrides
    from swycc.generation.config import get_dit_preset

    return apply_overrides(get_dit_preset(gen.dit_preset), {"train.total_steps": gen.dit_steps},
                           list(gen.dit_sets))


@dataclass
class _Scoring:
    metrics: list[str]
    extractors: dict
    left_out: list[str]
    reference: dict = field(default_factory=dict)
    n_ref: int = 0


def run_generation_experiment(name: str, arms: list[Arm], out, budget: Budget,
                              gen: GenerationBudget, data: str, device: str = "cpu",
                              weights_dir: str | None = None, progress: bool = True,
                              metrics: list[str] | None = None, plot_x: str | None = None,
                              eval_data: str | None = None) -> dict:
    """``eval_data``: held-out images, needed by ``budget.plateau`` (the autoencoders' curves)."""
    from swycc.metrics.evaluate import ReferenceCache, data_identity, eval_dataset
    from swycc.generation.evaluate import load_gen_extractors, reference_features
    from swycc.generation.latents import scan_class_folder

    out = Path(out)
    if data is None:
        raise ValueError(f"experiment {name} needs --data: a class-labelled image folder (one "
                         "sub-folder per class)")
    scan_class_folder(data)  # a labelled folder, or a clear error before any training
    if budget.steps < 1 or gen.dit_steps < 1 or gen.images < 2:
        raise ValueError("a generation experiment needs --steps, --dit-steps >= 1 and "
                         "--gen-images >= 2")
    dit_cfg = dit_config(gen)  # bad --dit-set: an error naming the option, before any work
    sizes = {a.config.model.image_size for a in arms}
    if len(sizes) != 1:
        raise ValueError(f"the arms of an experiment share one image size, got {sorted(sizes)}")
    size = sizes.pop()
    held = _held_out(budget, arms[0], eval_data, size, weights_dir, device)
    scoring = _Scoring(*load_gen_extractors(metrics, weights_dir, device))
    dataset = eval_dataset(data, size)
    scoring.n_ref = min(gen.reference_images or len(dataset), len(dataset))
    scoring.reference = reference_features(
        dataset, scoring.n_ref, scoring.metrics, scoring.extractors,
        data_id=data_identity(data, dataset, size, scoring.n_ref),
        cache=ReferenceCache(out / "reference-cache"), device=device, progress=progress)
    rows = []
    for arm in arms:
        rows += _run_arm(arm, out / "arms" / arm.name, budget, gen, dit_cfg, data, scoring,
                         device, progress, held)
    report = {"experiment": name, "data": data, "image_size": size,
              "steps_per_arm": budget.steps, "dit": {"preset": gen.dit_preset,
                                                     "sets": list(gen.dit_sets),
                                                     "steps": gen.dit_steps},
              "generation": gen.score_key(), "reference_images": scoring.n_ref,
              "metrics": scoring.metrics, "left_out": scoring.left_out, "device": device,
              "plateau": plateau_summary(budget.plateau), "results": rows}
    write_json(out / f"results-{name}.json", report)
    (out / f"results-{name}.md").write_text(markdown(report))
    plot(report, out / f"results-{name}.png", plot_x)
    if budget.plateau is not None:
        from swycc.experiments.curves import append_curves, generation_curves

        append_curves(out / f"results-{name}.png", generation_curves(report))
    return report


def _held_out(budget: Budget, arm: Arm, eval_data: str | None, size: int,
              weights_dir: str | None, device: str):
    """(dataset, extractors, data id) of the held-out images the autoencoders' curves are
    scored on, or None without --until-plateau."""
    if budget.plateau is None:
        return None
    from dataclasses import replace

    from swycc.data import build_dataset
    from swycc.metrics.evaluate import data_identity, load_extractors

    if eval_data is None or not Path(eval_data).is_dir():
        raise ValueError("--until-plateau in a generation experiment needs --eval-data: a "
                         "folder of held-out images for the autoencoders' learning curves")
    dataset = build_dataset(replace(arm.config.data, path=eval_data), size, train=False)
    n = min(budget.plateau.images, len(dataset))
    return (dataset, load_extractors([budget.plateau.metric], weights_dir, device),
            data_identity(eval_data, dataset, size, n))


def _run_arm(arm: Arm, run: Path, budget: Budget, gen: GenerationBudget, dit_cfg, data: str,
             scoring: _Scoring, device: str, progress: bool, held=None) -> list[dict]:
    from swycc.autoencoders.base import Autoencoder
    from swycc.generation.latents import autoencoder_identity, encode_dataset

    cfg = with_budget(arm.config, budget, data)
    ae_steps, ae_curve = budget.steps, {}
    if budget.plateau is not None:  # held: (dataset, extractors, data_id) of --eval-data
        from swycc.experiments.converge import autoencoder_until_plateau

        curve, ae_curve = autoencoder_until_plateau(
            cfg, run, budget.plateau, budget.steps, *held[:2], data_id=held[2],
            decode_steps=budget.decode_steps, guidance=budget.guidance, device=device,
            progress=progress)
        ae_steps = curve.last_step
    ae_res = train_to(cfg, run, ae_steps, device, progress)
    ae = Autoencoder.from_pretrained(ae_res.export).to(device)
    encode_dataset(lambda x: ae.encode(x.to(device)), autoencoder_identity(ae_res.export), data,
                   run / "latents", cfg.model.image_size, progress=progress)
    key = {**gen.score_key(), "metrics": scoring.metrics, "dit": dit_cfg.to_dict()}

    def point(step: int) -> dict:
        return _dit_point(arm, run, step, key, ae, ae_res.export, gen, dit_cfg, scoring,
                          device, progress)

    marks = {"ae_steps": ae_res.step, "ae_stopped_on": ae_curve.get("stopped_on")}
    if budget.plateau is None:
        rows = [{**point(step), **marks} for step in gen.eval_steps()]
    else:  # the curves ride on the arm's last row
        rows = _dit_until_plateau(run, budget, gen, dit_cfg, scoring, device, progress, point)
        rows = [{**r, **marks} for r in rows]
        rows[-1]["ae_curve"] = ae_curve
    grid, last = run / "samples.png", run / f"gen-{rows[-1]['dit_step']}.json"
    if not grid.exists() or grid.stat().st_mtime_ns < last.stat().st_mtime_ns:
        from swycc.generation.generator import Generator  # the DiT's export: its last step

        _sample_grid(Generator.load(run / "dit" / "export", ae_res.export, device), gen, grid)
    return rows


def _dit_point(arm: Arm, run: Path, step: int, key: dict, ae, ae_export, gen: GenerationBudget,
               dit_cfg, scoring: _Scoring, device: str, progress: bool) -> dict:
    """The DiT's generation score at ``step``: read from ``gen-<step>.json``, or trained (to
    ``step``) and scored."""
    from swycc.generation.generator import Generator
    from swycc.generation.task import train_dit

    path = run / f"gen-{step}.json"
    if path.exists():
        rec = json.loads(path.read_text())
        if rec.get("key") == json.loads(json.dumps(key)):
            return rec
    res = finished(train_dit(dit_cfg, run / "latents", run / "dit", device=device,
                             max_steps=step, progress=progress))
    if res.step != step:
        raise ValueError(f"{run / 'dit'}: the DiT is at step {res.step}, past step {step}; use "
                         f"a new --out directory")
    generator = Generator.load(res.export, ae_export, device)
    rec = {"arm": arm.name, **arm.factors, "method": ae.kind,
           "latent_channels": ae.config.model.latent_channels, "dit_step": res.step,
           "metrics": _score(generator, gen, scoring, device), "key": key}
    write_json(path, rec)
    return rec


def _dit_until_plateau(run: Path, budget: Budget, gen: GenerationBudget, dit_cfg,
                       scoring: _Scoring, device: str, progress: bool, point) -> list[dict]:
    """The DiT trained until its first generation metric plateaus (scored every
    ``dit_every`` DiT steps, at most ``--dit-steps``): the rows of its curve's points."""
    from swycc.experiments.converge import curve_record, run_until_plateau
    from swycc.generation.evaluate import GEN_METRICS
    from swycc.generation.task import train_dit

    metric = scoring.metrics[0]
    rule = budget.plateau.rule(gen.dit_steps, GEN_METRICS[metric][0],
                               every=budget.plateau.dit_every)

    def train_to(step: int) -> int:
        return finished(train_dit(dit_cfg, run / "latents", run / "dit", device=device,
                                  max_steps=step, progress=progress)).step

    key = {**gen.score_key(), "metric": metric, "dit": dit_cfg.to_dict()}
    curve = run_until_plateau(run / "dit-plateau.json", rule, key, train_to,
                              lambda step: point(step)["metrics"][metric])
    rec = curve_record(curve, rule, metric)
    rows = [point(p.step) for p in curve.points]
    rows = [{**r, "dit_stopped_on": rec["stopped_on"]} for r in rows]
    rows[-1]["dit_curve"] = rec
    return rows


def _images(g, gen: GenerationBudget, labels):
    """The generated images of ``labels``, batch by batch, with the budget's settings."""
    return (x for _, x in g.batches(labels, steps=gen.sample_steps, guidance=gen.guidance,
                                    decoder_steps=gen.decoder_steps,
                                    decoder_guidance=gen.decoder_guidance, seed=gen.seed,
                                    batch_size=gen.batch_size))


def _score(g, gen: GenerationBudget, scoring: _Scoring, device: str) -> dict:
    from swycc.generation.generator import balanced_labels
    from swycc.generation.evaluate import score_generated

    labels = balanced_labels(gen.images, len(g.class_names))
    values, _ = score_generated(_images(g, gen, labels), scoring.metrics, scoring.extractors,
                                scoring.reference, batch_size=gen.batch_size, device=device)
    return values


def _sample_grid(g, gen: GenerationBudget, path: Path) -> None:
    import torch

    from swycc.io.visual import save_grid

    k = len(g.class_names)
    labels = torch.arange(k).repeat_interleave(gen.grid_per_class)
    xs = torch.cat(list(_images(g, gen, labels)))
    rows = [list(xs[c * gen.grid_per_class:(c + 1) * gen.grid_per_class]) for c in range(k)]
    tmp = path.with_name(f".{path.name}.tmp.png")
    save_grid(rows, tmp)
    tmp.replace(path)


def markdown(report: dict) -> str:
    from swycc.generation.evaluate import GEN_METRICS

    metrics, rows = report["metrics"], report["results"]
    g, d = report["generation"], report["dit"]
    lines = [f"# {report['experiment']}", "",
             f"Autoencoders trained on {report['data']} for {report['steps_per_arm']} steps "
             f"each; one DiT per autoencoder ({d['preset']}"
             f"{', ' + ', '.join(d['sets']) if d['sets'] else ''}) for {d['steps']} steps; "
             f"{g['images']} generated images per score (DiT {g['sample_steps']} steps, "
             f"guidance {'preset' if g['guidance'] is None else g['guidance']}; sampling "
             f"decoders {g['decoder_steps']} steps at w = {g['decoder_guidance']}) against "
             f"{report['reference_images']} training images at {report['image_size']} px; "
             f"device {report['device']}.", ""]
    if report["left_out"]:
        lines += [f"Not measured here (weights not present): {', '.join(report['left_out'])}.",
                  ""]
    plateau = report.get("plateau")
    if plateau:
        from swycc.metrics.evaluate import METRICS

        lines += plateau_lines(plateau, report["steps_per_arm"], METRICS[plateau["metric"]][0])
        lines += [f"The DiTs likewise on {GEN_METRICS[metrics[0]][0]}, scored every "
                  f"{plateau['dit_every'] or plateau['every']} DiT steps, at most {d['steps']}.",
                  ""]
    head = ["arm", "method", "C", *(["AE steps"] if plateau else []), "DiT step",
            *[GEN_METRICS[m][0] for m in metrics]]
    ends = final_rows(rows)  # the DiT's stop reason marks its last row only
    for title, sel in (("At each arm's last DiT step", ends),
                       ("Against DiT steps", sorted(rows, key=lambda r: (r["arm"],
                                                                          r["dit_step"])))):
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in sel:
            cells = [r["arm"], r["method"], str(r["latent_channels"])]
            if plateau:
                cells += [stopped_cell({"steps": r["ae_steps"], "stopped_on":
                                        r["ae_stopped_on"]}, "steps"),
                          stopped_cell({"steps": r["dit_step"], "stopped_on":
                                        r["dit_stopped_on"] if r in ends else None}, "steps")]
            else:
                cells.append(str(r["dit_step"]))
            cells += [f"{r['metrics'][m]:.4g}" for m in metrics]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def final_rows(rows: list[dict]) -> list[dict]:
    """Each arm's row at its last DiT step, in the arms' order."""
    last: dict[str, dict] = {}
    for r in rows:
        if r["arm"] not in last or r["dit_step"] > last[r["arm"]]["dit_step"]:
            last[r["arm"]] = r
    return list(last.values())


def plot(report: dict, path: Path, x: str | None) -> None:
    """Per metric: the score at the last DiT step against ``x`` (one line per method; bars per
    arm when x is None), and the score against DiT steps (one line per arm)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from swycc.experiments.catalog import metric_panel
    from swycc.generation.evaluate import GEN_METRICS
    from swycc.io.visual import save_figure

    rows, metrics = report["results"], report["metrics"]
    final = final_rows(rows)
    last = "/".join(sorted({str(r["dit_step"]) for r in final}))
    fig, axes = plt.subplots(2, len(metrics), figsize=(3.6 * len(metrics), 6.2), squeeze=False)
    for j, m in enumerate(metrics):
        ax = axes[0][j]
        metric_panel(ax, final, m, x)
        ax.set_title(f"{GEN_METRICS[m][0]} at DiT step {last}", fontsize=9)
        ax = axes[1][j]
        for arm in dict.fromkeys(r["arm"] for r in rows):
            rs = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["dit_step"])
            ax.plot([r["dit_step"] for r in rs], [r["metrics"][m] for r in rs], marker="o",
                    label=arm)
        ax.set_xlabel("DiT training step")
        ax.set_title(f"{GEN_METRICS[m][0]} against DiT steps", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(f"{report['experiment']}: {report['generation']['images']} generated images "
                 f"per point", fontsize=9)
    save_figure(fig, path)


__all__ = ["GenerationBudget", "dit_config", "markdown", "plot", "run_generation_experiment"]
