"""Full training state as safetensors + JSON, written atomically; nothing is ever unpickled.

A state is any nesting of dicts, lists and tuples whose leaves are tensors or JSON scalars
(model/optimiser/EMA state dicts, step, RNG states, sampler position). Tensors go to
``state.safetensors`` under their path ("optimizer/state/3/exp_avg"); the rest, with a marker
where each tensor was, goes to ``state.json``. Each checkpoint is a directory ``step-NNNNNNNN``
made under a temporary name and renamed into place; the ``latest`` file names the newest one
and is itself replaced atomically, so a run killed at any instant resumes from a whole state.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from swycc.io.files import regular_file, save_safetensors

_TENSOR = "__tensor__"


class CheckpointCorruptError(ValueError):
    """Every training checkpoint of a run directory is damaged."""


def flatten(state: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split ``state`` into a JSON-able skeleton and a flat {path: tensor} dict."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[path] = obj.detach().cpu().contiguous()
            return {_TENSOR: path}
        if isinstance(obj, dict):
            return {"__dict__": [[_key(k), walk(v, f"{path}/{k}")] for k, v in obj.items()]}
        if isinstance(obj, (list, tuple)):
            return {"__list__": [walk(v, f"{path}/{i}") for i, v in enumerate(obj)],
                    "tuple": isinstance(obj, tuple)}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {path or '/'}")

    return walk(state, prefix), tensors


def _key(k: Any) -> Any:
    if isinstance(k, (str, int)):
        return k
    raise TypeError(f"checkpoint dict keys must be str or int, got {type(k).__name__}")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if _TENSOR in skeleton:
            return tensors[skeleton[_TENSOR]]
        if "__dict__" in skeleton:
            return {k: unflatten(v, tensors) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            items = [unflatten(v, tensors) for v in skeleton["__list__"]]
            return tuple(items) if skeleton.get("tuple") else items
    return skeleton


def step_of(path: Path) -> int:
    """The training step a ``step-NNNNNNNN`` directory (checkpoint or numbered export) holds."""
    prefix, _, digits = path.name.partition("-")
    if prefix != "step" or not digits.isdigit():
        raise ValueError(f"{path}: not a step-N directory")
    return int(digits)


class CheckpointDir:
    """The checkpoints of one run directory; keeps the newest ``keep`` of them."""

    def __init__(self, root: str | os.PathLike, keep: int = 2):
        self.root = Path(root) / "checkpoints"
        self.keep = keep

    def latest(self) -> Path | None:
        pointer = self.root / "latest"
        if not pointer.exists():
            return None
        path = self.root / pointer.read_text().strip()
        return path if (path / "state.json").exists() else None

    def save(self, step: int, state: dict[str, Any]) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:08d}"
        final, tmp = self.root / name, self.root / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        skeleton, tensors = flatten(state)
        try:  # a full disk (or any failure) leaves no half-written directory behind
            tmp.mkdir()
            save_safetensors(tensors, tmp / "state.safetensors")
            (tmp / "state.json").write_text(json.dumps(skeleton))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _write_atomic(self.root / "latest", name)
        self._prune()
        return final

    def load(self, path: Path | None = None, device: str = "cpu") -> dict[str, Any] | None:
        path = path or self.latest()
        if path is None:
            return None
        skeleton = json.loads((path / "state.json").read_text())
        tensors = load_file(str(regular_file(path / "state.safetensors", "checkpoint")),
                            device=device)
        return unflatten(skeleton, tensors)

    def latest_config(self) -> dict | None:
        """The config recorded inside the newest checkpoint (its JSON part only, no tensors),
        or None when there is none or it cannot be read."""
        path = self.latest()
        if path is None:
            return None
        try:
            skeleton = json.loads((path / "state.json").read_text())
            entries = dict((k, v) for k, v in skeleton["__dict__"])
            return unflatten(entries["config"], {})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load_latest(self, device: str = "cpu") -> dict[str, Any] | None:
        """The newest checkpoint that reads back whole. A damaged newest one (truncated files,
        a disk that filled up) is skipped with a warning naming it, and the previous complete
        one is used; None when there is no checkpoint at all."""
        candidates = sorted((p for p in self.root.glob("step-*") if p.is_dir()), reverse=True)
        latest = self.latest()
        if latest is not None and latest in candidates:  # the pointer's choice first
            candidates.remove(latest)
            candidates.insert(0, latest)
        for i, path in enumerate(candidates):
            try:
                state = self.load(path, device=device)
            except Exception as e:  # noqa: BLE001 - any damage means: try the previous one
                warnings.warn(f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); "
                              f"falling back to the previous complete checkpoint",
                              RuntimeWarning, stacklevel=2)
                continue
            if i > 0:
                warnings.warn(f"resuming from {path.name}, not the newest checkpoint",
                              RuntimeWarning, stacklevel=2)
            return state
        if candidates:
            raise CheckpointCorruptError(f"{self.root}: no checkpoint could be read; move the "
                                         f"directory away to start over")
        return None

    def _prune(self) -> None:
        done = sorted(p for p in self.root.glob("step-*") if p.is_dir())
        for old in done[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
