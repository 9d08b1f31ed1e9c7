"""Activation memory of a training forward with and without activation checkpointing, counted
without computing: the networks run on fake tensors (torch FakeTensorMode, CPU autocast bf16)
and every tensor saved for backward is recorded once (parameters left out). Not a test:

    .venv/bin/python bench/bench_checkpointing.py --preset paper --batches 16 32

The forward is E -> D_Initial -> D_Refine with the v-loss and the MSE on D_Initial (the
perceptual network is left out). What it adds up is the activations kept between forward and
backward; a real GPU peak adds the weights, gradients, Adam and EMA state (reported here from
the parameter count), autocast's bf16 weight copies, one block's recomputed activations,
temporaries and allocator slack. To calibrate, set it beside a measured peak (bench_gpu.py).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from swycc.autoencoders import SWYCC
from swycc.config import get_preset, override
from swycc.diffusion.schedule import add_noise, v_target

FLAGS = ("model.encoder.grad_checkpointing", "model.decoder.grad_checkpointing",
         "model.unet.grad_checkpointing")


def saved_activation_bytes(preset: str, batch: int, checkpointing: bool) -> tuple[int, int]:
    """(bytes saved for backward, parameter count) of one bf16-autocast training forward."""
    cfg = get_preset(preset)
    for flag in FLAGS:
        cfg = override(cfg, flag, checkpointing)
    s = cfg.model.image_size
    with FakeTensorMode():
        model = SWYCC(cfg).train()
        params = {p.untyped_storage()._cdata for p in model.parameters()}
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            key = t.untyped_storage()._cdata
            if key not in params:
                saved[key] = t.untyped_storage().nbytes()
            return t

        x, t = torch.randn(batch, 3, s, s), torch.rand(batch)
        eps = torch.randn_like(x)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                cond = model.d_initial(model.encoder(x))
                v_hat = model.denoiser(add_noise(x, t, eps), t, cond)
            loss = (v_hat.float() - v_target(x, t, eps)).pow(2).mean() \
                + (cond.float() - x).pow(2).mean()
        assert loss.requires_grad
        return sum(saved.values()), sum(p.numel() for p in model.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    for batch in args.batches:
        for ckpt in (False, True):
            t0 = time.perf_counter()
            nbytes, nparams = saved_activation_bytes(args.preset, batch, ckpt)
            rows.append({"preset": args.preset, "batch": batch, "grad_checkpointing": ckpt,
                         "saved_activations_gib": round(nbytes / 2**30, 2),
                         "params_M": round(nparams / 1e6, 1),
                         # fp32 weights, gradients, Adam m and v, EMA: 5 x 4 bytes a parameter
                         "weights_grads_adam_ema_gib": round(20 * nparams / 2**30, 2),
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
