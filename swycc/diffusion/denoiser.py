"""The conditional denoiser of a diffusion decoder: one object for training and for sampling.

It owns three things that training and sampling must agree on:
- the conditioning: the network sees ``concat(x_t, cond)`` and the noise level logSNR(t), with
  ``cond`` an image-sized map (SWYCC: D_Initial(z), eq. 2; DGAE: the latent guide's features);
- the null condition for classifier-free guidance: ``cond = 0``, used both for the training
  dropout (a fraction of examples) and for the unconditional branch at sampling;
- the parameterisation: the network predicts v (Salimans & Ho 2022) of the diffused variable,
  which is the image x ("x prediction", the paper) or the residual x - anchor with the anchor
  D_Initial(z) ("residual prediction", a named deviation); the loss is the MSE in v (eq. 1 with
  w_t = sigma_t^-2) and the sampler maps its output back to an image by adding the anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from swycc.diffusion.schedule import add_noise, logsnr, v_loss, v_target, x_from_v
from swycc.diffusion.sampling import ddim_sample


@dataclass
class DenoiserLoss:
    loss: torch.Tensor  # scalar MSE in v
    x0_hat: torch.Tensor  # the network's estimate of the image at this t, (N, 3, H, W)


class Denoiser:
    """``Denoiser(net, predict_residual)``; ``net(concat(x_t, cond), logsnr) -> v_hat``.

    Not an nn.Module: it holds a reference to a network registered elsewhere (so parameter names
    are the autoencoder's, e.g. ``d_refine.*``), and adds no parameters of its own.
    """

    def __init__(self, net: nn.Module, predict_residual: bool = False):
        self.net, self.predict_residual = net, predict_residual

    @property
    def sample_clip(self) -> float:
        """Bound on each x0 estimate while sampling: images live in [-1, 1]; a residual of two
        images in [-2, 2]."""
        return 2.0 if self.predict_residual else 1.0

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """v_hat = net(concat(x_t, cond), logSNR(t)); (N, 3, H, W)."""
        return self.net(torch.cat([x_t, cond.to(x_t.dtype)], dim=1), logsnr(t))

    @staticmethod
    def null_condition(cond: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(cond)

    @staticmethod
    def drop_condition(cond: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Classifier-free-guidance dropout: rows with keep = 0 get the null condition."""
        return cond * keep.view(-1, *([1] * (cond.ndim - 1))).to(cond.dtype)

    def diffused(self, x: torch.Tensor, anchor: torch.Tensor | None) -> torch.Tensor:
        """The variable the diffusion runs on: x, or x - sg(anchor) for residual prediction."""
        if not self.predict_residual:
            return x
        if anchor is None:
            raise ValueError("residual prediction needs an anchor image (D_Initial(z))")
        return x - anchor.detach()

    def to_image(self, x0: torch.Tensor, anchor: torch.Tensor | None) -> torch.Tensor:
        """Inverse of ``diffused`` for a sample of the diffused variable."""
        return x0 + anchor if self.predict_residual else x0

    def loss(self, x: torch.Tensor, cond: torch.Tensor, keep: torch.Tensor, t: torch.Tensor,
             eps: torch.Tensor, anchor: torch.Tensor | None = None,
             autocast=None) -> DenoiserLoss:
        """L_AE of eq. (2) for images x (N, 3, H, W): x_t = alpha_t y + sigma_t eps with y the
        diffused variable, the condition dropped where keep = 0, MSE(v_hat, v) in fp32.
        ``autocast``: a context manager for the network call (bf16), or None."""
        y = self.diffused(x, anchor)
        x_t = add_noise(y, t, eps)
        c = self.drop_condition(cond, keep)
        if autocast is None:
            v_hat = self(x_t, t, c).float()
        else:
            with autocast:
                v_hat = self(x_t, t, c).float()
        y0_hat = x_from_v(x_t, t, v_hat)  # x_hat = alpha_t x_t - sigma_t v_hat
        return DenoiserLoss(v_loss(v_hat, v_target(y, t, eps)), self.to_image(y0_hat, anchor))

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, steps: int, guidance: float,
               generator: torch.Generator | None = None, anchor: torch.Tensor | None = None,
               noise: torch.Tensor | None = None, denoise_fn=None) -> torch.Tensor:
        """x ~ p(x | cond) by guided DDIM, as an image (N, 3, H, W) (not clamped).
        ``denoise_fn`` replaces ``self`` as the function the sampler calls (e.g. a tiled one)."""
        fn = self if denoise_fn is None else denoise_fn
        y = ddim_sample(fn, cond, steps, guidance, generator, noise=noise, clip=self.sample_clip,
                        null_cond=self.null_condition(cond),
                        shape=(cond.shape[0], 3, *cond.shape[2:]))
        return self.to_image(y, anchor)
