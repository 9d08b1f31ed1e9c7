"""D_Refine: the U-Net of "simple diffusion" (Hoogeboom et al. 2023b). Pure module.

Input concat(x_t, D_Initial(z)) (N, 6, H, W) and the noise level logSNR(t) (N,); output the
v-prediction (N, 3, H, W). The input is first folded by space-to-depth (``input_patch``), then
levels with ``num_res_blocks[i]`` blocks each, 2x downsampling between levels
(downsampling_factor = [1, 2, 2, 2]), self-attention where the feature map is one of
``attn_resolutions``, a middle block, and the mirrored up path with skip connections.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from swycc.config import UNetConfig
from swycc.nn.blocks import (EmbResBlock, SelfAttention, group_norm, run_block,
                             sinusoidal_embedding)


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig, image_size: int, in_channels: int = 6,
                 out_channels: int = 3):
        super().__init__()
        self.cfg = cfg
        p = cfg.input_patch
        chans = [cfg.base_channels * m for m in cfg.channel_mults]
        levels = len(chans)
        if len(cfg.num_res_blocks) != levels:
            raise ValueError("unet.num_res_blocks needs one entry per channel multiplier")
        res = [image_size // p // 2**i for i in range(levels)]
        attn = [r in cfg.attn_resolutions for r in res]
        g, e = cfg.num_groups, cfg.emb_channels

        self.emb = nn.Sequential(nn.Linear(cfg.base_channels, e), nn.SiLU(), nn.Linear(e, e))
        self.conv_in = nn.Conv2d(in_channels * p * p, chans[0], 3, padding=1)

        self.down = nn.ModuleList()
        skip_chans: list[int] = []
        cin = chans[0]
        for i, cout in enumerate(chans):
            if i > 0:
                self.down.append(nn.Conv2d(cin, cin, 3, stride=2, padding=1))
            for _ in range(cfg.num_res_blocks[i]):
                self.down.append(EmbResBlock(cin, cout, e, g, cfg.dropout))
                if attn[i]:
                    self.down.append(SelfAttention(cout, cfg.head_channels, g))
                cin = cout
                skip_chans.append(cout)

        self.mid = nn.ModuleList([EmbResBlock(cin, cin, e, g, cfg.dropout),
                                  SelfAttention(cin, cfg.head_channels, g),
                                  EmbResBlock(cin, cin, e, g, cfg.dropout)])

        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            cout = chans[i]
            for _ in range(cfg.num_res_blocks[i]):
                self.up.append(EmbResBlock(cin + skip_chans.pop(), cout, e, g, cfg.dropout))
                if attn[i]:
                    self.up.append(SelfAttention(cout, cfg.head_channels, g))
                cin = cout
            if i > 0:
                self.up.append(_Upsample(cin))

        self.norm_out = group_norm(cin, g)
        self.conv_out = nn.Conv2d(cin, out_channels * p * p, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, logsnr: torch.Tensor) -> torch.Tensor:
        """x: (N, 6, H, W) = concat(x_t, D_Initial(z)); logsnr: (N,) -> v_hat (N, 3, H, W)."""
        p = self.cfg.input_patch
        emb = F.silu(self.emb(sinusoidal_embedding(logsnr, self.cfg.base_channels)))
        h = self.conv_in(F.pixel_unshuffle(x, p) if p > 1 else x)
        ckpt = self.cfg.grad_checkpointing  # per ResNet / attention block (run_block)
        skips = []
        for layer in self.down:
            if isinstance(layer, EmbResBlock):
                h = run_block(layer, ckpt, h, emb)
                skips.append(h)
            elif isinstance(layer, SelfAttention):
                h = run_block(layer, ckpt, h)
                skips[-1] = h
            else:
                h = layer(h)
        for layer in self.mid:
            h = run_block(layer, ckpt, h, *([emb] if isinstance(layer, EmbResBlock) else []))
        for layer in self.up:
            if isinstance(layer, EmbResBlock):
                h = run_block(layer, ckpt, torch.cat([h, skips.pop()], dim=1), emb)
            elif isinstance(layer, SelfAttention):
                h = run_block(layer, ckpt, h)
            else:
                h = layer(h)
        h = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(h, p) if p > 1 else h


class _Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
