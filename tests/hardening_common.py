"""What the hardening tests share: tiny training options, random PNGs, the error line, and a
folder of inputs (a tiny export, one image, a four-image folder, a two-class folder)."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

TINY = ["--preset", "tiny", "--set", "model.encoder.base_channels=8",
        "--set", "model.decoder.base_channels=8", "--set", "model.unet.base_channels=8",
        "--set", "loss.perceptual_weight=0", "--batch-size", "4", "--no-progress",
        "--set", "train.sample_every=0", "--set", "train.log_every=1"]


def png(path: Path, h: int = 40, w: int = 40, seed: int = 0) -> Path:
    """A random 8-bit RGB PNG of h x w at ``path`` (folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def error_line(capsys) -> str:
    """The last stderr line, checked to be the one ``swycc: error:`` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("swycc: error:"), err
    return err[-1]


def input_folder(root: Path) -> Path:
    """A tiny exported model, one image, a four-image folder and a two-class folder."""
    from swycc.autoencoders.base import Autoencoder
    from swycc.config import get_preset, shrink

    for i in range(4):
        png(root / "folder" / f"{i}.png", seed=10 + i)
        png(root / "classes" / f"c{i % 2}" / f"{i}.png", seed=20 + i)
    png(root / "img.png", 32, 32)
    torch.manual_seed(0)
    Autoencoder.from_config(shrink(get_preset("tiny"))).save_pretrained(root / "model")
    return root
