"""DiT training step on a GPU: DiT-L/2 and XL/2 on 32 x 32 x 4 latents (ImageNet 256 through an
f8 autoencoder), bf16 autocast, eager and torch.compile; images/s and TFLOP/s next to the GPU's
measured bf16 matmul peak, and diffusers' DiTTransformer2DModel of the same width, depth, heads
and patch timed in the same process. Not a test; needs CUDA. Run it by hand, e.g.

    python bench/bench_dit_gpu.py --out bench/results_dit_gpu_h100.json

Goal (issue 10): at least 45% of the bf16 peak with compile, and at least 1.1x diffusers per
FLOP. Each section is guarded (bench_gpu.guarded): one that fails is recorded, the rest run.
``--device cpu --presets dit-tiny --batch 2`` checks the script where no GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's swycc
import bench_gpu  # noqa: E402
from bench_train import flops_of  # noqa: E402

from swycc.generation.config import get_dit_preset  # noqa: E402
from swycc.generation.objective import class_drop_mask, dit_loss  # noqa: E402
from swycc.generation.dit import DiT  # noqa: E402


def make_step(kind: str, cfg, batch: int, compile_: bool):
    """(model, step): one bf16-autocast training step (forward, backward, Adam) of ours or of
    diffusers' DiT on random latents already on the device."""
    dev = bench_gpu.DEVICE
    torch.manual_seed(0)
    g = torch.Generator(device="cpu").manual_seed(0)
    s, c = cfg.latent_size, cfg.latent_channels
    z = torch.randn(batch, c, s, s, generator=g).to(dev)
    y = torch.randint(0, cfg.num_classes, (batch,), generator=g).to(dev)
    t = torch.rand(batch, generator=g).to(dev)
    eps = torch.randn(batch, c, s, s, generator=g).to(dev)
    if kind == "ours":
        model = DiT(cfg).to(dev)
    else:
        from diffusers import DiTTransformer2DModel

        model = DiTTransformer2DModel(
            num_attention_heads=cfg.heads, attention_head_dim=cfg.head_dim, in_channels=c,
            out_channels=c, num_layers=cfg.depth, sample_size=s, patch_size=cfg.patch,
            num_embeds_ada_norm=cfg.num_classes).to(dev)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    drop = class_drop_mask(batch, cfg.class_dropout, g).to(dev)
    steps = (t * 999).long()

    def step():
        opt.zero_grad(set_to_none=True)
        if kind == "ours":
            loss, _ = dit_loss(net, z, y, t, eps, drop, cfg.num_classes, bf16=True)
        else:
            with torch.autocast(dev, dtype=torch.bfloat16):
                out = net(z, timestep=steps, class_labels=y).sample
            loss = (out.float() - eps).pow(2).mean()
        loss.backward()
        opt.step()

    return model, step


def bench_one(kind: str, cfg, batch: int, compile_: bool, peak: float) -> dict:
    import time

    model, step = make_step(kind, cfg, batch, compile_=False)
    flops = flops_of(step)  # eager count (attention kernels included on CUDA); compile adds none
    if compile_:
        model, step = make_step(kind, cfg, batch, compile_=True)
    if bench_gpu.DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    step()
    bench_gpu.sync()
    first = time.perf_counter() - t0
    sec = bench_gpu.cuda_timed(step, warmup=3, iters=10)
    return {"params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "img_s": batch / sec, "ms_per_step": 1000 * sec, "tflop_per_step": flops / 1e12,
            "tflops": flops / sec / 1e12, "pct_of_bf16_peak": 100 * flops / sec / 1e12 / peak,
            "first_step_s": first,
            "peak_mem_gib": (torch.cuda.max_memory_allocated() / 2**30
                             if bench_gpu.DEVICE == "cuda" else None)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["dit-L/2", "dit-XL/2"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--latent", type=int, default=32)
    p.add_argument("--peers", nargs="+", default=["ours", "diffusers"])
    p.add_argument("--no-compile", action="store_true", help="eager only")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", help="write the results as JSON here (after every section)")
    args = p.parse_args()
    bench_gpu.DEVICE = args.device
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    res = {"device": (torch.cuda.get_device_name() if args.device == "cuda" else "cpu"),
           "torch": torch.__version__, "batch": args.batch,
           "latent": [4, args.latent, args.latent],
           "bf16_matmul_peak_tflops": bench_gpu.matmul_peak(torch.bfloat16)}
    peak = res["bf16_matmul_peak_tflops"]
    print(json.dumps(res, indent=1))
    modes = [False] if args.no_compile else [False, True]
    for name in args.presets:
        cfg = replace(get_dit_preset(name).dit, latent_size=args.latent, latent_channels=4)
        for kind in args.peers:
            for comp in modes:
                key = f"{name}_{kind}_bf16{'_compile' if comp else ''}"
                bench_gpu.guarded(res, key, lambda: bench_one(kind, cfg, args.batch, comp, peak),
                                  args.out)
        ours = res.get(f"{name}_ours_bf16{'_compile' if modes[-1] else ''}")
        peer = res.get(f"{name}_diffusers_bf16{'_compile' if modes[-1] else ''}")
        if isinstance(ours, dict) and isinstance(peer, dict) and "tflops" in ours \
                and "tflops" in peer:
            res[f"{name}_vs_diffusers_per_flop"] = ours["tflops"] / peer["tflops"]
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
