"""Cosine schedule, v-parameterisation and the diffusion loss L_AE (eq. 1-2). All maths in fp32.

alpha_t = cos(a t + b (1 - t)), sigma_t^2 = 1 - alpha_t^2, a = arctan(e^10), b = arctan(e^-10),
so logSNR(t) = 2 log(alpha_t / sigma_t) runs from +20 at t = 0 to -20 at t = 1.
"""

from __future__ import annotations

import math

import torch

A = math.atan(math.exp(10.0))
B = math.atan(math.exp(-10.0))


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_t, sigma_t) of the cosine schedule for t in [0, 1]."""
    angle = A * t.double() + B * (1.0 - t.double())
    return torch.cos(angle).to(torch.float32), torch.sin(angle).to(torch.float32)


def logsnr(t: torch.Tensor) -> torch.Tensor:
    """log(alpha_t^2 / sigma_t^2) = -2 log tan(a t + b (1 - t))."""
    angle = A * t.double() + B * (1.0 - t.double())
    return (-2.0 * torch.log(torch.tan(angle))).to(torch.float32)


def _bcast(s: torch.Tensor) -> torch.Tensor:
    return s.view(-1, 1, 1, 1)


def add_noise(x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = alpha_t x + sigma_t eps."""
    a, s = alpha_sigma(t)
    return _bcast(a) * x + _bcast(s) * eps


def v_target(x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """v = alpha_t eps - sigma_t x (Salimans & Ho 2022)."""
    a, s = alpha_sigma(t)
    return _bcast(a) * eps - _bcast(s) * x


def x_from_v(x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """x_hat = alpha_t x_t - sigma_t v_hat."""
    a, s = alpha_sigma(t)
    return _bcast(a) * x_t - _bcast(s) * v


def eps_from_v(x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """eps_hat = sigma_t x_t + alpha_t v_hat."""
    a, s = alpha_sigma(t)
    return _bcast(s) * x_t + _bcast(a) * v


def v_loss(v_hat: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """MSE in v, mean over pixels: equals the x-space loss of eq. (1) with w_t = sigma_t^-2."""
    return (v_hat.float() - v.float()).pow(2).mean()
