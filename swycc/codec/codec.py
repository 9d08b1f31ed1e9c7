"""Images to .swyc bytes and back, with an autoencoder.

    data = compress(model, x, quality=8, model_id=id)     # x (3, H, W) in [-1, 1]
    f = read(data, "photo.swyc", expect_model_id=id)     # checks, or CodecFileError
    z_hat = dequantize(f)                                # (1, C, h, w) float32
    x_hat = model.decode(z_hat, size=(f.height, f.width))

Quantisation: integer rounding of the latent at a uniform step, q = round(z / step),
z_hat = q step. ``--quality`` Q sets step = 2^((4 - Q) / 2): Q = 4 is step 1 (about the latent's
standard deviation for the shipped model), each +2 halves the step (about one more bit per latent
value at fine steps). The table of each channel is a discretised Laplace fitted to this image's
own symbols (``fit_symbol_params``; 8 header bytes per channel), or, given a ``LatentPrior``
(a fit over many images, or an export's latent statistics), that prior at this step.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from swycc.codec.entropy import decode_symbols, encode_symbols
from swycc.codec.fileformat import CodecFileError, SwycFile, pack, unpack
from swycc.codec.prior import MAX_ALPHABET, LatentPrior, fit_symbol_params

QUALITIES = range(1, 17)
DEFAULT_QUALITY = 8


def quality_step(quality: int) -> float:
    """The quantisation step of ``--quality`` Q (1..16), as the float32 a header stores."""
    if quality not in QUALITIES:
        raise ValueError(f"--quality must be an integer from {QUALITIES[0]} to {QUALITIES[-1]}, "
                         f"got {quality}")
    return float(np.float32(2.0 ** ((4 - quality) / 2)))


def quantize(z: torch.Tensor, step: float) -> np.ndarray:
    """(C, h, w) float latent -> int32 symbols round(z / step) (ties to even; the decoder
    never re-rounds). Symbols must fit the header's int16 alphabet bounds."""
    q = torch.round(z.detach().double().cpu() / step)
    if q.numel() and (q.min() < -32768 or q.max() > 32767 or q.max() - q.min() >= MAX_ALPHABET):
        raise ValueError(f"the latent spans more values than a .swyc table holds at step "
                         f"{step:g}; use a lower --quality")
    return q.numpy().astype(np.int32)


def encode_latent(z: torch.Tensor, quality: int, model_id: bytes, size: tuple[int, int],
                  prior: LatentPrior | None = None) -> bytes:
    """One latent (C, h, w) of an image of ``size`` (H, W) -> .swyc bytes."""
    step = quality_step(quality)
    q = quantize(z, step)
    params = fit_symbol_params(q) if prior is None else prior.symbol_params(q, step)
    f = SwycFile(model_id, size[1], size[0], tuple(q.shape), quality, step, params,
                 encode_symbols(q, params))
    return pack(f)


@torch.no_grad()
def compress(model, x: torch.Tensor, quality: int, model_id: bytes,
             prior: LatentPrior | None = None, **tiling) -> bytes:
    """Image (3, H, W) in [-1, 1] -> .swyc bytes (``tiling``: encode's tile keywords)."""
    z = model.encode(x[None].to(next(model.parameters()).device), **tiling)[0]
    return encode_latent(z, quality, model_id, tuple(x.shape[-2:]), prior)


def read(data: bytes, name: str, expect_model_id: bytes | None = None, model=None) -> SwycFile:
    """Parse ``data`` and check it against the decoding model: its identity and, given
    ``model``, the latent's channels and size for the image size."""
    f = unpack(data, name)
    if expect_model_id is not None and f.model_id != expect_model_id:
        raise CodecFileError(f"{name}: made by another model (id {f.model_id.hex()}), not by "
                             f"this checkpoint (id {expect_model_id.hex()}); decompress it with "
                             f"the export that compressed it")
    if model is not None:
        c = model.config.model.latent_channels
        down, stride = model.config.model.encoder.downsample, model.stride
        want = (c, math.ceil(f.height / stride) * stride // down,
                math.ceil(f.width / stride) * stride // down)
        if f.latent_shape != want:
            raise CodecFileError(f"{name}: corrupted header: latent {f.latent_shape} does not "
                                 f"fit a {f.width}x{f.height} image for this model {want}")
    return f


def decode_latent(f: SwycFile) -> torch.Tensor:
    """The dequantised latent (1, C, h, w) float32: symbols times the step."""
    c, h, w = f.latent_shape
    q = decode_symbols(f.payload, f.channels, h, w)
    return (torch.from_numpy(q.astype(np.float64)) * f.step).float()[None]


def file_bpp(nbytes: int, height: int, width: int) -> float:
    """Bits per pixel of a file of ``nbytes`` (all of it: header, tables and payload)."""
    return 8.0 * nbytes / (height * width)


@torch.no_grad()
def decode_image(model, f, decoder: str, steps, guidance, generator, device,
                 tiling: dict) -> torch.Tensor:
    """A read .swyc file -> (3, H, W) at its original size: samples of the diffusion decoder,
    or the deterministic first reconstruction (tiled like ``decode`` above the tile size)."""
    z = decode_latent(f).to(device)
    size = (f.height, f.width)
    if decoder == "initial":
        plan = model.tile_plan(z, tiling["tile"], tiling["tile_size"], tiling["tile_overlap"])
        return plan.latent_map(model.decode_initial, z)[0, :, :size[0], :size[1]].clamp(-1, 1)
    return model.decode(z, steps, guidance, generator=generator, size=size, **tiling)[0]


__all__ = ["DEFAULT_QUALITY", "QUALITIES", "CodecFileError", "compress", "decode_image", "decode_latent",
           "encode_latent", "file_bpp", "quality_step", "quantize", "read"]
