"""``swycc ship-check``: may a candidate model replace the shipped one? (exit 0 yes, 1 no)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from swycc.cli.args import device_arg, seed_int
from swycc.config import MAX_IMAGE_SIZE
from swycc.experiments import ship_check as ship_check_module
from swycc.experiments.ship_check import SIZES, ship_check
from swycc.experiments.ship_check_report import markdown, summary_lines


def size_list(text: str) -> tuple[int, ...]:
    """"128,256" -> (128, 256): positive multiples of 8."""
    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 128,256, got {text!r}") from None
    if not sizes or any(s < 8 or s % 8 or s > MAX_IMAGE_SIZE for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be multiples of 8 up to {MAX_IMAGE_SIZE}, "
                                         f"got {text!r}")
    return sizes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--candidate", required=True, help="exported model dir or .safetensors")
    p.add_argument("--baseline", help="default: the model shipped with swycc")
    p.add_argument("--data", required=True, help="folder of whole photos kept out of training")
    p.add_argument("--out", required=True, help="directory for report.json, report.md, grid.png")
    p.add_argument("--sizes", type=size_list, default=SIZES,
                   help="pixels of the centre square, each checked (default "
                        f"{','.join(map(str, SIZES))}: the criteria's)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from swycc.io.outputs import OutputPlan
    from swycc.autoencoders.pretrained import default_checkpoint
    from swycc.io.visual import save_grid

    plan = OutputPlan(overwrite=True)  # a report directory: its files are replaced together
    out = Path(args.out)
    files = [plan.add_file(out / n) for n in ("report.json", "report.md", "grid.png")]
    plan.check()
    report, images = ship_check(args.candidate, args.baseline or str(default_checkpoint()),
                                args.data, sizes=args.sizes, seed=args.seed, device=args.device,
                                progress=not args.no_progress)
    cols = ["original", "bicubic", "candidate_initial", "candidate_sample", "baseline_initial",
            "baseline_sample"]
    grid = [[images[c][i] for c in cols] for i in range(report["images"])]
    with plan.writing() as stage:
        stage(files[0]).write_text(json.dumps(report, indent=2))
        stage(files[1]).write_text(markdown(report))
        save_grid(grid, stage(files[2]), labels=["original", "bicubic 1/8", "cand D_Initial",
                                                 "cand sample", "base D_Initial", "base sample"])
    print("\n".join(summary_lines(report)))
    print(f"wrote {out / 'report.json'}, {out / 'report.md'} and {out / 'grid.png'}")
    return report["exit_status"]


def register(sub) -> None:
    p = sub.add_parser("ship-check", help="may a candidate model replace the shipped one? "
                       "(exit 0 yes, 1 no)", description=ship_check_module.__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)
