"""Held-out learning curve of a training run from its numbered exports (train.export_every).

For each ``RUN/exports/step-N`` (and the final ``RUN/export``), D_Initial (or the decoder of a
deterministic kind) reconstructs every whole photo of ``--data`` (largest centre square at each
``--sizes``); the script records mean PSNR, bicubic-from-1/8's PSNR on the same photos, and the
colour shift (largest per-channel mean error, 8-bit levels: worst photo and mean), against the
step and the cumulative training hours read from ``RUN/metrics.jsonl``. Results are cached per
export in the JSON (re-running evaluates only new exports); a plot goes beside it.

Several runs in order are the stages of one training (each later run started with ``--init`` from
the previous one's export): their steps and hours add up, each stage's final export is a point,
and the plot marks where a stage begins. ``--after CURVE.json`` continues an earlier curve whose
run directories are gone (another machine): its points are kept and the runs given here start at
its last step, hour and stage.

    .venv/bin/python scripts/learning_curve.py /work/runs/f8c4b /work/runs/f8c4b-ft128 \
        --data /work/data/photoset/test --out docs/pretrained/f8c4/learning-curve
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from swycc import Autoencoder
from swycc.experiments.ship_check import bicubic_from_eighth, colour_shift, load_photos
from swycc.io.outputs import write_text_atomic
from swycc.io.visual import save_figure
from swycc.metrics import maths
from swycc.train.checkpoint import CheckpointDir, step_of


def training_hours(run: Path) -> dict[int, float]:
    """Step -> cumulative training hours; each invocation's elapsed_s restarts at 0."""
    hours, offset, last = {}, 0.0, 0.0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("elapsed_s") is None:
            continue
        if rec["elapsed_s"] < last:  # a resumed invocation
            offset += last
        last = rec["elapsed_s"]
        hours[int(rec["step"])] = (offset + last) / 3600
    return hours


def stage_points(runs: list[Path], step0: int = 0, hours0: float = 0.0,
                 stage0: int = 0) -> list[tuple[int, float, Path, int]]:
    """(cumulative step, cumulative hours, export dir, stage index) of every export of the
    stages in order, the first starting at (step0, hours0, stage0); a stage's final ``export``
    is its last point."""
    points = []
    for i, run in enumerate(runs, stage0):
        hours = training_hours(run)
        if not hours:
            raise SystemExit(f"{run}/metrics.jsonl has no timed steps")
        last = max(hours)
        exports = {step_of(p): p for p in (run / "exports").glob("step-*")}
        if (run / "export" / "model.safetensors").exists():
            # ``export`` is rewritten at every checkpoint: it holds the latest checkpoint's step
            # (a running run's last logged step may be past it)
            saved = CheckpointDir(run).latest()
            exports.setdefault(step_of(saved) if saved else last, run / "export")
        for step, path in sorted(exports.items()):
            logged = max((k for k in hours if k <= step), default=last)
            points.append((step0 + step, hours0 + hours[logged], path, i))
        step0, hours0 = step0 + last, hours0 + hours[last]
    return points


@torch.no_grad()
def score(model: Autoencoder, x: torch.Tensor) -> dict:
    y = maths.quantized(model.reconstruct_initial(x))
    shift, _ = colour_shift(y, x)
    return {"psnr": float(maths.psnr(y, x).mean()),
            "colour_shift_max": float(shift.max()), "colour_shift_mean": float(shift.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="+", help="one run, or the stages of one in order")
    p.add_argument("--data", required=True, help="whole held-out photos")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.png")
    p.add_argument("--after", type=Path, help="an earlier curve's JSON that these runs continue")
    args = p.parse_args()
    torch.set_num_threads(1)
    done = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(
        ".json").exists() else {"points": {}}
    start, earlier_runs = (0, 0.0, 0), []
    if args.after is not None:
        earlier = json.loads(args.after.read_text())
        done["points"] = {**earlier["points"], **done["points"]}
        last = max(earlier["points"], key=int)
        start = (int(last), earlier["points"][last]["hours"],
                 earlier["points"][last].get("stage", 0) + 1)
        earlier_runs = earlier.get("runs", [])
    photos = {s: load_photos(args.data, s)[1] for s in args.sizes}
    bicubic = {s: float(maths.psnr(maths.quantized(bicubic_from_eighth(x)), x).mean())
               for s, x in photos.items()}
    for step, hours, path, stage in stage_points(args.runs, *start):
        if str(step) in done["points"]:
            continue
        model = Autoencoder.from_pretrained(path).eval()
        done["points"][str(step)] = {"hours": hours, "stage": stage,
                                     **{str(s): score(model, x) for s, x in photos.items()}}
        print(step, done["points"][str(step)], flush=True)
    done.update(runs=earlier_runs + [r.name for r in args.runs], data=Path(args.data).name,
                bicubic_psnr={str(s): v for s, v in bicubic.items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out.with_suffix(".json"), json.dumps(done, indent=2))
    plot(done, args.sizes, args.out.with_suffix(".png"))


def plot(done: dict, sizes: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(done["points"], key=int)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for s in sizes:
        hrs = [done["points"][k]["hours"] or 0 for k in steps]
        a.plot(hrs, [done["points"][k][str(s)]["psnr"] for k in steps], "o-",
               label=f"D_Initial, {s} px")
        a.axhline(done["bicubic_psnr"][str(s)], ls="--", lw=1, color=a.lines[-1].get_color(),
                  label=f"bicubic 1/8, {s} px")
        a.axhline(done["bicubic_psnr"][str(s)] + 2, ls=":", lw=1, color=a.lines[-1].get_color(),
                  label=f"ship-check target (+2 dB), {s} px")
        b.plot(hrs, [done["points"][k][str(s)]["colour_shift_max"] for k in steps], "o-",
               label=f"worst photo, {s} px")
    b.axhline(2.0, ls="--", color="k", lw=1, label="ship-check limit")
    for i, k in enumerate(steps[1:], 1):  # where a later stage begins
        if done["points"][k].get("stage", 0) != done["points"][steps[i - 1]].get("stage", 0):
            for ax in (a, b):
                ax.axvline(done["points"][steps[i - 1]]["hours"] or 0, color="grey", lw=0.8,
                           ls=":")
    a.set(xlabel="training hours (CPU)", ylabel="PSNR (dB)", title="held-out whole photos")
    b.set(xlabel="training hours (CPU)", ylabel="colour shift (8-bit levels)")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
