"""CLIP ViT-L/14@336 image tower for CMMD (Jayasumana et al. 2024), without the clip package.

Key layout: OpenAI's ``ViT-L-14-336px.pt`` (the ``visual.*`` entries of ``clip.load``'s model,
which open_clip's ``ViT-L-14-336`` / ``openai`` tag loads unchanged): ``conv1``,
``class_embedding``, ``positional_embedding``, ``ln_pre``, ``transformer.resblocks.{i}.{ln_1,
attn.in_proj_weight, attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}``,
``ln_post``, ``proj``. The file is a TorchScript archive in fp16; it is read as a state dict,
the text tower is dropped and the weights are cast to float32.

Preprocessing (the CMMD reference ``io_util``, and CLIP's own transform): 8-bit image, shorter
side resized to 336 with PIL's bicubic (antialiased), centre crop 336x336, [0, 1], then CLIP's
mean/std. The embedding is the projected CLS token, L2-normalised.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from swycc.metrics.maths import l2_normalize, resize_shorter_and_crop, to_unit_range
from swycc.metrics.weights import CLIP_WEIGHTS, load_checked, load_into

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the activation OpenAI's CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, D)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads)
                                         for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class CLIPVisionTower(nn.Module):
    """``forward(x)``: x (N, 3, H, W) in [-1, 1] -> (N, output_dim) L2-normalised embeddings.

    Args (defaults: ViT-L/14@336; smaller values only for tests):
        image_size: input side after preprocessing (pixels).
        patch_size: patch side (pixels); the grid is image_size // patch_size per side.
        width: transformer width. layers: number of blocks. heads: attention heads.
        output_dim: embedding size after the projection ``proj``.
    """

    name = "clip_vitl14_336"

    def __init__(self, image_size: int = 336, patch_size: int = 14, width: int = 1024,
                 layers: int = 24, heads: int = 16, output_dim: int = 768):
        super().__init__()
        self.image_size = image_size
        self.dim = output_dim
        grid = image_size // patch_size
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    @property
    def preprocess_id(self) -> str:
        return f"clip:uint8;pil-bicubic-shorter{self.image_size};centercrop;clip-mean-std"

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_shorter_and_crop(to_unit_range(x).to(self.proj.device), self.image_size)
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.preprocess(x))  # (N, D, g, g)
        x = x.flatten(2).transpose(1, 2)  # (N, g*g, D)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # (N, T, D)
        x = self.transformer(self.ln_pre(x))
        return l2_normalize(self.ln_post(x[:, 0]) @ self.proj)  # (N, output_dim)


def visual_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The image tower of a full CLIP state dict (``visual.`` prefix removed)."""
    if not any(k.startswith("visual.") for k in state):
        return state  # already the tower alone
    return {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}


def load_clip(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
              expected_sha256: str | None = None,
              net: CLIPVisionTower | None = None) -> CLIPVisionTower:
    """OpenAI CLIP ViT-L/14@336's image tower, frozen, in eval mode, float32.
    ``net``: load into this module instead (tests: a reduced tower)."""
    state, file, digest = load_checked(CLIP_WEIGHTS, path, expected_sha256)
    net = CLIPVisionTower() if net is None else net
    load_into(net, visual_state_dict(state), str(file))
    net.weights_sha256 = digest
    return net.eval().requires_grad_(False).to(device)

