"""Does bf16 autocast train as well as fp32? Short runs from the same seeds in both precisions,
compared against the seed-to-seed spread of each.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bf16_parity.py --out docs/bf16-parity

For each seed and precision: ``swycc train``'s own loop (library call), the preset with
``--set``-style overrides, ``--steps`` steps (the LR schedule ends there), every step logged.
The "final loss" of a run is the mean of its last ``--tail`` logged losses (the diffusion loss
is noisy from step to step: each step draws its own noise levels). Writes ``parity.json`` and
``README.md`` under ``--out``; the runs go to ``--runs`` (a temporary directory by default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's swycc
from swycc.config import apply_overrides, get_preset  # noqa: E402
from swycc.io.outputs import write_text_atomic  # noqa: E402
from swycc.train.autoencoder_task import train_autoencoder  # noqa: E402
from swycc.train.hardware import cpu_flags, cpu_has_bf16_matmul, set_threads  # noqa: E402

KEYS = ("loss", "loss_ae", "loss_mse")


def run(preset: str, sets: list[str], seed: int, bf16: bool, steps: int, out: Path,
        tail: int) -> dict:
    cfg = apply_overrides(get_preset(preset), {
        "train.seed": seed, "train.bf16": bf16, "train.total_steps": steps,
        "train.log_every": 1, "train.sample_every": 0, "train.checkpoint_every": steps}, sets)
    t0 = time.perf_counter()
    train_autoencoder(cfg, out, device="cpu", progress=False)
    seconds = time.perf_counter() - t0
    recs = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    last = recs[-tail:]
    return {"seed": seed, "precision": "bf16" if bf16 else "fp32", "seconds": seconds,
            **{f"final_{k}": statistics.fmean(r[k] for r in last) for k in KEYS
               if k in last[-1]}}


def summarise(rows: list[dict]) -> dict:
    out = {}
    for prec in ("fp32", "bf16"):
        mine = [r for r in rows if r["precision"] == prec]
        for k in KEYS:
            vals = [r[f"final_{k}"] for r in mine if f"final_{k}" in r]
            if len(vals) >= 2:
                out[f"{prec}_{k}"] = {"mean": statistics.fmean(vals),
                                      "sd": statistics.stdev(vals),
                                      "min": min(vals), "max": max(vals)}
    for k in KEYS:
        a, b = out.get(f"fp32_{k}"), out.get(f"bf16_{k}")
        if a and b:
            spread = max(a["max"] - a["min"], b["max"] - b["min"])
            diff = b["mean"] - a["mean"]
            out[f"verdict_{k}"] = {"bf16_minus_fp32": diff, "largest_seed_range": spread,
                                   "within_spread": abs(diff) <= spread}
    return out


def markdown(report: dict) -> str:
    s = report["summary"]
    lines = [
        "# bf16 autocast vs fp32: same loss within the seed-to-seed spread?", "",
        f"Measured on {report['machine']}, torch {report['torch']}, {report['threads']} thread(s)"
        f" (machine shared with other work). `{report['preset']}` preset with "
        f"{', '.join(report['overrides']) or 'no overrides'}; {report['steps']} steps each "
        f"(the LR schedule ends there), seeds {report['seeds']}; final loss = mean of the last "
        f"{report['tail']} logged steps. Produced by `scripts/bf16_parity.py`; numbers in "
        f"`parity.json`.", "",
        "| term | fp32 mean (sd) | bf16 mean (sd) | bf16 - fp32 | largest seed range | within |",
        "|---|---|---|---|---|---|"]
    for k in KEYS:
        a, b, v = s.get(f"fp32_{k}"), s.get(f"bf16_{k}"), s.get(f"verdict_{k}")
        if a and b:
            within = "yes" if v["within_spread"] else "NO"
            lines.append(f"| {k} | {a['mean']:.5f} ({a['sd']:.5f}) | {b['mean']:.5f} "
                         f"({b['sd']:.5f}) | {v['bf16_minus_fp32']:+.5f} | "
                         f"{v['largest_seed_range']:.5f} | {within} |")
    verdicts = [s[f"verdict_{k}"]["within_spread"] for k in KEYS if f"verdict_{k}" in s]
    lines += ["", ("Verdict: for every loss term the difference of the precisions' means is "
                   "within the largest seed-to-seed range." if all(verdicts) else
                   "Verdict: for at least one term bf16 differs from fp32 by more than the "
                   "seed-to-seed range.")]
    lines += ["", "| seed | precision | final loss | final loss_mse | wall s (shared machine) |",
              "|---|---|---|---|---|"]
    for r in report["runs"]:
        lines.append(f"| {r['seed']} | {r['precision']} | {r['final_loss']:.5f} | "
                     f"{r.get('final_loss_mse', float('nan')):.5f} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tail", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", help="run directories (default: a temporary one)")
    p.add_argument("--out", required=True, help="directory for parity.json and README.md")
    args = p.parse_args()
    if not cpu_has_bf16_matmul():
        sys.exit("bf16_parity: this CPU has no bf16 matrix units; nothing to compare")
    set_threads(args.threads)
    sets = args.set if args.set is not None else ["model.encoder.latent_channels=4",
                                                  "loss.perceptual_weight=0"]
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs or tmp)
        rows = []
        for seed in args.seeds:
            for bf16 in (False, True):
                name = f"seed{seed}-{'bf16' if bf16 else 'fp32'}"
                rows.append(run(args.preset, sets, seed, bf16, args.steps, runs / name,
                                args.tail))
                print(json.dumps(rows[-1]), flush=True)
    flags = cpu_flags()
    report = {"machine": f"{torch.cpu.get_capabilities().get('cpu_name', '?')}, "
                         f"{'avx512_bf16' if 'avx512_bf16' in flags else ''}"
                         f"{' amx_bf16' if 'amx_bf16' in flags else ''}",
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "preset": args.preset, "overrides": sets, "steps": args.steps,
              "seeds": args.seeds, "tail": args.tail, "runs": rows,
              "summary": summarise(rows)}
    out = Path(args.out)
    write_text_atomic(out / "parity.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "README.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
