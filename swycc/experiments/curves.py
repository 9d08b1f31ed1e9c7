"""The learning curves of ``--until-plateau``, drawn below an experiment's results.png: for each
curve group (the autoencoders; the DiTs), the held-out metric against training steps and against
training CPU time, one line per arm, its last point a circle where the arm stopped on the
plateau and a cross where it stopped on the budget."""

from __future__ import annotations

import os
from pathlib import Path

# one group: (title, metric label, [(arm, curve points, "plateau" | "budget")])
CurveGroup = tuple[str, str, list[tuple[str, list[dict], str]]]


def autoencoder_curves(rows: list[dict]) -> list[CurveGroup]:
    """The autoencoder arms' curves from the rows of ``run_experiment``."""
    from swycc.metrics.evaluate import METRICS

    rows = [r for r in rows if r.get("curve")]
    if not rows:
        return []
    label = METRICS[rows[0]["curve_metric"]][0]
    return [("autoencoders", label, [(r["arm"], r["curve"], r["stopped_on"]) for r in rows])]


def generation_curves(report: dict) -> list[CurveGroup]:
    """The autoencoders' and the DiTs' curves of a generation experiment's report."""
    from swycc.generation.evaluate import GEN_METRICS

    rows = [r for r in report["results"] if r.get("dit_curve")]
    if not rows:
        return []
    groups = autoencoder_curves([{"arm": r["arm"], **r["ae_curve"]} for r in rows])
    dit = rows[0]["dit_curve"]["curve_metric"]
    return groups + [("DiTs", GEN_METRICS[dit][0],
                      [(r["arm"], r["dit_curve"]["curve"], r["dit_curve"]["stopped_on"])
                       for r in rows])]


def plot_curves(groups: list[CurveGroup], path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from swycc.io.visual import save_figure

    fig, axes = plt.subplots(len(groups), 2, figsize=(9, 3.2 * len(groups)), squeeze=False)
    for (title, label, series), row in zip(groups, axes):
        for x_key, x_label, ax in (("step", "training steps", row[0]),
                                   ("cpu_s", "training CPU time (s)", row[1])):
            for arm, points, stopped in series:
                xs, ys = [p[x_key] for p in points], [p["value"] for p in points]
                line, = ax.plot(xs, ys, label=f"{arm} ({stopped})")
                ax.plot(xs[-1:], ys[-1:], "o" if stopped == "plateau" else "x",
                        color=line.get_color(), markersize=7)
            ax.set_xlabel(x_label)
            ax.set_ylabel(label, fontsize=8)
            ax.set_title(f"{title}: held-out {label} (o plateau, x budget)", fontsize=8)
            ax.legend(fontsize=6)
    save_figure(fig, path)


def append_curves(results_png: Path, groups: list[CurveGroup]) -> None:
    """Draw ``groups`` and put them below the image ``results_png`` (rewritten atomically)."""
    from PIL import Image

    if not groups:
        return
    results_png = Path(results_png)
    part = results_png.with_name(f".{results_png.stem}.curves.png")
    plot_curves(groups, part)
    with Image.open(results_png) as top, Image.open(part) as bottom:
        top, bottom = top.convert("RGB"), bottom.convert("RGB")
        canvas = Image.new("RGB", (max(top.width, bottom.width), top.height + bottom.height),
                           "white")
        canvas.paste(top, (0, 0))
        canvas.paste(bottom, (0, top.height))
    part.unlink()
    tmp = results_png.with_name(f".{results_png.name}.tmp.png")
    canvas.save(tmp)
    os.replace(tmp, results_png)


__all__ = ["CurveGroup", "append_curves", "autoencoder_curves", "generation_curves",
           "plot_curves"]
