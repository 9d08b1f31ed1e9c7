"""The autoencoder kinds' model classes (registered with their objectives in
``swycc.autoencoders.kinds``)."""

from swycc.autoencoders.dgae import DGAE
from swycc.autoencoders.distilled import DistilledSWYCC
from swycc.autoencoders.gan import GANAutoencoder
from swycc.autoencoders.swycc import SWYCC

__all__ = ["DGAE", "DistilledSWYCC", "GANAutoencoder", "SWYCC"]
