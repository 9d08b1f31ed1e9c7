"""Encoder E and decoder D_Initial (also the GAN decoder). Pure modules, widths from config."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from swycc.config import DecoderConfig, EncoderConfig
from swycc.nn.blocks import DepthToSpaceUpsample, ResBlock, group_norm, run_block


class Encoder(nn.Module):
    """MaskGIT-style encoder: x (N, 3, H, W) in [-1, 1] -> z (N, C, H/8, W/8).

    ``out_channels`` defaults to C; a KL encoder (DGAE) asks for 2C (mean and log-variance)."""

    def __init__(self, cfg: EncoderConfig, out_channels: int | None = None):
        super().__init__()
        self.grad_checkpointing = cfg.grad_checkpointing
        chans = [cfg.base_channels * m for m in cfg.channel_mults]
        self.conv_in = nn.Conv2d(3, chans[0], 3, padding=1)
        blocks: list[nn.Module] = []
        cin = chans[0]
        for level, cout in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(cin, cout, cfg.num_groups))
                cin = cout
            if level < len(chans) - 1:  # stride-2 downsampling between levels
                blocks.append(nn.Conv2d(cin, cin, 3, stride=2, padding=1))
        for _ in range(cfg.num_mid_blocks):
            blocks.append(ResBlock(cin, cin, cfg.num_groups))
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = group_norm(cin, cfg.num_groups)
        self.conv_out = nn.Conv2d(cin, out_channels or cfg.latent_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.blocks:
            h = run_block(block, self.grad_checkpointing and isinstance(block, ResBlock), h)
        return self.conv_out(F.gelu(self.norm_out(h)))


class Decoder(nn.Module):
    """The encoder's mirror: z (N, C, h, w) -> x (N, 3, 8h, 8w), depth-to-space upsampling.

    With ``cfg.adaptive_norm`` every GroupNorm takes its scale/shift from z (MAGVIT-v2 sec. 3.2).
    """

    def __init__(self, cfg: DecoderConfig, latent_channels: int):
        super().__init__()
        self.grad_checkpointing = cfg.grad_checkpointing
        chans = [cfg.base_channels * m for m in cfg.channel_mults][::-1]  # lowest resolution first
        cond = latent_channels if cfg.adaptive_norm else 0
        self.conv_in = nn.Conv2d(latent_channels, chans[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        cin = chans[0]
        for _ in range(cfg.num_mid_blocks):
            self.blocks.append(ResBlock(cin, cin, cfg.num_groups, cond))
        for level, cout in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                self.blocks.append(ResBlock(cin, cout, cfg.num_groups, cond))
                cin = cout
            if level < len(chans) - 1:
                self.blocks.append(DepthToSpaceUpsample(cin, cin))
        self.norm_out = group_norm(cin, cfg.num_groups)
        self.conv_out = nn.Conv2d(cin, cfg.out_channels, 3, padding=1)

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight of the last layer (for the GAN's adaptive adversarial weight)."""
        return self.conv_out.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.blocks:
            if isinstance(block, ResBlock):
                h = run_block(block, self.grad_checkpointing, h, z)
            else:
                h = block(h)
        return self.conv_out(F.gelu(self.norm_out(h)))
