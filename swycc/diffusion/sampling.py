"""DDIM sampling over the cosine schedule, with classifier-free guidance.

The sampler only calls ``denoiser(x_t, t, cond) -> v_hat``; it knows nothing of the networks or
of what the condition is (an image D_Initial(z), a feature map, class labels): the caller gives
the condition and its null value for the unconditional branch (default: zeros).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from swycc.diffusion.schedule import alpha_sigma, eps_from_v, x_from_v

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def guided_v(denoiser: Denoiser, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
             guidance: float, null_cond: torch.Tensor | None = None) -> torch.Tensor:
    """v = v_c + w (v_c - v_u); the unconditional branch sees ``null_cond`` (default zeros, as
    the training dropout of D_Initial(z)). Both branches run in one batch when w != 0.
    """
    if guidance == 0:
        return denoiser(x_t, t, cond)
    n = x_t.shape[0]
    null = torch.zeros_like(cond) if null_cond is None else null_cond
    v = denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, null]))
    v_c, v_u = v[:n], v[n:]
    return v_c + guidance * (v_c - v_u)


@torch.no_grad()
def ddim_sample(denoiser: Denoiser, cond: torch.Tensor, steps: int, guidance: float = 0.5,
                generator: torch.Generator | None = None,
                noise: torch.Tensor | None = None, clip: float | None = 1.0,
                null_cond: torch.Tensor | None = None,
                shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from t = 1 to t = 0 in ``steps`` uniform steps in t.

    cond: the condition, batched like x (e.g. (N, 3, H, W) = D_Initial(z), or (N,) labels);
    ``shape`` of x_0 (default cond's shape). Returns x_0. One step predicts x_0 directly.
    ``clip`` bounds each x_0 prediction to [-clip, clip] (images live in [-1, 1]); None: no bound.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not math.isfinite(guidance):
        raise ValueError(f"guidance must be a finite number, got {guidance}")
    shape = tuple(cond.shape) if shape is None else tuple(shape)
    if noise is None:  # drawn where the generator lives: a CPU seed gives the same start on GPU
        where = generator.device if generator is not None else cond.device
        noise = torch.randn(shape, generator=generator, device=where, dtype=torch.float32)
    x = noise.to(cond.device, torch.float32)
    ts = torch.linspace(1.0, 0.0, steps + 1, device=cond.device)
    n = cond.shape[0]
    for i in range(steps):
        t, t_next = ts[i].expand(n), ts[i + 1].expand(n)
        v = guided_v(denoiser, x, t, cond, guidance, null_cond).float()
        x0 = x_from_v(x, t, v)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        if i == steps - 1:
            return x0
        eps = eps_from_v(x, t, v) if clip is None else _eps_given_x0(x, t, x0)
        a_next, s_next = alpha_sigma(t_next)
        x = a_next.view(-1, 1, 1, 1) * x0 + s_next.view(-1, 1, 1, 1) * eps
    return x


def _eps_given_x0(x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """eps consistent with a (clipped) x0: eps = (x_t - alpha_t x0) / sigma_t."""
    a, s = alpha_sigma(t)
    return (x_t - a.view(-1, 1, 1, 1) * x0) / s.view(-1, 1, 1, 1)
