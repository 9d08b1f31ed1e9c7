"""SWYCC: encoder E, the deterministic D_Initial and the diffusion decoder D_Refine (sec. 3).

x_hat ~ p(x | z) by guided DDIM with D_Refine conditioned on D_Initial(z) (eq. 2); the paper
predicts x (v-loss); ``model.unet.predict_residual`` diffuses x - D_Initial(z) instead.
"""

from __future__ import annotations

from torch import nn

from swycc.autoencoders.base import Autoencoder, unet_stride
from swycc.config import Config
from swycc.diffusion.denoiser import Denoiser
from swycc.nn.autoencoder_nets import Decoder
from swycc.nn.unet import UNet


class SWYCC(Autoencoder):
    kind = "swycc"
    summary = "diffusion decoder D_Refine conditioned on D_Initial(z) (the paper)"
    samples = True
    initial_label = "D_Initial"

    def __init__(self, config: Config):
        super().__init__(config)
        m = config.model
        self.d_initial = Decoder(m.decoder, m.latent_channels)
        self.d_refine = UNet(m.unet, m.image_size)

    @property
    def denoiser(self) -> Denoiser:
        return Denoiser(self.d_refine, self.config.model.unet.predict_residual)

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "D_Initial": self.d_initial, "D_Refine": self.d_refine}

    @property
    def stride(self) -> int:
        return unet_stride(self.config)

    def _decode(self, z, steps, guidance, k, generator, plan):
        cond = plan.latent_map(self.d_initial, z).float().repeat_interleave(k, dim=0)
        x = self.denoiser.sample(cond, steps, guidance, generator, anchor=cond,
                                 denoise_fn=plan.denoiser(self.denoiser))
        return x.unflatten(0, (-1, k))

    @property
    def initial_decoder(self) -> nn.Module:
        """D_Initial: decode_initial(z) is the first reconstruction D_Initial(z)."""
        return self.d_initial
