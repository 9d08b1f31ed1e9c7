"""Adversarial-loss maths for the GAN autoencoder baseline, as pure functions.

- ``discriminator_loss`` / ``generator_loss``: hinge (Lim & Ye 2017; taming-transformers'
  ``hinge_d_loss``) or non-saturating (Goodfellow et al. 2014; StyleGAN's default) on the
  discriminator's logits, averaged over every patch logit.
- ``lecam_regularizer``: LeCAM (Tseng et al. 2021, "Regularizing generative adversarial networks
  under limited data", eq. 3), used by MAGVIT/MAGVIT-v2 for stability; ``ema_update`` keeps its
  anchors.
- ``r1_penalty``: R1 (Mescheder et al. 2018, "Which training methods for GANs do actually
  converge?", eq. 9), the squared gradient norm of D on real images (StyleGAN's regulariser).
- ``adaptive_weight``: taming-transformers' (Esser et al. 2021, eq. 7) balance between the
  reconstruction and adversarial terms from their gradient norms at the decoder's last layer.

Everything here works in fp32 on the logits it is given and keeps no state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_LOSSES = ("hinge", "non-saturating")


def _check(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"loss.gan_loss must be one of {GAN_LOSSES}, got {kind!r}")


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor,
                       kind: str = "hinge") -> torch.Tensor:
    """L_D for logits of real and (detached) fake images, any shape, e.g. (N, 1, h, w).

    hinge:          0.5 * (E[relu(1 - D(x))] + E[relu(1 + D(x_hat))])
    non-saturating: 0.5 * (E[softplus(-D(x))] + E[softplus(D(x_hat))])
    (the 0.5 is taming-transformers' convention: the mean of the real and fake halves.)
    """
    _check(kind)
    real, fake = logits_real.float(), logits_fake.float()
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
    return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())


def generator_loss(logits_fake: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """L_G for the logits of reconstructions: hinge -E[D(x_hat)]; non-saturating
    E[softplus(-D(x_hat))] = -E[log sigmoid(D(x_hat))]."""
    _check(kind)
    fake = logits_fake.float()
    if kind == "hinge":
        return -fake.mean()
    return F.softplus(-fake).mean()


def lecam_regularizer(logits_real: torch.Tensor, logits_fake: torch.Tensor,
                      anchor_real: torch.Tensor | float,
                      anchor_fake: torch.Tensor | float) -> torch.Tensor:
    """LeCAM regulariser R_LC for the discriminator (Tseng et al. 2021, eq. 3):

        R_LC = E[relu(D(x) - alpha_F)^2] + E[relu(alpha_R - D(x_hat))^2]

    alpha_R / alpha_F: EMAs of the mean real / fake logits (treated as constants). The one-sided
    relu form is the authors' released code (google/lecam-gan); the paper writes the plain square.
    """
    real, fake = logits_real.float(), logits_fake.float()
    a_r = torch.as_tensor(anchor_real, dtype=torch.float32, device=real.device).detach()
    a_f = torch.as_tensor(anchor_fake, dtype=torch.float32, device=real.device).detach()
    return F.relu(real - a_f).pow(2).mean() + F.relu(a_r - fake).pow(2).mean()


def r1_penalty(real: torch.Tensor, logits_real: torch.Tensor) -> torch.Tensor:
    """R1 = E_x ||grad_x D(x)||^2 (Mescheder et al. 2018, eq. 9 without its gamma / 2).

    ``real`` must require grad and ``logits_real`` = D(real). A patch discriminator's per-image
    score is the mean of its patch logits, so the penalty does not grow with the logit map. The
    graph is kept (create_graph) so that backward through the penalty reaches D's parameters.
    """
    per_image = logits_real.float().flatten(1).mean(1)
    (g,) = torch.autograd.grad(per_image.sum(), real, create_graph=True)
    return g.float().pow(2).flatten(1).sum(1).mean()


def ema_update(average: torch.Tensor, value: torch.Tensor, decay: float) -> torch.Tensor:
    """decay * average + (1 - decay) * value, detached (the LeCAM anchors)."""
    return (decay * average + (1.0 - decay) * value).detach()


def adaptive_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4, eps: float = 1e-4,
                    reduce_grads=None) -> torch.Tensor:
    """taming-transformers' adaptive weight (Esser et al. 2021, eq. 7), detached:

        lambda = ||grad_L L_rec|| / (||grad_L L_adv|| + eps), clamped to [0, max_weight]

    with L the decoder's last layer weight. Both losses keep their graphs (retain_graph) so the
    caller can back-propagate ``rec_loss + lambda * adv_loss`` afterwards. ``torch.autograd.grad``
    with explicit inputs does not accumulate into ``.grad`` (nor fire DDP's gradient hooks).
    ``reduce_grads`` (optional): maps the two gradient tensors to their cross-process averages
    before the norms, so every process uses the lambda of the global batch.
    """
    g_rec = _grad_or_zero(rec_loss, last_layer)
    g_adv = _grad_or_zero(adv_loss, last_layer)
    if reduce_grads is not None:
        g_rec, g_adv = reduce_grads(g_rec, g_adv)
    weight = g_rec.float().norm() / (g_adv.float().norm() + eps)
    return weight.clamp(0.0, max_weight).detach()


def _grad_or_zero(loss: torch.Tensor, wrt: torch.Tensor) -> torch.Tensor:
    if not loss.requires_grad:
        return torch.zeros_like(wrt)
    (g,) = torch.autograd.grad(loss, wrt, retain_graph=True, allow_unused=True)
    return torch.zeros_like(wrt) if g is None else g
