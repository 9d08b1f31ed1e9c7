"""DGAE, the diffusion-guided autoencoder (arXiv 2506.09644; only its abstract is public to us).

A VAE-style autoencoder whose Gaussian decoder is replaced by a conditional diffusion model
guided by the latent:

    q(z | x) = N(mu(x), diag exp(logvar(x)))   the encoder predicts both (2C channels)
    g = G(z)                                   the latent guide: z -> a feature map at image size
    p(x | z): DDIM with v_hat = U(concat(x_t, g), logSNR(t)), g = 0 for the unconditional branch

Training samples z = mu + exp(logvar / 2) * n (reparameterisation); inference uses z = mu.
The guide is trained only through the diffusion (score-matching) loss and the perceptual loss on
the decoder's x0 estimate, never towards an image of its own: unlike SWYCC's D_Initial it emits
features (``model.decoder.out_channels``), not a first reconstruction. See docs/dgae.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from swycc.autoencoders.base import Autoencoder, unet_stride
from swycc.config import Config
from swycc.diffusion.denoiser import Denoiser
from swycc.nn.autoencoder_nets import Decoder
from swycc.nn.unet import UNet

LOGVAR_RANGE = (-30.0, 20.0)  # as SD's DiagonalGaussianDistribution: keeps exp() finite


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per element = (mean^2 + var - 1 - logvar) / 2."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


class DGAE(Autoencoder):
    kind = "dgae"
    summary = "KL-regularised latent, diffusion decoder guided by the latent's features (DGAE)"
    samples = True

    def __init__(self, config: Config):
        super().__init__(config)
        m = config.model
        if m.unet.predict_residual:
            raise ValueError("model.unet.predict_residual needs an image-space anchor; DGAE's "
                             "guide emits features: use method 'swycc' for residual prediction")
        self.guide = Decoder(m.decoder, m.latent_channels)  # (N, C, h, w) -> (N, F, H, W)
        self.d_refine = UNet(m.unet, m.image_size, in_channels=3 + m.decoder.out_channels)

    @staticmethod
    def encoder_out_channels(config: Config) -> int:
        return 2 * config.model.latent_channels  # mean and log-variance

    @property
    def denoiser(self) -> Denoiser:
        return Denoiser(self.d_refine, predict_residual=False)

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "latent guide": self.guide, "D_Refine": self.d_refine}

    @property
    def stride(self) -> int:
        return unet_stride(self.config)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of q(z | x), each (N, C, h, w); x already padded."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def _encode_padded(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean (the deterministic latent used at inference)."""
        return self.posterior(x)[0]

    def guide_features(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) normalised to zero mean and unit variance per image (over F, H, W): the guide
        has no loss of its own, and unnormalised its features started ~20x fainter than the
        noisy image they are concatenated with, so the decoder learned to ignore them."""
        return F.group_norm(self.guide(z).float(), 1)

    def _decode(self, z, steps, guidance, k, generator, plan):
        cond = plan.latent_map(self.guide_features, z).repeat_interleave(k, dim=0)  # (Nk, F, H, W)
        return self.denoiser.sample(cond, steps, guidance, generator,
                                    denoise_fn=plan.denoiser(self.denoiser)).unflatten(0, (-1, k))
