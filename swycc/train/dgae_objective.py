"""DGAE's training objective (``swycc.autoencoders.dgae``; design and reasons in docs/dgae.md):

    z = mu(x) + exp(logvar(x) / 2) n,  n ~ N(0, I)                      (reparameterisation)
    L = L_AE(x | G(z))                                                 score matching, eq. (2)
      + kl_weight * mean KL(N(mu, exp(logvar)) || N(0, I))             per latent element
      + lambda_p * perceptual(x0_hat, x) on examples with t <= perceptual_max_t

with G the latent guide, L_AE the v-loss of the shared denoiser (the guide's features dropped to
0 on a fraction ``cond_dropout`` of examples for guidance), and x0_hat = alpha_t x_t - sigma_t v_hat
the decoder's own estimate of the image: the perceptual term shapes the diffusion decoder (and,
through it, the guide and the encoder) where the estimate is meaningful, at low noise.
There is no loss on a deterministic reconstruction: DGAE has none.
"""

from __future__ import annotations

import torch
from torch import nn

from swycc.autoencoders.dgae import DGAE, gaussian_kl
from swycc.config import Config, LossConfig
from swycc.train.objectives import (Objective, autocast_for, build_perceptual_loss, draw_noise,
                                    step_generator)

LATENT_NOISE_STREAM = 0x5EED  # the reparameterisation noise has its own seeded stream


class DGAELoss(nn.Module):
    """forward(x, t, eps, keep, n) -> (total loss, logs); the module the loop wraps in DDP."""

    def __init__(self, model: DGAE, cfg: LossConfig, perceptual: nn.Module | None,
                 bf16: bool = False):
        super().__init__()
        self.model, self.cfg, self.perceptual, self.bf16 = model, cfg, perceptual, bf16

    def forward(self, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, keep: torch.Tensor,
                n: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m, cfg = self.model, self.cfg
        with autocast_for(x.device, self.bf16):
            mean, logvar = (v.float() for v in m.posterior(x))
        z = mean + torch.exp(0.5 * logvar) * n
        with autocast_for(x.device, self.bf16):
            guide = m.guide_features(z)
        out = m.denoiser.loss(x, guide, keep, t, eps, autocast=autocast_for(x.device, self.bf16))
        kl = gaussian_kl(mean, logvar).mean()
        total = out.loss + cfg.kl_weight * kl
        logs = {"loss_ae": out.loss.detach(), "kl": kl.detach(),
                "latent_std": mean.detach().std()}
        if cfg.perceptual_weight > 0:
            assert self.perceptual is not None
            low = t <= cfg.perceptual_max_t
            if bool(low.any()):
                l_p = self.perceptual(out.x0_hat[low], x[low])
                total = total + cfg.perceptual_weight * l_p
                logs["loss_perceptual"] = l_p.detach()
        logs["loss"] = total.detach()
        return total, logs


class DGAEObjective(Objective):
    """The loop's interface for method "dgae"; all randomness drawn per global row."""

    separable = True  # means of per-image terms (the KL per latent element)

    def __init__(self, cfg: Config, model: DGAE, device: torch.device):
        if not isinstance(model, DGAE):
            raise ValueError("DGAEObjective needs a DGAE model (model.method='dgae')")
        self.cfg, self.model, self.device = cfg, model, device
        self.loss_module = DGAELoss(model, cfg.loss, build_perceptual_loss(cfg.loss, device),
                                    cfg.train.bf16)
        self.wrapped: nn.Module = self.loss_module

    def micro_loss(self, x: torch.Tensor, step: int, rows: torch.Tensor,
                   global_batch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        seed = self.cfg.train.seed
        noise = draw_noise(seed, step, rows, global_batch, tuple(x.shape[1:]),
                           self.cfg.loss.cond_dropout, x.device)
        s = self.cfg.model.encoder.downsample
        shape = (self.cfg.model.latent_channels, x.shape[-2] // s, x.shape[-1] // s)
        g = step_generator(seed ^ LATENT_NOISE_STREAM, step, x.device)
        n = torch.randn((global_batch, *shape), generator=g, device=x.device)[rows.to(x.device)]
        return self.wrapped(x, noise.t, noise.eps, noise.keep, n)
