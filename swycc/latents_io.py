"""Latents files: one safetensors file holding z for several images, with names and sizes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file


class LatentsError(ValueError):
    """A latents file that is missing, unreadable or of the wrong shape."""


@dataclass
class LatentEntry:
    name: str  # source image stem
    size: tuple[int, int]  # original (H, W), to crop the decoded image back
    z: torch.Tensor  # (C, h, w)


def save_latents(entries: list[LatentEntry], path: str | os.PathLike, config_json: str) -> None:
    tensors = {f"z.{i:06d}": e.z.detach().contiguous().cpu() for i, e in enumerate(entries)}
    meta = {"format": "swycc-latents", "config": config_json,
            "entries": json.dumps([{"name": e.name, "size": list(e.size)} for e in entries])}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_latents(path: str | os.PathLike, latent_channels: int | None = None) -> list[LatentEntry]:
    path = Path(path)
    if not path.exists():
        raise LatentsError(f"{path}: no such latents file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != "swycc-latents":
                raise LatentsError(f"{path}: not a swycc latents file")
            info = json.loads(meta["entries"])
            entries = [LatentEntry(d["name"], tuple(d["size"]), f.get_tensor(f"z.{i:06d}"))
                       for i, d in enumerate(info)]
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
        raise LatentsError(f"{path}: unreadable latents file ({e})") from None
    for e in entries:
        if e.z.ndim != 3 or (latent_channels is not None and e.z.shape[0] != latent_channels):
            raise LatentsError(f"{path}: latents of {e.name!r} have shape {tuple(e.z.shape)}, "
                               f"this model expects ({latent_channels}, h, w)")
    return entries
