"""``swycc experiment steps`` and ``swycc experiment guidance``: one SWYCC model's D_Refine decoded
at several DDIM step counts (paper Fig. 7) or classifier-free guidance scales w (Fig. 5), every
setting scored on the same held-back images with the same seed.

    swycc experiment steps --out runs/steps                  # the shipped model
    swycc experiment guidance --checkpoint runs/x/export --eval-data photos/test --out runs/w
    swycc experiment steps --steps 2000 --out runs/steps      # train one SWYCC model first

Scoring is ``swycc eval``'s (8-bit quantisation; PSNR, SSIM, the EfficientNet-Lite0 proxies, and
rFID/IS/CMMD/FD-DINOv2 where their weights load) plus sharpness (gradient-energy ratio) and the
radial power-spectrum distance; D_Initial is scored once, for reference. Each finished setting is
one JSON in ``<out>/settings``, so re-running resumes; a setting is reused only if it was scored
on the same weights, images, metrics, samples and seed. Writes results.json, results.md and
results.png (each metric against the swept value, one line per value of the other).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from swycc.config import Config

SWEEPS = {"steps": "Fig. 7: D_Refine's DDIM steps, on one SWYCC model (--checkpoint)",
          "guidance": "Fig. 5: D_Refine's guidance scale w, on one SWYCC model (--checkpoint)"}
STEPS = (1, 2, 5, 10, 20, 50)
GUIDANCE = (0.0, 0.25, 0.5, 1.0, 2.0)
IMAGE_METRICS = ("gradient_energy_ratio", "spectrum_distance_db")


def settings(name: str, steps: list[int], guidance: list[float]) -> list[tuple[int, float]]:
    """(steps, w) pairs, grouped by plot line: the swept value varies fastest."""
    if name == "steps":
        return [(n, w) for w in guidance for n in steps]
    return [(n, w) for n in steps for w in guidance]


def decode_sweep(name: str, checkpoint, out, *, sweep_steps: list[int] | None = None,
                 sweep_guidance: list[float] | None = None, decode_steps: int = 20,
                 eval_data: str | None = None, eval_images: int = 64, samples: int = 1,
                 seed: int = 0, device: str = "cpu", weights_dir: str | None = None,
                 metrics: list[str] | None = None, progress: bool = True) -> dict:
    """Sweep ``checkpoint``'s D_Refine over steps (``name="steps"``) or guidance; the report.
    The swept values default to the paper's figures; the other one to --decode-steps or the
    model's guidance."""
    from swycc.autoencoders.base import Autoencoder, read_config
    from swycc.autoencoders.kinds import get_kind

    if eval_images < 2:
        raise ValueError("--eval-images must be >= 2")
    if eval_data is not None and not Path(eval_data).is_dir():
        raise ValueError(f"--eval-data {eval_data}: no such image folder")
    kind = get_kind(read_config(checkpoint).model.method)  # CheckpointError names a bad one
    if not kind.samples:
        raise ValueError(f"{checkpoint}: a {kind.name} decoder does not sample; steps and "
                         f"guidance do not apply to it")
    model = Autoencoder.from_pretrained(checkpoint).to(device).eval()
    steps = sweep_steps or (list(STEPS) if name == "steps" else [decode_steps])
    guidance = sweep_guidance or (list(GUIDANCE) if name == "guidance"
                                  else [model.config.sampling.guidance])
    return run_decode_sweep(name, model, checkpoint, out, steps, guidance, eval_data,
                            eval_images, samples, seed, device, weights_dir, metrics, progress)


def train_sweep_model(cfg: Config, steps: int, out, data: str | None, eval_data: str | None,
                      device: str | None = None, progress: bool = True) -> Path:
    """The --steps budget: one SWYCC model of ``cfg`` trained (resumably) into <out>/model."""
    from swycc.autoencoders.kinds import with_method
    from swycc.experiments.runner import Budget, finished, with_budget
    from swycc.train.autoencoder_task import train_autoencoder

    if data is not None and eval_data is None:
        raise ValueError("with --data, give --eval-data: a folder of held-back images that "
                         "training never sees")
    cfg = with_budget(with_method(cfg, "swycc"), Budget(steps), data)
    res = finished(train_autoencoder(cfg, Path(out) / "model", device=device,
                                     progress=progress))  # SIGTERM: exit 75
    return Path(res.export)


def run_decode_sweep(name: str, model, checkpoint, out, steps: list[int],
                     guidance: list[float], eval_data: str | None, eval_images: int,
                     samples: int, seed: int, device: str, weights_dir: str | None,
                     metrics: list[str] | None, progress: bool = True) -> dict:
    from swycc.autoencoders.base import weights_sha256
    from swycc.data import build_dataset
    from swycc.metrics.evaluate import METRICS, ReferenceCache, data_identity, evaluate_model
    from swycc.experiments.runner import WEIGHTED_METRICS, available_metrics, write_json
    from swycc.io.outputs import write_text_atomic
    from swycc.autoencoders.kinds import kind_of

    if name not in SWEEPS:
        raise ValueError(f"unknown decoding sweep {name!r}; choose from {', '.join(SWEEPS)}")
    chosen = bool(metrics)
    metrics, extractors = available_metrics(weights_dir, device, metrics)
    metrics += [m for m in IMAGE_METRICS if m not in metrics]
    size = model.config.model.image_size
    dataset = build_dataset(replace(model.config.data, path=eval_data), size, train=False)
    n = min(eval_images, len(dataset))
    weights = weights_sha256(checkpoint)
    key = {"weights_sha256": weights, "data": data_identity(eval_data, dataset, size, n),
           "metrics": metrics, "samples": samples, "seed": seed}
    cache = ReferenceCache(None)  # reference features computed once, shared by the settings
    out = Path(out)

    def scored(file: str, **kw) -> dict:
        path = out / "settings" / file
        if path.exists():
            rec = json.loads(path.read_text())
            if rec.get("key") == key:
                return rec
        ev = evaluate_model(model, dataset, metrics, extractors, num_images=n, samples=samples,
                            seed=seed, device=device, data_id=key["data"], cache=cache,
                            progress=progress, **kw)
        rec = {"steps": ev["steps"], "guidance": ev["guidance"], "metrics": ev["metrics"],
               "seconds": ev["seconds"], "key": key}
        write_json(path, rec)
        return rec

    initial = (scored("initial.json", decoder="initial")
               if kind_of(model).initial_label else None)
    rows = [scored(f"steps{k}_guidance{w:g}.json", steps=k, guidance=w)
            for k, w in settings(name, steps, guidance)]
    from swycc.autoencoders.pretrained import display_path

    report = {"experiment": name, "checkpoint": display_path(checkpoint),
              "weights_sha256": weights,
              "method": model.kind, "eval_data": eval_data or "embedded held-back crops",
              "images": n, "image_size": size, "samples_per_image": samples, "seed": seed,
              "metrics": metrics, "definitions": {m: METRICS[m][1] for m in metrics},
              "left_out": [] if chosen else [m for m in WEIGHTED_METRICS if m not in metrics],
              "device": device, "initial": initial, "results": rows}
    write_json(out / "results.json", report)
    write_text_atomic(out / "results.md", markdown(report))
    plot(report, out / "results.png")
    return report


def markdown(report: dict) -> str:
    from swycc.metrics.evaluate import METRICS
    from swycc.experiments.runner import table_head

    ms = report["metrics"]
    head = ["decoder", "steps", "guidance", *[METRICS[m][0] for m in ms]]
    lines = [f"# {report['experiment']}: {SWEEPS[report['experiment']]}", "",
             f"Model {report['checkpoint']} ({report['method']}); scored on "
             f"{report['images']} images of {report['eval_data']} at {report['image_size']} px, "
             f"{report['samples_per_image']} sample(s) each, seed {report['seed']}; device "
             f"{report['device']}. Images quantised to 8 bits before every metric.", ""]
    lines += table_head(head, report["left_out"])
    rows = ([("D_Initial", report["initial"])] if report["initial"] else [])
    rows += [("D_Refine", r) for r in report["results"]]
    for label, r in rows:
        cells = [label, "-" if r["steps"] is None else str(r["steps"]),
                 "-" if r["guidance"] is None else f"{r['guidance']:g}"]
        lines.append("| " + " | ".join(cells + [f"{r['metrics'][m]:.4g}" for m in ms]) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    """One panel per metric: the metric against the swept value, a line per value of the other
    factor, D_Initial dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from swycc.metrics.evaluate import METRICS
    from swycc.io.visual import save_figure

    x = report["experiment"]
    other, sym = ("guidance", "w") if x == "steps" else ("steps", "steps")
    ms, rows = report["metrics"], report["results"]
    cols = len(ms) if len(ms) <= 5 else -(-len(ms) // 2)
    nrows = -(-len(ms) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.3 * cols, 3.0 * nrows), squeeze=False)
    for ax, m in zip(axes.flat, ms):
        for v in dict.fromkeys(r[other] for r in rows):
            rs = [r for r in rows if r[other] == v]
            ax.plot([r[x] for r in rs], [r["metrics"][m] for r in rs], marker="o",
                    label=f"{sym}={v:g}")
        if report["initial"]:
            ax.axhline(report["initial"]["metrics"][m], color="k", ls="--", lw=1,
                       label="D_Initial")
        if x == "steps":
            ax.set_xscale("log")
            ax.minorticks_off()
        values = sorted({r[x] for r in rows})
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.set_xlabel("DDIM steps" if x == "steps" else "guidance w")
        ax.set_title(METRICS[m][0], fontsize=9)
    for ax in list(axes.flat)[len(ms):]:
        ax.set_axis_off()
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{x}: {report['images']} held-back images of {report['eval_data']}, "
                 f"{report['samples_per_image']} sample(s) each", fontsize=9)
    save_figure(fig, path)


__all__ = ["GUIDANCE", "STEPS", "SWEEPS", "decode_sweep", "run_decode_sweep", "settings",
           "train_sweep_model"]
