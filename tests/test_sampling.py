import pytest
import torch

from swycc.diffusion.sampling import ddim_sample, guided_v


def oracle(x_true):
    """A perfect denoiser for a single known image: v = (alpha x_t - x) / sigma."""
    from swycc.diffusion.schedule import alpha_sigma

    def f(x_t, t, cond):
        a, s = alpha_sigma(t)
        a, s = a.view(-1, 1, 1, 1), s.view(-1, 1, 1, 1)
        return (a * x_t - x_true.expand_as(x_t)) / s
    return f


@pytest.mark.parametrize("steps", [1, 2, 5, 50])
def test_ddim_with_oracle_recovers_image(steps):
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    out = ddim_sample(oracle(x), torch.zeros(2, 3, 8, 8), steps, guidance=0.0,
                      generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x.expand(2, -1, -1, -1), atol=1e-4)


def test_sampler_is_reproducible_under_seed():
    net = torch.nn.Conv2d(6, 3, 3, padding=1)
    den = lambda x, t, c: net(torch.cat([x, c], 1))  # noqa: E731
    cond = torch.randn(3, 3, 8, 8)
    a = ddim_sample(den, cond, 4, 0.5, torch.Generator().manual_seed(7))
    b = ddim_sample(den, cond, 4, 0.5, torch.Generator().manual_seed(7))
    c = ddim_sample(den, cond, 4, 0.5, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_guidance_formula():
    den = lambda x, t, c: x + 2 * c  # noqa: E731
    x, c, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.rand(2)
    v_c, v_u = x + 2 * c, x
    for w in (0.0, 0.5, 2.0):
        assert torch.allclose(guided_v(den, x, t, c, w), v_c + w * (v_c - v_u))


def test_steps_must_be_positive():
    with pytest.raises(ValueError):
        ddim_sample(lambda x, t, c: x, torch.zeros(1, 3, 4, 4), 0)


def test_noise_follows_the_generator_device():
    """The start noise is drawn where the generator lives, so a CPU seed reproduces on any
    device; here: a CPU generator gives the same result as pre-drawn CPU noise."""
    cond = torch.zeros(2, 3, 4, 4)
    den = lambda x, t, c: torch.zeros_like(x)  # noqa: E731
    a = ddim_sample(den, cond, 3, 0.0, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(cond.shape, generator=torch.Generator().manual_seed(5))
    b = ddim_sample(den, cond, 3, 0.0, noise=noise)
    assert torch.equal(a, b)
