"""Metrics: pure maths apart from the feature extractors.

- :mod:`swycc.metrics.maths`: PSNR, SSIM, MS-SSIM, Frechet distance, MMD^2 (CMMD), Inception
  Score, streaming feature statistics; numpy/torch only, no networks.
- :mod:`swycc.metrics.inception` (rFID, IS), :mod:`swycc.metrics.clip` (CMMD),
  :mod:`swycc.metrics.dinov2` (FD-DINOv2): the reference networks, loaded from local weight
  files found by :mod:`swycc.metrics.weights` (never downloaded).
- :mod:`swycc.metrics.proxies`: offline proxies on EfficientNet-Lite0 features, named after it.
- :mod:`swycc.metrics.evaluate`: the ``swycc eval`` job that streams images through all of these.
"""

from swycc.metrics.maths import (FeatureStats, frechet_distance, inception_score, mmd2_rbf,
                                 ms_ssim, psnr, ssim)

__all__ = ["FeatureStats", "frechet_distance", "inception_score", "mmd2_rbf", "ms_ssim", "psnr",
           "ssim"]
