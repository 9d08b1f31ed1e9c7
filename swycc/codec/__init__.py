"""A perceptual image codec on the autoencoder's latent: ``swycc compress`` / ``decompress``.

The latent is rounded at a step set by ``--quality`` (``codec``), each channel's integers are
range coded (``entropy``, with constriction) under a discretised Laplace whose integer table
every machine computes alike (``prior``), and written with a versioned, checksummed header naming
the model (``fileformat``). The decoder samples what the latent did not carry.
"""

from swycc.codec.codec import (DEFAULT_QUALITY, compress, decode_latent, encode_latent,
                               file_bpp, quality_step, read)
from swycc.codec.fileformat import CodecFileError, SwycFile, model_id_from_sha256
from swycc.codec.prior import LatentPrior, fit_prior

__all__ = ["DEFAULT_QUALITY", "CodecFileError", "LatentPrior", "SwycFile", "compress",
           "decode_latent", "encode_latent", "file_bpp", "fit_prior", "model_id_from_sha256",
           "quality_step", "read"]
