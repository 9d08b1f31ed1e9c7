"""The GAN autoencoder baseline's objective (MaskGIT / MAGVIT-v2 tokenizer recipe, continuous z).

Generator step (the loop's optimiser over E and the decoder; ``micro_loss``):

    L_G = L_rec + [s >= s_0] lambda_adv L_adv(D(x_hat)),
    L_rec = lambda_m MSE(x, x_hat) + lambda_p perceptual(x, x_hat)
    lambda_adv = adversarial_weight * ||grad_L L_rec|| / (||grad_L L_adv|| + 1e-4)  (taming, eq. 7)

with x_hat = Dec(E(x)), L the decoder's last conv weight, s_0 = ``loss.adversarial_start``.
Discriminator step (``after_step``, its own Adam; after the generator update):

    L_D = L_disc(D(x), D(sg(x_hat))) + lecam_weight * R_LC(D(x), D(sg(x_hat)); alpha_R, alpha_F)
          + r1_weight / 2 * E||grad_x D(x)||^2    (R1, Mescheder et al. 2018, eq. 9; off by default)

Architecture (SWYCC sec. 3.5: MaskGIT encoder-decoder + MAGVIT-v2 sec. 3.2 improvements): the
shared encoder already downsamples by strided convs; the decoder (``Decoder``, the D_Initial
architecture) upsamples by depth-to-space and, with ``model.decoder.adaptive_norm`` (set by
``--method gan``), takes every GroupNorm's scale/shift from z; the discriminator downsamples by
blur pooling (``swycc.nn.discriminator``). MAGVIT-v2's other sec. 3.2 items (causal 3D convs,
deferred temporal downsampling, token factorisation / LFQ) concern video or discrete tokens and
do not apply to a continuous image latent.

Choices beyond DESIGN.md, following taming-transformers (``vqperceptual.py``) and MAGVIT-v2:
- The discriminator trains only from ``adversarial_start`` on, like its term in L_G (taming's
  ``adopt_weight`` on both). Its fakes are the *same* detached reconstructions the generator
  micro-batches produced this step (cached), so a step runs E + Dec once; the discriminator thus
  sees the pre-update generator's outputs (single-pass trainers such as MaskBit do the same).
- The generator's pass through D uses detached copies of D's parameters
  (``torch.func.functional_call``): gradients reach x_hat, never D; the D step sees only detached
  fakes: nothing reaches E or Dec. D is not a submodule of the DDP-wrapped generator module.
- D's optimiser: Adam with the generator's betas and learning-rate schedule (``lr_at``) times
  ``loss.disc_lr_scale`` (1 by default: the same learning rate), the same global-norm
  clipping; a non-finite D loss skips the D update and is counted.
- LeCAM anchors: EMAs (decay ``lecam_decay``) of the mean real / fake logits, averaged across
  processes, updated after each D step; the first D step uses its own means as anchors.
- Under DDP the two last-layer gradients of the adaptive weight are averaged across processes
  before their norms, so every process uses the same lambda (that of the global micro-batch).
  With grad accumulation each round has its own lambda (as with taming + accumulation).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch import nn
from torch.func import functional_call

from swycc.autoencoders import GANAutoencoder
from swycc.config import Config, LossConfig
from swycc.losses.adversarial import (
    GAN_LOSSES,
    adaptive_weight,
    discriminator_loss,
    ema_update,
    generator_loss,
    lecam_regularizer,
    r1_penalty,
)
from swycc.nn.discriminator import Discriminator
from swycc.train.objectives import (Objective, add_initial_losses, autocast_for,
                                    build_perceptual_loss)
from swycc.train.optim import lr_at, optimizer_step, set_lr


def build_discriminator(cfg: Config) -> Discriminator:
    return Discriminator(cfg.loss.disc_base_channels, cfg.loss.disc_layers,
                         cfg.model.decoder.num_groups)


class GANGeneratorLoss(nn.Module):
    """forward(x, adversarial) -> (x_hat, L_rec, L_adv, logs). The module the loop wraps in DDP:
    its parameters are E and the decoder (the perceptual net is frozen); D is held outside."""

    def __init__(self, model: GANAutoencoder, cfg: LossConfig, perceptual: nn.Module | None,
                 discriminator: Discriminator, bf16: bool = False):
        super().__init__()
        self.model, self.cfg, self.perceptual, self.bf16 = model, cfg, perceptual, bf16
        self._disc = (discriminator,)  # a tuple: not registered, so never part of this DDP

    def forward(self, x: torch.Tensor, adversarial: bool
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        m = self.model
        with autocast_for(x.device, self.bf16):
            x_hat = m.d_initial(m.encoder(x)).float()  # (N, 3, H, W)
        l_rec, logs = add_initial_losses(x.new_zeros(()), {}, x, x_hat, self.cfg, self.perceptual)
        l_adv = x.new_zeros(())
        if adversarial:
            disc = self._disc[0]
            frozen = {k: v.detach() for k, v in disc.named_parameters()}  # grads stop at D's input
            with autocast_for(x.device, self.bf16):
                logits_fake = functional_call(disc, frozen, (x_hat,)).float()
            l_adv = generator_loss(logits_fake, self.cfg.gan_loss)
            logs["loss_g_adv"] = l_adv.detach()
        return x_hat, l_rec, l_adv, logs


class GANObjective(Objective):
    """The loop's interface (``swycc.train.objectives.Objective``) for method "gan".
    Owns the discriminator, its optimiser and the LeCAM state; all of it is in ``state_dict``.

    Logged (metrics.jsonl, at every log step once the adversarial term is on): ``adv_weight``
    (lambda_adv, adaptive ratio x ``adversarial_weight``), ``d_logit_real`` / ``d_logit_fake``
    (D's mean logit on real images / reconstructions in that step's D update, before it),
    ``loss_d``, ``loss_g_adv``, ``lecam``; the first three also in the progress bar."""

    progress_keys = ("adv_weight", "d_logit_real", "d_logit_fake")

    def __init__(self, cfg: Config, model: GANAutoencoder, device: torch.device):
        if not isinstance(model, GANAutoencoder):
            raise ValueError("GANObjective needs a GANAutoencoder (model.method='gan')")
        self.cfg, self.model, self.device = cfg, model, torch.device(device)
        lc = cfg.loss
        if lc.gan_loss not in GAN_LOSSES:  # fail now, not at adversarial_start
            raise ValueError(f"loss.gan_loss must be one of {GAN_LOSSES}, got {lc.gan_loss!r}")
        self.discriminator = build_discriminator(cfg).to(self.device)
        self.disc_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.train.lr,
                                               betas=cfg.train.betas)
        self.loss_module = GANGeneratorLoss(model, lc, build_perceptual_loss(lc, self.device),
                                            self.discriminator, cfg.train.bf16)
        self.wrapped: nn.Module = self.loss_module
        self.disc_wrapped: nn.Module = self.discriminator
        self.lecam_real = torch.zeros((), device=self.device)  # alpha_R
        self.lecam_fake = torch.zeros((), device=self.device)  # alpha_F
        self.lecam_initialized = False
        self.disc_steps = 0
        self.disc_nonfinite = 0
        self._cache_step: int | None = None
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] = []  # (x, sg(x_hat)) this step

    # ---- the loop's interface -------------------------------------------------------------------
    def wrap(self, wrapper) -> None:
        """``wrapper`` is e.g. ``lambda m: DDP(m)``: one DDP for the generator's loss module and
        one for the discriminator (each syncs only its own parameters' gradients)."""
        self.wrapped = wrapper(self.loss_module)
        self.disc_wrapped = wrapper(self.discriminator)

    def adversarial_on(self, step: int) -> bool:
        return self.cfg.loss.adversarial_weight > 0 and step >= self.cfg.loss.adversarial_start

    def micro_loss(self, x: torch.Tensor, step: int, rows: torch.Tensor,
                   global_batch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_G for one micro-batch (the GAN has no randomness: ``rows`` is unused)."""
        if self._cache_step != step:
            self._cache_step, self._cache = step, []
        adv = self.adversarial_on(step)
        x_hat, l_rec, l_adv, logs = self.wrapped(x, adv)
        total = l_rec
        if adv:
            lc = self.cfg.loss
            lam = torch.tensor(1.0, device=x.device)
            if lc.adaptive_adversarial_weight:
                lam = adaptive_weight(l_rec, l_adv, self.model.d_initial.last_layer,
                                      reduce_grads=_average_across_processes)
            lam = lam * lc.adversarial_weight
            total = l_rec + lam * l_adv
            logs["adv_weight"] = lam.detach()
            self._cache.append((x.detach(), x_hat.detach()))
        logs["loss_rec"] = l_rec.detach()
        logs["loss"] = total.detach()
        return total, logs

    def after_step(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One discriminator update on this step's real images and detached reconstructions."""
        if not self.adversarial_on(step):
            return {}
        pairs = self._cache if self._cache_step == step and self._cache else []
        if not pairs:  # called without micro_loss (e.g. by hand): reconstruct without grad
            with torch.no_grad(), autocast_for(x.device, self.cfg.train.bf16):
                x_hat = self.model.d_initial(self.model.encoder(x)).float()
            pairs = [(x, x_hat)]
        self._cache = []
        return self._disc_step(pairs, step)

    # ---- the discriminator step -----------------------------------------------------------------
    def _disc_step(self, pairs: list[tuple[torch.Tensor, torch.Tensor]],
                   step: int) -> dict[str, torch.Tensor]:
        lc, tc = self.cfg.loss, self.cfg.train
        set_lr(self.disc_optimizer, lr_at(step, tc) * lc.disc_lr_scale)
        self.disc_optimizer.zero_grad(set_to_none=True)
        n = len(pairs)
        sums = torch.zeros(3, device=self.device)  # L_disc, R_LC, R1 averaged over the rounds
        means = torch.zeros(2, device=self.device)  # mean real / fake logits over the rounds
        bad = False
        for i, (real, fake) in enumerate(pairs):
            sync = i == n - 1 or not _distributed()
            ctx = nullcontext() if sync else self.disc_wrapped.no_sync()
            with ctx:
                if lc.r1_weight > 0:  # R1 differentiates D(x) with respect to x
                    real = real.detach().requires_grad_(True)
                with autocast_for(real.device, tc.bf16):
                    logits = self.disc_wrapped(torch.cat([real, fake.detach()])).float()
                l_real, l_fake = logits.chunk(2)  # real first, then fake
                cur = torch.stack([l_real.mean(), l_fake.mean()]).detach()
                means += cur / n
                if self.lecam_initialized:
                    anchor_r, anchor_f = self.lecam_real, self.lecam_fake
                else:  # first D step: this round's global means (same on every process)
                    anchor_r, anchor_f = _average_across_processes(cur)[0].unbind()
                l_disc = discriminator_loss(l_real, l_fake, lc.gan_loss)
                loss = l_disc
                if lc.lecam_weight > 0:
                    reg = lecam_regularizer(l_real, l_fake, anchor_r, anchor_f)
                    loss = loss + lc.lecam_weight * reg
                    sums[1] += reg.detach() / n
                if lc.r1_weight > 0:
                    r1 = r1_penalty(real, l_real)
                    loss = loss + 0.5 * lc.r1_weight * r1
                    sums[2] += r1.detach() / n
                bad = bad or not bool(torch.isfinite(loss))
                (loss / n).backward()
            sums[0] += l_disc.detach() / n
        res = optimizer_step(self.disc_optimizer, self.discriminator.parameters(), tc.grad_clip,
                             loss_finite=not bad,
                             any_rank=lambda flag: _any_true(flag, self.device))
        grad_norm = res.grad_norm
        if res.skipped:
            self.disc_nonfinite += 1
        else:
            self.disc_steps += 1
            means = _average_across_processes(means)[0]
            if self.lecam_initialized:
                self.lecam_real = ema_update(self.lecam_real, means[0], lc.lecam_decay)
                self.lecam_fake = ema_update(self.lecam_fake, means[1], lc.lecam_decay)
            else:
                self.lecam_real, self.lecam_fake = means[0].clone(), means[1].clone()
                self.lecam_initialized = True
        logs = {"loss_d": sums[0], "d_logit_real": means[0], "d_logit_fake": means[1],
                "disc_grad_norm": grad_norm.detach()}
        if lc.lecam_weight > 0:
            logs["lecam"] = sums[1]
        if lc.r1_weight > 0:
            logs["r1"] = sums[2]
        return logs

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"discriminator": self.discriminator.state_dict(),
                "optimizer": self.disc_optimizer.state_dict(),
                "lecam": {"real": self.lecam_real.detach().clone(),
                          "fake": self.lecam_fake.detach().clone(),
                          "initialized": self.lecam_initialized},
                "disc_steps": self.disc_steps, "disc_nonfinite": self.disc_nonfinite}

    def load_state_dict(self, state: dict) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.disc_optimizer.load_state_dict(state["optimizer"])
        self.lecam_real = state["lecam"]["real"].to(self.device).clone()
        self.lecam_fake = state["lecam"]["fake"].to(self.device).clone()
        self.lecam_initialized = bool(state["lecam"]["initialized"])
        self.disc_steps = int(state["disc_steps"])
        self.disc_nonfinite = int(state["disc_nonfinite"])


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _average_across_processes(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The mean of each tensor over all processes (identity in one process)."""
    if not _distributed():
        return tensors
    out = []
    for t in tensors:
        t = t.detach().clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        out.append(t / dist.get_world_size())
    return tuple(out)


def _any_true(flag: bool, device: torch.device) -> bool:
    if not _distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
