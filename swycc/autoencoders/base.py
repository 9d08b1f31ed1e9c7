"""The user-facing autoencoder API, common to every kind (swycc, gan, dgae;
``swycc.autoencoders.kinds``).

    model = Autoencoder.from_pretrained("runs/demo/export")   # the right kind for the file
    z = model.encode(x)                                        # x: (N, 3, H, W) in [-1, 1]
    x_hat = model.decode(z, steps=20, guidance=0.5)            # (N, 3, H, W)
    xs = model.reconstruct(x, samples=4, generator=g)          # (N, 4, 3, H, W)
    model = Autoencoder.from_pretrained("org/name", revision="main")   # a Hub id

Any image size works: inputs are padded (reflect) to a multiple of the networks' stride and the
outputs cropped back; ``encode`` records the input's (H, W) on the latent tensor it returns
(``z.image_size``) and ``decode`` crops to it, so ``decode(encode(x))`` has x's size (pass
``size=`` for latents from elsewhere). Weights live in one safetensors file with the config JSON
and the latents' per-channel statistics (``swycc.autoencoders.latent_stats``) in its metadata.
Precision: ``model.to(torch.bfloat16)`` (or float16) runs the networks at that precision under
autocast; inputs, the sampler's schedule maths and the returned tensors stay float32.
A kind subclasses ``Autoencoder``, sets ``kind`` (registered by ``__init_subclass__``, so the base
finds its subclasses without asking upward) and implements ``_decode``; its training recipe and
defaults are registered in ``swycc.autoencoders.kinds``.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch import nn

from swycc.config import Config
from swycc.config_types import ConfigError, loads_json
from swycc.io.files import file_kind, save_safetensors
from swycc.autoencoders.latent_stats import STATS_KEY, LatentStats, LatentStatsError
from swycc.nn.autoencoder_nets import Encoder
from swycc.autoencoders.tiling import (DEFAULT_OVERLAP, DEFAULT_TILE, TilePlan, auto_tile,
                          tiled_encode)

WEIGHTS_NAME = "model.safetensors"
NETWORK_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or made for another configuration."""


_KIND_CLASSES: dict[str, type[Autoencoder]] = {}  # model.method -> class, filled by subclassing


def kind_class(method: str) -> type[Autoencoder]:
    """The model class of the autoencoder kind ``method``; ConfigError naming model.method."""
    if method not in _KIND_CLASSES:
        raise ConfigError("model.method", f"must be one of {', '.join(sorted(_KIND_CLASSES))}; "
                                          f"got {method!r}")
    return _KIND_CLASSES[method]


class Autoencoder(nn.Module):
    """Encoder E plus a kind's decoder. Subclasses set ``kind`` and implement ``_decode``."""

    kind: str = ""
    summary: str = ""  # one line for --help, `swycc info` and model cards
    samples: bool = False  # the decoder samples: steps, guidance, samples and seeds apply
    initial_label: str | None = None  # label of decode_initial() in grids and tables; None: none

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            if cls.kind in _KIND_CLASSES:
                raise ValueError(f"autoencoder kind {cls.kind!r} is already registered")
            _KIND_CLASSES[cls.kind] = cls

    def __init__(self, config: Config):
        super().__init__()
        if config.model.method != self.kind:
            raise ValueError(f"{type(self).__name__} needs model.method={self.kind!r}, "
                             f"got {config.model.method!r}")
        self.config = config
        self.encoder = Encoder(config.model.encoder, self.encoder_out_channels(config))
        self.latent_stats: LatentStats | None = None  # per-channel mean/std (swycc.autoencoders.latent_stats)

    @staticmethod
    def encoder_out_channels(config: Config) -> int:
        return config.model.latent_channels

    # ---- construction and files -------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Config) -> Autoencoder:
        """The model of ``config``'s kind (on ``Autoencoder``), or of this class's kind."""
        return (kind_class(config.model.method) if cls is Autoencoder else cls)(config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, map_location: str = "cpu",
                        revision: str | None = None, torch_dtype: torch.dtype | None = None,
                        cache_dir: str | os.PathLike | None = None,
                        token: str | bool | None = None) -> Autoencoder:
        """Load an exported model: a local directory or .safetensors file, or a Hub id
        ``org/name`` (``revision``, ``cache_dir``, ``token``, offline mode:
        ``swycc.autoencoders.hub``).
        ``Autoencoder.from_pretrained`` returns the file's kind, a kind's class (e.g.
        ``SWYCC.from_pretrained``) refuses a file of another kind. ``torch_dtype``: float32
        (default), bfloat16 or float16 networks."""
        from swycc.autoencoders.hub import resolve_export

        check_network_dtype(torch_dtype or torch.float32)
        file = weights_file(resolve_export(path, revision, cache_dir, token))
        config = read_config(file)
        if cls is not Autoencoder and config.model.method != cls.kind:
            raise CheckpointError(f"{file}: holds a {config.model.method!r} model, not "
                                  f"{cls.kind!r} (load it with Autoencoder.from_pretrained)")
        check_weight_shapes(file, config)  # before any network is built
        model = Autoencoder.from_config(config)
        try:
            state = load_file(str(file), device=map_location)
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{file}: cannot read weights ({e})") from None
        model.load_state_dict(state)
        model.latent_stats = read_latent_stats(file)
        if torch_dtype is not None:
            model.to(torch_dtype)
        return model.eval()

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None,
                        model_card: bool = True,
                        ship_check: str | os.PathLike | None = None) -> Path:
        """Write ``path/model.safetensors`` (config JSON and latent statistics in the metadata)
        and a model card ``path/README.md`` (``swycc.autoencoders.model_card``: data, steps, latent
        statistics, and the metrics of a ship-check ``report.json`` when given), atomically.

        ``dtype`` (e.g. torch.float16) stores floating-point weights at that precision to halve
        the file; loading restores float32 modules unless ``from_pretrained(torch_dtype=)``.
        """
        from swycc.autoencoders.model_card import card_text, write_model_card

        card = card_text(self, ship_check) if model_card else None  # a bad report: nothing written
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        file = out / WEIGHTS_NAME
        state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
                 .detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp = file.with_suffix(".tmp")
        meta = {"format": "swycc", "config": self.config.to_json()}
        if self.latent_stats is not None:
            meta[STATS_KEY] = self.latent_stats.to_json()
        save_safetensors(state, tmp, metadata=meta)
        os.replace(tmp, file)
        if card is not None:
            write_model_card(out, card)
        return file

    # ---- precision ----------------------------------------------------------------------------
    @property
    def network_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def precision(self) -> contextlib.AbstractContextManager:
        """The context the networks run in: nothing for float32 weights (bit-identical to
        before), autocast at the weights' dtype for bfloat16 / float16 ones (inputs are cast at
        each network op; norms and the sampler's schedule maths stay float32)."""
        dtype = self.network_dtype
        check_network_dtype(dtype)
        if dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(next(self.parameters()).device.type, dtype=dtype)

    # ---- what the kind offers -----------------------------------------------------------------
    def parts(self) -> dict[str, nn.Module]:
        """Named networks, for parameter counts (``swycc info``)."""
        return {"encoder": self.encoder}

    def compile_networks(self) -> None:
        """torch.compile every network in place: parameter names, state dicts and checkpoints
        are unchanged."""
        for net in self.parts().values():
            net.compile()

    # ---- geometry -----------------------------------------------------------------------------
    @property
    def stride(self) -> int:
        """Inputs must be a multiple of this (the encoder's downsampling and the decoder's)."""
        return self.config.model.encoder.downsample

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        ph, pw = -h % self.stride, -w % self.stride
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, (h, w)

    # ---- the method -----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, tile: bool | None = None, tile_size: int = DEFAULT_TILE,
               tile_overlap: int = DEFAULT_OVERLAP) -> torch.Tensor:
        """x (N, 3, H, W) in [-1, 1] -> z (N, C, ceil(H/s)*s/8, ...), s = self.stride.
        ``tile``: True / False, or None = tiles above ``AUTO_TILE_FACTOR`` tiles of pixels
        (with a warning saying so). z is float32 and carries ``z.image_size`` = x's (H, W)."""
        x, size = self._pad(x)
        with self.precision():
            if auto_tile(*x.shape[-2:], tile_size, tile):
                z = tiled_encode(self._encode_padded, x, tile_size, tile_overlap,
                                 self.config.model.encoder.downsample)
            else:
                z = self._encode_padded(x)
        z = z.float()
        z.image_size = size  # decode() crops back to it (a plain attribute: copies drop it)
        return z

    def _encode_padded(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def tile_plan(self, z: torch.Tensor, tile: bool | None, tile_size: int = DEFAULT_TILE,
                  tile_overlap: int = DEFAULT_OVERLAP, on_tile=None) -> TilePlan:
        ds = self.config.model.encoder.downsample
        if not auto_tile(ds * z.shape[-2], ds * z.shape[-1], tile_size, tile):
            return TilePlan(None, on_tile=on_tile)  # whole: on_tile once per evaluation
        return TilePlan(tile_size, tile_overlap, ds, self.stride, on_tile)

    def check_latents(self, z: torch.Tensor) -> None:
        c = self.config.model.latent_channels
        if z.ndim != 4 or z.shape[1] != c:
            raise ValueError(f"latents must have shape (N, {c}, h, w) for this model, "
                             f"got {tuple(z.shape)}")
        if not z.is_floating_point():
            raise ValueError(f"latents must be floating point, got {z.dtype}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError("latents contain NaN or Inf values")

    @torch.no_grad()
    def decode(self, z: torch.Tensor, steps: int | None = None, guidance: float | None = None,
               samples: int | None = None, generator: torch.Generator | None = None,
               size: tuple[int, int] | None = None, tile: bool | None = None,
               tile_size: int = DEFAULT_TILE, tile_overlap: int = DEFAULT_OVERLAP,
               on_tile=None) -> torch.Tensor:
        """Sample x ~ p(x | z): (N, 3, H, W), or (N, S, 3, H, W) when ``samples=S``.

        Sampling kinds: DDIM with ``steps`` (default config.sampling.steps) and guidance w
        (default config.sampling.guidance); the S samples of each latent run in one batch.
        Deterministic kinds: one decoder pass (S copies). ``size`` crops to an original (H, W)
        (default: ``z.image_size`` when ``encode`` made z, else the latents' full size).
        ``tile``: overlapping tiles blended with ramps, one global sampler
        (``swycc.autoencoders.tiling``);
        None = on above ``AUTO_TILE_FACTOR`` tiles of pixels, with a warning; ``on_tile()`` is
        called after every network evaluation, a tile or a whole image (a progress bar's update;
        ``progress_total`` counts them). No gradients: see ``decode_initial(grad=True)``.
        """
        self.check_latents(z)
        s = self.config.sampling
        steps = s.steps if steps is None else steps
        guidance = s.guidance if guidance is None else guidance
        k = 1 if samples is None else samples
        if k < 1:
            raise ValueError(f"samples must be >= 1, got {k}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if not math.isfinite(guidance):
            raise ValueError(f"guidance must be a finite number, got {guidance}")
        plan = self.tile_plan(z, tile, tile_size, tile_overlap, on_tile)
        size = getattr(z, "image_size", None) if size is None else size
        with self.precision():
            out = self._decode(z.float(), steps, guidance, k, generator, plan).float()
        out = out.clamp(-1, 1)
        if size is not None:
            out = out[..., : size[0], : size[1]]
        return out[:, 0] if samples is None else out

    def _decode(self, z: torch.Tensor, steps: int, guidance: float, k: int,
                generator: torch.Generator | None, plan: TilePlan) -> torch.Tensor:
        """(N, C, h, w) -> (N, k, 3, H, W), not clamped; networks run through ``plan``."""
        raise NotImplementedError

    @property
    def initial_decoder(self) -> nn.Module | None:
        """The deterministic decoder (SWYCC: D_Initial; GAN: its decoder), or None."""
        return None

    def decode_initial(self, z: torch.Tensor, grad: bool = False,
                       size: tuple[int, int] | None = None) -> torch.Tensor:
        """A deterministic reconstruction (SWYCC: D_Initial(z); GAN: its decoder), (N, 3, H, W)
        in [-1, 1]. ``grad=True`` keeps the autograd graph, for optimising latents:
        d loss / d z through the decoder (the final clamp passes no gradient where it clips).
        ``size`` as in ``decode``."""
        net = self.initial_decoder
        if net is None:
            raise NotImplementedError(f"a {self.kind} autoencoder has no deterministic decoder")
        self.check_latents(z)
        size = getattr(z, "image_size", None) if size is None else size
        with torch.set_grad_enabled(grad), self.precision():
            out = net(z.float()).float().clamp(-1, 1)
        return out if size is None else out[..., : size[0], : size[1]]

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the latents of an H x W image (padded to the stride first)."""
        s, ds = self.stride, self.config.model.encoder.downsample
        return -(-height // s) * s // ds, -(-width // s) * s // ds

    def progress_total(self, latent_hw: tuple[int, int], steps: int | None = None,
                       tile: bool | None = None, tile_size: int = DEFAULT_TILE,
                       tile_overlap: int = DEFAULT_OVERLAP) -> int:
        """How many times ``decode`` calls ``on_tile`` for latents of ``latent_hw`` = (h, w):
        the latent-side network's tiles (one when untiled), plus, for sampling kinds, the
        denoiser's tiles at each of ``steps``."""
        from swycc.autoencoders.tiling import count_tiles

        ds = self.config.model.encoder.downsample
        h, w = ds * latent_hw[0], ds * latent_hw[1]
        tiled = auto_tile(h, w, tile_size, tile, warn=False)
        first = count_tiles(*latent_hw, tile_size // ds, tile_overlap // ds) if tiled else 1
        if not self.samples:
            return first
        steps = self.config.sampling.steps if steps is None else steps
        per_step = count_tiles(h, w, tile_size, tile_overlap, self.stride) if tiled else 1
        return first + steps * per_step

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, steps: int | None = None, guidance: float | None = None,
                    samples: int | None = None, generator: torch.Generator | None = None,
                    tile: bool | None = None, tile_size: int = DEFAULT_TILE,
                    tile_overlap: int = DEFAULT_OVERLAP, on_tile=None) -> torch.Tensor:
        xp, size = self._pad(x)
        z = self.encode(xp, tile, tile_size, tile_overlap)
        return self.decode(z, steps, guidance, samples, generator, size=size, tile=tile,
                           tile_size=tile_size, tile_overlap=tile_overlap, on_tile=on_tile)

    @torch.no_grad()
    def reconstruct_initial(self, x: torch.Tensor) -> torch.Tensor:
        xp, (h, w) = self._pad(x)
        return self.decode_initial(self.encode(xp))[..., :h, :w]


def check_network_dtype(dtype: torch.dtype) -> None:
    if dtype not in NETWORK_DTYPES:
        raise ValueError(f"swycc networks run in float32, bfloat16 or float16, not {dtype}")


def read_latent_stats(path: str | os.PathLike) -> LatentStats | None:
    """The latent statistics an export records, or None (exports made before they existed)."""
    file = weights_file(path)
    with safe_open(str(file), framework="pt") as f:
        text = (f.metadata() or {}).get(STATS_KEY)
    if text is None:
        return None
    try:
        return LatentStats.from_json(text)
    except LatentStatsError as e:
        raise CheckpointError(f"{file}: {e}") from None


def unet_stride(config: Config) -> int:
    """Input multiple for an encoder + U-Net decoder: the encoder's downsampling and the
    U-Net's (input patch x 2 per level)."""
    u = config.model.unet
    return math.lcm(config.model.encoder.downsample,
                    u.input_patch * 2 ** (len(u.channel_mults) - 1))


def weights_file(path: str | os.PathLike) -> Path:
    """The weights file of an export (a directory holding model.safetensors, or the file), a
    regular file: a FIFO (which would block the read), directory, socket or device is refused."""
    p = Path(path)
    file = p / WEIGHTS_NAME if p.is_dir() else p
    kind = file_kind(file)
    if kind == "missing":
        raise CheckpointError(f"{file}: no such checkpoint (expected a directory holding "
                              f"{WEIGHTS_NAME}, or a .safetensors file)")
    if kind is not None:
        raise CheckpointError(f"{file}: is {kind}, not a regular file (expected a checkpoint: "
                              f"a directory holding {WEIGHTS_NAME}, or a .safetensors file)")
    return file


def check_weight_shapes(file: Path, config: Config) -> None:
    """The tensor names and shapes of ``file``'s header against those ``config``'s networks
    have, built on the meta device (no memory): a crafted file cannot make us build networks
    its weights do not fit. CheckpointError naming the first differences."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Autoencoder.from_config(config)
                    .state_dict().items()}
    try:
        with safe_open(str(file), framework="pt") as f:
            got = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file}: cannot read weights ({e})") from None
    missing = sorted(k for k in expected if k not in got)
    unexpected = sorted(k for k in got if k not in expected)
    shapes = [f"{k}: {got[k]} in the file, {expected[k]} in its config"
              for k in sorted(expected) if k in got and got[k] != expected[k]]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{file}: weights do not match its config (shapes differ: "
                              f"{shapes[:2]}; missing {missing[:3]}; unexpected "
                              f"{unexpected[:3]})")


def weights_sha256(path: str | os.PathLike) -> str:
    """sha256 over a checkpoint's tensors (name, dtype, shape, bytes; sorted by name), not over
    its file: safetensors writes the header's metadata in an arbitrary order, so two exports of
    the same weights and config can differ byte for byte."""
    import hashlib

    digest = hashlib.sha256()
    with safe_open(str(weights_file(path)), "pt") as f:
        for name in sorted(f.keys()):
            t = f.get_tensor(name).contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_config(path: str | os.PathLike) -> Config:
    """The Config stored in a safetensors file's metadata."""
    file = weights_file(path)
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file}: not a safetensors checkpoint ({e})") from None
    if "config" not in meta:
        raise CheckpointError(f"{file}: no swycc config in its metadata")
    try:
        config = Config.from_dict(loads_json(meta["config"]))
        kind_class(config.model.method)
        return config
    except (ValueError, TypeError, RecursionError) as e:
        raise CheckpointError(f"{file}: config in metadata is invalid ({e})") from None


def load_autoencoder(path: str | os.PathLike, map_location: str = "cpu") -> Autoencoder:
    """The exported autoencoder at ``path``, of whichever kind it holds."""
    return Autoencoder.from_pretrained(path, map_location)
