"""Latents files: one safetensors file holding z for several images, with names and sizes.

Loading checks everything before a caller writes anything: every entry has a name and a
positive (H, W) size, its tensor has the model's channels and fits that size, and holds finite
floating-point values. float16, bfloat16, float32 and float64 are accepted (returned as
float32); integer, bool or complex tensors and NaN/Inf values are a ``LatentsError`` naming the
entry. Entry names are data, not paths: ``swycc.io.outputs.safe_stem`` makes file names of them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open

from swycc.config_types import loads_json
from swycc.io.files import regular_file, save_safetensors


class LatentsError(ValueError):
    """A latents file that is missing, unreadable or of the wrong shape, dtype or values."""


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
    try:
        save_safetensors(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _entry_info(path: Path, info: object) -> list[tuple[str, tuple[int, int]]]:
    if not isinstance(info, list):
        raise LatentsError(f"{path}: its 'entries' metadata is not a list")
    out = []
    for i, d in enumerate(info):
        name = d.get("name") if isinstance(d, dict) else None
        size = d.get("size") if isinstance(d, dict) else None
        if not isinstance(name, str):
            raise LatentsError(f"{path}: entry {i} has no name")
        if not (isinstance(size, list) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            raise LatentsError(f"{path}: entry {i} ({name!r}) has size {size!r}; expected "
                               f"[H, W], two positive integers")
        out.append((name, (size[0], size[1])))
    return out


def check_entry(path: Path, i: int, e: LatentEntry, latent_channels: int | None,
                downsample: int | None) -> torch.Tensor:
    """The entry's z as float32, or a LatentsError naming entry ``i``."""
    what = f"{path}: entry {i} ({e.name!r})"
    z = e.z
    if not z.is_floating_point():
        raise LatentsError(f"{what}: latents of dtype {z.dtype}; expected floating point "
                           f"(float16, bfloat16, float32 or float64)")
    if z.ndim != 3 or (latent_channels is not None and z.shape[0] != latent_channels):
        raise LatentsError(f"{what}: latents have shape {tuple(z.shape)}, "
                           f"this model expects ({latent_channels}, h, w)")
    bad = int((~torch.isfinite(z)).sum())
    if bad:
        raise LatentsError(f"{what}: {bad} of its {z.numel()} latent values are NaN or Inf")
    if downsample is not None:
        h, w = z.shape[1] * downsample, z.shape[2] * downsample
        if e.size[0] > h or e.size[1] > w:
            raise LatentsError(f"{what}: size {e.size[0]}x{e.size[1]} is larger than its "
                               f"latents decode to ({h}x{w})")
    return z.float()


def load_latents(path: str | os.PathLike, latent_channels: int | None = None,
                 downsample: int | None = None) -> list[LatentEntry]:
    """Every entry of a latents file, checked (see the module docstring); ``downsample``: the
    model's latent-to-pixel factor, to check that each entry's size fits its latents."""
    path = Path(path)
    try:
        regular_file(path, "latents file")  # a FIFO would block the read
    except FileNotFoundError:
        raise LatentsError(f"{path}: no such latents file") from None
    except OSError as e:
        raise LatentsError(str(e)) from None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != "swycc-latents":
                raise LatentsError(f"{path}: not a swycc latents file")
            info = _entry_info(path, loads_json(meta["entries"]))
            keys = set(f.keys())
            missing = [i for i in range(len(info)) if f"z.{i:06d}" not in keys]
            if missing:
                raise LatentsError(f"{path}: entry {missing[0]} ({info[missing[0]][0]!r}) has "
                                   f"no tensor z.{missing[0]:06d}")
            entries = [LatentEntry(name, size, f.get_tensor(f"z.{i:06d}"))
                       for i, (name, size) in enumerate(info)]
    except LatentsError:
        raise
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as e:
        raise LatentsError(f"{path}: unreadable latents file ({type(e).__name__}: {e})") from None
    if not entries:
        raise LatentsError(f"{path}: holds no latents")
    for i, e in enumerate(entries):
        e.z = check_entry(path, i, e, latent_channels, downsample)
    return entries
