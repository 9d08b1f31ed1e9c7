"""Tiled decoding benchmark with the shipped small model: peak memory and the seam. Not a test:

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_tiling.py --out bench/results_tiling_cpu.json

Memory: one 1-step decode (guidance 0.5) of a random latent per size and mode, each in a fresh
process that reports its resident memory before decoding (/proc/self/statm) and its peak RSS
(getrusage ru_maxrss) after; decode_mib is the difference. Modes:
``untiled`` (SWYCC.decode; only up to --untiled-max px), ``tiled`` (SWYCC.decode(tile=True))
and ``tiled-first-N``: the same tiled decode in which the networks run on the first N tiles of
each pass and later tiles reuse that output. Every tile has the same shape, so the activation
memory of a tile is the same; all full-size tensors are allocated and blended as in a real run.
Children run with a fixed glibc mmap threshold, so freed tensors go back to the OS and RSS tracks
live memory rather than heap fragmentation (which would grow with the number of tiles run).
It makes 2048 and 4096 px affordable on a CPU (a full 4096 px decode is ~20 TFLOP); at the sizes
run both ways, the two peaks are printed side by side to check that the shortcut is faithful.

Seam: a gradient and a texture image (swycc.autoencoders.tiling.gradient_image / texture_image) encoded,
then decoded tiled and untiled; gradient energy within 2 px of the tile borders over the energy
elsewhere (1 = no seam; the untiled decode on the same borders is the reference).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from swycc.autoencoders import SWYCC
from swycc.autoencoders.pretrained import default_checkpoint
from swycc.autoencoders.tiling import (DEFAULT_OVERLAP, DEFAULT_TILE, count_tiles, gradient_image,
                          seam_energy_ratio, texture_image, tile_edges)

STEPS, GUIDANCE = 1, 0.5


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class FirstTiles:
    """fn on the first ``n`` calls; afterwards the output of the last computed call (computed
    again when the tile's shape changes)."""

    def __init__(self, fn, n: int):
        self.fn, self.n, self.shape, self.last = fn, n, None, None

    def __call__(self, *args):
        if self.n > 0 or self.shape != args[0].shape:
            self.n -= 1
            self.shape, self.last = args[0].shape, self.fn(*args)
        return self.last


def decode(model: SWYCC, z: torch.Tensor, mode: str, tile: int, overlap: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if mode == "untiled":
        return model.decode(z, steps=STEPS, guidance=GUIDANCE, generator=g, tile=False)
    if mode.startswith("tiled-first-"):
        n = int(mode.rsplit("-", 1)[1])
        for net in (model.d_initial, model.d_refine):  # an instance attribute wins over forward
            net.forward = FirstTiles(net.forward, n)
    return model.decode(z, steps=STEPS, guidance=GUIDANCE, generator=g, tile=True,
                        tile_size=tile, tile_overlap=overlap)


def child(size: int, mode: str, tile: int, overlap: int) -> dict:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model = SWYCC.from_pretrained(default_checkpoint())
    z = torch.randn(1, model.config.model.latent_channels, size // 8, size // 8,
                    generator=torch.Generator().manual_seed(0))
    before = rss_mib()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = decode(model, z, mode, tile, overlap)
    seconds = time.perf_counter() - t0
    assert out.shape == (1, 3, size, size) and torch.isfinite(out).all()
    return {"size": size, "mode": mode, "rss_before_mib": round(before, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "decode_mib": round(peak_rss_mib() - before, 1), "seconds": round(seconds, 2)}


def run_child(size: int, mode: str, tile: int, overlap: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(size), mode, "--tile", str(tile),
           "--overlap", str(overlap)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(2**20))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        return {"size": size, "mode": mode, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def flops_per_pixel(model: SWYCC) -> dict[str, float]:
    """FLOPs per output pixel of D_Initial and of one D_Refine call (batch 1), at 64 px."""
    z, x = torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 64, 64)
    out = {}
    for name, fn in (("d_initial", lambda: model.d_initial(z)),
                     ("d_refine", lambda: model.denoiser(x, torch.full((1,), 0.5), x))):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn()
        out[name] = counter.get_total_flops() / 64**2
    return out


def seam(model: SWYCC, size: int, tile: int, overlap: int) -> list[dict]:
    rows = []
    for name, img in (("gradient", gradient_image(size)), ("texture", texture_image(size))):
        with torch.no_grad():
            z = model.encode(img)
        row = {"image": name, "size": size, "tile": tile, "overlap": overlap}
        for mode in ("tiled", "untiled"):
            t0 = time.perf_counter()
            out = decode(model, z, mode, tile, overlap)
            edges = tile_edges(size, tile, overlap, model.stride)
            row[mode] = {"seam_ratio": round(seam_energy_ratio(out, edges, edges), 4),
                          "mse_vs_input": round(float((out - img).pow(2).mean()), 5),
                          "seconds": round(time.perf_counter() - t0, 1)}
        row["tiled_over_untiled"] = round(row["tiled"]["seam_ratio"]
                                          / row["untiled"]["seam_ratio"], 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    ap.add_argument("--tile", type=int, default=DEFAULT_TILE)
    ap.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    ap.add_argument("--untiled-max", type=int, default=512,
                    help="largest untiled size run (1024 px peaked at 19 GB here: the CPU "
                         "attention kernel holds the full 16k x 16k score matrix)")
    ap.add_argument("--full-max", type=int, default=512,
                    help="largest size whose tiled decode runs every tile")
    ap.add_argument("--first-tiles", type=int, default=4)
    ap.add_argument("--seam-size", type=int, default=384)
    ap.add_argument("--seam-tile", type=int, default=128)
    ap.add_argument("--seam-overlap", type=int, default=32)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.tile, args.overlap)))
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_train import matmul_peak  # only here: a child process stays light

    t_start = time.perf_counter()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model = SWYCC.from_pretrained(default_checkpoint())
    fpp = flops_per_pixel(model)
    peak = matmul_peak()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, fp32 matmul peak {peak:.1f} GFLOP/s", flush=True)
    memory = []
    shortcut = f"tiled-first-{args.first_tiles}"
    for size in args.sizes:
        modes = (["untiled"] if size <= args.untiled_max else []) + \
            (["tiled", shortcut] if size <= args.full_max else [shortcut])
        for mode in modes:
            row = run_child(size, mode, args.tile, args.overlap)
            if "seconds" in row and mode != shortcut:  # achieved GFLOP/s of the networks
                px = size * size if mode == "untiled" else \
                    count_tiles(size, size, args.tile, args.overlap, model.stride) * args.tile**2
                batch = 2 if GUIDANCE else 1
                flops = fpp["d_initial"] * px + STEPS * batch * fpp["d_refine"] * px
                row["gflops_per_s"] = round(flops / row["seconds"] / 1e9, 1)
            memory.append(row)
            print(json.dumps(row), flush=True)
    seams = seam(model, args.seam_size, args.seam_tile, args.seam_overlap)
    result = {
        "machine": "2-core CPU dev machine", "processor": platform.processor(),
        "threads": torch.get_num_threads(), "matmul_peak_gflops": round(peak, 1),
        "torch": torch.__version__, "checkpoint": default_checkpoint().name,
        "decode": {"steps": STEPS, "guidance": GUIDANCE, "tile": args.tile,
                   "overlap": args.overlap, "first_tiles": args.first_tiles},
        "flops_per_pixel": {k: round(v) for k, v in fpp.items()},
        "argv": sys.argv[1:], "memory": memory, "seam": seams,
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, args.out)
    print(f"total {result['total_seconds']} s", flush=True)


if __name__ == "__main__":
    main()
