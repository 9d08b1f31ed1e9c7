"""Held-out evaluation during training (``swycc train --eval-data DIR``): every
``train.eval_every`` steps the EMA model reconstructs whole photos it never trained on, the
numbers go to metrics.jsonl, and the best model so far (by PSNR) is exported to ``<out>/best``.

Each photo's largest centre square is resized to ``train.eval_size`` pixels and quantised to 8
bits (``swycc.metrics.photo``, as ``ship-check`` does). The deterministic decoder is scored
(SWYCC's D_Initial, the GAN's decoder): it needs one pass, where samples would need a sampler
run per photo. Logged, in 8-bit levels for colour:

- ``eval_psnr``: mean PSNR (dB); ``eval_psnr_bicubic``: the bicubic-from-1/8 baseline's;
- ``eval_colour_error_r/g/b``: the signed mean error of each channel, mean over photos (a
  systematic colour bias shows here);
- ``eval_colour_shift_max`` / ``eval_colour_shift_mean``: per photo the largest |error| of its
  three channels; the worst photo's and the mean over photos;
- ``eval_perceptual_effnetlite0``: the offline perceptual proxy (``swycc.metrics.proxies``),
  mean over photos, when its packaged weights are installed (the distribution proxies, FD and
  MMD, are left out: a few dozen photos are too few for 1280-d feature statistics).

The best export's step and numbers are kept in ``<out>/best.json``; a resumed run reads them, so
``best`` stays the best of the whole run.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from swycc.io.outputs import write_text_atomic
from swycc.metrics import maths
from swycc.metrics.photo import bicubic_from_eighth, channel_mean_error, load_square_photos

BATCH = 8
BEST_KEY = "eval_psnr"  # higher is better


class HeldOutEval:
    """The photos of ``folder`` at ``size`` px, loaded (and checked) once, before the run writes
    anything; ``factor``: the latent's downsampling (the bicubic baseline's)."""

    def __init__(self, folder: str, size: int, out: Path, factor: int = 8,
                 proxies: bool = True):
        if size % factor:
            raise ValueError(f"train.eval_size={size} must be a multiple of the latent's "
                             f"downsampling ({factor})")
        self.names, self.x = load_square_photos(folder, size)  # ImageError when empty
        self.best_file = Path(out) / "best.json"
        self.best_dir = Path(out) / "best"
        bicubic = maths.quantized(bicubic_from_eighth(self.x, factor))
        self.psnr_bicubic = float(maths.psnr(bicubic, self.x).mean())
        self.perceptual = _perceptual_net() if proxies else None

    def best(self) -> dict | None:
        """The best evaluation so far of this run directory (step and numbers), or None."""
        if not self.best_file.exists():
            return None
        return json.loads(self.best_file.read_text())

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict:
        """The ``eval_*`` numbers of ``model`` (its deterministic decoder, in fp32)."""
        device = next(model.parameters()).device
        y = torch.cat([model.reconstruct_initial(self.x[i:i + BATCH].to(device)).float().cpu()
                       for i in range(0, len(self.x), BATCH)])
        y = maths.quantized(y)
        err = channel_mean_error(y, self.x)  # (N, 3) signed, 8-bit levels
        shift = err.abs().amax(1)
        rec = {"eval_psnr": float(maths.psnr(y, self.x).mean()),
               "eval_psnr_bicubic": self.psnr_bicubic,
               **{f"eval_colour_error_{c}": float(err[:, k].mean()) for k, c in enumerate("rgb")},
               "eval_colour_shift_max": float(shift.max()),
               "eval_colour_shift_mean": float(shift.mean()),
               "eval_images": len(self.names)}
        if self.perceptual is not None:
            from swycc.metrics.proxies import perceptual_pairs

            net = self.perceptual.to(device)
            rec["eval_perceptual_effnetlite0"] = float(torch.cat([
                perceptual_pairs(net, y[i:i + BATCH].to(device), self.x[i:i + BATCH].to(device))
                for i in range(0, len(y), BATCH)]).double().mean())
        return rec

    def is_better(self, rec: dict) -> bool:
        prev = self.best()
        return prev is None or rec[BEST_KEY] > prev[BEST_KEY]

    def record_best(self, step: int, rec: dict) -> None:
        """After ``<out>/best`` was exported: note its step and numbers."""
        write_text_atomic(self.best_file, json.dumps({"step": step, **rec}, indent=2) + "\n")


def _perceptual_net() -> nn.Module | None:
    """EfficientNet-Lite0's perceptual feature net, or None when its weights are not installed."""
    try:
        from swycc.metrics.proxies import load_effnetlite0_proxies

        return load_effnetlite0_proxies("cpu")[1]
    except (OSError, ValueError, ImportError):
        return None
