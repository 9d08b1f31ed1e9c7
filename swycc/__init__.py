"""swycc: image autoencoders with a diffusion decoder ("Sample what you can't compress")."""

from swycc.autoencoder import SWYCC, load_autoencoder
from swycc.config import Config, get_preset

__all__ = ["SWYCC", "Config", "get_preset", "load_autoencoder"]
__version__ = "0.1.0"
