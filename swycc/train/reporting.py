"""What a run leaves for people: a JSONL metrics log and periodic sample grids."""

from __future__ import annotations

import json
from pathlib import Path

import torch



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
def write_sample_grid(model, images: torch.Tensor, path: Path, steps: int = 10,
                      samples: int = 2) -> None:
    """Rows of original | deterministic reconstruction (if the kind has one) | samples (if its
    decoder samples), on held-back crops; ``model`` holds the EMA weights."""
    from swycc.autoencoders.kinds import kind_of
    from swycc.io.visual import save_grid

    kind = kind_of(model)
    device = next(model.parameters()).device
    x = images.to(device)
    cols: list[torch.Tensor] = [x]
    labels = ["original"]
    if kind.initial_label is not None:
        cols.append(model.reconstruct_initial(x))
        labels.append(kind.initial_label)
    if kind.samples:
        g = torch.Generator(device=device).manual_seed(0)
        xs = model.reconstruct(x, steps=steps, samples=samples, generator=g)
        cols += [xs[:, s] for s in range(samples)]
        labels += [f"sample {s + 1}" for s in range(samples)]
    rows = [[c[i].cpu() for c in cols] for i in range(x.shape[0])]
    save_grid(rows, path, labels=labels)
