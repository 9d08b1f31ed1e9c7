"""The user-facing autoencoder: SWYCC (diffusion decoder) and the GAN baseline (one step).

    model = SWYCC.from_pretrained("runs/demo/export")
    z = model.encode(x)                                     # x: (N, 3, H, W) in [-1, 1]
    x_hat = model.decode(z, steps=20, guidance=0.5)         # (N, 3, H, W)
    xs = model.reconstruct(x, samples=4, generator=g)       # (N, 4, 3, H, W)

Any image size works: inputs are padded (reflect) to a multiple of the networks' stride and the
outputs cropped back. Weights live in one safetensors file with the config JSON in its metadata.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from swycc.config import Config
from swycc.diffusion import logsnr
from swycc.nn.autoencoder_nets import Decoder, Encoder
from swycc.nn.unet import UNet
from swycc.sampling import ddim_sample

WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or made for another configuration."""


class SWYCC(nn.Module):
    """Encoder E, D_Initial and (for method "swycc") the diffusion decoder D_Refine."""

    def __init__(self, config: Config):
        super().__init__()
        m = config.model
        if m.method not in ("swycc", "gan"):
            raise ValueError(f"model.method must be 'swycc' or 'gan', got {m.method!r}")
        self.config = config
        self.encoder = Encoder(m.encoder)
        self.d_initial = Decoder(m.decoder, m.latent_channels)
        self.d_refine = UNet(m.unet, m.image_size) if m.method == "swycc" else None

    # ---- construction and files -------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Config) -> SWYCC:
        return cls(config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, map_location: str = "cpu") -> SWYCC:
        file = _weights_file(path)
        config = read_config(file)
        model = cls(config)
        try:
            state = load_file(str(file), device=map_location)
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{file}: cannot read weights ({e})") from None
        missing, unexpected = _diff_keys(model.state_dict(), state)
        if missing or unexpected:
            raise CheckpointError(f"{file}: weights do not match its config "
                                  f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        model.load_state_dict(state)
        return model.eval()

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write ``path/model.safetensors`` (config JSON in the metadata), atomically.

        ``dtype`` (e.g. torch.float16) stores floating-point weights at that precision to halve
        the file; loading always restores float32 modules.
        """
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        file = out / WEIGHTS_NAME
        state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
                 .detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp = file.with_suffix(".tmp")
        save_file(state, str(tmp), metadata={"format": "swycc", "config": self.config.to_json()})
        os.replace(tmp, file)
        return file

    # ---- geometry -----------------------------------------------------------------------------
    @property
    def stride(self) -> int:
        """Inputs must be a multiple of this (encoder downsampling, and the U-Net's levels)."""
        m = self.config.model
        s = m.encoder.downsample
        if self.d_refine is not None:
            s = math.lcm(s, m.unet.input_patch * 2 ** (len(m.unet.channel_mults) - 1))
        return s

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
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) in [-1, 1] -> z (N, C, ceil(H/s)*s/8, ...), s = self.stride."""
        x, _ = self._pad(x)
        return self.encoder(x)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """v_hat = D_Refine(concat(x_t, D_Initial(z)), logSNR(t)); cond = 0 is unconditional."""
        assert self.d_refine is not None
        return self.d_refine(torch.cat([x_t, cond.to(x_t.dtype)], dim=1), logsnr(t))

    def check_latents(self, z: torch.Tensor) -> None:
        c = self.config.model.latent_channels
        if z.ndim != 4 or z.shape[1] != c:
            raise ValueError(f"latents must have shape (N, {c}, h, w) for this model, "
                             f"got {tuple(z.shape)}")

    @torch.no_grad()
    def decode(self, z: torch.Tensor, steps: int | None = None, guidance: float | None = None,
               samples: int | None = None, generator: torch.Generator | None = None,
               size: tuple[int, int] | None = None) -> torch.Tensor:
        """Sample x ~ p(x | z): (N, 3, H, W), or (N, S, 3, H, W) when ``samples=S``.

        SWYCC: DDIM with ``steps`` (default config.sampling.steps) and guidance w (default 0.5);
        the S samples of each latent run in one batch. GAN: the deterministic decoder (S copies).
        ``size`` crops the output back to an original (H, W).
        """
        self.check_latents(z)
        s = self.config.sampling
        steps = s.steps if steps is None else steps
        guidance = s.guidance if guidance is None else guidance
        k = 1 if samples is None else samples
        if k < 1:
            raise ValueError(f"samples must be >= 1, got {k}")
        base = self.d_initial(z).float()
        if self.d_refine is None:
            out = base.unsqueeze(1).expand(-1, k, -1, -1, -1)
        else:
            cond = base.repeat_interleave(k, dim=0)
            residual = self.config.model.unet.predict_residual
            x = ddim_sample(self.denoise, cond, steps, guidance, generator,
                            clip=2.0 if residual else 1.0)
            out = (x + cond if residual else x).unflatten(0, (-1, k))
        out = out.clamp(-1, 1)
        if size is not None:
            out = out[..., : size[0], : size[1]]
        return out[:, 0] if samples is None else out

    @torch.no_grad()
    def decode_initial(self, z: torch.Tensor) -> torch.Tensor:
        """The deterministic first reconstruction D_Initial(z), (N, 3, H, W)."""
        self.check_latents(z)
        return self.d_initial(z).clamp(-1, 1)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, steps: int | None = None, guidance: float | None = None,
                    samples: int | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        xp, size = self._pad(x)
        return self.decode(self.encoder(xp), steps, guidance, samples, generator, size=size)

    def compile_networks(self) -> None:
        """torch.compile E, D_Initial and D_Refine in place: parameter names, state dicts and
        checkpoints are unchanged."""
        for net in (self.encoder, self.d_initial, self.d_refine):
            if net is not None:
                net.compile()

    @torch.no_grad()
    def reconstruct_initial(self, x: torch.Tensor) -> torch.Tensor:
        xp, (h, w) = self._pad(x)
        return self.decode_initial(self.encoder(xp))[..., :h, :w]


def _weights_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    file = p / WEIGHTS_NAME if p.is_dir() else p
    if not file.exists():
        raise CheckpointError(f"{file}: no such checkpoint (expected a directory holding "
                              f"{WEIGHTS_NAME}, or a .safetensors file)")
    return file


def read_config(path: str | os.PathLike) -> Config:
    """The Config stored in a safetensors file's metadata."""
    file = _weights_file(path)
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file}: not a safetensors checkpoint ({e})") from None
    if "config" not in meta:
        raise CheckpointError(f"{file}: no swycc config in its metadata")
    try:
        return Config.from_dict(json.loads(meta["config"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{file}: config in metadata is invalid ({e})") from None


def _diff_keys(expected: dict, got: dict) -> tuple[list[str], list[str]]:
    missing = sorted(k for k in expected if k not in got or got[k].shape != expected[k].shape)
    unexpected = sorted(k for k in got if k not in expected)
    return missing, unexpected


load_autoencoder = SWYCC.from_pretrained
