"""The GAN autoencoder baseline (sec. 3.5): the same encoder, a deterministic decoder with the
D_Initial architecture plus MAGVIT-v2's adaptive GroupNorm; trained adversarially
(``swycc.train.gan_objective``)."""

from __future__ import annotations

from torch import nn

from swycc.autoencoders.base import Autoencoder
from swycc.config import Config
from swycc.nn.autoencoder_nets import Decoder


class GANAutoencoder(Autoencoder):
    kind = "gan"
    summary = ("deterministic decoder trained with adversarial + perceptual "
               "+ MSE losses (the paper's baseline)")
    samples = False
    initial_label = "GAN decoder"

    def __init__(self, config: Config):
        super().__init__(config)
        m = config.model
        # named d_initial like SWYCC's decoder of the same architecture: checkpoints keep their keys
        self.d_initial = Decoder(m.decoder, m.latent_channels)

    @property
    def decoder(self) -> Decoder:
        return self.d_initial

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.d_initial}

    def _decode(self, z, steps, guidance, k, generator, plan):
        return plan.latent_map(self.d_initial, z).float().unsqueeze(1).expand(-1, k, -1, -1, -1)

    @property
    def initial_decoder(self) -> nn.Module:
        """The decoder: decode_initial(z) is the GAN's only reconstruction."""
        return self.d_initial
