"""Perceptual feature nets by name: the one place ``loss.perceptual_net`` is resolved.

The names are declared in ``swycc.config.PERCEPTUAL_NET_NAMES`` (a config knows nothing of this
package); a test checks that the two lists agree.
"""

from __future__ import annotations

from pathlib import Path

from swycc.losses.dists import build_dists
from swycc.losses.perceptual import (EfficientNetLite0Features, FeatureNet, ResNet50Features,
                                     VGG16Features)

PERCEPTUAL_NETS: dict[str, type[FeatureNet]] = {
    "efficientnet-lite0": EfficientNetLite0Features,
    "resnet50": ResNet50Features,
    "vgg16": VGG16Features,
}

# DISTS nets (Fig. 10's auxiliary loss) bring their own distance (see perceptual_distance).
DISTS_NET_NAMES = ("dists-effnetlite0", "dists-vgg16")


def build_perceptual(name: str, weights: str | Path | None) -> FeatureNet:
    """The frozen feature net ``name`` with weights from ``weights`` (None: packaged default).

    Only "efficientnet-lite0" and "dists-effnetlite0" have a packaged default; the others need
    local files.
    """
    if name in DISTS_NET_NAMES:
        return build_dists(name, weights)
    if name not in PERCEPTUAL_NETS:
        raise ValueError(f"unknown perceptual net {name!r}; choose from "
                         f"{sorted([*PERCEPTUAL_NETS, *DISTS_NET_NAMES])}")
    return PERCEPTUAL_NETS[name].from_file(weights)
