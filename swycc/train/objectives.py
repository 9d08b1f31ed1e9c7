"""Training objectives. The SWYCC objective is eq. (3):

    L_total = L_AE + lambda_p * L_perceptual(x, D_Initial(E(x))) + lambda_m * MSE(x, D_Initial(E(x)))

with L_AE the v-parameterised diffusion loss of eq. (2), and D_Initial(E(x)) zeroed on a fraction
``cond_dropout`` of examples so that the same D_Refine serves classifier-free guidance.

Randomness (t, eps, dropout mask) is drawn for the *global* batch from a generator seeded by
(seed, step), and each process / accumulation round takes its own rows, so N processes give the
same update as one process with the same global batch, and a resumed run the same as an
uninterrupted one.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from swycc.autoencoders import SWYCC
from swycc.config import Config, LossConfig

LOG_MSE_EPS = 1e-4  # loss.mse_form="log": caps a near-perfect image's weight (~46 dB on [-1, 1])


@dataclass
class NoiseDraw:
    t: torch.Tensor  # (B,) in [0, 1]
    eps: torch.Tensor  # (B, 3, H, W)
    keep: torch.Tensor  # (B,) 1 = condition on D_Initial(z), 0 = dropped (CFG)


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step) % (2**63 - 1))
    return g


def draw_noise(seed: int, step: int, rows: torch.Tensor, global_batch: int, shape: tuple,
               cond_dropout: float, device: torch.device) -> NoiseDraw:
    """The rows ``rows`` of the step's global draw of t ~ U[0, 1], eps ~ N(0, I), keep mask."""
    g = step_generator(seed, step, device)
    t = torch.rand(global_batch, generator=g, device=device)
    keep = (torch.rand(global_batch, generator=g, device=device) >= cond_dropout).float()
    eps = torch.randn((global_batch, *shape), generator=g, device=device)
    rows = rows.to(device)
    return NoiseDraw(t[rows], eps[rows], keep[rows])


def autocast_for(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


class SWYCCLoss(nn.Module):
    """forward(x, t, eps, keep) -> (total loss, logs). Wrap this module in DDP: the whole loss
    runs inside the wrapped forward."""

    def __init__(self, model: SWYCC, cfg: LossConfig, perceptual: nn.Module | None,
                 bf16: bool = False):
        super().__init__()
        self.model, self.cfg, self.perceptual, self.bf16 = model, cfg, perceptual, bf16

    def forward(self, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                keep: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m = self.model
        with autocast_for(x.device, self.bf16):
            x_init = m.d_initial(m.encoder(x)).float()
        total, logs = x_init.new_zeros(()), {}
        if self.cfg.diffusion_weight > 0:
            # eq. (2): D_Refine conditioned on D_Initial(z), dropped to 0 where keep = 0
            out = m.denoiser.loss(x, x_init, keep, t, eps, anchor=x_init,
                                  autocast=autocast_for(x.device, self.bf16))
            total = self.cfg.diffusion_weight * out.loss
            logs["loss_ae"] = out.loss.detach()
        total, logs = add_initial_losses(total, logs, x, x_init, self.cfg, self.perceptual)
        logs["loss"] = total.detach()
        return total, logs


def add_initial_losses(total: torch.Tensor, logs: dict, x: torch.Tensor, x_init: torch.Tensor,
                       cfg: LossConfig, perceptual: nn.Module | None):
    """+ lambda_m MSE(x, x_init) (or mean_i ln MSE_i, loss.mse_form) + lambda_p perceptual(x,
    x_init) + lambda_c colour(x, x_init) + lambda_pm patch means(x, x_init); a zero weight costs
    nothing."""
    if cfg.colour_weight > 0:
        l_c = mean_colour_error(x_init, x)
        total = total + cfg.colour_weight * l_c
        logs["loss_colour"] = l_c.detach()
    if cfg.patch_mean_weight > 0:
        l_pm = patch_mean_error(x_init, x, cfg.patch_mean_size)
        total = total + cfg.patch_mean_weight * l_pm
        logs["loss_patch_mean"] = l_pm.detach()
    if cfg.mse_weight > 0:
        if cfg.mse_form == "log":
            per_image = (x_init.float() - x.float()).pow(2).flatten(1).mean(1)
            l_log = (per_image + LOG_MSE_EPS).log().mean()
            total = total + cfg.mse_weight * l_log
            logs["loss_log_mse"], logs["loss_mse"] = l_log.detach(), per_image.mean().detach()
        else:
            l_mse = F.mse_loss(x_init, x)
            total = total + cfg.mse_weight * l_mse
            logs["loss_mse"] = l_mse.detach()
    if cfg.perceptual_weight > 0:
        assert perceptual is not None
        l_p = perceptual(x_init, x)
        total = total + cfg.perceptual_weight * l_p
        logs["loss_perceptual"] = l_p.detach()
    return total, logs


def build_perceptual_loss(cfg: LossConfig, device: torch.device) -> nn.Module | None:
    if cfg.perceptual_weight <= 0:
        return None
    from swycc.losses.perceptual import PerceptualLoss
    from swycc.losses.registry import build_perceptual

    return PerceptualLoss(build_perceptual(cfg.perceptual_net, cfg.perceptual_weights)).to(device)


class Objective:
    """What the training loop needs from a method: the module to wrap in DDP (``wrapped``), a
    loss for one micro-batch, a hook after each optimiser step, and extra checkpoint state."""

    wrapped: nn.Module
    progress_keys: tuple[str, ...] = ()  # logged values the progress bar also shows
    # the loss is a mean of per-image terms whose randomness is drawn per global row, so the
    # loop may split a micro-batch into smaller passes without changing it (loop.image_passes)
    separable: bool = False

    def wrap(self, wrapper) -> None:
        """``wrapper`` is e.g. ``lambda m: DDP(m)``; called once by the loop when distributed."""
        self.wrapped = wrapper(self.wrapped)

    def micro_loss(self, batch, step: int, rows: torch.Tensor,
                   global_batch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def after_step(self, batch, step: int) -> dict[str, torch.Tensor]:
        """Hook after the optimiser's update (the GAN trains its discriminator here)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class SWYCCObjective(Objective):
    """Eq. (3) for a SWYCC model; randomness drawn per global row (see the module doc)."""

    separable = True  # eq. (3): means of per-image terms (GroupNorm is per image)

    def __init__(self, cfg: Config, model: SWYCC, device: torch.device):
        self.cfg, self.model, self.device = cfg, model, device
        self.loss_module = SWYCCLoss(model, cfg.loss, build_perceptual_loss(cfg.loss, device),
                                     cfg.train.bf16)
        if cfg.loss.diffusion_weight == 0:  # the autoencoder alone: D_Refine keeps its weights
            model.d_refine.requires_grad_(False)
        self.wrapped: nn.Module = self.loss_module

    def micro_loss(self, x: torch.Tensor, step: int, rows: torch.Tensor,
                   global_batch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        noise = draw_noise(self.cfg.train.seed, step, rows, global_batch, tuple(x.shape[1:]),
                           self.cfg.loss.cond_dropout, x.device)
        return self.wrapped(x, noise.t, noise.eps, noise.keep)


def mean_colour_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """mean over images and channels of (mean_hw x_hat - mean_hw x)^2: a systematic per-channel
    colour bias of the reconstruction, which plain MSE reduces only slowly (it is one number per
    channel against H*W pixel terms)."""
    return (x_hat.float().mean((-2, -1)) - x.float().mean((-2, -1))).pow(2).mean()


def patch_mean_error(x_hat: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """mean over images, channels and k x k patches of (mean_patch x_hat - mean_patch x)^2: the
    low-frequency part of the error, up to 8x bicubic-from-1/8's on whole photos when only MSE
    trains D_Initial. On the f8c4 model it halved that error and raised the texture error as much
    (README, stage 7): it moves error between the bands rather than removing it."""
    return (F.avg_pool2d(x_hat.float(), k) - F.avg_pool2d(x.float(), k)).pow(2).mean()
