"""GPU benchmark: the training step and the decoder at the paper's 256x256, fp32 / bf16 autocast /
torch.compile, next to the GPU's measured matmul peaks and a diffusers UNet2DModel of the same
shape timed in the same process. Not a test; needs CUDA. Run it by hand, e.g.

    python bench/bench_gpu.py --preset paper --batch 16 --out bench/results_gpu_h100.json

Each section is guarded: one that fails (say, a compile error) is recorded, the rest still run.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from bench_train import diffusers_peer, flops_of, training_step

from swycc.autoencoders import SWYCC
from swycc.config import get_preset, override
from swycc.autoencoders.kinds import with_method


DEVICE = "cuda"  # --device cpu only to check this script where no GPU is lent


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def cuda_timed(fn, warmup: int = 3, iters: int = 10) -> float:
    """Mean seconds per call, the GPU drained before and after."""
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters


def matmul_peak(dtype: torch.dtype, n: int = 8192) -> float:
    """TFLOP/s of an n^3 matmul (random data) in ``dtype``."""
    n = n if DEVICE == "cuda" else 512
    a, b = (torch.randn(n, n, device=DEVICE, dtype=dtype) for _ in range(2))
    return 2 * n**3 / cuda_timed(lambda: a @ b, 3, 10) / 1e12


def bench_train_step(cfg, batch: int, peak_tflops: float, compile_: bool = False) -> dict:
    model, _, step = training_step(cfg, DEVICE, batch)
    flops = flops_of(step)  # eager count; compiling changes no FLOPs
    if compile_:
        model.compile_networks()
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - t0
    sec = cuda_timed(step, warmup=2, iters=10)
    out = {"img_s": batch / sec, "ms_per_step": 1000 * sec, "tflops": flops / sec / 1e12,
           "pct_of_bf16_peak": 100 * flops / sec / 1e12 / peak_tflops,
           "first_step_s": first,
           "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else None}
    return out


@torch.no_grad()
def bench_decode(cfg, n: int, bf16: bool) -> dict:
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = SWYCC(cfg).eval()
    s = cfg.model.image_size
    ctx = torch.autocast(DEVICE, torch.bfloat16) if bf16 else nullcontext()
    with ctx:
        z = model.encode(torch.rand(n, 3, s, s, device=DEVICE) * 2 - 1)
        sec = cuda_timed(lambda: model.decode(z, steps=1, guidance=0.5), 2, 5)
    return {"decode_ms_per_image_per_step": 1000 * sec / n}


def bench_unet_vs_diffusers(cfg, batch: int) -> dict:
    """Our D_Refine vs diffusers' UNet2DModel with the same levels and widths, bf16 fwd+bwd."""
    from swycc.nn.unet import UNet

    u, s = cfg.model.unet, cfg.model.image_size
    with torch.device(DEVICE):
        ours = UNet(u, s)
    x = torch.randn(batch, 6, s, s, device=DEVICE)
    t = torch.rand(batch, device=DEVICE)

    def run_ours():
        with torch.autocast(DEVICE, torch.bfloat16):
            ours(x, t).float().square().mean().backward()

    sec, flops = cuda_timed(run_ours, 2, 5), flops_of(run_ours)
    out = {"unet_params_M": sum(p.numel() for p in ours.parameters()) / 1e6,
           "unet_tflops": flops / sec / 1e12, "unet_ms": 1000 * sec}
    ours = None  # free it before the peer is built
    with torch.device(DEVICE):
        peer, p = diffusers_peer(u, s)
    xp = F.pixel_unshuffle(x, p)

    def run_peer():
        with torch.autocast(DEVICE, torch.bfloat16):
            peer(xp, t * 1000).sample.float().square().mean().backward()

    psec, pflops = cuda_timed(run_peer, 2, 5), flops_of(run_peer)
    out.update({"diffusers_params_M": sum(p.numel() for p in peer.parameters()) / 1e6,
                "diffusers_tflops": pflops / psec / 1e12, "diffusers_ms": 1000 * psec,
                "unet_speed_vs_diffusers_per_flop": (flops / sec) / (pflops / psec)})
    return out


def guarded(results: dict, key: str, fn, out_path: str | None) -> None:
    t0 = time.perf_counter()
    try:
        results[key] = fn()
    except Exception as e:  # record and go on: one failing section must not hide the others
        results[key] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-800:]}
    results[key]["wall_s"] = time.perf_counter() - t0
    print(key, json.dumps(results[key]), flush=True)
    if out_path:
        with open(out_path, "w") as f:
            json.dump(results, f, indent=2)
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--batch", type=int, default=16)  # bf16 eager peaks at 70.8 GiB on an H100
    p.add_argument("--small-batches", type=int, nargs="*", default=[64, 128, 256],
                   help="also time the `small` preset (64 px) at these batches, bf16")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--device", default="cuda", help="cpu: check the script, no figures")
    p.add_argument("--out")
    args = p.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs CUDA")
    name = torch.cuda.get_device_properties(0).name if DEVICE == "cuda" else "cpu"
    res: dict = {"device": name, "torch": torch.__version__,
                 "bf16_matmul_peak_tflops": matmul_peak(torch.bfloat16),
                 "fp32_matmul_peak_tflops": matmul_peak(torch.float32)}
    print(json.dumps(res), flush=True)
    peak = res["bf16_matmul_peak_tflops"]
    base = get_preset(args.preset)
    bf16 = override(base, "train.bf16", True)
    b = args.batch
    for n in args.small_batches:
        guarded(res, f"small_swycc_bf16_b{n}", lambda n=n: bench_train_step(
            override(get_preset("small"), "train.bf16", True), n, peak), args.out)
    guarded(res, f"{args.preset}_swycc_fp32_b{b}", lambda: bench_train_step(base, b, peak),
            args.out)
    guarded(res, f"{args.preset}_swycc_bf16_b{b}", lambda: bench_train_step(bf16, b, peak),
            args.out)
    gan = override(with_method(bf16, "gan"), "loss.adversarial_start", 0)
    guarded(res, f"{args.preset}_gan_bf16_b{b}", lambda: bench_train_step(gan, b, peak),
            args.out)
    guarded(res, f"{args.preset}_decode_bf16", lambda: bench_decode(base, 8, True), args.out)
    guarded(res, f"{args.preset}_unet_vs_diffusers_bf16_b{b}",
            lambda: bench_unet_vs_diffusers(base, b), args.out)
    if not args.no_compile:
        guarded(res, f"{args.preset}_swycc_bf16_compiled_b{b}",
                lambda: bench_train_step(bf16, b, peak, compile_=True), args.out)


if __name__ == "__main__":
    main()
