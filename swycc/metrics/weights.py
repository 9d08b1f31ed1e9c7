"""Pretrained metric weights: where to find them, how to check them, a clear error when absent.

Nothing is ever downloaded. A weight file is looked up, in order, at

1. an explicit path (a file, or a directory holding the file), e.g. ``swycc eval --weights-dir``;
2. ``$SWYCC_WEIGHTS_DIR``;
3. the usual cache of the reference code: ``$TORCH_HOME/hub/checkpoints`` (pytorch-fid, DINOv2
   through torch.hub; TORCH_HOME defaults to ``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``),
   and ``~/.cache/clip`` for OpenAI CLIP's ``clip.load``.

A file found is checked by SHA-256 before it is loaded (once per process and file version).
Nothing runs code from a weight file: ``torch.save`` files are read with ``weights_only=True``;
a TorchScript archive (OpenAI's CLIP ``.pt``) is opened with ``torch.jit.load``, which does run
the archive's code, only after its SHA-256 matched a published or pinned hash; DINOv2, whose
publisher gives no hash, is read from safetensors only (a user converts the official file once,
see ``swycc.metrics.dinov2``).
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file


class MissingWeightsError(FileNotFoundError):
    """A metric's weight file is not on this machine (names the file and where to get it)."""


class WeightsHashError(ValueError):
    """A weight file whose SHA-256 is not the published one (corrupt or another file)."""


class WeightsFormatError(ValueError):
    """A weight file in a format that is refused for its metric (e.g. not safetensors)."""


def torch_hub_dir() -> Path:
    home = os.environ.get("TORCH_HOME")
    if not home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        home = os.path.join(cache, "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def clip_cache_dir() -> Path:
    return Path("~/.cache/clip").expanduser()


@dataclass(frozen=True)
class WeightSpec:
    """One published weight file."""

    metric: str  # what needs it, for messages ("rFID and IS")
    filename: str  # the file name the reference code caches it under
    url: str  # where users download it
    sha256: str | None  # the full published SHA-256; None where none is published
    cache: str  # "torch_hub" or "clip": the reference code's cache directory
    note: str = ""
    format: str = "torch"  # "torch" (torch.save or TorchScript) or "safetensors" (only that)

    def cache_dirs(self) -> list[Path]:
        return [torch_hub_dir()] if self.cache == "torch_hub" else [clip_cache_dir()]


INCEPTION_WEIGHTS = WeightSpec(
    metric="rFID and Inception Score",
    filename="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
    # the torch.hub file name carries the first 8 hex digits of this hash
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    cache="torch_hub",
)
CLIP_WEIGHTS = WeightSpec(
    metric="CMMD",
    filename="ViT-L-14-336px.pt",
    # the URL's directory is the file's SHA-256 (OpenAI clip.load checks it the same way)
    url="https://openaipublic.azureedge.net/clip/models/"
        "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
    sha256="3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
    cache="clip",
)
DINOV2_CONVERT = (
    "import torch; from safetensors.torch import save_file; "
    "sd = torch.load('dinov2_vitl14_pretrain.pth', map_location='cpu', weights_only=True); "
    "save_file({k: v.float().contiguous() for k, v in sd.items()}, "
    "'dinov2_vitl14_pretrain.safetensors')")
DINOV2_WEIGHTS = WeightSpec(
    metric="FD-DINOv2",
    filename="dinov2_vitl14_pretrain.safetensors",
    url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
    sha256=None,  # Meta publishes no hash: the file's SHA-256 is reported, keys/shapes checked
    cache="torch_hub",
    note=f"(then convert it to safetensors once: python -c \"{DINOV2_CONVERT}\")",
    format="safetensors",
)


def candidate_paths(spec: WeightSpec, path: str | os.PathLike | None = None) -> list[Path]:
    out = []
    if path is not None:
        p = Path(path).expanduser()
        out.append(p / spec.filename if p.is_dir() or not p.suffix else p)
    env = os.environ.get("SWYCC_WEIGHTS_DIR")
    if env:
        out.append(Path(env).expanduser() / spec.filename)
    out += [d / spec.filename for d in spec.cache_dirs()]
    return out


def find_weights(spec: WeightSpec, path: str | os.PathLike | None = None) -> Path:
    """The first existing candidate, or :class:`MissingWeightsError` naming all of them."""
    paths = candidate_paths(spec, path)
    for p in paths:
        if p.is_file():
            return p
    looked = "\n".join(f"  - {p}" for p in paths)
    raise MissingWeightsError(
        f"{spec.metric} needs the weight file '{spec.filename}', which is not on this machine "
        f"(swycc never downloads). Looked in:\n{looked}\n"
        f"Download it from {spec.url} {spec.note}\n"
        f"and put it in {spec.cache_dirs()[0]}, or in a directory passed as --weights-dir "
        f"(or $SWYCC_WEIGHTS_DIR).")


_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_of(path: str | os.PathLike) -> str:
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def check_hash(spec: WeightSpec, path: Path, expected: str | None = None) -> str:
    """SHA-256 of ``path``; a :class:`WeightsHashError` if it is not the published one.

    ``expected`` overrides the spec's hash (tests, or a user pinning a file).
    """
    expected = expected if expected is not None else spec.sha256
    digest = sha256_of(path)
    if expected is None:
        warnings.warn(f"{path}: no published SHA-256 for {spec.filename}; this file's is "
                      f"{digest} (its keys and shapes are checked on loading)", stacklevel=2)
    elif digest != expected.lower():
        raise WeightsHashError(
            f"{path}: SHA-256 {digest} is not the published {expected} of {spec.filename} "
            f"(a partial download or another file); download it again from {spec.url}")
    return digest


def read_state_dict(path: Path, spec: WeightSpec | None = None,
                    hash_verified: bool = False) -> dict[str, torch.Tensor]:
    """A state dict, tensors as float32 (CLIP ships fp16), from

    - a safetensors file: the only format a ``format="safetensors"`` spec accepts;
    - a ``torch.save`` file, loaded with ``weights_only=True`` (no code runs);
    - a TorchScript archive such as OpenAI's CLIP ``.pt`` files: ``torch.jit.load`` runs the
      archive's code, so only when ``hash_verified`` (its SHA-256 matched a published or
      pinned hash).
    """
    if spec is not None and spec.format == "safetensors":
        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as e:
            raise WeightsFormatError(
                f"{path}: not a safetensors file ({e}); {spec.metric} reads only safetensors: "
                f"download {spec.url} {spec.note}") from None
    elif _is_torchscript(path):
        if not hash_verified:
            raise WeightsFormatError(
                f"{path}: a TorchScript archive with no published or pinned SHA-256; loading it "
                f"would run code from the file, so it is refused")
        with warnings.catch_warnings():  # deprecated in recent torch; the only reader there is
            warnings.simplefilter("ignore", DeprecationWarning)
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict (got {type(state).__name__})")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()
            if torch.is_tensor(v)}


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") for n in z.namelist())


def load_checked(spec: WeightSpec, path: str | os.PathLike | None = None,
                 expected_sha256: str | None = None
                 ) -> tuple[dict[str, torch.Tensor], Path, str]:
    """Find, hash-check and read a weight file: (state dict, path, its SHA-256)."""
    file = find_weights(spec, path)
    digest = check_hash(spec, file, expected_sha256)
    pinned = (expected_sha256 if expected_sha256 is not None else spec.sha256) is not None
    return read_state_dict(file, spec, hash_verified=pinned), file, digest


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
              optional: tuple[str, ...] = ("num_batches_tracked",)) -> None:
    """Strict load that names what does not match; keys ending in ``optional`` may be absent."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(optional)]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{source}: weights do not fit {type(module).__name__}: missing "
                         f"{missing[:4]}, unexpected {unexpected[:4]}, wrong shape {wrong[:4]}")
    module.load_state_dict(state, strict=False)
