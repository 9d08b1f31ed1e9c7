"""Diffusion maths apart from any network (edm2's split): the cosine schedule and
v-parameterisation (:mod:`swycc.diffusion.schedule`), the ``Denoiser`` that owns a decoder's
conditioning and parameterisation (:mod:`swycc.diffusion.denoiser`), and DDIM with
classifier-free guidance as a free function (:mod:`swycc.diffusion.sampling`)."""

from swycc.diffusion.schedule import (add_noise, alpha_sigma, eps_from_v, logsnr, v_loss,
                                      v_target, x_from_v)

__all__ = ["add_noise", "alpha_sigma", "eps_from_v", "logsnr", "v_loss", "v_target", "x_from_v"]
