"""ImageNet backbones for the perceptual loss, written without torchvision.

Module and parameter names follow torchvision's ``resnet50`` and ``vgg16`` exactly, so their
state dicts (``ResNet50_Weights.IMAGENET1K_V1``, ``VGG16_Weights.IMAGENET1K_V1``) load with the
classifier keys (``fc.*``, ``classifier.*``) dropped. Only the convolutional trunks are built;
the frozen-feature wrappers live in ``swycc.losses.perceptual``.
"""

from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU()
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
            if stride != 1 or in_ch != out_ch else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(h + skip)


class ResNet50Trunk(nn.Module):
    """ResNet-50 without avgpool/fc; ``forward`` returns the outputs of layer1..layer4.

    Output of layer k: (N, 256 * 2^(k-1), ceil(H / 2^(k+1)), ceil(W / 2^(k+1))).
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = 64
        for k, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
            stride = 1 if k == 0 else 2
            layer = [Bottleneck(in_ch, width, stride)]
            in_ch = width * Bottleneck.expansion
            layer += [Bottleneck(in_ch, width) for _ in range(blocks - 1)]
            self.add_module(f"layer{k + 1}", nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            h = layer(h)
            outs.append(h)
        return outs


# torchvision's VGG16 ``features`` config; "M" = 2x2 max-pool.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` up to relu5_3 (modules 0..29; the last pool dropped).

    Indices, hence state-dict keys ``features.<i>.weight``, match torchvision; relu1_2, relu2_2,
    relu3_3, relu4_3 and relu5_3 are modules 3, 8, 15, 22 and 29. ReLUs are not in place, so
    tapped activations stay valid for autograd.
    """
    layers: list[nn.Module] = []
    in_ch = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU()]
            in_ch = int(v)
    return nn.Sequential(*layers[:30])
