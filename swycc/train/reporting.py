"""What a run leaves for people: a JSONL metrics log and periodic sample grids."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from swycc.autoencoder import SWYCC
from swycc.train.ema import EMA


class MetricsLog:
    """Append-only JSONL, one record per logged step. On resume, records past the restored step
    (written by the interrupted run after its last checkpoint) are dropped so each step is
    logged once."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        keep = [ln for ln in self.path.read_text().splitlines()
                if ln.strip() and json.loads(ln).get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(ln + "\n" for ln in keep))
        tmp.replace(self.path)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


@torch.no_grad()
def write_sample_grid(model: SWYCC, ema: EMA, images: torch.Tensor, path: Path,
                      steps: int = 10, samples: int = 2) -> None:
    """Rows of original | D_Initial | samples, from the EMA weights, on held-back crops."""
    from swycc.visual import save_grid

    slim = SWYCC(model.config).to(images.device if images.is_cuda else "cpu")
    ema.copy_to(slim)
    slim.eval()
    device = next(model.parameters()).device
    slim.to(device)
    x = images.to(device)
    init = slim.reconstruct_initial(x)
    g = torch.Generator(device=device).manual_seed(0)
    xs = slim.reconstruct(x, steps=steps, samples=samples, generator=g)
    rows = [[x[i].cpu(), init[i].cpu(), *[xs[i, s].cpu() for s in range(samples)]]
            for i in range(x.shape[0])]
    labels = ["original", "D_Initial", *[f"sample {s + 1}" for s in range(samples)]]
    if model.d_refine is None:  # GAN: the decoder is deterministic, one reconstruction
        rows, labels = [r[:2] for r in rows], ["original", "reconstruction"]
    save_grid(rows, path, labels=labels)
