"""Typed, frozen configs and named presets, from tiny CPU ones up to the paper's full size.

Every config is a frozen dataclass. ``to_dict``/``from_dict`` round-trip through JSON and reject
unknown keys, so a misspelled option is an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, get_type_hints


@dataclass(frozen=True)
class EncoderConfig:
    """MaskGIT-style encoder E: ResNet blocks, GroupNorm, GELU, stride-2 convolutions."""

    base_channels: int = 128  # channels of the first level
    channel_mults: tuple[int, ...] = (1, 2, 2, 4)  # one per level; len-1 stride-2 downsamplings
    num_res_blocks: int = 4  # ResNet blocks per level
    num_mid_blocks: int = 4  # ResNet blocks at the lowest resolution, before the output conv
    latent_channels: int = 2  # C = 8 / K for relative compression K (paper: K=4 -> C=2)
    num_groups: int = 32  # GroupNorm groups (reduced automatically when channels < groups)
    grad_checkpointing: bool = False  # recompute each block's activations in backward

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channel_mults) - 1)


@dataclass(frozen=True)
class DecoderConfig:
    """D_Initial (and the GAN decoder): the encoder's mirror, depth-to-space upsampling."""

    base_channels: int = 128
    channel_mults: tuple[int, ...] = (1, 2, 2, 4)  # listed from full resolution down, like E
    num_res_blocks: int = 4
    num_mid_blocks: int = 4
    num_groups: int = 32
    adaptive_norm: bool = False  # MAGVIT-v2: GroupNorm scale/shift predicted from the latent z
    grad_checkpointing: bool = False  # recompute each block's activations in backward


@dataclass(frozen=True)
class UNetConfig:
    """D_Refine: the U-Net of "simple diffusion" (Hoogeboom et al. 2023b)."""

    base_channels: int = 128
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)
    num_res_blocks: tuple[int, ...] = (2, 4, 8, 8)  # per level, down path (up path mirrors it)
    attn_resolutions: tuple[int, ...] = (16,)  # feature-map sizes (pixels) with self-attention
    input_patch: int = 2  # space-to-depth factor at the input (256 -> 128 -> ... -> 16)
    head_channels: int = 64  # channels per attention head
    dropout: float = 0.0
    num_groups: int = 32
    emb_channels: int = 512  # width of the noise-level embedding
    predict_residual: bool = False  # deviation (named option): diffuse x - D_Initial(z), not x
    grad_checkpointing: bool = False  # recompute each block's activations in backward


@dataclass(frozen=True)
class ModelConfig:
    method: str = "swycc"  # "swycc" (diffusion decoder) or "gan" (deterministic decoder)
    image_size: int = 256  # training resolution (pixels); any size works at inference
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)

    @property
    def latent_channels(self) -> int:
        return self.encoder.latent_channels


@dataclass(frozen=True)
class LossConfig:
    """Eq. (3): L_total = L_AE + lambda_p * L_perceptual + lambda_m * L_MSE (on D_Initial)."""

    perceptual_weight: float = 0.1  # lambda_p
    mse_weight: float = 1.0  # lambda_m
    perceptual_net: str = "efficientnet-lite0"  # see swycc.perceptual.PERCEPTUAL_NETS
    perceptual_weights: str | None = None  # local weight file; None = the packaged default
    cond_dropout: float = 0.1  # CFG: D_Initial(E(x)) zeroed on this fraction of examples
    # GAN baseline (method="gan") only
    adversarial_weight: float = 0.1
    adversarial_start: int = 2000  # step at which the adversarial term switches on
    adaptive_adversarial_weight: bool = True  # taming-transformers' gradient-norm ratio
    gan_loss: str = "hinge"  # "hinge" or "non-saturating"
    lecam_weight: float = 0.001
    lecam_decay: float = 0.999
    disc_base_channels: int = 64
    disc_layers: int = 3


@dataclass(frozen=True)
class SamplingConfig:
    steps: int = 50  # DDIM steps over the cosine schedule
    guidance: float = 0.5  # w in v = v_c + w (v_c - v_u)
    samples: int = 1


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 256  # global batch (across processes and accumulation)
    grad_accum: int = 1
    lr: float = 1e-4
    warmup_steps: int = 10_000  # linear warm-up from 0
    total_steps: int = 1_000_000  # cosine decay to 0 at this step
    weight_decay: float = 0.0  # 0 -> plain Adam
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    grad_clip: float = 1.0  # global norm
    ema_decay: float = 0.9999
    ema_warmup: int = 0  # ramp the EMA decay: min(decay, (1 + n) / (10 + n)) for n < ema_warmup
    bf16: bool = False  # bf16 autocast for the networks; schedule maths and losses stay fp32
    compile: bool = False  # torch.compile the networks (GPU; the first steps pay compile time)
    seed: int = 0
    time_budget_s: float | None = None  # stop (and checkpoint) after this wall time
    log_every: int = 10
    checkpoint_every: int = 200
    sample_every: int = 500  # write a sample grid
    num_workers: int = 0


@dataclass(frozen=True)
class DataConfig:
    path: str | None = None  # image folder; None -> the embedded photo set
    labels: bool = False  # class labels from sub-folder names
    held_out: int = 16  # embedded set: fixed held-back crops for evaluation
    train_crops: int = 4096  # embedded set: number of distinct training crops per epoch


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        return _from_dict(cls, d)

    @classmethod
    def from_json(cls, s: str) -> Config:
        return cls.from_dict(json.loads(s))


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__}: expected a mapping, got {type(d).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown option(s) {sorted(unknown)}")
    kwargs = {}
    for name, value in d.items():
        hint = hints[name]
        if is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def override(cfg: Any, path: str, value: Any) -> Any:
    """Return ``cfg`` with the dotted option ``path`` (e.g. ``train.lr``) replaced by ``value``."""
    head, _, rest = path.partition(".")
    if head not in {f.name for f in fields(cfg)}:
        raise ValueError(f"unknown option {path!r} in {type(cfg).__name__}")
    if rest:
        return replace(cfg, **{head: override(getattr(cfg, head), rest, value)})
    return replace(cfg, **{head: value})


# ---------------------------------------------------------------------------------------------
# Presets. The CPU presets keep >= 16 channels at full resolution (8 ran at ~30% of the matmul
# peak here and sampled poorly); `paper` reproduces Table 3's parameter counts within 10%.


def _cpu_preset(size: int, enc: int, dec: int, unet: int, mults: tuple[int, ...],
                blocks: tuple[int, ...], attn: tuple[int, ...], batch: int) -> Config:
    return Config(
        model=ModelConfig(
            image_size=size,
            encoder=EncoderConfig(base_channels=enc, channel_mults=(1, 2, 2, 4), num_res_blocks=1,
                                  num_mid_blocks=1, latent_channels=2, num_groups=8),
            decoder=DecoderConfig(base_channels=dec, channel_mults=(1, 2, 2, 4), num_res_blocks=1,
                                  num_mid_blocks=1, num_groups=8),
            unet=UNetConfig(base_channels=unet, channel_mults=mults, num_res_blocks=blocks,
                            attn_resolutions=attn, input_patch=1, head_channels=32, num_groups=8,
                            emb_channels=4 * unet),
        ),
        # GAN discriminator at half the decoder's width, as in `paper` (64 vs 128), >= 16
        loss=LossConfig(disc_base_channels=max(16, dec // 2)),
        train=TrainConfig(batch_size=batch, lr=3e-4, warmup_steps=200, total_steps=20_000,
                          ema_decay=0.999, ema_warmup=2000, log_every=10, checkpoint_every=100,
                          sample_every=500),
    )


PRESETS: dict[str, Config] = {
    # test-size: seconds per step on one core
    "tiny": _cpu_preset(32, enc=16, dec=16, unet=16, mults=(1, 2, 2), blocks=(1, 1, 1),
                        attn=(8,), batch=16),
    # the quick start's default: 64x64 crops, trains in minutes on 2 CPU cores
    "small": _cpu_preset(64, enc=32, dec=32, unet=32, mults=(1, 2, 2, 4), blocks=(1, 1, 2, 2),
                         attn=(8,), batch=16),
    "medium": _cpu_preset(128, enc=32, dec=48, unet=48, mults=(1, 2, 3, 4), blocks=(1, 2, 2, 2),
                          attn=(16,), batch=8),
    # the paper's configuration (ImageNet 256x256, K=4)
    "paper": Config(),
}


def get_preset(name: str) -> Config:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def with_method(cfg: Config, method: str) -> Config:
    """Switch method; the GAN decoder gets MAGVIT-v2's adaptive GroupNorm (conditioned on z)."""
    if method not in ("swycc", "gan"):
        raise ValueError(f"method must be 'swycc' or 'gan', got {method!r}")
    m = replace(cfg.model, method=method,
                decoder=replace(cfg.model.decoder, adaptive_norm=method == "gan"))
    return replace(cfg, model=m)


def shrink(cfg: Config, width: int = 8) -> Config:
    """The same structure at a tiny width, for shape tests of every preset."""
    m = cfg.model
    return replace(cfg, loss=replace(cfg.loss, disc_base_channels=width), model=replace(
        m,
        encoder=replace(m.encoder, base_channels=width, num_groups=4),
        decoder=replace(m.decoder, base_channels=width, num_groups=4),
        unet=replace(m.unet, base_channels=width, num_groups=4, head_channels=width,
                     emb_channels=4 * width),
    ))
