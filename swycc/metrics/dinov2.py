"""DINOv2 ViT-L/14 for FD-DINOv2 (Stein et al. 2023, dgm-eval), without the dinov2 package.

Key layout: facebookresearch/dinov2's ``dinov2_vitl14_pretrain.pth`` (the torch.hub model
``dinov2_vitl14``: img_size 518, patch 14, LayerScale, MLP FFN, no registers, block_chunks 0):
``cls_token``, ``pos_embed`` (1, 1 + 37*37, 1024), ``mask_token``, ``patch_embed.proj``,
``blocks.{i}.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}``,
``norm``.

Preprocessing (dgm-eval's DINOv2 transform): 8-bit image, ``Resize((224, 224))`` with PIL's
bicubic (antialiased), [0, 1], ImageNet mean/std. The feature is the CLS token after the final
LayerNorm (``x_norm_clstoken``, what the hub model's ``forward`` returns). The 37x37 position
embeddings are resized to the 16x16 grid as dinov2 does it: bicubic, no antialias, with the
scale factor (16 + 0.1) / 37 (its ``interpolate_offset``).

Weights are read from safetensors only (nothing from the file is ever executed or unpickled).
Convert the official ``dinov2_vitl14_pretrain.pth`` once, yourself (``weights_only=True``
reads its tensors without running code from it)::

    import torch
    from safetensors.torch import save_file
    sd = torch.load("dinov2_vitl14_pretrain.pth", map_location="cpu", weights_only=True)
    save_file({k: v.float().contiguous() for k, v in sd.items()},
              "dinov2_vitl14_pretrain.safetensors")

and put ``dinov2_vitl14_pretrain.safetensors`` where ``swycc.metrics.weights`` looks
(``--weights-dir``, ``$SWYCC_WEIGHTS_DIR`` or ``$TORCH_HOME/hub/checkpoints``). Meta publishes
no hash: its SHA-256 is reported with a warning (pin it with ``expected_sha256``) and every key
and shape is checked against the network.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from swycc.metrics.maths import resize_like_pil, to_unit_range
from swycc.metrics.weights import DINOV2_WEIGHTS, load_checked, load_into

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, g*g, D)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)  # scale (d / heads)^-0.5
        return self.proj(x.transpose(1, 2).reshape(n, t, d))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2ViT(nn.Module):
    """``forward(x)``: x (N, 3, H, W) in [-1, 1] -> (N, embed_dim) normalised CLS tokens.

    Args (defaults: ViT-L/14 as released; smaller values only for tests):
        img_size: the training resolution the position embeddings are stored for (518).
        patch_size: patch side (pixels). embed_dim, depth, num_heads, mlp_ratio: the ViT.
        input_size: side the images are resized to before the network (224, as dgm-eval).
        interpolate_offset: dinov2's offset added to the target grid in the position-embedding
            resize (0.1 in the released models).
    """

    name = "dinov2_vitl14"

    def __init__(self, img_size: int = 518, patch_size: int = 14, embed_dim: int = 1024,
                 depth: int = 24, num_heads: int = 16, mlp_ratio: float = 4.0,
                 input_size: int = 224, interpolate_offset: float = 0.1):
        super().__init__()
        self.patch_size = patch_size
        self.input_size = input_size
        self.interpolate_offset = interpolate_offset
        self.dim = embed_dim
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.cls_token = nn.Parameter(1e-6 * torch.randn(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, grid * grid + 1, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))  # unused at inference
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio)
                                     for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    @property
    def preprocess_id(self) -> str:
        return f"dinov2:uint8;pil-bicubic{self.input_size};imagenet-mean-std"

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = to_unit_range(x).to(self.pos_embed.device)
        x = resize_like_pil(x, (self.input_size, self.input_size))
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)

    def interpolate_pos_encoding(self, h: int, w: int) -> torch.Tensor:
        """Position embeddings for an (h, w)-pixel input: (1, 1 + h0 * w0, D)."""
        n = self.pos_embed.shape[1] - 1
        h0, w0 = h // self.patch_size, w // self.patch_size
        if h0 * w0 == n and h0 == w0:
            return self.pos_embed
        m = int(math.sqrt(n))
        pos = self.pos_embed.float()
        patch = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            kw = {"scale_factor": ((h0 + self.interpolate_offset) / m,
                                   (w0 + self.interpolate_offset) / m)}
        else:
            kw = {"size": (h0, w0)}
        patch = F.interpolate(patch, mode="bicubic", antialias=False, **kw)
        assert patch.shape[-2:] == (h0, w0)
        patch = patch.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)
        return torch.cat([pos[:, :1], patch], dim=1).to(self.pos_embed.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        h, w = x.shape[-2:]
        x = self.patch_embed(x)  # (N, g*g, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.interpolate_pos_encoding(h, w)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]  # x_norm_clstoken: (N, D)


def load_dinov2(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                expected_sha256: str | None = None, net: DinoV2ViT | None = None) -> DinoV2ViT:
    """DINOv2 ViT-L/14 with its released weights (converted to safetensors, see the module
    docstring), frozen, in eval mode. ``expected_sha256`` pins the file's hash;
    ``net``: load into this module instead (tests: a reduced ViT)."""
    state, file, digest = load_checked(DINOV2_WEIGHTS, path, expected_sha256)
    net = DinoV2ViT() if net is None else net
    load_into(net, state, str(file))
    net.weights_sha256 = digest
    return net.eval().requires_grad_(False).to(device)
