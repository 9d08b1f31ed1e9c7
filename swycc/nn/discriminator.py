"""The GAN baseline's discriminator: StyleGAN-style residual blocks with blur-pool downsampling,
ending in patch logits. A pure module.

Why this design (MAGVIT-v2, Yu et al. 2024, sec. 3.2 and appendix; MaskGIT's tokenizer):
- StyleGAN(2) residual discriminator blocks (Karras et al. 2020, Fig. 7c): two 3x3 convs with
  LeakyReLU(0.2), a 1x1 skip, the sum scaled by 1/sqrt(2). MAGVIT-v2 trains its tokenizer against
  a StyleGAN discriminator, and the SWYCC paper (sec. 3.5) uses MAGVIT-v2's recipe.
- Downsampling by blur pooling (Zhang 2019, [1, 2, 1] x [1, 2, 1] / 16 low-pass, then stride 2):
  MAGVIT-v2 sec. 3.2 "to encourage shift invariance".
- Deviations, both chosen for the CPU-first, any-resolution presets:
  * a convolutional head with one logit per patch (PatchGAN-like, Isola et al. 2017) in place of
    StyleGAN's flatten + dense layers, so the same network runs at 32 px (tiny) and 256 px
    (paper). With the default 3 levels the receptive field is ~70 px, like taming's PatchGAN;
  * per-example GroupNorm after each conv (open MAGVIT-v2 reimplementations, e.g. MaskBit) in place
    of StyleGAN's equalised learning rate + R1 penalty: the discriminator trains stably with plain
    Adam and LeCAM. No minibatch-stddev layer: it couples the examples of a batch, so a logit
    would depend on the micro-batch split (grad accumulation, processes); and the autoencoder's
    generator is conditioned on its input, so mode collapse is not the failure it guards against.
  No BatchNorm (taming's PatchGAN has it): batch statistics differ between the real and fake
  passes and across DDP ranks.

Size: base 64, 3 levels (the ``paper`` preset's LossConfig) -> 4.9M parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from swycc.nn.blocks import group_norm


class BlurDownsample(nn.Module):
    """Anti-aliased 2x downsampling (Zhang 2019): depthwise [1,2,1]^T[1,2,1]/16, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = (k[:, None] * k[None, :]) / 16.0
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone(), persistent=False)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect" if min(x.shape[-2:]) > 1 else "replicate")
        return F.conv2d(x, self.kernel.to(x.dtype), stride=2, groups=self.channels)


class DiscBlock(nn.Module):
    """StyleGAN2 residual down-block: (conv3x3, GN, lrelu, blur-down, conv3x3, GN, lrelu) + skip
    (blur-down, conv1x1, no bias), sum / sqrt(2). (N, cin, H, W) -> (N, cout, H/2, W/2)."""

    def __init__(self, cin: int, cout: int, num_groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, padding=1)
        self.norm1 = group_norm(cin, num_groups)
        self.down = BlurDownsample(cin)
        self.conv2 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = group_norm(cout, num_groups)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.norm1(self.conv1(x)), 0.2)
        h = F.leaky_relu(self.norm2(self.conv2(self.down(h))), 0.2)
        return (h + self.skip(self.down(x))) / math.sqrt(2.0)


class Discriminator(nn.Module):
    """x (N, 3, H, W) in [-1, 1] -> patch logits (N, 1, H / 2^L, W / 2^L), L = ``num_layers``.

    base_channels: width after the 1x1 from-RGB conv; level i outputs base * min(2^(i+1), 8).
    num_layers: number of residual down-blocks (each halves the resolution).
    num_groups: GroupNorm groups (reduced automatically to divide the width).
    """

    def __init__(self, base_channels: int = 64, num_layers: int = 3, num_groups: int = 32):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"loss.disc_layers must be >= 1, got {num_layers}")
        self.num_layers = num_layers
        self.from_rgb = nn.Conv2d(3, base_channels, 1)
        blocks = []
        cin = base_channels
        for i in range(num_layers):
            cout = base_channels * min(2 ** (i + 1), 8)
            blocks.append(DiscBlock(cin, cout, num_groups))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(cin, cin, 3, padding=1)
        self.norm_head = group_norm(cin, num_groups)
        self.to_logit = nn.Conv2d(cin, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"discriminator expects (N, 3, H, W) images, got {tuple(x.shape)}")
        h = self.blocks(F.leaky_relu(self.from_rgb(x), 0.2))
        h = F.leaky_relu(self.norm_head(self.head(h)), 0.2)
        return self.to_logit(h)  # (N, 1, h, w): one logit per overlapping patch
