"""DISTS (Ding, Ma, Wang, Simoncelli 2020), the auxiliary loss of the paper's Fig. 10 ablation.

For stages k = 0..K of a network, with stage 0 the image itself in [0, 1] (3 channels), and
every channel j of a stage, means mu, variances sigma^2 and the covariance over (H, W):

    l(x, y)_kj = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)               texture
    s(x, y)_kj = (2 sigma_xy + c2) / (sigma_x^2 + sigma_y^2 + c2)           structure
    D(x, y) = 1 - sum_k sum_j (alpha_kj l_kj + beta_kj s_kj),   c1 = c2 = 1e-6,

with alpha, beta >= 0 divided by their joint sum so that all of them add up to 1. D(x, x) = 0
and D is symmetric. With non-negative features (DISTS' ReLU outputs) l lies in (0, 1] and s in
[-1, 1], so D lies in [0, 1 + sum beta]; in practice below 1.

Two networks:

``dists-vgg16``: DISTS proper. VGG16 (``relu1_2 .. relu5_3``) with each 2x2 max-pool replaced by
    L2 pooling (a 3x3 Hann window [1/2, 1, 1/2] x [1/2, 1, 1/2] / 4, stride 2, padding 1, over
    x^2, then sqrt), ImageNet mean/std input normalisation, and the published learned
    alpha/beta (1475 channels each: 3 + 64 + 128 + 256 + 512 + 512). Both come from local
    safetensors files only (never unpickled). Users with the original files convert them once:

        python -c "import torch; from safetensors.torch import save_file; \\
          s = torch.load('vgg16-397923af.pth', weights_only=True); \\
          save_file({k: v.contiguous() for k, v in s.items() if k.startswith('features.')}, \\
          'vgg16.safetensors')"
        python -c "import torch; from safetensors.torch import save_file; \\
          w = torch.load('weights.pt', weights_only=True); \\
          save_file({'alpha': w['alpha'].contiguous(), 'beta': w['beta'].contiguous()}, \\
          'dists_weights.safetensors')"

    (``vgg16-397923af.pth``: torchvision's VGG16_Weights.IMAGENET1K_V1; ``weights.pt``: the
    DISTS repository's ``DISTS_pytorch/weights.pt``.) ``loss.perceptual_weights`` then names a
    folder holding ``vgg16.safetensors`` and ``dists_weights.safetensors``, or one safetensors
    file with both (``features.*``, ``alpha``, ``beta``).

``dists-effnetlite0``: a DISTS-style distance on the packaged ImageNet EfficientNet-Lite0 (stage 0
    plus the perceptual loss' taps, 3 + 16 + 24 + 40 + 112 channels). No learned alpha/beta
    exist for it, so they are uniform (1 / 390 each). Its block outputs are linear (no ReLU), so
    its texture term can be negative and D lies in [0, 2]. It is not DISTS: report it by name.

The covariance is computed as mean((x - mu_x)(y - mu_y)), algebraically the reference's
mean(xy) - mu_x mu_y but exact for x = y, so D(x, x) = 0 up to the rounding of sum(weights).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from swycc.nn.backbones import vgg16_features
from swycc.losses.perceptual import (EfficientNetLite0Features, FeatureNet, StateDict, WeightsError,
                              WeightsNotFoundError, efficientnet_lite0_weights, load_into,
                              sha256_file)

C1 = C2 = 1e-6
DISTS_VGG16_CHANNELS = (3, 64, 128, 256, 512, 512)
DISTS_EFFNETLITE0_CHANNELS = (3, 16, 24, 40, 112)
# SHA-256 of the safetensors conversions above. None: not computed, since the original files
# cannot be fetched here and a conversion's bytes depend on the safetensors version. Set them
# (or pass sha256=...) to have the loaders check the files.
VGG16_FEATURES_SHA256: str | None = None
DISTS_WEIGHTS_SHA256: str | None = None
VGG16_FILE, DISTS_WEIGHTS_FILE = "vgg16.safetensors", "dists_weights.safetensors"


def dists_terms(fx: torch.Tensor, fy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) features of x and y -> (texture l, structure s), each (N, C), fp32."""
    fx, fy = fx.float().flatten(2), fy.float().flatten(2)
    mx, my = fx.mean(2), fy.mean(2)
    dx, dy = fx - mx.unsqueeze(2), fy - my.unsqueeze(2)
    vx, vy, cxy = dx.pow(2).mean(2), dy.pow(2).mean(2), (dx * dy).mean(2)
    texture = (2 * mx * my + C1) / (mx.pow(2) + my.pow(2) + C1)
    structure = (2 * cxy + C2) / (vx + vy + C2)
    return texture, structure


def dists_from_features(feats_x: list[torch.Tensor], feats_y: list[torch.Tensor],
                        alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """D per image, (N,): the module docstring's formula; alpha, beta: (sum of C_k,) raw weights
    (normalised here by their joint sum)."""
    total = alpha.sum() + beta.sum()
    sizes = [f.shape[1] for f in feats_x]
    similarity = 0.0
    for fx, fy, a, b in zip(feats_x, feats_y, (alpha / total).split(sizes),
                            (beta / total).split(sizes)):
        texture, structure = dists_terms(fx, fy)
        similarity = similarity + texture @ a.float() + structure @ b.float()
    return 1.0 - similarity


class L2Pooling(nn.Module):
    """DISTS' replacement for 2x2 max-pooling: sqrt(hann3x3 * x^2 + 1e-12), stride 2, pad 1."""

    def __init__(self, channels: int):
        super().__init__()
        w = torch.tensor([0.5, 1.0, 0.5])
        kernel = torch.outer(w, w) / torch.outer(w, w).sum()
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).contiguous(),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x.pow(2), self.kernel, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


def dists_vgg16_trunk() -> nn.Sequential:
    """torchvision's VGG16 ``features[:30]`` with each max-pool replaced by L2 pooling; same
    indices, so the state dict keys are torchvision's (``<i>.weight``)."""
    layers, channels = list(vgg16_features()), 3
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        elif isinstance(layer, nn.MaxPool2d):
            layers[i] = L2Pooling(channels)
    return nn.Sequential(*layers)


def _check_sha256(path: Path, expected: str | None) -> None:
    if expected is not None and (digest := sha256_file(path)) != expected:
        raise WeightsError(f"{path} has SHA-256 {digest}, expected {expected}")


def _load_safetensors(path: str | Path, what: str, sha256: str | None) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"{path}: {what} must be a .safetensors file (pickles are never "
                           "loaded); convert it as the swycc.losses.dists docstring shows")
    if not path.is_file():
        raise WeightsNotFoundError(f"{what} file {path} does not exist; see swycc.losses.dists")
    _check_sha256(path, sha256)
    from safetensors.torch import load_file

    return load_file(path)


def vgg16_features_state(state: StateDict) -> dict[str, torch.Tensor]:
    """torchvision VGG16 keys (``features.<i>.*``; ``classifier.*``, ``alpha``, ``beta``
    ignored) -> the trunk's ``<i>.*`` keys."""
    out, unexpected = {}, []
    for key, value in state.items():
        if key.startswith("features."):
            out[key.removeprefix("features.")] = value
        elif not key.startswith("classifier.") and key not in ("alpha", "beta"):
            unexpected.append(key)
    if unexpected or not out:
        raise WeightsError(f"vgg16: expected torchvision keys features.<i>.weight/bias, found "
                           f"{(unexpected or list(state))[:5]}")
    return out


def load_vgg16_features(path: str | Path,
                        sha256: str | None = VGG16_FEATURES_SHA256) -> dict[str, torch.Tensor]:
    """torchvision VGG16 weights from a .safetensors file -> the trunk's state dict."""
    return vgg16_features_state(_load_safetensors(path, "VGG16 weights", sha256))


def dists_alpha_beta(state: StateDict, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``alpha``, ``beta`` of shape (1, C, 1, 1) or (C,) -> two (C,) tensors, checked."""
    if "alpha" not in state or "beta" not in state:
        raise WeightsError(f"DISTS weights need 'alpha' and 'beta', found {sorted(state)[:5]}")
    alpha, beta = (state[k].detach().float().flatten() for k in ("alpha", "beta"))
    if alpha.numel() != channels or beta.numel() != channels:
        raise WeightsError(f"DISTS alpha/beta must hold {channels} values each, got "
                           f"{alpha.numel()} and {beta.numel()}")
    if not (torch.isfinite(alpha).all() and torch.isfinite(beta).all()):
        raise WeightsError("DISTS alpha/beta hold non-finite values")
    return alpha, beta


def load_dists_weights(path: str | Path, sha256: str | None = DISTS_WEIGHTS_SHA256
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """DISTS' learned alpha, beta (``weights.pt`` converted to .safetensors) -> (1475,) each."""
    return dists_alpha_beta(_load_safetensors(path, "DISTS alpha/beta", sha256),
                            sum(DISTS_VGG16_CHANNELS))


class DISTSNet(FeatureNet):
    """A FeatureNet whose stage 0 is the image in [0, 1] and which brings its own distance:
    ``distance(x, y)`` is D per image (N,), used by
    ``swycc.losses.perceptual.perceptual_distance``."""

    channels: tuple[int, ...] = ()

    def init_weights(self, alpha: torch.Tensor | None, beta: torch.Tensor | None) -> None:
        """alpha/beta buffers; None = uniform (1 each, 1 / (2 sum C) after normalisation)."""
        n = sum(self.channels)
        self.register_buffer("alpha", torch.ones(n) if alpha is None else alpha.float().clone())
        self.register_buffer("beta", torch.ones(n) if beta is None else beta.float().clone())
        if self.alpha.shape != (n,) or self.beta.shape != (n,):
            raise WeightsError(f"{type(self).__name__}: alpha/beta must hold {n} values each")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x  # stage 0 needs the image itself; extract() normalises for the network

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: (N, 3, H, W) in [-1, 1] -> D (N,), fp32. Two forwards, as perceptual_distance."""
        return dists_from_features(self(x), self(y), self.alpha, self.beta)


class DISTSVGG16(DISTSNet):
    """DISTS proper: VGG16 with L2 pooling, stages = image, relu1_2, ..., relu5_3.

    features: the trunk's state dict (``load_vgg16_features``); None = random (tests).
    alpha, beta: (1475,) learned weights (``load_dists_weights``); None = uniform.
    """

    channels = DISTS_VGG16_CHANNELS
    tap_names = ("image", "relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
    weights_hint = ("dists-vgg16 needs a folder with vgg16.safetensors and "
                    "dists_weights.safetensors (see the swycc.losses.dists docstring to convert "
                    "torchvision's vgg16-397923af.pth and DISTS' weights.pt).")
    taps = (3, 8, 15, 22, 29)

    def __init__(self, features: StateDict | None = None, alpha: torch.Tensor | None = None,
                 beta: torch.Tensor | None = None):
        super().__init__()
        self.features = dists_vgg16_trunk()
        if features is not None:
            load_into(self.features, features, "dists-vgg16")
        self.init_weights(alpha, beta)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
                             persistent=False)
        self.freeze()

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        image = (x + 1) / 2
        h, outs = (image - self.mean) / self.std, [image]
        for i, layer in enumerate(self.features[: self.taps[-1] + 1]):
            h = layer(h)
            if i in self.taps:
                outs.append(h)
        return outs

    @classmethod
    def from_file(cls, weights: str | Path | None) -> DISTSVGG16:
        """weights: a folder with vgg16.safetensors + dists_weights.safetensors, or one
        .safetensors file with ``features.*``, ``alpha`` and ``beta``."""
        if weights is None:
            raise WeightsNotFoundError(cls.weights_hint)
        path = Path(weights)
        if path.is_dir():
            alpha, beta = load_dists_weights(path / DISTS_WEIGHTS_FILE)
            return cls(load_vgg16_features(path / VGG16_FILE), alpha, beta)
        state = _load_safetensors(path, "dists-vgg16 weights", None)
        return cls(vgg16_features_state(state),
                   *dists_alpha_beta(state, sum(DISTS_VGG16_CHANNELS)))


class DISTSEffNetLite0(DISTSNet):
    """dists-effnetlite0: DISTS' formula on EfficientNet-Lite0 (image + blocks 0, 2, 4, 10),
    uniform alpha/beta (no learned ones exist). Not DISTS; name it as such.

    state: EfficientNet-Lite0 weights in the package's key layout; None = random (tests).
    """

    channels = DISTS_EFFNETLITE0_CHANNELS
    weights_hint = EfficientNetLite0Features.weights_hint

    def __init__(self, state: StateDict | None = None):
        super().__init__()
        self.net = EfficientNetLite0Features(state)  # the perceptual loss' net and taps
        self.tap_names = ("image", *self.net.tap_names)
        self.init_weights(None, None)
        self.freeze()

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [(x + 1) / 2, *self.net.extract(self.net.normalize(x))]

    @classmethod
    def from_file(cls, weights: str | Path | None) -> DISTSEffNetLite0:
        """weights: EfficientNet-Lite0 file in the package's layout; None = the packaged one."""
        return cls(efficientnet_lite0_weights(weights))


DISTS_NETS: dict[str, type[DISTSNet]] = {"dists-vgg16": DISTSVGG16,
                                         "dists-effnetlite0": DISTSEffNetLite0}


def build_dists(name: str, weights: str | Path | None) -> DISTSNet:
    """The DISTS net ``name`` ("dists-vgg16" or "dists-effnetlite0") from local weights."""
    if name not in DISTS_NETS:
        raise ValueError(f"unknown DISTS net {name!r}; choose from {sorted(DISTS_NETS)}")
    return DISTS_NETS[name].from_file(weights)
