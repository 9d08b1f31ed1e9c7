"""The one denoiser: the training target and the sampler agree for every parameterisation, and
training's condition dropout is the sampler's unconditional branch."""

import pytest
import torch

from swycc.diffusion.denoiser import Denoiser


class Oracle(torch.nn.Module):
    """A perfect network for one known image x: from (x_t, cond) and logSNR it returns the exact
    v of whatever the parameterisation diffuses (x, or x - cond for residual prediction)."""

    def __init__(self, x: torch.Tensor, residual: bool):
        super().__init__()
        self.x, self.residual, self.seen = x, residual, []

    def forward(self, inp, lsnr):
        x_t, cond = inp[:, :3], inp[:, 3:]
        self.seen.append(cond.clone())
        a2 = torch.sigmoid(lsnr).view(-1, 1, 1, 1)  # alpha^2 = sigmoid(logSNR)
        a, s = a2.sqrt(), (1 - a2).sqrt()
        y = self.x - cond if self.residual else self.x.expand_as(x_t)
        return (a * x_t - y) / s


@pytest.mark.parametrize("residual", [False, True])
def test_training_target_and_sampler_agree(residual):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    anchor = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)  # a blurry first reconstruction
    den = Denoiser(Oracle(x, residual), predict_residual=residual)
    t = torch.tensor([0.05, 0.5, 0.95])
    eps = torch.randn(3, 3, 8, 8)
    out = den.loss(x.expand(3, -1, -1, -1), anchor.expand(3, -1, -1, -1), torch.ones(3), t, eps,
                   anchor=anchor.expand(3, -1, -1, -1))
    assert out.loss.item() < 1e-9  # the oracle's v is exactly the training target
    assert torch.allclose(out.x0_hat, x.expand(3, -1, -1, -1), atol=1e-4)
    for steps in (1, 4):
        y = den.sample(anchor, steps, guidance=0.0, generator=torch.Generator().manual_seed(1),
                       anchor=anchor)
        assert torch.allclose(y, x, atol=1e-4), (residual, steps)


def test_dropout_and_unconditional_branch_use_the_same_null_condition():
    x = torch.zeros(1, 3, 4, 4)
    net = Oracle(x, residual=False)
    den = Denoiser(net)
    cond = torch.randn(2, 3, 4, 4) + 5
    den.loss(torch.zeros(2, 3, 4, 4), cond, torch.tensor([1.0, 0.0]), torch.rand(2),
             torch.randn(2, 3, 4, 4))
    dropped = net.seen[-1]
    assert torch.equal(dropped[0], cond[0]) and torch.equal(dropped[1], den.null_condition(cond[1]))
    net.seen.clear()
    den.sample(cond, 1, guidance=0.5, generator=torch.Generator().manual_seed(0))
    both = net.seen[-1]  # one batch: conditional rows, then unconditional ones
    assert torch.equal(both[:2], cond) and torch.equal(both[2:], den.null_condition(cond))


def test_sampling_clip_follows_the_parameterisation():
    assert Denoiser(torch.nn.Identity()).sample_clip == 1.0
    assert Denoiser(torch.nn.Identity(), predict_residual=True).sample_clip == 2.0
    with pytest.raises(ValueError, match="anchor"):
        Denoiser(torch.nn.Identity(), predict_residual=True).diffused(torch.zeros(1), None)
