"""Pre-encoded latents of a class-labelled image folder (ImageNet layout), for training the DiT.

Layout of ``out_dir``:
    encode.json                  settings, autoencoder identity, class names, file list (written
                                 first; a re-run must match it)
    shard-w{W}-r{R}-{K}.safetensors   latents (n, C, h, w) float32, labels (n,) int64, sources
                                 (n,) int64 (index into the file list), flipped (n,) uint8
    index.json                   written last by ``finalize``: shards, counts, per-channel mean
                                 and std, skipped images

Rank R of W encodes files i with i % W == R, in shards of ``shard_size`` latents, each written
atomically: re-running skips finished shards and redoes the one a crash left half-written.
Under torchrun every rank calls ``encode_dataset``; then, after a barrier, rank 0 calls
``finalize(out_dir)``. With world_size 1 ``encode_dataset`` finalises by itself.
"""

from __future__ import annotations

import bisect
import json
import os
import signal
import struct
import threading
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open
from tqdm import tqdm

from swycc.data.images import IMAGE_EXTS, ImageError, center_crop_square, load_image

MANIFEST, INDEX, FORMAT = "encode.json", "index.json", "swycc-latent-dataset"
EncodeFn = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, S, S) in [-1, 1] -> (B, C, h, w)


class NoReadableImageError(ValueError):
    """Every image of the folder was unreadable: there are no latents to write."""


class LatentDatasetError(ValueError):
    """A bad image folder, a mismatching re-run, or a missing / incomplete latent dataset."""


@dataclass
class EncodeSummary:
    shards_written: int
    shards_resumed: int  # finished by an earlier run, skipped
    images_skipped: int  # unreadable images met by this run
    index: dict | None  # the finalised index (world_size 1), else None: call finalize()
    stopped: bool = False  # SIGTERM stopped it after a whole shard; re-run to resume


# ---- the image folder ----

def scan_class_folder(data_dir: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(class names, image paths relative to data_dir), both sorted; class = first sub-folder."""
    root = Path(data_dir)
    if not root.is_dir():
        raise LatentDatasetError(f"{root}: no such image folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise LatentDatasetError(f"{root}: no class sub-folders (expected ImageNet layout, "
                                 "one sub-folder of images per class)")
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    if loose:
        raise LatentDatasetError(f"{root}: {len(loose)} image(s) outside the class sub-folders, "
                                 f"e.g. {loose[0]!r}")
    files, empty = [], []
    for name in classes:
        found = sorted(p.relative_to(root).as_posix() for p in (root / name).rglob("*")
                       if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        files += found
        if not found:
            empty.append(name)
    if empty:
        raise LatentDatasetError(f"{root}: no images in class folder(s) {empty[:5]} (looked for "
                                 f"{', '.join(sorted(IMAGE_EXTS))})")
    return classes, files


class _Images(torch.utils.data.Dataset):
    """Eval preprocessing: largest centre square resized to size; unreadable -> ok = False."""

    def __init__(self, root: Path, files: list[str], size: int):
        self.root, self.files, self.size = root, files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            return center_crop_square(load_image(self.root / self.files[i]), self.size), True, i
        except ImageError:
            return torch.zeros(3, self.size, self.size), False, i


# ---- manifest, shards ----

def _write_json(path: Path, obj: dict, tag: str = "") -> None:
    tmp = path.with_name(f".{path.name}{tag}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LatentDatasetError(f"{path}: unreadable ({type(e).__name__})") from None


def shard_name(world: int, rank: int, k: int) -> str:
    return f"shard-w{world}-r{rank:04d}-{k:06d}.safetensors"


def plan_shards(num_files: int, rank: int, world: int, files_per_shard: int) -> list[list[int]]:
    """Rank ``rank``'s file indices (i % world == rank) cut into shards."""
    mine = list(range(rank, num_files, world))
    return [mine[i:i + files_per_shard] for i in range(0, len(mine), files_per_shard)]


def _shard_files(path: Path) -> list[int] | None:
    """The file indices a finished shard covers, or None when it is missing or unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            return json.loads(meta["files"]) if meta.get("format") == FORMAT + "-shard" else None
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError):
        return None


def _normalised(obj) -> object:
    try:
        return json.loads(json.dumps(obj))
    except (TypeError, ValueError) as e:
        raise LatentDatasetError(f"identity must be JSON-serialisable ({e})") from None


def _check_manifest(path: Path, want: dict) -> None:
    have = _read_json(path)
    diff = [k for k in want if have.get(k) != want[k]]
    if diff:
        detail = "; ".join(f"{k}: was {_short(have.get(k))}, now {_short(want[k])}" for k in diff)
        raise LatentDatasetError(f"{path.parent}: already holds latents made with different "
                                 f"settings ({detail}); use a new output folder")


def _short(v) -> str:
    s = json.dumps(v)
    return s if len(s) <= 80 else f"{s[:77]}..."


# ---- encoding ----

@torch.no_grad()
def encode_dataset(encode_fn: EncodeFn, identity: dict, data_dir: str | os.PathLike,
                   out_dir: str | os.PathLike, image_size: int, flip: bool = False,
                   shard_size: int = 4096, batch_size: int = 64, rank: int = 0,
                   world_size: int = 1, progress: bool = True,
                   num_workers: int = 0, export_stats=None) -> EncodeSummary:
    """Encode every image of ``data_dir`` (class sub-folders) into latent shards in ``out_dir``.

    encode_fn: (B, 3, S, S) float in [-1, 1] on the CPU -> latents (B, C, h, w) (any device);
    ``identity`` (e.g. {"config": ..., "weights_sha256": ...}) names the autoencoder: a re-run
    into the same folder must pass the same one. ``flip`` adds each image's mirror image as an
    extra entry. ``shard_size`` latents per shard (images per shard = shard_size // 2 with flip).
    """
    if image_size < 1 or shard_size < 1 or batch_size < 1:
        raise LatentDatasetError("image_size, shard_size and batch_size must be positive")
    if not 0 <= rank < world_size:
        raise LatentDatasetError(f"rank {rank} outside world_size {world_size}")
    root, out = Path(data_dir), Path(out_dir)
    classes, files = scan_class_folder(root)
    per_shard = max(1, shard_size // (2 if flip else 1))
    manifest = {"format": FORMAT, "identity": _normalised(identity), "image_size": image_size,
                "flip": flip, "files_per_shard": per_shard, "world_size": world_size,
                "classes": classes, "files": files}
    if (out / MANIFEST).exists():
        _check_manifest(out / MANIFEST, manifest)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MANIFEST).exists():
        _write_json(out / MANIFEST, manifest, tag=f".r{rank}")

    shards = plan_shards(len(files), rank, world_size, per_shard)
    todo = [(k, c) for k, c in enumerate(shards)
            if _shard_files(out / shard_name(world_size, rank, k)) != c]
    done_files = sum(len(c) for c in shards) - sum(len(c) for _, c in todo)
    batches = [c[i:i + batch_size] for _, c in todo for i in range(0, len(c), batch_size)]
    label_of = {name: i for i, name in enumerate(classes)}
    images = _Images(root, files, image_size)
    loader = torch.utils.data.DataLoader(images, batch_sampler=batches, num_workers=num_workers)
    bar = tqdm(total=done_files + sum(len(b) for b in batches), initial=done_files,
               disable=not progress, desc=f"encode rank {rank}/{world_size}", unit="img")
    skipped_total, it = 0, iter(loader)
    with _stop_on_sigterm() as stop:
        done = _encode_shards(todo, it, out, batch_size, encode_fn, flip, files, label_of, root,
                              world_size, rank, bar, stop)
    bar.close()
    skipped_total = sum(done.values())
    if len(done) < len(todo):  # stopped by SIGTERM after a whole shard
        return EncodeSummary(len(done), len(shards) - len(todo), skipped_total, None, True)
    index = finalize(out, export_stats=export_stats) if world_size == 1 else None
    return EncodeSummary(len(todo), len(shards) - len(todo), skipped_total, index)


@contextmanager
def _stop_on_sigterm():
    """{"hit": bool}, set by SIGTERM while the block runs (main thread only; the previous
    handler is restored after)."""
    stop = {"hit": False}
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(hit=True))
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def _encode_shards(todo, it, out: Path, batch_size: int, encode_fn, flip: bool, files, label_of,
                   root: Path, world_size: int, rank: int, bar, stop: dict) -> dict[int, int]:
    """Encode and write the shards ``todo`` in order, {shard: unreadable images}; stops after
    a whole shard once ``stop["hit"]``."""
    done: dict[int, int] = {}
    for k, chunk in todo:
        parts, skipped = [], []
        for _ in range(-(-len(chunk) // batch_size)):
            x, ok, idx = next(it)
            skipped += idx[~ok].tolist()
            if ok.any():
                parts.append(_encode_batch(encode_fn, x[ok], idx[ok], flip, files, label_of))
            bar.update(len(idx))
        for i in skipped:
            warnings.warn(f"skipping unreadable image {root / files[i]}", stacklevel=2)
        _write_shard(out / shard_name(world_size, rank, k), parts, chunk, skipped)
        done[k] = len(skipped)
        if stop["hit"]:
            break
    return done


def _encode_batch(encode_fn: EncodeFn, x: torch.Tensor, idx: torch.Tensor, flip: bool,
                  files: list[str], label_of: dict[str, int]) -> dict[str, torch.Tensor]:
    labels = torch.tensor([label_of[files[i].split("/")[0]] for i in idx.tolist()])
    flipped = torch.zeros(len(idx), dtype=torch.uint8)
    if flip:  # each image, then its mirror image
        x = torch.stack([x, x.flip(-1)], dim=1).flatten(0, 1)
        idx, labels = idx.repeat_interleave(2), labels.repeat_interleave(2)
        flipped = torch.tensor([0, 1], dtype=torch.uint8).repeat(len(flipped))
    z = encode_fn(x).detach().float().cpu()
    if z.ndim != 4 or z.shape[0] != x.shape[0]:
        raise LatentDatasetError(f"encode_fn returned shape {tuple(z.shape)} for a batch of "
                                 f"{x.shape[0]} images; expected (B, C, h, w)")
    return {"latents": z, "labels": labels.long(), "sources": idx.long(), "flipped": flipped}


def _write_shard(path: Path, parts: list[dict], chunk: list[int], skipped: list[int]) -> None:
    if parts:
        tensors = {k: torch.cat([p[k] for p in parts]).contiguous() for k in parts[0]}
    else:  # every image of the shard was unreadable
        tensors = {"latents": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long),
                   "sources": torch.zeros(0, dtype=torch.long),
                   "flipped": torch.zeros(0, dtype=torch.uint8)}
    meta = {"format": FORMAT + "-shard", "files": json.dumps(chunk), "skipped": json.dumps(skipped)}
    tmp = path.with_name(f".{path.name}.tmp")
    from swycc.io.files import save_safetensors

    save_safetensors(tensors, tmp, metadata=meta)
    os.replace(tmp, path)


# ---- statistics and the index ----

def finalize(out_dir: str | os.PathLike, progress: bool = False,
             export_stats=None) -> dict:
    """Check every rank's shards exist, compute per-channel mean/std over all latents (streaming,
    one shard in memory, Chan et al.'s pairwise update in float64), write index.json.

    The index's ``mean`` / ``std`` (what ``LatentDataset`` normalises with, and so the DiT) are
    these, or ``export_stats`` (the autoencoder export's ``LatentStats``) when given;
    ``data_mean`` / ``data_std`` always hold the measured ones and ``stats_source`` says which
    is used ("data" or "export")."""
    from swycc.autoencoders.latent_stats import RunningMoments
    out = Path(out_dir)
    if not (out / MANIFEST).exists():
        raise LatentDatasetError(f"{out}: no {MANIFEST}; run encode_dataset first")
    man = _read_json(out / MANIFEST)
    world, per_shard, nfiles = man["world_size"], man["files_per_shard"], len(man["files"])
    names, missing = [], []
    for r in range(world):
        for k, chunk in enumerate(plan_shards(nfiles, r, world, per_shard)):
            name = shard_name(world, r, k)
            (names if _shard_files(out / name) == chunk else missing).append(name)
    if missing:
        raise LatentDatasetError(f"{out}: {len(missing)} shard(s) missing or unfinished, e.g. "
                                 f"{missing[0]}; re-run the encoding (all ranks) first")
    moments, shape, counts, skipped = RunningMoments(), None, [], []
    for name in tqdm(names, disable=not progress, desc="latent statistics"):
        with safe_open(str(out / name), framework="pt") as f:
            z = f.get_tensor("latents").double()
            skipped += json.loads(f.metadata()["skipped"])
        counts.append(int(z.shape[0]) if z.ndim == 4 else 0)
        if not counts[-1]:
            continue
        shape = list(z.shape[1:])
        moments.update(z)
    if moments.mean is None:
        raise NoReadableImageError(f"{out}: no readable image was encoded (every image of "
                                   f"the folder was skipped as unreadable)")
    mean, std = moments.mean.tolist(), moments.std().tolist()
    used = (mean, std) if export_stats is None else (list(export_stats.mean),
                                                     list(export_stats.std))
    if len(used[0]) != len(mean):
        raise LatentDatasetError(f"{out}: the export's latent statistics have {len(used[0])} "
                                 f"channels, its latents {len(mean)}")
    index = {"format": FORMAT, "shards": names, "counts": counts, "num_latents": sum(counts),
             "latent_shape": shape, "mean": used[0], "std": used[1],
             "stats_source": "data" if export_stats is None else "export",
             "data_mean": mean, "data_std": std,
             "num_skipped": len(skipped), "skipped_files": [man["files"][i] for i in skipped],
             "classes": man["classes"], "identity": man["identity"],
             "image_size": man["image_size"], "flip": man["flip"]}
    _write_json(out / INDEX, index)
    return index


# ---- reading back ----

_NP_DTYPES = {"F32": np.float32, "I64": np.int64, "U8": np.uint8}


def _memmap_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read-only memory maps of a safetensors file's tensors (the OS caches pages, not us)."""
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        dtype, shape = _NP_DTYPES[info["dtype"]], tuple(info["shape"])
        if hi == lo:
            out[name] = np.zeros(shape, dtype)
        else:
            out[name] = np.memmap(path, dtype, "r", offset=8 + hlen + lo, shape=shape)
    return out


class LatentDataset(torch.utils.data.Dataset):
    """(latent (C, h, w) float32, label) pairs of a finalised out_dir; latents normalised per
    channel, (z - mean) / std, unless ``raw``. Keys may be an index or (epoch, index)."""

    def __init__(self, out_dir: str | os.PathLike, raw: bool = False):
        self.root, self.raw = Path(out_dir), raw
        if not (self.root / INDEX).exists():
            raise LatentDatasetError(f"{self.root}: no {INDEX} (not a latent dataset, or its "
                                     "encoding was not finalised)")
        self.index = _read_json(self.root / INDEX)
        if self.index.get("format") != FORMAT:
            raise LatentDatasetError(f"{self.root / INDEX}: not a swycc latent dataset index")
        try:
            self.shards = [n for n, c in zip(self.index["shards"], self.index["counts"]) if c]
            self.starts = np.cumsum([0] + [c for c in self.index["counts"] if c]).tolist()
            self.mean = torch.tensor(self.index["mean"], dtype=torch.float32)
            self.std = torch.tensor(self.index["std"], dtype=torch.float32)
            shape = self.index["latent_shape"]
            self.index["classes"], self.index["identity"]
        except (KeyError, TypeError, ValueError) as e:
            raise LatentDatasetError(f"{self.root / INDEX}: damaged index ({type(e).__name__}: "
                                     f"{e})") from None
        if not (isinstance(shape, list) and len(shape) == 3 and len(self.mean) == len(self.std)
                == shape[0]):
            raise LatentDatasetError(f"{self.root / INDEX}: damaged index (latent_shape {shape}, "
                                     f"{len(self.mean)} channel means)")
        self._maps: list[dict[str, np.ndarray]] | None = None  # opened lazily, per process
        self._files: list[str] | None = None

    num_classes = property(lambda self: len(self.index["classes"]))
    class_names = property(lambda self: list(self.index["classes"]))
    latent_shape = property(lambda self: tuple(self.index["latent_shape"]))
    identity = property(lambda self: self.index["identity"])

    def __len__(self) -> int:
        return self.starts[-1]

    def __getstate__(self) -> dict:  # data-loader workers re-open the maps
        return {**self.__dict__, "_maps": None}

    def _locate(self, item) -> tuple[dict[str, np.ndarray], int]:
        i = int(item[1] if isinstance(item, tuple) else item)
        if not 0 <= i < len(self):
            raise IndexError(f"latent index {i} out of range [0, {len(self)})")
        if self._maps is None:
            self._maps = [_memmap_safetensors(self.root / n) for n in self.shards]
        s = bisect.bisect_right(self.starts, i) - 1
        return self._maps[s], i - self.starts[s]

    def __getitem__(self, item) -> tuple[torch.Tensor, int]:
        shard, j = self._locate(item)
        z = torch.from_numpy(np.array(shard["latents"][j]))
        if not self.raw:
            z = self.normalize(z)
        return z, int(shard["labels"][j])

    def verify(self) -> None:
        """Check every shard's header against the index (shape, count) without reading the
        latents: a missing, truncated or foreign shard fails here, not mid-training."""
        shape = tuple(self.index["latent_shape"])
        for k, name in enumerate(self.shards):
            path = self.root / name
            try:
                maps = _memmap_safetensors(path)
                z, y = maps["latents"], maps["labels"]
            except (OSError, ValueError, KeyError, struct.error) as e:
                raise LatentDatasetError(f"{path}: unreadable latent shard ({type(e).__name__}: "
                                         f"{e}); re-run the encoding into a new folder") from None
            count = self.starts[k + 1] - self.starts[k]
            if tuple(z.shape) != (count, *shape) or tuple(y.shape) != (count,):
                raise LatentDatasetError(f"{path}: holds latents {tuple(z.shape)}, the index "
                                         f"says {(count, *shape)}")

    def source(self, item) -> tuple[str, bool]:
        """(image path relative to the data folder, flipped) of an entry."""
        shard, j = self._locate(item)
        if self._files is None:
            self._files = _read_json(self.root / MANIFEST)["files"]
        return self._files[int(shard["sources"][j])], bool(shard["flipped"][j])

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """(z - mean) / std per channel; z: (C, h, w) or (N, C, h, w)."""
        return (z - _ch(self.mean, z)) / _ch(self.std, z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """z * std + mean: what a DiT sample becomes before the autoencoder decodes it."""
        return denormalize(z, self.mean, self.std)


def denormalize(z: torch.Tensor, mean, std) -> torch.Tensor:
    """z * std + mean per channel (mean, std: sequences or tensors of C values); z: (C, h, w)
    or (N, C, h, w)."""
    return z * _ch(torch.as_tensor(std), z) + _ch(torch.as_tensor(mean), z)


def _ch(v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return v.to(z.device, z.dtype).view(-1, 1, 1)


def autoencoder_identity(checkpoint: str | os.PathLike) -> dict:
    """What names an exported autoencoder: its config (as stored) and the sha256 of its weights
    (``weights_sha256``). Latents and a DiT trained on them carry it; ``swycc generate`` checks
    it."""
    from swycc.autoencoders.base import read_config, weights_file, weights_sha256

    file = weights_file(checkpoint)
    return {"config": read_config(file).to_dict(), "weights_sha256": weights_sha256(file)}
