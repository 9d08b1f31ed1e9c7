"""Building blocks shared by the encoder, the decoders and the U-Net. Pure modules."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def groups_for(channels: int, num_groups: int) -> int:
    """Largest group count <= num_groups that divides ``channels``."""
    g = min(num_groups, channels)
    while channels % g:
        g -= 1
    return g


def group_norm(channels: int, num_groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups_for(channels, num_groups), channels, eps=1e-6)


def run_block(block: nn.Module, enabled: bool, *args: torch.Tensor) -> torch.Tensor:
    """block(*args); with ``enabled`` and while training with gradients, through activation
    checkpointing: the block's activations are recomputed in backward instead of kept (same
    values and gradients; the RNG state is restored, so dropout masks match)."""
    if enabled and block.training and torch.is_grad_enabled():
        return checkpoint(block, *args, use_reentrant=False)
    return block(*args)


class AdaptiveGroupNorm(nn.Module):
    """MAGVIT-v2 adaptive GroupNorm: scale and shift predicted from the latent z.

    z: (N, C_z, h, w) is resized (nearest) to x's resolution and mapped by 1x1 convs.
    """

    def __init__(self, channels: int, num_groups: int, cond_channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups_for(channels, num_groups), channels, eps=1e-6, affine=False)
        self.scale = nn.Conv2d(cond_channels, channels, 1)
        self.shift = nn.Conv2d(cond_channels, channels, 1)
        nn.init.zeros_(self.scale.weight)
        nn.init.ones_(self.scale.bias)
        nn.init.zeros_(self.shift.weight)
        nn.init.zeros_(self.shift.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        z = F.interpolate(z, size=x.shape[-2:], mode="nearest")
        return self.norm(x) * self.scale(z) + self.shift(z)


class ResBlock(nn.Module):
    """Pre-activation ResNet block: (norm, GELU, conv3x3) x 2 + skip (1x1 when widths differ).

    ``cond_channels`` > 0 switches both norms to AdaptiveGroupNorm conditioned on a latent.
    """

    def __init__(self, cin: int, cout: int, num_groups: int, cond_channels: int = 0):
        super().__init__()
        self.adaptive = cond_channels > 0
        if self.adaptive:
            self.norm1 = AdaptiveGroupNorm(cin, num_groups, cond_channels)
            self.norm2 = AdaptiveGroupNorm(cout, num_groups, cond_channels)
        else:
            self.norm1 = group_norm(cin, num_groups)
            self.norm2 = group_norm(cout, num_groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def _norm(self, norm: nn.Module, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return norm(x, z) if self.adaptive else norm(x)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.gelu(self._norm(self.norm1, x, z)))
        h = self.conv2(F.gelu(self._norm(self.norm2, h, z)))
        return self.skip(x) + h


class EmbResBlock(nn.Module):
    """U-Net ResNet block with a noise-level embedding applied as scale/shift after norm2."""

    def __init__(self, cin: int, cout: int, emb_channels: int, num_groups: int,
                 dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(cin, num_groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_channels, 2 * cout)
        self.norm2 = group_norm(cout, num_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)  # (N, C, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map, residual."""

    def __init__(self, channels: int, head_channels: int, num_groups: int):
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = group_norm(channels, num_groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        # (N, heads, HW, d)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                             v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class DepthToSpaceUpsample(nn.Module):
    """2x upsampling: conv to 4C channels, then depth-to-space (pixel shuffle)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


def sinusoidal_embedding(x: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(N,) -> (N, dim) sin/cos features of a scalar (here the noise level)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device) / half)
    args = x.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)
