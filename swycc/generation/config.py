"""Configs and presets of the latent DiT (second stage: class-conditional generation of latents).

The paper (Sec. 4, "Latent Diffusion"): DiT-L with 2x2 patches, SwiGLU and 2D RoPE, trained
4e5 steps at batch 256 with a constant learning rate of 1e-4, class dropout 10%, guidance 0.5.
Widths, depths and heads of S/B/L/XL follow Peebles & Xie (2023), Table 1.

Like swycc.config, every config is a frozen ``Validated`` dataclass (types and ranges checked on
construction, errors naming the dotted option) whose ``to_dict``/``from_dict`` round-trip through
JSON and reject unknown keys; ``override_dit_text(cfg, "dit.hidden", "64")`` serves ``--set``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from swycc.config import TrainConfig, override, override_text
from swycc.config_types import JsonConfig, Validated


@dataclass(frozen=True)
class DiTConfig(Validated):
    """The network. Input latents (N, latent_channels, h, w); h and w divisible by ``patch``."""

    hidden: int = 1024  # token width d
    depth: int = 24  # number of DiT blocks
    heads: int = 16  # attention heads; hidden / heads must be divisible by 4 (2D RoPE)
    patch: int = 2  # p x p latent pixels per token
    latent_channels: int = 4  # C of the autoencoder's latent
    latent_size: int = 32  # training latent side h = w (any h, w divisible by patch work)
    num_classes: int = 1000  # label index num_classes is the null class (guidance)
    class_dropout: float = 0.1  # fraction of training labels replaced by the null class
    mlp_ratio: float = 4.0  # DiT's MLP hidden = mlp_ratio * hidden; SwiGLU takes 2/3 of it
    freq_dim: int = 256  # sinusoidal features of logSNR fed to the noise-level MLP
    rope_theta: float = 10_000.0  # RoPE base period

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def swiglu_hidden(self) -> int:
        """2/3 of DiT's MLP hidden size (3 matrices instead of 2: parameter-matched), rounded up
        to a multiple of 8 as in LightningDiT's SwiGLUFFN (1024 -> 2736)."""
        return (int(2 * self.mlp_ratio * self.hidden / 3) + 7) // 8 * 8

    @property
    def tokens(self) -> int:
        return (self.latent_size // self.patch) ** 2

    def check(self) -> None:
        for name in ("hidden", "depth", "heads", "patch", "latent_channels", "num_classes",
                     "freq_dim"):
            self.require(getattr(self, name) >= 1, name, "must be >= 1")
        self.require(self.hidden % self.heads == 0, "hidden",
                     f"{self.hidden} not divisible by heads {self.heads}")
        self.require(self.head_dim % 4 == 0, "heads",
                     f"head dimension hidden / heads = {self.head_dim} must be a multiple of 4 "
                     "(2D RoPE rotates pairs along each of two axes)")
        self.require(self.latent_size >= 1 and self.latent_size % self.patch == 0, "latent_size",
                     f"{self.latent_size} not divisible by patch {self.patch}")
        self.require(0.0 <= self.class_dropout < 1.0, "class_dropout",
                     f"must be in [0, 1), got {self.class_dropout}")
        self.require(self.mlp_ratio > 0, "mlp_ratio", "must be > 0")
        self.require(self.rope_theta > 1, "rope_theta", "must be > 1")


@dataclass(frozen=True)
class DiTSamplingConfig(Validated):
    steps: int = 50  # DDIM steps over the cosine schedule
    guidance: float = 0.5  # w in v = v_c + w (v_c - v_null)

    def check(self) -> None:
        self.require(self.steps >= 1, "steps", "must be >= 1")


@dataclass(frozen=True)
class DiTRunConfig(JsonConfig):
    """Network + training recipe + sampling. The paper trains with a *constant* lr (no warm-up,
    no decay): the presets set lr_schedule="constant" and warmup_steps=0."""

    dit: DiTConfig = field(default_factory=DiTConfig)
    train: TrainConfig = field(default_factory=lambda: PAPER_TRAIN)
    sampling: DiTSamplingConfig = field(default_factory=DiTSamplingConfig)


PAPER_TRAIN = TrainConfig(batch_size=256, lr=1e-4, warmup_steps=0, total_steps=400_000,
                          lr_schedule="constant",
                          grad_clip=1.0, ema_decay=0.9999)
CPU_TRAIN = TrainConfig(batch_size=32, lr=1e-4, warmup_steps=0, total_steps=20_000,
                        lr_schedule="constant",
                        ema_decay=0.999, ema_warmup=2000, checkpoint_every=200, sample_every=1000)


def _dit(hidden: int, depth: int, heads: int, **kw) -> DiTConfig:
    return DiTConfig(hidden=hidden, depth=depth, heads=heads, **kw)


# Latent shapes: the paper-size presets assume ImageNet 256 px through an f8 autoencoder with
# C = 4 (32 x 32 x 4), as in DiT; override latent_channels/latent_size for other autoencoders.
DIT_PRESETS: dict[str, DiTRunConfig] = {
    # test size: milliseconds per step
    "dit-tiny": DiTRunConfig(_dit(32, 2, 2, latent_channels=2, latent_size=8, num_classes=10),
                             replace(CPU_TRAIN, batch_size=8)),
    # minutes on 2 CPU cores: latents of the `small` autoencoder (64 px / f8, C = 2)
    "dit-small-cpu": DiTRunConfig(_dit(192, 6, 3, latent_channels=2, latent_size=8,
                                       num_classes=10), CPU_TRAIN),
    "dit-S/2": DiTRunConfig(_dit(384, 12, 6)),
    "dit-B/2": DiTRunConfig(_dit(768, 12, 12)),
    "dit-L/2": DiTRunConfig(_dit(1024, 24, 16)),  # the paper's model
    "dit-XL/2": DiTRunConfig(_dit(1152, 28, 16)),
}
# the first version's names
DIT_PRESET_ALIASES = {"dit-s2": "dit-S/2", "dit-b2": "dit-B/2", "dit-l2": "dit-L/2",
                      "dit-xl2": "dit-XL/2"}


def get_dit_preset(name: str) -> DiTRunConfig:
    name = DIT_PRESET_ALIASES.get(name, name)
    if name not in DIT_PRESETS:
        raise ValueError(f"unknown DiT preset {name!r}; choose one of {', '.join(DIT_PRESETS)}")
    return DIT_PRESETS[name]


def override_dit(cfg: DiTRunConfig, path: str, value: Any) -> DiTRunConfig:
    """``cfg`` with the dotted option (``dit.hidden``, ``train.lr``) replaced and re-checked."""
    return override(cfg, path, value)


def override_dit_text(cfg: DiTRunConfig, path: str, text: str) -> DiTRunConfig:
    """``override_dit`` with a command-line string parsed as the option's type (``--set``)."""
    return override_text(cfg, path, text)


def shrink_dit(cfg: DiTConfig, head_dim: int = 8) -> DiTConfig:
    """The same depth, heads and patching at a tiny width, for shape tests of every preset."""
    return replace(cfg, hidden=cfg.heads * head_dim, latent_size=4 * cfg.patch, num_classes=10,
                   freq_dim=16)
