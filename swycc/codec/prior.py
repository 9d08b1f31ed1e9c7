"""The codec's probability model: a discretised Laplace per latent channel, as integer tables that
every machine computes bit for bit alike.

A channel's quantised latent values q (integers) are modelled i.i.d. as

    P(k) = F(k + 1/2) - F(k - 1/2),   F the Laplace CDF with centre mu and scale b (symbol units),
    F(x) = exp((x - mu) / b) / 2 for x < mu,   1 - exp(-(x - mu) / b) / 2 otherwise,

over the channel's alphabet [lo, hi] (the tails folded into its ends). Encoder and decoder must
build the same table, so ``frequency_table`` turns (lo, hi, mu, b), numbers read from the file
header, into integer frequencies with Python float arithmetic alone: +, -, *, / are correctly
rounded IEEE-754 operations on every platform, while a libm or SIMD ``exp`` may differ in its last
bit from machine to machine. ``exp_neg`` is therefore our own (range reduction by ln 2 and a
fixed Taylor polynomial, Horner), not ``math.exp`` or ``numpy.exp``.

``LatentPrior`` (per-channel centre and scale in latent units) is what a fit over many latents
gives (``fit_prior``), or an export's stored latent statistics; ``symbol_params`` maps it to a
quantisation step; ``fit_symbol_params`` fits one image's own symbols (the codec's default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

TABLE_BITS = 20  # frequencies sum to 2^20; every symbol of the alphabet gets at least 1
TABLE_TOTAL = 1 << TABLE_BITS
MIN_SCALE = 1.0 / 64  # smallest Laplace scale b (symbols) a header may carry
MAX_ALPHABET = 1 << 16  # symbols per channel (hi - lo + 1), far above any useful step
_LN2 = 0.6931471805599453  # the double nearest ln 2
_LN2_HI, _LN2_LO = 0.693145751953125, 1.4286068203094173e-06  # Cody-Waite: n * HI is exact
_TAYLOR_TERMS = 22  # |r| < ln 2: the remainder is below 2^-60


def exp_neg(x: float) -> float:
    """exp(-x) for x >= 0 from IEEE basic operations only (identical on every machine):
    exp(-x) = 2^-n exp(-r), n = floor(x / ln 2), r = x - n ln 2 (ln 2 split in two so that
    n ln 2 loses nothing), exp(-r) by Horner's rule."""
    if x < 0:
        raise ValueError(f"exp_neg needs x >= 0, got {x}")
    if x > 1100.0:
        return 0.0
    n = int(x / _LN2)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    s = 1.0
    for k in range(_TAYLOR_TERMS, 0, -1):
        s = 1.0 - (r / k) * s
    return math.ldexp(s, -n)


def laplace_cdf(x: float, mu: float, b: float) -> float:
    d = (x - mu) / b
    return 0.5 * exp_neg(-d) if d < 0 else 1.0 - 0.5 * exp_neg(d)


def frequency_table(lo: int, hi: int, mu: float, b: float) -> list[int]:
    """Integer frequencies of the symbols lo..hi, each >= 1, summing to TABLE_TOTAL: the
    discretised Laplace above, floor(P(k) (TOTAL - n)) + 1, the rounding remainder given to the
    most probable symbol. Deterministic: integers and correctly rounded float operations."""
    n = hi - lo + 1
    if n < 1 or n > MAX_ALPHABET:
        raise ValueError(f"alphabet [{lo}, {hi}] must hold 1 to {MAX_ALPHABET} symbols")
    if not (b >= MIN_SCALE and math.isfinite(b) and math.isfinite(mu)):
        raise ValueError(f"Laplace scale must be >= {MIN_SCALE} and finite, got mu={mu}, b={b}")
    spare = TABLE_TOTAL - n
    cdf = [0.0] + [laplace_cdf(k + 0.5, mu, b) for k in range(lo, hi)] + [1.0]
    freqs = [int((cdf[i + 1] - cdf[i]) * spare) + 1 for i in range(n)]
    top = max(range(n), key=lambda i: (freqs[i], -i))
    freqs[top] += TABLE_TOTAL - sum(freqs)
    return freqs


def code_length_bits(symbols: np.ndarray, lo: int, freqs: list[int]) -> float:
    """Ideal code length (bits) of integer ``symbols`` under a table: sum -log2(f / TOTAL)."""
    counts = np.bincount(np.asarray(symbols, dtype=np.int64).ravel() - lo, minlength=len(freqs))
    f = np.asarray(freqs, dtype=np.float64)
    used = counts > 0
    return float((counts[used] * (TABLE_BITS - np.log2(f[used]))).sum())


def to_half(v: float) -> float:
    """``v`` rounded to the float16 a header stores (what both sides then compute with)."""
    return float(np.float16(v))


@dataclass(frozen=True)
class ChannelParams:
    """One channel's table, as stored in a file header: alphabet lo..hi, Laplace mu, b
    (symbol units, float16 values)."""

    lo: int
    hi: int
    mu: float
    b: float

    def table(self) -> list[int]:
        return frequency_table(self.lo, self.hi, self.mu, self.b)


def _header_params(lo: int, hi: int, mu: float, b: float) -> ChannelParams:
    mu = to_half(min(max(mu, lo), hi))
    b = to_half(min(max(b, MIN_SCALE), 60000.0))
    return ChannelParams(lo, hi, mu, max(b, to_half(MIN_SCALE * 1.001)))


def fit_symbol_params(q: np.ndarray, refine: bool = True) -> list[ChannelParams]:
    """Per channel of integer symbols q (C, h, w): the alphabet is the range of the values,
    mu their median, b the mean absolute deviation (the Laplace maximum-likelihood fit), then
    (``refine``) the b among b 2^(k/4), k = -8..8, giving the shortest code for these symbols."""
    out = []
    for c in range(q.shape[0]):
        v = q[c].ravel().astype(np.int64)
        lo, hi = int(v.min()), int(v.max())
        mu = float(np.median(v))
        b = float(np.abs(v - mu).mean())
        best = _header_params(lo, hi, mu, b)
        if refine and hi > lo:
            best = min((_header_params(lo, hi, mu, b * 2 ** (k / 4)) for k in range(-8, 9)),
                       key=lambda p: code_length_bits(v, lo, p.table()))
        out.append(best)
    return out


@dataclass(frozen=True)
class LatentPrior:
    """Per-channel Laplace centre and scale of latents, in latent units: a fit over a folder's
    latents (``fit_prior``) or an export's stored per-channel mean and standard deviation
    (``from_mean_std``: Laplace scale = std / sqrt 2)."""

    mean: torch.Tensor  # (C,)
    scale: torch.Tensor  # (C,)

    @classmethod
    def from_mean_std(cls, mean: torch.Tensor, std: torch.Tensor) -> LatentPrior:
        return cls(torch.as_tensor(mean, dtype=torch.float64),
                   torch.as_tensor(std, dtype=torch.float64) / math.sqrt(2.0))

    def symbol_params(self, q: np.ndarray, step: float) -> list[ChannelParams]:
        """The header parameters for symbols q (C, h, w) at quantisation ``step``: this
        prior's centre and scale divided by the step; the alphabet still spans q's range."""
        if len(self.mean) != q.shape[0]:
            raise ValueError(f"prior has {len(self.mean)} channels, latent has {q.shape[0]}")
        return [_header_params(int(q[c].min()), int(q[c].max()), float(self.mean[c]) / step,
                               float(self.scale[c]) / step) for c in range(q.shape[0])]


def fit_prior(latents: torch.Tensor | list[torch.Tensor]) -> LatentPrior:
    """Laplace fit per channel over latents ((N, C, h, w) or a list of (C, h, w) of any sizes):
    centre = median, scale = mean absolute deviation from it (maximum likelihood)."""
    zs = [latents] if isinstance(latents, torch.Tensor) and latents.ndim == 3 else list(latents)
    flat = torch.cat([z.detach().double().flatten(1) for z in zs], dim=1)  # (C, values)
    mean = flat.median(dim=1).values
    return LatentPrior(mean, (flat - mean[:, None]).abs().mean(dim=1))


__all__ = ["ChannelParams", "LatentPrior", "TABLE_BITS", "TABLE_TOTAL", "code_length_bits",
           "exp_neg", "fit_prior", "fit_symbol_params", "frequency_table"]
