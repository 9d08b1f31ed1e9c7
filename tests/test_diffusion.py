import math

import torch

from swycc.diffusion.schedule import (add_noise, alpha_sigma, eps_from_v, logsnr, v_loss, v_target,
                             x_from_v)


def test_schedule_end_points():
    t = torch.tensor([0.0, 1.0])
    a, s = alpha_sigma(t)
    # t=0: alpha = cos(b) with b = arctan(e^-10); t=1: alpha = cos(a), a = arctan(e^10)
    assert torch.allclose(a, torch.tensor([math.cos(math.atan(math.exp(-10))),
                                           math.cos(math.atan(math.exp(10)))]))
    assert torch.allclose(logsnr(t), torch.tensor([20.0, -20.0]), atol=1e-4)
    tt = torch.rand(100)
    a, s = alpha_sigma(tt)
    assert torch.allclose(a**2 + s**2, torch.ones(100), atol=1e-6)
    assert torch.all(torch.diff(logsnr(torch.linspace(0, 1, 50))) < 0)


def test_v_parameterisation_identities():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 4, 4, generator=g)
    eps = torch.randn(8, 3, 4, 4, generator=g)
    t = torch.rand(8, generator=g) * 0.98 + 0.01
    x_t = add_noise(x, t, eps)
    v = v_target(x, t, eps)
    assert torch.allclose(x_from_v(x_t, t, v), x, atol=1e-5)
    assert torch.allclose(eps_from_v(x_t, t, v), eps, atol=1e-5)


def test_v_loss_is_sigma_weighted_x_loss():
    g = torch.Generator().manual_seed(1)
    x, eps = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    t = torch.tensor([0.37])
    x_t = add_noise(x, t, eps)
    v_hat = torch.randn(1, 3, 4, 4, generator=g)
    x_hat = x_from_v(x_t, t, v_hat)
    _, s = alpha_sigma(t)
    w = s**-2  # eq. (1) with w_t = sigma_t^-2
    assert torch.allclose(v_loss(v_hat, v_target(x, t, eps)), w * (x - x_hat).pow(2).mean(),
                          rtol=1e-4)
