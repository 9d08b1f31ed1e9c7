"""Training loss and DDIM sampler of the latent DiT, on swycc.diffusion.schedule's cosine schedule.

Loss (eq. 2 applied to latents): z_t = alpha_t z + sigma_t eps, t ~ U[0, 1], the DiT predicts
v = alpha_t eps - sigma_t z from (z_t, logSNR(t), label), MSE in v. Labels are replaced by the
null class (index num_classes) on a fraction class_dropout of examples (classifier-free guidance).

Randomness (t, eps, drop mask) is drawn for the *global* batch from a generator seeded by
(seed, step); each process / accumulation round takes its rows, so N processes give the same
update as one, and a resumed run the same as an uninterrupted one.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from swycc.diffusion.schedule import add_noise, logsnr, v_loss, v_target
from swycc.generation.config import DiTRunConfig
from swycc.diffusion.sampling import ddim_sample
from swycc.train.objectives import Objective, step_generator


def class_drop_mask(n: int, prob: float, generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """(n,) bool, True with probability ``prob``: these labels become the null class."""
    return torch.rand(n, generator=generator, device=device) < prob


def drop_labels(labels: torch.Tensor, drop_mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """DiT's token_drop: labels where the mask is set become the null class ``num_classes``."""
    return torch.where(drop_mask.to(labels.device), torch.full_like(labels, num_classes), labels)


def dit_loss(model: nn.Module, latents: torch.Tensor, labels: torch.Tensor, t: torch.Tensor,
             eps: torch.Tensor, drop_mask: torch.Tensor, num_classes: int,
             bf16: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """v-MSE of the DiT on (normalised) latents (N, C, h, w) at times t (N,) with noise eps.

    ``model`` is the DiT or its DDP wrapper. Schedule maths and the loss stay fp32; ``bf16``
    autocasts the network only.
    """
    z_t = add_noise(latents, t, eps)  # z_t = alpha_t z + sigma_t eps
    y = drop_labels(labels, drop_mask, num_classes)
    ctx = torch.autocast(latents.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    with ctx:
        v_hat = model(z_t, logsnr(t), y).float()
    loss = v_loss(v_hat, v_target(latents, t, eps))
    return loss, {"loss": loss.detach(), "loss_dit": loss.detach()}


class DiTObjective(Objective):
    """The loop's objective for the DiT: ``micro_loss`` for one micro-batch (latents, labels);
    no extra state (the base class's empty hooks)."""

    def __init__(self, cfg: DiTRunConfig, model: nn.Module, device: torch.device):
        self.cfg, self.model, self.device = cfg, model, device
        self.wrapped: nn.Module = model

    def micro_loss(self, batch: tuple[torch.Tensor, torch.Tensor], step: int, rows: torch.Tensor,
                   global_batch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        latents, labels = batch
        dev = latents.device
        g = step_generator(self.cfg.train.seed, step, dev)
        t = torch.rand(global_batch, generator=g, device=dev)
        drop = class_drop_mask(global_batch, self.cfg.dit.class_dropout, g, dev)
        eps = torch.randn((global_batch, *latents.shape[1:]), generator=g, device=dev)
        rows = rows.to(dev)
        return dit_loss(self.wrapped, latents, labels.to(dev), t[rows], eps[rows], drop[rows],
                        self.cfg.dit.num_classes, self.cfg.train.bf16)


@torch.no_grad()
def dit_sample(model: nn.Module, labels: torch.Tensor, shape: tuple[int, int, int], steps: int,
               guidance: float = 0.5, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None, null_label: int | None = None) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from t = 1 to t = 0 in ``steps`` uniform steps in t, with
    guidance v = v_c + w (v_c - v_null): ``swycc.diffusion.sampling.ddim_sample`` with the class labels as
    the condition and the null class (default ``num_classes``) as its null value.

    labels: (N,) long; shape: (C, h, w) of one latent. Returns normalised latents (N, C, h, w):
    multiply by the dataset's std and add its mean before decoding. No clipping (latents are
    unbounded).
    """
    if null_label is None:
        null_label = getattr(model, "module", model).cfg.num_classes

    def denoiser(z_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return model(z_t, logsnr(t), y).float()

    return ddim_sample(denoiser, labels, steps, guidance, generator, noise=noise, clip=None,
                       null_cond=torch.full_like(labels, null_label),
                       shape=(labels.shape[0], *shape))
