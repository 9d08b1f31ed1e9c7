"""Throughput benchmark: training images/s, achieved GFLOP/s against this machine's measured fp32
matmul peak, decode ms/image, and a diffusers UNet2DModel of the same shape timed in the same
process. Not a test: run it by hand, e.g.

    .venv/bin/pip install diffusers   # optional peer
    .venv/bin/python bench/bench_train.py --presets tiny small medium --out bench/results_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from swycc.autoencoders.base import Autoencoder
from swycc.autoencoders import SWYCC
from swycc.config import Config, get_preset, override
from swycc.autoencoders.kinds import with_method
from swycc.autoencoders.kinds import KINDS, get_kind
from swycc.train.ema import EMA
from swycc.train.optim import make_optimizer, optimizer_step


def timed(fn, warmup: int = 2, iters: int = 5) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def flops_of(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_peak(n: int = 2048) -> float:
    """Best fp32 GFLOP/s of an n x n matmul on this machine."""
    a, b = torch.randn(n, n), torch.randn(n, n)
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


def bench_preset(name: str, peak: float, methods: list[str], decode_steps: int) -> dict:
    base = get_preset(name)
    b, s = base.train.batch_size, base.model.image_size
    res: dict = {"preset": name, "image_size": s, "batch": b}
    for method in methods:
        cfg = with_method(base, method)
        if method == "gan":  # time the full GAN step, discriminator included
            cfg = override(cfg, "loss.adversarial_start", 0)
        model, _, step = training_step(cfg)
        sec = timed(step)
        flops = flops_of(step)  # convolutions and matmuls of the whole step (GAN: + D step)
        res[f"{method}_train_img_s"] = b / sec
        res[f"{method}_train_gflops"] = flops / sec / 1e9
        res[f"{method}_train_pct_peak"] = 100 * flops / sec / 1e9 / peak
        if method == "swycc":
            no_p = override(cfg, "loss.perceptual_weight", 0.0)
            _, _, step_np = training_step(no_p)
            res["perceptual_share_of_step"] = 1 - timed(step_np) / sec
            res.update(bench_decode(model, s, decode_steps))
            res.update(bench_eval(model, decode_steps=10))
            res.update(bench_unet_vs_diffusers(model, b, s))
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


def bench_unet_vs_diffusers(model: SWYCC, b: int, s: int) -> dict:
    """Our U-Net vs diffusers' UNet2DModel with the same levels, widths and attention."""
    unet = model.d_refine
    cfg = unet.cfg
    x, t = torch.randn(b, 6, s, s), torch.rand(b)

    def ours():
        unet(x, t).square().mean().backward()

    out = {"unet_params_M": sum(p.numel() for p in unet.parameters()) / 1e6}
    sec, flops = timed(ours), flops_of(ours)
    out["unet_fwd_bwd_gflops"] = flops / sec / 1e9
    try:
        peer, p = diffusers_peer(cfg, s)
    except ImportError:
        out["diffusers"] = "not installed"
        return out
    xp = F.pixel_unshuffle(x, p)  # the peer sees our input patching as plain channels

    def theirs():
        peer(xp, t * 1000).sample.square().mean().backward()

    psec, pflops = timed(theirs), flops_of(theirs)
    out["diffusers_params_M"] = sum(p.numel() for p in peer.parameters()) / 1e6
    out["diffusers_fwd_bwd_gflops"] = pflops / psec / 1e9
    out["unet_speed_vs_diffusers_per_flop"] = (flops / sec) / (pflops / psec)
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
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the training loop does
    peak = matmul_peak()
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"machine: {machine}; torch {torch.__version__}; fp32 matmul peak {peak:.1f} GFLOP/s")
    results = {"machine": machine, "torch": torch.__version__, "matmul_peak_gflops": peak,
               "presets": []}
    for name in args.presets:
        r = bench_preset(name, peak, args.methods, args.decode_steps)
        results["presets"].append(r)
        print(json.dumps(r, indent=1))
    print_table(results)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


def print_table(results: dict) -> None:
    print("\n| preset | px | batch | SWYCC img/s | GFLOP/s (% peak) | GAN img/s | perceptual share "
          "| decode ms/img/step | U-Net vs diffusers (per FLOP) | eval img/s (10 steps) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results["presets"]:
        print(f"| {r['preset']} | {r['image_size']} | {r['batch']} "
              f"| {r.get('swycc_train_img_s', float('nan')):.1f} "
              f"| {r.get('swycc_train_gflops', float('nan')):.1f} "
              f"({r.get('swycc_train_pct_peak', float('nan')):.0f}%) "
              f"| {r.get('gan_train_img_s', float('nan')):.1f} "
              f"| {100 * r.get('perceptual_share_of_step', float('nan')):.0f}% "
              f"| {r.get('decode_ms_per_image_per_step', float('nan')):.1f} "
              f"| {r.get('unet_speed_vs_diffusers_per_flop', float('nan')):.2f}x "
              f"| {r.get('eval_img_s_10_steps', float('nan')):.1f} |")


if __name__ == "__main__":
    main()
