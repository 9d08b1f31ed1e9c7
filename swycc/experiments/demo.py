"""The quick start's main job: show SWYCC on held-back crops of the embedded photo set and on
whole photos of the photo set's test split (shipped in the package: ``swycc.data.demo_photos``).

Writes to ``--out``: ``grid.png`` (crops: original | D_Initial | samples), ``photos.png`` (whole
photos at ``--photo-size`` px: original | D_Initial | 2 samples), ``variance.png`` (per-pixel
variance over the samples, the paper's Fig. 9) and ``metrics.json`` (with ``whole_photos``:
PSNR and colour shift per photo). With ``--train`` it first
trains a fresh model for ``--time-budget`` seconds (default 480) on the embedded set.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import torch

from swycc.autoencoders.base import Autoencoder
from swycc.config import Config

DEFAULT_BUDGET_S = 480.0


def run_demo(out: str | os.PathLike, train_cfg: Config | None, checkpoint: str | None = None,
             device: str | None = None, steps: int = 20, guidance: float = 0.5, samples: int = 4,
             seed: int = 0, max_steps: int | None = None, progress: bool = True,
             preset: str = "", photo_size: int = 128) -> int:
    """The quick start's job: train a fresh model first (``train_cfg``) or show ``checkpoint``
    (default: the shipped model), then write the grid, the variance map and the metrics."""
    out = Path(out)
    if train_cfg is not None:
        from swycc.train.autoencoder_task import train_autoencoder

        if train_cfg.train.time_budget_s is None:
            train_cfg = replace(train_cfg, train=replace(train_cfg.train,
                                                         time_budget_s=DEFAULT_BUDGET_S))
        print(f"training preset {preset} for {train_cfg.train.time_budget_s:.0f} s "
              f"into {out / 'run'} (re-run to continue training)")
        res = train_autoencoder(train_cfg, out / "run", device=device, max_steps=max_steps,
                                progress=progress)
        checkpoint = res.export
        print(f"trained to step {res.step}")
    else:
        from swycc.autoencoders.pretrained import default_checkpoint

        checkpoint = checkpoint or default_checkpoint()
    device = device or "cpu"
    model = Autoencoder.from_pretrained(checkpoint).to(device)
    stats = show_heldout(model, out, steps=steps, guidance=guidance, samples=samples,
                         seed=seed, device=device)
    written = [out / "grid.png", out / "variance.png"]
    if photo_size:  # whole test-split photos beside the crops (0: none)
        from swycc.experiments.demo_photos import show_whole_photos

        stats["whole_photos"] = show_whole_photos(model, out, size=photo_size, steps=steps,
                                                  guidance=guidance, seed=seed, device=device)
        written.append(out / "photos.png")
    stats["checkpoint"] = str(checkpoint)
    _write_json(out / "metrics.json", stats)
    print(json.dumps(stats, indent=2))
    print(f"wrote {', '.join(map(str, written))} and {out / 'metrics.json'}")
    return 0


@torch.no_grad()
def show_heldout(model: Autoencoder, out: Path, steps: int, guidance: float, samples: int,
                 seed: int = 0, device: str = "cpu", rows: int = 8) -> dict:
    """Reconstruct the held-back crops; write the grid and the variance map; return metrics."""
    from swycc.data.embedded import EmbeddedCropDataset
    from swycc.autoencoders.kinds import kind_of
    from swycc.losses.registry import build_perceptual
    from swycc.metrics.sample_stats import sample_statistics
    from swycc.io.visual import save_grid, save_variance_panel

    if samples < 1 or steps < 1:
        raise ValueError("--samples and --steps must be >= 1")
    held = EmbeddedCropDataset(model.config.model.image_size, split="heldout",
                               held_out=model.config.data.held_out)
    kind = kind_of(model)
    x = torch.stack([held[i][0] for i in range(len(held))]).to(device)
    initial = model.reconstruct_initial(x) if kind.initial_label else None
    g = torch.Generator(device=device).manual_seed(seed)
    xs = model.reconstruct(x, steps=steps, guidance=guidance, samples=samples, generator=g)
    net = build_perceptual("efficientnet-lite0", None).to(device)
    stats = sample_statistics(x, initial, xs, net)
    stats.update(steps=steps, guidance=guidance, seed=seed, method=model.kind)
    k = min(rows, x.shape[0])
    cols, labels = [x], ["original"]
    if initial is not None:
        cols.append(initial)
        labels.append(kind.initial_label)
    if kind.samples:  # a deterministic decoder has one reconstruction, nothing to sample
        cols += [xs[:, s] for s in range(samples)]
        labels += [f"sample {s + 1}" for s in range(samples)]
    grid = [[c[i].cpu() for c in cols] for i in range(k)]
    save_grid(grid, out / "grid.png", labels=labels)
    save_variance_panel(x[:4].cpu(), xs[:4].cpu(), out / "variance.png")
    return stats


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)
