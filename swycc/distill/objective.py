"""Progressive distillation (Salimans & Ho 2022, Algorithm 2) of a SWYCC D_Refine, one round.

A student with N DDIM steps learns to do in one step what its teacher does in two, on the
teacher's own grid t_i = i / N (the student's steps) with the midpoints t - 1/(2N):

    z_t   = alpha_t y + sigma_t eps                 y: the diffused variable (x, or x - D_Initial
                                                    for residual prediction), t = i / N
    z_t'  = DDIM_teacher(z_t,  t  -> t' = t - 1/(2N))
    z_t'' = DDIM_teacher(z_t', t' -> t'' = t - 1/N)
    y~    = (z_t'' - (sigma_t''/sigma_t) z_t) / (alpha_t'' - (sigma_t''/sigma_t) alpha_t)

y~ is the x0 that takes a single DDIM step from z_t exactly to z_t''; at t'' = 0 it is the
teacher's final x0 estimate (the sampler returns x0 there). The student predicts v; its
y^ = alpha_t z_t - sigma_t v^ is pulled towards y~ with the truncated-SNR weight
max(SNR_t, 1) ||y^ - y~||^2 (PD paper sec. 4), or (SNR_t + 1) ||y^ - y~||^2 (= the v-loss).

Guidance folding (Meng et al. 2023): in the first round the teacher's steps use classifier-free
guidance v = v_c + w (v_c - v_u); the student is called on the condition only, so from then on
guidance costs no second network call. Later rounds' teachers are students: guidance 0.

The teacher and its DDIM steps are exactly those of ``swycc.diffusion.sampling.ddim_sample`` (clip of the
x0 estimate at the denoiser's ``sample_clip``, eps recomputed from the clipped x0), so a student
that matched its targets would reproduce the teacher's sampler. Randomness (i, eps) is drawn for
the global batch from a generator seeded by (seed, step), rows picked per process, so resumed
and DDP runs reproduce an uninterrupted one-process run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from swycc.autoencoders import SWYCC
from swycc.diffusion.schedule import add_noise, alpha_sigma, logsnr, x_from_v
from swycc.diffusion.sampling import guided_v
from swycc.train.objectives import Objective, autocast_for, step_generator

WEIGHTINGS = ("truncated-snr", "snr+1")


@dataclass
class PDDraw:
    t: torch.Tensor  # (B,) the student's grid points i / N, i in 1..N
    eps: torch.Tensor  # (B, 3, H, W)


def draw_pd_noise(seed: int, step: int, rows: torch.Tensor, global_batch: int, shape: tuple,
                  student_steps: int, device: torch.device) -> PDDraw:
    """The rows ``rows`` of the step's global draw of i ~ U{1..N} and eps ~ N(0, I)."""
    g = step_generator(seed, step, device)
    i = torch.randint(1, student_steps + 1, (global_batch,), generator=g, device=device)
    eps = torch.randn((global_batch, *shape), generator=g, device=device)
    rows = rows.to(device)
    return PDDraw((i.double() / student_steps).float()[rows], eps[rows])


def _b(s: torch.Tensor) -> torch.Tensor:
    return s.view(-1, 1, 1, 1)


def ddim_step(denoiser, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor,
              cond: torch.Tensor, guidance: float, null_cond: torch.Tensor | None,
              clip: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One deterministic DDIM step t -> t_next (per row) as ``ddim_sample`` takes it:
    returns (x_{t_next}, the clipped x0 estimate)."""
    v = guided_v(denoiser, x, t, cond, guidance, null_cond).float()
    x0 = x_from_v(x, t, v)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    a, s = alpha_sigma(t)
    eps = (x - _b(a) * x0) / _b(s)  # eps consistent with the (clipped) x0
    a_next, s_next = alpha_sigma(t_next)
    return _b(a_next) * x0 + _b(s_next) * eps, x0


@torch.no_grad()
def pd_target(denoiser, z_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
              student_steps: int, guidance: float, clip: float | None,
              null_cond: torch.Tensor | None = None) -> torch.Tensor:
    """y~: the x0 target of one student step from z_t (per row t = i / N), from two teacher
    DDIM steps (see the module doc)."""
    half = 0.5 / student_steps
    t_mid = (t - half).clamp_min(0)
    t_end = (t - 2 * half).clamp_min(0)
    z_mid, _ = ddim_step(denoiser, z_t, t, t_mid, cond, guidance, null_cond, clip)
    z_end, x0_end = ddim_step(denoiser, z_mid, t_mid, t_end, cond, guidance, null_cond, clip)
    a, s = alpha_sigma(t)
    a2, s2 = alpha_sigma(t_end)
    ratio = s2 / s
    y = (z_end - _b(ratio) * z_t) / _b(a2 - ratio * a)
    last = _b(t_end <= 0)  # the sampler's last step returns x0 itself
    return torch.where(last, x0_end, y)


def pd_weight(t: torch.Tensor, weighting: str) -> torch.Tensor:
    """Per-row weight of the x-space loss: max(SNR, 1) (truncated SNR) or SNR + 1 (v-loss)."""
    snr = torch.exp(logsnr(t).double())
    w = snr.clamp_min(1.0) if weighting == "truncated-snr" else snr + 1.0
    return w.float()


class StudentLoss(nn.Module):
    """forward(z_t, t, cond, target) -> (loss, logs); the module wrapped in DDP (the student's
    forward pass only: the teacher's targets are computed outside it)."""

    def __init__(self, student: SWYCC, weighting: str, bf16: bool = False):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.student, self.weighting, self.bf16 = student, weighting, bf16

    def forward(self, z_t, t, cond, target):
        with autocast_for(z_t.device, self.bf16):
            v = self.student.denoiser(z_t, t, cond).float()
        y_hat = x_from_v(z_t, t, v)
        err = (y_hat - target).pow(2).flatten(1).mean(1)  # (B,)
        loss = (pd_weight(t, self.weighting) * err).mean()
        return loss, {"loss": loss.detach(), "mse_x0": err.mean().detach()}


class ProgressiveDistillObjective(Objective):
    """One PD round for the generic loop: ``teacher`` (frozen, held here, not a submodule of the
    student) makes targets; the student's D_Refine learns them."""

    def __init__(self, teacher: SWYCC, student: SWYCC, student_steps: int,
                 teacher_guidance: float, seed: int, weighting: str = "truncated-snr",
                 bf16: bool = False):
        if student.config.model.unet.predict_residual != teacher.config.model.unet.predict_residual:
            raise ValueError("teacher and student must share model.unet.predict_residual")
        self.teacher = teacher.eval().requires_grad_(False)
        self.student_steps, self.guidance, self.seed = student_steps, teacher_guidance, seed
        self.bf16 = bf16
        self.loss_module = StudentLoss(student, weighting, bf16)
        self.wrapped: nn.Module = self.loss_module

    @torch.no_grad()
    def targets(self, x: torch.Tensor, draw: PDDraw):
        """(z_t, cond, y~) for images x: cond = D_Initial(E(x)) (the frozen parts both share)."""
        te = self.teacher
        with autocast_for(x.device, self.bf16):
            cond = te.d_initial(te.encoder(x)).float()
        den = te.denoiser
        z_t = add_noise(den.diffused(x, cond), draw.t, draw.eps)

        def net(x_t, t, c):  # the network call only in bf16; the DDIM maths stay fp32
            with autocast_for(x.device, self.bf16):
                return den(x_t, t, c).float()

        target = pd_target(net, z_t, draw.t, cond, self.student_steps, self.guidance,
                           den.sample_clip, den.null_condition(cond))
        return z_t, cond, target

    def micro_loss(self, x: torch.Tensor, step: int, rows: torch.Tensor,
                   global_batch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        draw = draw_pd_noise(self.seed, step, rows, global_batch, tuple(x.shape[1:]),
                             self.student_steps, x.device)
        z_t, cond, target = self.targets(x, draw)
        return self.wrapped(z_t, draw.t, cond, target)
