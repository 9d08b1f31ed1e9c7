"""DiT training-step benchmark: images/s and achieved GFLOP/s of one full step (forward, backward,
Adam update) next to this machine's measured fp32 matmul peak and next to diffusers'
DiTTransformer2DModel of the same width, depth, heads and patch, timed in the same process.
Not a test: run it by hand, e.g.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_dit.py --out bench/results_dit_cpu.json

FLOPs are counted by torch's FlopCounterMode for each model's own step (plus attention, by hand),
so "speed per FLOP" compares achieved GFLOP/s; the raw step-time ratio is reported as well.
The two models alternate round by round and each keeps its fastest round: on shared cores the
median mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's swycc
from bench_train import flops_of, matmul_peak
from swycc.generation.config import DiTConfig, get_dit_preset
from swycc.generation.objective import class_drop_mask, dit_loss
from swycc.generation.dit import DiT


def _adam(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=1e-4)


def our_step(cfg: DiTConfig, batch: int):
    torch.manual_seed(0)
    model = DiT(cfg)
    opt = _adam(model)
    g = torch.Generator().manual_seed(0)
    s, c = cfg.latent_size, cfg.latent_channels
    z = torch.randn(batch, c, s, s, generator=g)
    y = torch.randint(0, cfg.num_classes, (batch,), generator=g)
    t, eps = torch.rand(batch, generator=g), torch.randn(batch, c, s, s, generator=g)
    drop = class_drop_mask(batch, cfg.class_dropout, g)

    def step():
        opt.zero_grad(set_to_none=True)
        loss, _ = dit_loss(model, z, y, t, eps, drop, cfg.num_classes)
        loss.backward()
        opt.step()

    return model, step


def peer_step(cfg: DiTConfig, batch: int):
    """diffusers' DiT (GELU MLP, absolute sin-cos positions, adaLN-Zero) with our shape."""
    from diffusers import DiTTransformer2DModel

    torch.manual_seed(0)
    model = DiTTransformer2DModel(
        num_attention_heads=cfg.heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.latent_channels, out_channels=cfg.latent_channels, num_layers=cfg.depth,
        sample_size=cfg.latent_size, patch_size=cfg.patch, num_embeds_ada_norm=cfg.num_classes)
    opt = _adam(model)
    g = torch.Generator().manual_seed(0)
    s, c = cfg.latent_size, cfg.latent_channels
    z = torch.randn(batch, c, s, s, generator=g)
    y = torch.randint(0, cfg.num_classes, (batch,), generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    target = torch.randn(batch, c, s, s, generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(z, timestep=t, class_labels=y).sample
        (out - target).pow(2).mean().backward()
        opt.step()

    return model, step


def _params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def attention_flops(cfg: DiTConfig, batch: int) -> float:
    """Scores and weighted sum, 2 x 2 N T^2 d per block forward, x 3 with the backward.
    Added by hand: FlopCounterMode does not count the CPU flash-attention kernel."""
    return 3 * 4 * batch * cfg.tokens**2 * cfg.hidden * cfg.depth


def interleaved_times(steps: dict, rounds: int,
                      clock=time.perf_counter) -> dict[str, tuple[float, float]]:
    """(min, median) seconds per step, the contenders alternating round by round, so that load
    from other processes on shared cores hits both alike; the min is the uncontended time.
    ``clock=time.thread_time`` (one thread only) counts CPU time, blind to descheduling."""
    for fn in steps.values():
        fn(), fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, fn in steps.items():
            t0 = clock()
            fn()
            times[k].append(clock() - t0)
    return {k: (min(v), sorted(v)[len(v) // 2]) for k, v in times.items()}


def thread_matmul_peak(n: int = 2048, runs: int = 10) -> float:
    """matmul_peak's measurement (best fp32 n x n matmul GFLOP/s) on the thread clock."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = interleaved_times({"mm": lambda: a @ b}, runs, time.thread_time)["mm"][0]
    return 2 * n**3 / best / 1e9


def bench(name: str, batch: int, latent: int, peak: float, rounds: int, clock) -> dict:
    cfg = replace(get_dit_preset(name).dit, latent_size=latent, latent_channels=4)
    res: dict = {"preset": name, "hidden": cfg.hidden, "depth": cfg.depth, "heads": cfg.heads,
                 "patch": cfg.patch, "latent": [cfg.latent_channels, latent, latent],
                 "tokens": cfg.tokens, "batch": batch}
    contenders = {"ours": our_step(cfg, batch)}
    try:
        contenders["diffusers"] = peer_step(cfg, batch)
    except ImportError:
        res["diffusers"] = "not installed"
    times = interleaved_times({k: step for k, (_, step) in contenders.items()}, rounds, clock)
    for k, (model, step) in contenders.items():
        flops = flops_of(step) + attention_flops(cfg, batch)
        sec, med = times[k]
        pre = "" if k == "ours" else f"{k}_"
        res.update({f"{pre}params_M": _params(model), f"{pre}step_s_min": sec,
                    f"{pre}step_s_median": med, f"{pre}img_s": batch / sec,
                    f"{pre}gflop_per_step": flops / 1e9, f"{pre}gflops": flops / sec / 1e9,
                    f"{pre}pct_peak": 100 * flops / sec / 1e9 / peak})
    if "diffusers" in contenders:
        res["speed_vs_diffusers_per_flop"] = res["gflops"] / res["diffusers_gflops"]
        res["speed_vs_diffusers_wall"] = res["diffusers_step_s_min"] / res["step_s_min"]
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["dit-tiny", "dit-small-cpu"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--latent", type=int, default=16, help="latent side (C = 4)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--clock", choices=["wall", "thread"], default="wall",
                   help="thread: CPU time of this thread (needs OMP_NUM_THREADS=1)")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    if args.clock == "thread" and torch.get_num_threads() != 1:
        p.error("--clock thread needs one thread (OMP_NUM_THREADS=1)")
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    torch.set_flush_denormal(True)  # as the training loop does
    peak = thread_matmul_peak() if args.clock == "thread" else matmul_peak()
    info = {"machine": f"{platform.processor() or platform.machine()}, "
                       f"{torch.get_num_threads()} threads",
            "torch": torch.__version__, "matmul_peak_gflops": peak,
            "timing": f"min over {args.rounds} interleaved rounds, {args.clock} clock",
            "load_average_1min_start": os.getloadavg()[0], "cpus": os.cpu_count(), "presets": []}
    print(", ".join(f"{k}: {v}" for k, v in info.items() if k != "presets"))
    if info["load_average_1min_start"] > info["cpus"]:
        print("warning: the machine is busy (load average > cores); wall times will be noisy")
    for name in args.presets:
        info["presets"].append(bench(name, args.batch, args.latent, peak, args.rounds, clock))
        print(json.dumps(info["presets"][-1], indent=1))
    print("\n| preset | params M | tokens | batch | img/s | GFLOP/s (% peak) | diffusers img/s "
          "| diffusers GFLOP/s (% peak) | per FLOP vs diffusers | wall vs diffusers |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    nan = float("nan")
    for r in info["presets"]:
        print(f"| {r['preset']} | {r['params_M']:.2f} | {r['tokens']} | {r['batch']} "
              f"| {r['img_s']:.1f} | {r['gflops']:.1f} ({r['pct_peak']:.0f}%) "
              f"| {r.get('diffusers_img_s', nan):.1f} | {r.get('diffusers_gflops', nan):.1f} "
              f"({r.get('diffusers_pct_peak', nan):.0f}%) "
              f"| {r.get('speed_vs_diffusers_per_flop', nan):.2f}x "
              f"| {r.get('speed_vs_diffusers_wall', nan):.2f}x |")
    info["load_average_1min_end"] = os.getloadavg()[0]  # > cpus: timings share the cores
    if args.out:
        with open(args.out, "w") as f:
            json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
