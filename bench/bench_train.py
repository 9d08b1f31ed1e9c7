"""Throughput benchmark: training images/s in fp32 and in bf16 autocast, achieved GFLOP/s against
this machine's measured fp32 and bf16 matmul peaks, decode ms/image, and a diffusers UNet2DModel
of the same shape timed in the same process (both precisions). Not a test: run it by hand, e.g.

    .venv/bin/pip install diffusers   # optional peer
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_train.py --threads 1 --presets tiny small \
        --out bench/results_cpu_bf16_1thread.json

The FLOPs of a step are counted once (fp32; autocast changes the arithmetic's precision, not its
amount) and divided by each precision's time. ``--set KEY=VALUE`` changes every preset the way
``swycc train --set`` does (e.g. the shipped recipe: ``model.encoder.latent_channels=4
loss.perceptual_weight=0``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's swycc
from swycc.autoencoders.base import Autoencoder  # noqa: E402
from swycc.autoencoders import SWYCC
from swycc.config import Config, apply_overrides, get_preset, override
from swycc.autoencoders.kinds import with_method
from swycc.autoencoders.kinds import KINDS, get_kind
from swycc.train.ema import EMA
from swycc.train.hardware import cpu_has_bf16_matmul, set_threads
from swycc.train.optim import make_optimizer, optimizer_step

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


CLOCK = {"fn": time.perf_counter, "stat": "median"}  # main(): --clock thread, --stat min


def timed(fn, warmup: int = 2, iters: int = 5) -> float:
    """Seconds per call: the median (or, with --stat min, the fastest) of ``iters`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    clock = CLOCK["fn"]
    for _ in range(iters):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times) if CLOCK["stat"] == "min" else sorted(times)[len(times) // 2]


def flops_of(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_peak(n: int = 2048, dtype: torch.dtype = torch.float32) -> float:
    """Best GFLOP/s of an n x n matmul at ``dtype`` on this machine."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = min(timed(lambda: a @ b, 2, 3) for _ in range(3))
    return 2 * n**3 / best / 1e9


def training_step(cfg: Config, device: str = "cpu", batch: int | None = None):
    """(model, fwd_bwd, step) for one full training step on random images."""
    torch.manual_seed(0)
    dev = torch.device(device)
    with dev:
        model = Autoencoder.from_config(cfg)
    objective = get_kind(cfg.model.method).build_objective(cfg, model, dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg.train)
    ema = EMA(model, cfg.train.ema_decay)
    b, s = batch or cfg.train.batch_size, cfg.model.image_size
    x = torch.rand(b, 3, s, s, device=dev) * 2 - 1
    rows = torch.arange(b)
    state = {"step": 0}

    def fwd_bwd():
        opt.zero_grad(set_to_none=True)
        loss, _ = objective.micro_loss(x, state["step"], rows, b)
        loss.backward()

    def step():  # the training loop's own step routine
        fwd_bwd()
        optimizer_step(opt, params, cfg.train.grad_clip)
        ema.update(model)
        objective.after_step(x, state["step"])
        state["step"] += 1

    return model, fwd_bwd, step


def bench_preset(name: str, peaks: dict[str, float], methods: list[str], decode_steps: int,
                 sets: list[str] | None = None, extras: bool = True) -> dict:
    """Each method's full training step in every precision of ``peaks``; for SWYCC also (with
    ``extras``) the perceptual net's share, decoding, ``swycc eval`` and the U-Net peer."""
    base = apply_overrides(get_preset(name), {}, sets)
    b, s = base.train.batch_size, base.model.image_size
    res: dict = {"preset": name, "image_size": s, "batch": b, "overrides": sets or []}
    for method in methods:
        cfg = with_method(base, method)
        if method == "gan":  # time the full GAN step, discriminator included
            cfg = override(cfg, "loss.adversarial_start", 0)
        flops = flops_of(training_step(cfg)[2])  # convolutions and matmuls of the whole step
        res[f"{method}_train_gflop_per_step"] = flops / 1e9
        secs = {}
        for prec in peaks:
            model, _, step = training_step(override(cfg, "train.bf16", prec == "bf16"))
            secs[prec] = sec = timed(step)
            res[f"{method}_train_img_s_{prec}"] = b / sec
            res[f"{method}_train_gflops_{prec}"] = flops / sec / 1e9
            for peak_name, peak in peaks.items():
                res[f"{method}_train_{prec}_pct_{peak_name}_peak"] = 100 * flops / sec / 1e9 / peak
        if "bf16" in secs:
            res[f"{method}_bf16_speedup"] = secs["fp32"] / secs["bf16"]
        if method == "swycc" and extras:
            no_p = override(cfg, "loss.perceptual_weight", 0.0)
            if cfg.loss.perceptual_weight > 0:
                res["perceptual_share_of_step_fp32"] = 1 - timed(training_step(no_p)[2]) / secs[
                    "fp32"]
            model = training_step(cfg)[0]
            res.update(bench_decode(model, s, decode_steps))
            res.update(bench_eval(model, decode_steps=10))
            for prec in peaks:
                res.update(bench_unet_vs_diffusers(model, b, s, prec))
    return res


@torch.no_grad()
def bench_decode(model: SWYCC, s: int, steps: int, n: int = 4) -> dict:
    model.eval()
    z = model.encode(torch.rand(n, 3, s, s) * 2 - 1)
    g = torch.Generator().manual_seed(0)
    one = timed(lambda: model.decode(z, steps=1, guidance=0.5, generator=g), 1, 3)
    return {"decode_ms_per_image_per_step": 1000 * one / n,
            f"decode_ms_per_image_{steps}_steps": 1000 * one * steps / n}


def bench_eval(model: SWYCC, decode_steps: int) -> dict:
    """`swycc eval` throughput: reconstruction (DDIM) + PSNR, SSIM and the three proxies."""
    from swycc.metrics.evaluate import eval_images_per_second

    model.eval()
    return {f"eval_img_s_{decode_steps}_steps": eval_images_per_second(
        model, num_images=32, batch_size=16, steps=decode_steps)}


def bench_unet_vs_diffusers(model: SWYCC, b: int, s: int, prec: str = "fp32") -> dict:
    """Our U-Net vs diffusers' UNet2DModel with the same levels, widths and attention, forward
    and backward, at ``prec`` (bf16: both under the same autocast)."""
    unet = model.d_refine
    cfg = unet.cfg
    x, t = torch.randn(b, 6, s, s), torch.rand(b)
    cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16")

    def ours():
        with cast:
            y = unet(x, t)
        y.float().square().mean().backward()

    out = {"unet_params_M": sum(p.numel() for p in unet.parameters()) / 1e6}
    sec, flops = timed(ours), flops_of(ours)
    out[f"unet_fwd_bwd_gflops_{prec}"] = flops / sec / 1e9
    try:
        peer, p = diffusers_peer(cfg, s)
    except ImportError:
        out["diffusers"] = "not installed"
        return out
    xp = F.pixel_unshuffle(x, p)  # the peer sees our input patching as plain channels

    def theirs():
        with cast:
            y = peer(xp, t * 1000).sample
        y.float().square().mean().backward()

    psec, pflops = timed(theirs), flops_of(theirs)
    out["diffusers_params_M"] = sum(p.numel() for p in peer.parameters()) / 1e6
    out[f"diffusers_fwd_bwd_gflops_{prec}"] = pflops / psec / 1e9
    out[f"unet_speed_vs_diffusers_per_flop_{prec}"] = (flops / sec) / (pflops / psec)
    return out


def diffusers_peer(cfg, s: int):
    """diffusers' UNet2DModel with our levels, widths, attention and input patching (the
    space-to-depth of ``input_patch`` done outside it, so both run at the same resolutions)."""
    from diffusers import UNet2DModel

    p = cfg.input_patch
    chans = tuple(cfg.base_channels * m for m in cfg.channel_mults)
    res = [s // p // 2**i for i in range(len(chans))]
    attn = [r in cfg.attn_resolutions for r in res]
    peer = UNet2DModel(
        sample_size=s // p, in_channels=6 * p * p, out_channels=3 * p * p,
        block_out_channels=chans,
        layers_per_block=max(1, round(sum(cfg.num_res_blocks) / len(chans))),
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in attn[::-1]),
        norm_num_groups=cfg.num_groups, attention_head_dim=cfg.head_channels)
    return peer, p


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "small", "medium"])
    p.add_argument("--methods", nargs="+", default=["swycc", "gan"], choices=list(KINDS))
    p.add_argument("--decode-steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override every preset's option, as swycc train --set")
    p.add_argument("--no-extras", action="store_true",
                   help="training steps only (no decode, eval, U-Net peer)")
    p.add_argument("--clock", choices=["wall", "thread"], default="wall",
                   help="thread: CPU time of this thread (needs one thread): on shared cores "
                        "the wall clock mostly measures the neighbours")
    p.add_argument("--stat", choices=["median", "min"], default="median",
                   help="of the timed calls (min: the least disturbed one)")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    if args.threads:
        set_threads(args.threads)
    if args.clock == "thread" and torch.get_num_threads() != 1:
        p.error("--clock thread needs one thread (--threads 1, OMP_NUM_THREADS=1)")
    CLOCK.update(fn=time.thread_time if args.clock == "thread" else time.perf_counter,
                 stat=args.stat)
    torch.set_flush_denormal(True)  # as the training loop does
    precisions = ["fp32", "bf16"] if cpu_has_bf16_matmul() else ["fp32"]
    peaks = {prec: matmul_peak(dtype=PRECISIONS[prec]) for prec in precisions}
    machine = (f"{torch.cpu.get_capabilities().get('cpu_name', platform.processor())} "
               f"({platform.machine()}), {torch.get_num_threads()} threads, bf16 matrix units: "
               f"{'yes' if 'bf16' in peaks else 'no'}")
    print(f"machine: {machine}; torch {torch.__version__}; matmul peaks (2048^2): "
          + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()))
    results = {"machine": machine, "torch": torch.__version__,
               "matmul_peak_gflops": peaks,
               "timing": f"{args.stat} of 5 calls after 2 warm-up calls, {args.clock} clock",
               "load_average_1min_start": os.getloadavg()[0], "cpus": os.cpu_count(),
               "presets": []}
    for name in args.presets:
        r = bench_preset(name, peaks, args.methods, args.decode_steps, args.set,
                         extras=not args.no_extras)
        results["presets"].append(r)
        print(json.dumps(r, indent=1), flush=True)
    print_table(results)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


def print_table(results: dict) -> None:
    peaks = results["matmul_peak_gflops"]
    nan = float("nan")
    print("\nmatmul peaks: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()))
    print("| preset | px | batch | method | precision | img/s | GFLOP/s | % of fp32 peak "
          "| % of bf16 peak | U-Net vs diffusers (per FLOP) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results["presets"]:
        for method in ("swycc", "gan", "dgae"):
            for prec in peaks:
                if f"{method}_train_img_s_{prec}" not in r:
                    continue
                pct = {k: r.get(f"{method}_train_{prec}_pct_{k}_peak", nan) for k in peaks}
                print(f"| {r['preset']} | {r['image_size']} | {r['batch']} | {method} | {prec} "
                      f"| {r[f'{method}_train_img_s_{prec}']:.1f} "
                      f"| {r[f'{method}_train_gflops_{prec}']:.1f} "
                      f"| {pct['fp32']:.0f}% | {pct.get('bf16', nan):.0f}% "
                      f"| {r.get(f'unet_speed_vs_diffusers_per_flop_{prec}', nan):.2f}x |")


if __name__ == "__main__":
    main()
