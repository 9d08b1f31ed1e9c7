"""Class-conditional DiT over latents (Peebles & Xie 2023) with SwiGLU and 2D RoPE, as the paper's
second stage uses it. A pure module: forward(x_t, logsnr, labels) -> v_hat.

    x_t (N, C, h, w) -> p x p patches -> tokens (N, T, d), T = (h/p)(w/p)
    c = MLP(sinusoidal(logSNR)) + Embedding(label)              (N, d); label num_classes = null
    block: x += g1 * Attn(RoPE)(LN(x) * (1 + s1) + b1);  x += g2 * SwiGLU(LN(x) * (1 + s2) + b2)
    final: Linear(LN(x) * (1 + s) + b) -> patches -> v_hat (N, C, h, w)

adaLN-Zero: every modulation's (b, s, g) and the final linear start at zero, so each block is the
identity and the network outputs zeros at initialisation. There is no absolute position
embedding: RoPE carries the positions, so any h, w divisible by p work (h != w included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from swycc.generation.config import DiTConfig
from swycc.nn.blocks import sinusoidal_embedding


# ---- 2D rotary position embedding (Heo et al. 2024, axial) ----

def rope_2d_angles(rows: int, cols: int, head_dim: int, theta: float = 10_000.0,
                   device: torch.device | None = None) -> torch.Tensor:
    """Rotation angles (rows * cols, head_dim / 2) for a row-major grid of tokens.

    Axial: the first half of the angles turn with the row index, the second half with the
    column index; each half has head_dim / 4 frequencies theta^(-k / (head_dim / 4)).
    """
    quarter = head_dim // 4
    freqs = theta ** (-torch.arange(quarter, device=device, dtype=torch.float64) / quarter)
    r = torch.arange(rows, device=device, dtype=torch.float64)
    c = torch.arange(cols, device=device, dtype=torch.float64)
    row_angles = (r[:, None] * freqs[None]).repeat_interleave(cols, dim=0)  # (rows*cols, q)
    col_angles = (c[:, None] * freqs[None]).repeat(rows, 1)  # (rows*cols, q)
    return torch.cat([row_angles, col_angles], dim=1)


def rope_tables(angles: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, signed sin), each (T, head_dim): the angles repeated for both halves of the head,
    the first half of sin negated (so apply_rope needs no negation)."""
    a = torch.cat([angles, angles], dim=-1)
    sign = torch.ones_like(a)
    sign[:, : angles.shape[-1]] = -1
    return a.cos().to(dtype), (a.sin() * sign).to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x[i], x[i + D/2]) of the last dim by angle i ("rotate half" layout):
    x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin, i.e. x cos + (x2, x1) (-sin, sin).

    x: (..., T, D); cos, sin: (T, D) from rope_tables. Then q_m . k_n depends on the positions
    only through m - n (as complex numbers: x_i + j x_{i+D/2} times e^{j angle_i}).
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.addcmul(x * cos, torch.cat([x2, x1], dim=-1), sin)


# ---- blocks ----

def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x (N, T, d) * (1 + scale) + shift, with (N, d) modulations broadcast over T."""
    return torch.addcmul(shift.unsqueeze(1), x, 1 + scale.unsqueeze(1))


class SwiGLU(nn.Module):
    """W2 (SiLU(W1 x) * W3 x) (Shazeer 2020). W1 and W3 stay two linears: on the CPU the
    backward of one fused linear's chunk (a copy of the whole hidden gradient) cost more."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w3 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class RoPEAttention(nn.Module):
    """Multi-head self-attention, fused QKV, RoPE on q and k, scaled_dot_product_attention."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        # split, not slicing: one gradient concatenation instead of zero-filled copies
        qk, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).split([2, 1], dim=2)
        # q and k rotated in one go, in token-major layout: cos, sin (T, hd) -> (T, 1, 1, hd)
        qk = apply_rope(qk, cos[:, None, None], sin[:, None, None])
        q, k = qk.transpose(1, 3).unbind(2)  # (N, heads, T, hd) each
        out = F.scaled_dot_product_attention(q, k, v.squeeze(2).transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class DiTBlock(nn.Module):
    """adaLN-Zero block: (shift, scale, gate) for attention and for the MLP from c."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = RoPEAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = SwiGLU(dim, mlp_hidden)
        self.ada = nn.Linear(dim, 6 * dim)  # applied to SiLU(c)

    def forward(self, x: torch.Tensor, c: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> torch.Tensor:
        b1, s1, g1, b2, s2, g2 = self.ada(c).chunk(6, dim=-1)  # (N, d) each
        x = torch.addcmul(x, g1.unsqueeze(1), self.attn(modulate(self.norm1(x), b1, s1), cos, sin))
        return torch.addcmul(x, g2.unsqueeze(1), self.mlp(modulate(self.norm2(x), b2, s2)))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


# ---- the network ----

class DiT(nn.Module):
    """forward(x_t (N, C, h, w), logsnr (N,), labels (N,) long) -> v_hat (N, C, h, w).

    labels == cfg.num_classes selects the null class (the unconditional branch of guidance).
    """

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        d, p, c = cfg.hidden, cfg.patch, cfg.latent_channels
        self.patch_embed = nn.Linear(c * p * p, d)  # = Conv2d(C, d, p, stride=p)
        self.noise_mlp = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.label_embed = nn.Embedding(cfg.num_classes + 1, d)  # + 1: the null class
        self.blocks = nn.ModuleList(DiTBlock(d, cfg.heads, cfg.swiglu_hidden)
                                    for _ in range(cfg.depth))
        self.final = FinalLayer(d, c * p * p)
        self._rope: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        if not any(t.is_meta for t in self.parameters()):
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """DiT's initialisation: Xavier-uniform linears, zero biases, N(0, 0.02) embeddings,
        zero adaLN modulations and final linear (adaLN-Zero)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.label_embed.weight, std=0.02)
        for lin in (self.noise_mlp[0], self.noise_mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        for mod in [b.ada for b in self.blocks] + [self.final.ada, self.final.linear]:
            nn.init.zeros_(mod.weight)
            nn.init.zeros_(mod.bias)

    def rope(self, rows: int, cols: int, device: torch.device, dtype: torch.dtype):
        """cos, sin (T, head_dim) of the token grid, cached per (grid, device, dtype)."""
        key = (rows, cols, str(device), dtype)
        if key not in self._rope:
            a = rope_2d_angles(rows, cols, self.cfg.head_dim, self.cfg.rope_theta, device)
            self._rope[key] = rope_tables(a, dtype)
        return self._rope[key]

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, T, C p p), tokens row-major over the (h/p, w/p) grid."""
        n, c, h, w = x.shape
        p = self.cfg.patch
        x = x.view(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(n, (h // p) * (w // p), c * p * p)

    def unpatchify(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        n, p, c = x.shape[0], self.cfg.patch, self.cfg.latent_channels
        x = x.view(n, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(n, c, h, w)

    def forward(self, x: torch.Tensor, logsnr: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.cfg.patch
        if c != self.cfg.latent_channels or h % p or w % p:
            raise ValueError(f"DiT: latents of shape {tuple(x.shape)}; expected (N, "
                             f"{self.cfg.latent_channels}, h, w) with h, w divisible by {p}")
        tokens = self.patch_embed(self.patchify(x))  # (N, T, d)
        cond = self.noise_mlp(sinusoidal_embedding(logsnr, self.cfg.freq_dim).to(tokens.dtype))
        cond = F.silu(cond + self.label_embed(labels))  # (N, d); every adaLN sees SiLU(c)
        cos, sin = self.rope(h // p, w // p, x.device, tokens.dtype)
        for block in self.blocks:
            tokens = block(tokens, cond, cos, sin)
        return self.unpatchify(self.final(tokens, cond), h, w)


def count_parameters(cfg: DiTConfig) -> int:
    """Number of parameters, counted on the meta device (no weights are allocated)."""
    with torch.device("meta"):
        model = DiT(cfg)
    return sum(p.numel() for p in model.parameters())
