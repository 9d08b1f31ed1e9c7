"""Tiled encoding and decoding of any image size, with memory bounded by the tile.

The image is covered by overlapping tiles; each tile goes through the network on its own and the
outputs are blended with separable linear ramps, normalised so the weights sum to 1 everywhere
(a partition of unity): out = sum_i w_i f(tile_i), sum_i w_i = 1. The outer quarter of the
overlap on each side is context only (weight 0), so a tile's padding effects never reach the
output: a network whose receptive field fits that margin gives the untiled result exactly.
Networks with GroupNorm or attention see per-tile statistics, so where the image exceeds one tile
the result differs from the untiled one (without seams); where it fits one tile it is identical.

Diffusion decoding tiles the *denoiser*, not the sampler (MultiDiffusion, Bar-Tal et al. 2023):
``tiled_denoiser`` evaluates v_hat tile by tile and blends the predictions, while DDIM runs on the
whole image. The noise is drawn once for the whole image and every DDIM update sees one blended
v, so neighbouring tiles share x_t at every step: there is no seam from independent noise.
Full-size tensors (x_t, D_Initial(z), v) are O(pixels) and small; network activations are
bounded by the tile.

    cond = tiled_map(d_initial, z, tile // 8, overlap // 8, scale=8)
    x = ddim_sample(tiled_denoiser(denoise, tile, overlap, align=stride), cond, steps, ...)

``Autoencoder.decode(tile=...)`` does this for every kind through a ``TilePlan``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from fractions import Fraction

import torch

from swycc.diffusion.sampling import Denoiser

DEFAULT_TILE = 256  # pixels; a multiple of every preset's stride (paper: 16)
DEFAULT_OVERLAP = 64  # pixels blended between neighbouring tiles
AUTO_TILE_FACTOR = 4  # --tile is on by default when H * W > AUTO_TILE_FACTOR * tile^2


class TilingError(ValueError):
    """Tile, overlap and image sizes that do not fit together."""


# ---- geometry -----------------------------------------------------------------------------------
def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering [0, length), neighbours overlapping by
    at least ``overlap``, spread evenly; starts are multiples of ``align`` except possibly the
    last (= length - tile). One tile (start 0, the whole length) when length <= tile."""
    if tile < 1 or overlap < 0 or align < 1:
        raise TilingError(f"need tile >= 1, overlap >= 0, align >= 1; got tile={tile}, "
                          f"overlap={overlap}, align={align}")
    if length <= tile:
        return [0]
    if tile - overlap < align:
        raise TilingError(f"tile ({tile}) must exceed overlap ({overlap}) by at least the "
                          f"alignment ({align})")
    n = max(2, math.ceil((length - overlap) / (tile - overlap)))
    while True:
        starts = [align * int(i * (length - tile) / (n - 1) // align) for i in range(n - 1)]
        starts = sorted(set(starts)) + [length - tile]
        if all(b - a <= tile - overlap for a, b in zip(starts, starts[1:])):
            return starts
        n += 1


def tile_edges(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Positions inside (0, length) where a tile begins or ends: where seams would show."""
    starts = tile_starts(length, tile, overlap, align)
    ends = [s + min(tile, length) for s in starts]
    return sorted({p for p in starts + ends if 0 < p < length})


def ramp_weights(length: int, tile: int, overlap: int, align: int = 1,
                 scale: Fraction | int = 1) -> list[tuple[int, torch.Tensor]]:
    """[(output start, 1-D weights over the tile's output extent)] along one axis.

    Input tiles as in ``tile_starts``; outputs are ``scale`` times the input (8 for a decoder,
    1/8 for an encoder). On each side that faces another tile, the outer quarter of the overlap
    (``m`` = overlap * scale // 4 output px) is context only, weight 0, so padding effects at a
    tile's edge never reach the output; then a linear ramp over the middle R = overlap * scale
    - 2 m px: raw weight clamp((k + 1/2 - m) / R, 0, 1). The raw weights are divided by their
    sum over tiles at each position, so they sum to 1 everywhere (a partition of unity).
    """
    out_len, out_tile = _scaled(length, scale), _scaled(min(tile, length), scale)
    margin = _scaled(overlap, scale) // 4
    ramp = _scaled(overlap, scale) - 2 * margin
    starts = tile_starts(length, tile, overlap, align)
    k = torch.arange(out_tile, dtype=torch.float64) + 0.5
    up = ((k - margin) / ramp).clamp(0, 1) if ramp > 0 else (k >= margin).double()
    raw = []
    for i, s in enumerate(starts):
        w = torch.ones(out_tile, dtype=torch.float64)
        if i > 0:
            w = torch.minimum(w, up)
        if i < len(starts) - 1:
            w = torch.minimum(w, up.flip(0))
        raw.append((_scaled(s, scale), w))
    total = torch.zeros(out_len, dtype=torch.float64)
    for a, w in raw:
        total[a: a + out_tile] += w
    return [(a, (w / total[a: a + out_tile]).float()) for a, w in raw]


def _scaled(n: int, scale: Fraction | int) -> int:
    v = Fraction(n) * Fraction(scale)
    if v.denominator != 1:
        raise TilingError(f"{n} pixels scaled by {scale} is not a whole number of pixels")
    return int(v)


# ---- blending ---------------------------------------------------------------------------------
def tiled_map(fn: Callable[..., torch.Tensor], inputs: torch.Tensor | Sequence[torch.Tensor],
              tile: int, overlap: int, scale: Fraction | int = 1, align: int = 1,
              on_tile: Callable[[], object] | None = None) -> torch.Tensor:
    """Apply ``fn`` tile by tile to same-sized (N, *, H, W) ``inputs`` and blend the outputs.

    ``fn(*tiles)`` maps input tiles (N, *, t_h, t_w) to (N', C, t_h * scale, t_w * scale);
    ``tile`` and ``overlap`` are in input pixels, starts are multiples of ``align``. ``fn`` only
    ever sees one tile: its memory is bounded by the tile. Output: float32 (or wider).
    ``on_tile()`` is called after each tile (a progress bar's update).
    """
    xs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    h, w = xs[0].shape[-2:]
    if any(x.shape[-2:] != (h, w) for x in xs):
        raise TilingError(f"tiled inputs differ in size: {[tuple(x.shape) for x in xs]}")
    rows = ramp_weights(h, tile, overlap, align, scale)
    cols = ramp_weights(w, tile, overlap, align, scale)
    th, tw = min(tile, h), min(tile, w)
    out = None
    for (ay, wy), sy in zip(rows, tile_starts(h, tile, overlap, align)):
        for (ax, wx), sx in zip(cols, tile_starts(w, tile, overlap, align)):
            f = fn(*(x[..., sy: sy + th, sx: sx + tw] for x in xs))
            if f.shape[-2:] != (len(wy), len(wx)):
                raise TilingError(f"a {th}x{tw} tile gave {tuple(f.shape[-2:])}, expected "
                                  f"{len(wy)}x{len(wx)} (scale {scale})")
            if out is None:
                dtype = torch.promote_types(f.dtype, torch.float32)
                out = torch.zeros(*f.shape[:-2], _scaled(h, scale), _scaled(w, scale),
                                  dtype=dtype, device=f.device)
            weight = (wy[:, None] * wx[None, :]).to(out.device, out.dtype)
            out[..., ay: ay + len(wy), ax: ax + len(wx)] += f.to(out.dtype) * weight
            if on_tile is not None:
                on_tile()
    return out


def count_tiles(height: int, width: int, tile: int, overlap: int, align: int = 1) -> int:
    return len(tile_starts(height, tile, overlap, align)) * len(tile_starts(width, tile, overlap,
                                                                            align))


def tiled_encode(encode_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int,
                 overlap: int, stride: int) -> torch.Tensor:
    """Encode (N, 3, H, W) tile by tile, blending the latents (tile/stride sized) in latent space.

    H, W, tile and overlap must be multiples of the encoder's downsampling ``stride``.
    """
    for name, v in (("image height", x.shape[-2]), ("image width", x.shape[-1]), ("tile", tile),
                    ("overlap", overlap)):
        if v % stride:
            raise TilingError(f"{name} ({v}) must be a multiple of the encoder stride {stride}")
    return tiled_map(encode_fn, x, tile, overlap, scale=Fraction(1, stride), align=stride)


def tiled_denoiser(denoiser: Denoiser, tile: int, overlap: int, align: int = 1,
                   on_tile: Callable[[], object] | None = None) -> Denoiser:
    """``denoiser(x_t, t, cond) -> v_hat`` evaluated tile by tile, v predictions blended.

    Same signature and any batch (guidance stacks conditional and unconditional rows); ``align``
    (the U-Net's stride) keeps every tile on the network's downsampling grid.
    """
    def blended(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return tiled_map(lambda xt, c: denoiser(xt, t, c), (x_t, cond), tile, overlap,
                         align=align, on_tile=on_tile)

    return blended


def auto_tile(height: int, width: int, tile: int = DEFAULT_TILE,
              choice: bool | None = None, warn: bool = True) -> bool:
    """--tile / --no-tile (True / False), or by default (None): tile when H * W exceeds
    AUTO_TILE_FACTOR tiles' worth of pixels, saying so in a ``TilingWarning`` (tiled output
    differs from a single pass where networks see per-tile statistics)."""
    if choice is not None:
        return choice
    tiled = height * width > AUTO_TILE_FACTOR * tile * tile
    if tiled and warn:
        warnings.warn(f"{height}x{width} px is above the automatic tiling threshold "
                      f"({AUTO_TILE_FACTOR} tiles of {tile}x{tile} px): processing it in tiles; "
                      f"pass tile=True (--tile) to choose tiling, tile=False (--no-tile) for one "
                      f"pass", TilingWarning, stacklevel=3)
    return tiled


class TilingWarning(UserWarning):
    """Tiling was switched on automatically (no explicit tile= / --tile choice)."""


# ---- the seam measure -------------------------------------------------------------------------
def seam_energy_ratio(img: torch.Tensor, edges_h: Sequence[int], edges_w: Sequence[int],
                      band: int = 2, margin: int = 0) -> float:
    """Gradient energy within ``band`` px of tile borders over the energy elsewhere.

    Energy = mean squared finite difference across the border direction: horizontal differences
    x[..., j+1] - x[..., j] near vertical borders (``edges_w``), vertical ones near horizontal
    borders (``edges_h``). Each axis gives a ratio; returned: the one farthest from 1 (1 = no
    seam). ``margin`` px at the image frame are left out of both sets (padding effects).
    """
    ratios = []
    for dim, edges in ((-1, edges_w), (-2, edges_h)):
        if not edges:
            continue
        d2 = img.detach().double().diff(dim=dim).pow(2).movedim(dim, 0).flatten(1).mean(1)
        # x[j+1] - x[j] sits on the boundary j + 1 between its pixels, as a tile edge does
        pos = torch.arange(d2.shape[0], dtype=torch.float64) + 1
        near = torch.zeros_like(pos, dtype=torch.bool)
        for e in edges:
            near |= (pos - e).abs() <= band
        inside = (pos > margin) & (pos < d2.shape[0] + 1 - margin)
        far = ~near & inside
        if not far.any():
            raise TilingError("no pixels away from the tile borders to compare with")
        ratios.append(float(d2[near & inside].mean() / d2[far].mean()))
    if not ratios:
        raise TilingError("no tile borders inside the image")
    return max(ratios, key=lambda r: abs(r - 1))


def gradient_image(size: int, channels: int = 3) -> torch.Tensor:
    """(1, C, size, size) smooth diagonal ramps in [-0.8, 0.8], a different direction per
    channel: constant finite differences along both axes, so any seam shows."""
    u = torch.linspace(-1, 1, size)
    angles = torch.arange(channels) * (math.pi / (2 * channels)) + math.pi / 8
    img = torch.cos(angles)[:, None, None] * u[None, :, None] \
        + torch.sin(angles)[:, None, None] * u[None, None, :]
    return (0.8 * img / img.abs().amax()).unsqueeze(0)


def texture_image(size: int, channels: int = 3, seed: int = 0, waves: int = 32) -> torch.Tensor:
    """(1, C, size, size) random texture in [-1, 1]: a sum of ``waves`` plane waves
    sin(2 pi (p i + q j) / size + phi) of random orientation and frequency (p, q up to size / 4).

    Each wave has its own |p| and |q| (nonzero, whole periods), so the mean squared finite
    difference of every row and every column is the same: the texture itself has seam ratio 1.
    """
    g = torch.Generator().manual_seed(seed)
    top = size // 4
    if waves > top:
        raise ValueError(f"at most {top} waves fit a {size} px texture, got {waves}")
    p = (torch.randperm(top, generator=g)[:waves] + 1).double()
    q = (torch.randperm(top, generator=g)[:waves] + 1).double()
    q = q * (torch.randint(0, 2, (waves,), generator=g) * 2 - 1)
    i = torch.arange(size, dtype=torch.float64)
    chans = []
    for _ in range(channels):
        amp = torch.rand(waves, generator=g, dtype=torch.float64) / p.hypot(q)  # ~ 1/f spectrum
        phase = torch.rand(waves, generator=g, dtype=torch.float64) * 2 * math.pi
        arg = 2 * math.pi * (p[:, None, None] * i[:, None] + q[:, None, None] * i[None, :]) / size
        chans.append((amp[:, None, None] * torch.sin(arg + phase[:, None, None])).sum(0))
    img = torch.stack(chans)
    return (0.9 * img / img.abs().amax()).float().unsqueeze(0)


class TilePlan:
    """How one decode runs: whole (``TilePlan.none()``) or in tiles. Kinds call ``latent_map``
    for their latent -> image-sized networks (D_Initial, the GAN decoder, DGAE's guide) and
    ``denoiser`` for the function the sampler calls; the sampler itself always runs globally."""

    def __init__(self, tile: int | None, overlap: int = DEFAULT_OVERLAP, upscale: int = 8,
                 align: int = 8, on_tile: Callable[[], object] | None = None):
        if tile is not None and (tile % align or tile % upscale or overlap % upscale):
            raise TilingError(f"tile ({tile}) must be a multiple of the model stride ({align}) "
                              f"and tile and overlap ({overlap}) of the decoder's upscale "
                              f"({upscale})")
        self.tile, self.overlap, self.upscale, self.align = tile, overlap, upscale, align
        self.on_tile = on_tile  # called after every tile evaluation (e.g. a progress bar)

    @classmethod
    def none(cls) -> TilePlan:
        return cls(None)

    @property
    def active(self) -> bool:
        return self.tile is not None

    def latent_map(self, fn: Callable[[torch.Tensor], torch.Tensor],
                   z: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return _counted(fn, self.on_tile)(z)
        return tiled_map(fn, z, self.tile // self.upscale, self.overlap // self.upscale,
                         scale=self.upscale, on_tile=self.on_tile)

    def denoiser(self, denoise: Denoiser) -> Denoiser:
        if not self.active:
            return _counted(denoise, self.on_tile)
        return tiled_denoiser(denoise, self.tile, self.overlap, self.align,
                              on_tile=self.on_tile)


def _counted(fn: Callable, on_eval: Callable[[], object] | None) -> Callable:
    """``fn``, calling ``on_eval()`` after each call (an untiled plan's progress updates)."""
    if on_eval is None:
        return fn

    def counted(*args):
        out = fn(*args)
        on_eval()
        return out

    return counted
