"""Does a layout or compiler option make the CPU training step faster? One preset's full step
(``bench_train.training_step``: forward, backward, Adam, EMA) eager, with the networks in
channels-last memory, and under ``torch.compile`` (bf16 only: the compile is paid once per
process), in fp32 and bf16 autocast, timed in alternating rounds on this thread's CPU clock
(the fastest of 4 calls per round). Not a test: run it by hand, e.g.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_step_variants.py \\
        --set model.encoder.latent_channels=4 --set loss.perceptual_weight=0 \\
        --out bench/results_cpu_step_variants.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_train  # noqa: E402
from bench_train import timed, training_step  # noqa: E402
from swycc.config import apply_overrides, get_preset, override  # noqa: E402
from swycc.train.hardware import cpu_has_bf16_matmul, set_threads  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args()
    set_threads(1)
    torch.set_flush_denormal(True)
    bench_train.CLOCK.update(fn=time.thread_time, stat="min")
    cfg = apply_overrides(get_preset(args.preset), {}, args.set)
    batch = cfg.train.batch_size
    res: dict = {"preset": args.preset, "overrides": args.set or [], "batch": batch,
                 "timing": "min of 4 calls per round after 1 warm-up, thread clock, 1 thread",
                 "load_average_1min_start": os.getloadavg()[0], "img_s": {}}
    for prec in (["bf16"] if cpu_has_bf16_matmul() else []) + ["fp32"]:
        c = override(cfg, "train.bf16", prec == "bf16")
        steps = {"eager": training_step(c)[2]}
        model, _, steps["channels_last"] = training_step(c)
        model.to(memory_format=torch.channels_last)
        if prec == "bf16":
            model, _, steps["compiled"] = training_step(c)
            model.compile_networks()
            t0 = time.perf_counter()
            steps["compiled"]()
            res["compile_and_first_step_wall_s"] = time.perf_counter() - t0
        for r in range(args.rounds):
            for name, fn in steps.items():
                ips = batch / timed(fn, 1, 4)
                res["img_s"].setdefault(f"{prec}_{name}", []).append(ips)
                print(f"{prec} round {r} {name}: {ips:.2f} img/s", flush=True)
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
