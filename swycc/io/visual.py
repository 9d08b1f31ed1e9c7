"""Image grids, the per-pixel variance map over samples (paper Fig. 9) and gradient energy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> uint8 (H, W, 3)."""
    a = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return a.permute(1, 2, 0).numpy()


def _save_atomic(img: Image.Image, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)


def save_grid(rows: list[list[torch.Tensor]], path: str | os.PathLike,
              labels: list[str] | None = None, pad: int = 2, title_height: int = 14) -> None:
    """Rows of equal-size (3, H, W) images as one PNG, with optional column titles."""
    h, w = rows[0][0].shape[-2:]
    ncol = max(len(r) for r in rows)
    top = title_height if labels else 0
    canvas = Image.new("RGB", (ncol * (w + pad) + pad, top + len(rows) * (h + pad) + pad),
                       (255, 255, 255))
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            canvas.paste(Image.fromarray(to_uint8(img)), (pad + j * (w + pad),
                                                          top + pad + i * (h + pad)))
    if labels:
        draw = ImageDraw.Draw(canvas)
        for j, text in enumerate(labels):
            draw.text((pad + j * (w + pad) + 1, 1), text[: max(1, w // 6)], fill=(0, 0, 0))
    _save_atomic(canvas, path)


def variance_heatmap(samples: torch.Tensor) -> torch.Tensor:
    """(S, 3, H, W) -> (H, W): per-pixel variance over the S samples, mean over channels."""
    return samples.float().var(dim=0, unbiased=False).mean(dim=0)


def gradient_energy(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N,): mean squared horizontal plus vertical finite difference."""
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return dx.float().pow(2).flatten(1).mean(1) + dy.float().pow(2).flatten(1).mean(1)


def local_gradient_energy(x: torch.Tensor, window: int = 5) -> torch.Tensor:
    """(N, 3, H, W) -> (N, H, W): squared gradient magnitude (channel mean), box-smoothed."""
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    e = (dx.float().pow(2) + dy.float().pow(2)).mean(1, keepdim=True)
    return F.avg_pool2d(e, window, stride=1, padding=window // 2, count_include_pad=False)[:, 0]


def save_variance_panel(x: torch.Tensor, samples: torch.Tensor,
                        path: str | os.PathLike) -> None:
    """One row per image: original | a sample | per-pixel variance over samples (magma)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = x.shape[0]
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.4 * n), squeeze=False)
    for i in range(n):
        var = variance_heatmap(samples[i]).numpy()
        axes[i, 0].imshow(to_uint8(x[i]))
        axes[i, 1].imshow(to_uint8(samples[i, 0]))
        im = axes[i, 2].imshow(var, cmap="magma")
        fig.colorbar(im, ax=axes[i, 2], fraction=0.046)
        for ax in axes[i]:
            ax.set_axis_off()
    for ax, title in zip(axes[0], ["original", "sample 1",
                                   f"variance over {samples.shape[1]} samples"]):
        ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """Lay out, write (all or nothing: a temporary file, then renamed) and close a matplotlib
    figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
