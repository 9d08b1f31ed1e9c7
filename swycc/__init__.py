"""swycc: image autoencoders with a diffusion decoder ("Sample what you can't compress")."""

from swycc.autoencoders.base import Autoencoder, load_autoencoder
from swycc.autoencoders import DGAE, SWYCC, GANAutoencoder
from swycc.config import Config, get_preset

__all__ = ["DGAE", "SWYCC", "Autoencoder", "Config", "GANAutoencoder", "get_preset",
           "load_autoencoder"]
__version__ = "0.1.0"
