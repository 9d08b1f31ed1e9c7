"""A SWYCC autoencoder whose D_Refine was distilled to few steps (``swycc distill``).

Same networks and parameter names as ``SWYCC`` (encoder, D_Initial, D_Refine): the encoder and
D_Initial are the teacher's, copied and frozen, so latents of the teacher decode with the student
and vice versa. Only D_Refine differs: progressive distillation (Salimans & Ho 2022) trained it
to reach in ``config.sampling.steps`` DDIM steps what the teacher reaches in many, with the
teacher's classifier-free guidance w = ``config.sampling.guidance`` folded into the network
(Meng et al. 2023): each step is one network call on the condition, never a guided pair.
See docs/distillation.md.
"""

from __future__ import annotations

from swycc.autoencoders.swycc import SWYCC


class GuidanceFoldedError(ValueError):
    """A distilled decoder was asked for a guidance other than the one folded into it."""


class DistilledSWYCC(SWYCC):
    kind = "swycc-distilled"
    summary = "SWYCC with D_Refine distilled to few steps, guidance folded in (`swycc distill`)"

    @property
    def folded_guidance(self) -> float:
        """The teacher's guidance w the network reproduces on its own (no unconditional pass)."""
        return self.config.sampling.guidance

    @property
    def distilled_steps(self) -> int:
        """The DDIM step count the student was trained for (the default of ``decode``)."""
        return self.config.sampling.steps

    def _decode(self, z, steps, guidance, k, generator, plan):
        if guidance != self.folded_guidance:
            raise GuidanceFoldedError(
                f"this distilled decoder has guidance w={self.folded_guidance} folded into its "
                f"network and cannot apply w={guidance}; decode with guidance="
                f"{self.folded_guidance} (the default) or use the teacher for other guidance")
        cond = plan.latent_map(self.d_initial, z).float().repeat_interleave(k, dim=0)
        x = self.denoiser.sample(cond, steps, 0.0, generator, anchor=cond,  # one call a step
                                 denoise_fn=plan.denoiser(self.denoiser))
        return x.unflatten(0, (-1, k))
