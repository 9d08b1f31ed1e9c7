"""Typed, frozen configs and named presets, from tiny CPU ones up to the paper's full size.

Every config is a frozen dataclass whose fields are checked on construction (type, range, and for
some fields a set of choices), so ``--set train.batch_size=abc``, a config file with
``"lr": "abc"`` or ``model.method=xyz`` is a ``ConfigError`` naming the option, never a traceback
later. ``to_dict``/``from_dict`` round-trip through JSON and reject unknown keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from swycc.config_types import (ConfigError, JsonConfig, Validated, choice, field_type, parse_text,
                                 replace_path)

__all__ = ["ConfigError", "Config", "PRESETS", "get_preset", "override", "shrink"]


# the perceptual nets ``loss.perceptual_net`` may name (built by swycc.losses.registry, whose
# test checks that both lists agree)
PERCEPTUAL_NET_NAMES = ("efficientnet-lite0", "resnet50", "vgg16", "dists-effnetlite0",
                        "dists-vgg16")


# Ceilings on sizes, so that a crafted config (a checkpoint's metadata, --set) cannot ask for
# terabytes or hours before anything fails. Every preset, `paper` included, fits far below them
# (paper: 1024 channels, 8 blocks per level, 4 levels, 256 pixels).
MAX_CHANNELS = 4096  # any network width: base_channels x a channel multiplier
MAX_BLOCKS = 64  # ResNet blocks per level (num_res_blocks, num_mid_blocks)
MAX_LEVELS = 8  # entries of channel_mults (up to 2^7 downsampling)
MAX_IMAGE_SIZE = 8192  # model.image_size (pixels)
MAX_BATCH = 65_536  # train.batch_size, train.grad_accum
MAX_STEPS = 10 ** 9  # every step count and interval of a training run
MAX_SEED = 2 ** 63 - 1  # seeds are in [0, MAX_SEED] (torch.Generator's range)
MAX_SAMPLING_STEPS = 10_000  # DDIM steps
MAX_SAMPLES = 64  # decodes per latent
GUIDANCE_RANGE = (-1.0, 20.0)  # w: -1 is the unconditional model, 0 none; 20 is far past use
MAX_COUNT = 10 ** 7  # numbers of images or crops (data.held_out, data.train_crops)


def at_most(c: Any, names: tuple[str, ...], ceiling: int) -> None:
    """Each field in ``names`` (an int, or a tuple of ints) is at most ``ceiling``."""
    for name in names:
        value = getattr(c, name)
        values = value if isinstance(value, tuple) else (value,)
        c.require(all(v <= ceiling for v in values), name, f"must be <= {ceiling:,}")


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


@dataclass(frozen=True)
class EncoderConfig(Validated):
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

    def check(self) -> None:
        _check_widths(self)
        self.require(self.latent_channels >= 1, "latent_channels", "must be >= 1")
        at_most(self, ("latent_channels",), MAX_CHANNELS)


@dataclass(frozen=True)
class DecoderConfig(Validated):
    """D_Initial (and the GAN decoder): the encoder's mirror, depth-to-space upsampling."""

    base_channels: int = 128
    channel_mults: tuple[int, ...] = (1, 2, 2, 4)  # listed from full resolution down, like E
    num_res_blocks: int = 4
    num_mid_blocks: int = 4
    num_groups: int = 32
    adaptive_norm: bool = False  # MAGVIT-v2: GroupNorm scale/shift predicted from the latent z
    out_channels: int = 3  # 3 = an image (D_Initial, GAN); DGAE's latent guide emits features
    grad_checkpointing: bool = False  # recompute each block's activations in backward

    def check(self) -> None:
        _check_widths(self)
        self.require(self.out_channels >= 1, "out_channels", "must be >= 1")


@dataclass(frozen=True)
class UNetConfig(Validated):
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

    def check(self) -> None:
        _check_widths(self)
        self.require(len(self.num_res_blocks) == len(self.channel_mults), "num_res_blocks",
                     f"needs one entry per channel multiplier ({len(self.channel_mults)})")
        self.require(all(n >= 1 for n in self.num_res_blocks), "num_res_blocks", "must be >= 1")
        for name in ("input_patch", "head_channels", "emb_channels"):
            self.require(getattr(self, name) >= 1, name, "must be >= 1")
        self.require(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        at_most(self, ("head_channels", "emb_channels"), 4 * MAX_CHANNELS)
        at_most(self, ("input_patch",), 64)


@dataclass(frozen=True)
class ModelConfig(Validated):
    # the autoencoder kind: "swycc", "gan", "dgae", ... (swycc.autoencoders.kinds lists them and
    # checks this name where a config enters: the CLI, read_config, from_pretrained)
    method: str = "swycc"
    image_size: int = 256  # training resolution (pixels); any size works at inference
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)

    @property
    def latent_channels(self) -> int:
        return self.encoder.latent_channels

    def check(self) -> None:
        self.require(self.image_size >= 8, "image_size", "must be >= 8")
        at_most(self, ("image_size",), MAX_IMAGE_SIZE)


@dataclass(frozen=True)
class LossConfig(Validated):
    """Eq. (3): L_total = L_AE + lambda_p * L_perceptual + lambda_m * L_MSE (on D_Initial)."""

    perceptual_weight: float = 0.1  # lambda_p
    mse_weight: float = 1.0  # lambda_m
    # "mean": MSE over all pixels of the batch (eq. 3). "log": mean_i ln(MSE_i + 1e-4) over the
    # batch's images, i.e. minus their mean PSNR up to a scale: its gradient is MSE's with image i
    # weighted by 1 / MSE_i, so smooth images (where a PSNR-scored model gains least) count as
    # much as textured ones; mse_weight ~ a typical MSE (0.01) keeps the other terms' balance
    mse_form: str = choice("mean", ("mean", "log"))
    # efficientnet-lite0 (default), resnet50, vgg16, dists-vgg16, dists-effnetlite0 (Fig. 10)
    perceptual_net: str = choice("efficientnet-lite0", PERCEPTUAL_NET_NAMES)
    perceptual_weights: str | None = None  # local weight file; None = the packaged default
    # lambda_c: + lambda_c * mean_{n,c} (mean_hw D_Initial(E(x)) - mean_hw x)^2, each image's
    # mean colour (not in the paper; against a systematic per-channel colour bias)
    colour_weight: float = 0.0
    # lambda_pm: + lambda_pm * mean (avgpool_k D_Initial(E(x)) - avgpool_k x)^2, the error of each
    # k x k patch's mean colour (k = patch_mean_size, the latent's downsampling factor), which
    # bicubic-from-1/8 keeps almost exactly and plain MSE leaves up to 8x larger (not in the
    # paper; a trade against the texture error, README's f8c4 stage 7)
    patch_mean_weight: float = 0.0
    patch_mean_size: int = 8
    cond_dropout: float = 0.1  # CFG: D_Initial(E(x)) zeroed on this fraction of examples
    # lambda_d: weight of L_AE (eq. 2) in eq. (3), SWYCC only. 0 trains the deterministic
    # autoencoder alone (E and D_Initial; D_Refine frozen and not run, ~3x cheaper steps): the
    # "autoencoder first, D_Refine jointly after" recipe of the paper's family
    diffusion_weight: float = 1.0
    # GAN baseline (method="gan") only
    adversarial_weight: float = 0.1
    adversarial_start: int = 2000  # step at which the adversarial term switches on
    adaptive_adversarial_weight: bool = True  # taming-transformers' gradient-norm ratio
    gan_loss: str = choice("hinge", ("hinge", "non-saturating"))
    lecam_weight: float = 0.001
    lecam_decay: float = 0.999
    r1_weight: float = 0.0  # gamma of R1 (Mescheder et al. 2018): L_D += gamma/2 E||grad D(x)||^2
    disc_lr_scale: float = 1.0  # D's learning rate = this x the generator's (same schedule)
    disc_base_channels: int = 64
    disc_layers: int = 3
    # DGAE (method="dgae") only: KL(q(z|x) || N(0, I)) per latent element, and the perceptual
    # term on the diffusion decoder's x0 estimate, applied to examples with t <= this noise level
    kl_weight: float = 1e-3
    perceptual_max_t: float = 0.5

    def check(self) -> None:
        for name in ("perceptual_weight", "mse_weight", "adversarial_weight", "lecam_weight",
                     "kl_weight", "disc_lr_scale", "r1_weight", "colour_weight",
                     "diffusion_weight", "patch_mean_weight"):
            self.require(getattr(self, name) >= 0, name, "must be >= 0")
        self.require(self.patch_mean_size >= 1, "patch_mean_size", "must be >= 1")
        self.require(self.diffusion_weight > 0 or self.mse_weight > 0
                     or self.perceptual_weight > 0 or self.colour_weight > 0
                     or self.patch_mean_weight > 0, "diffusion_weight",
                     "0 needs a D_Initial term (mse_weight, perceptual_weight, colour_weight or "
                     "patch_mean_weight) to train")
        self.require(0 <= self.cond_dropout < 1, "cond_dropout", "must be in [0, 1)")
        self.require(0 <= self.lecam_decay <= 1, "lecam_decay", "must be in [0, 1]")
        self.require(0 < self.perceptual_max_t <= 1, "perceptual_max_t", "must be in (0, 1]")
        self.require(self.adversarial_start >= 0, "adversarial_start", "must be >= 0")
        for name in ("disc_base_channels", "disc_layers"):
            self.require(getattr(self, name) >= 1, name, "must be >= 1")
        at_most(self, ("disc_base_channels",), MAX_CHANNELS)
        at_most(self, ("disc_layers",), MAX_LEVELS)
        at_most(self, ("adversarial_start",), MAX_STEPS)


@dataclass(frozen=True)
class SamplingConfig(Validated):
    steps: int = 50  # DDIM steps over the cosine schedule
    guidance: float = 0.5  # w in v = v_c + w (v_c - v_u)
    samples: int = 1

    def check(self) -> None:
        self.require(self.steps >= 1, "steps", "must be >= 1")
        self.require(self.samples >= 1, "samples", "must be >= 1")
        at_most(self, ("steps",), MAX_SAMPLING_STEPS)
        at_most(self, ("samples",), MAX_SAMPLES)
        lo, hi = GUIDANCE_RANGE
        self.require(lo <= self.guidance <= hi, "guidance", f"must be in [{lo:g}, {hi:g}]")


@dataclass(frozen=True)
class TrainConfig(Validated):
    batch_size: int = 256  # global batch (across processes and accumulation)
    grad_accum: int = 1
    lr: float = 1e-4
    warmup_steps: int = 10_000  # linear warm-up from 0
    total_steps: int = 1_000_000  # cosine decay to 0 at this step (the run's length)
    lr_schedule: str = choice("cosine", ("cosine", "constant"))  # after the warm-up
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
    # True: total_steps is derived from time_budget_s and the step rate measured over the first
    # steps (swycc.train.budget), fixed once and kept in <out>/schedule.json for resumption
    schedule_from_budget: bool = False
    # held-out photos evaluated every eval_every steps (each one's largest centre square at
    # eval_size pixels), logged as eval_* and the best export by PSNR kept at <out>/best;
    # None: no evaluation
    eval_data: str | None = None
    eval_every: int = 500
    eval_size: int = 128
    log_every: int = 10
    checkpoint_every: int = 200
    sample_every: int = 500  # write a sample grid (0: never)
    export_every: int = 0  # also keep a numbered EMA export, exports/step-N (0: never)
    num_workers: int = 0
    # divergence: warn when more than half of the last `log_every` steps were skipped as
    # non-finite; stop with an error after this many skipped steps in a row
    max_nonfinite_in_row: int = 100

    def check(self) -> None:
        for name in ("batch_size", "grad_accum", "total_steps", "log_every", "checkpoint_every",
                     "max_nonfinite_in_row", "eval_every", "eval_size"):
            self.require(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("warmup_steps", "ema_warmup", "sample_every", "num_workers",
                     "weight_decay", "export_every"):
            self.require(getattr(self, name) >= 0, name, "must be >= 0")
        for name in ("lr", "adam_eps", "grad_clip"):
            self.require(getattr(self, name) > 0, name, "must be > 0")
        self.require(all(0 <= b < 1 for b in self.betas), "betas", "must be in [0, 1)")
        self.require(0 <= self.ema_decay <= 1, "ema_decay", "must be in [0, 1]")
        self.require(self.time_budget_s is None or self.time_budget_s > 0, "time_budget_s",
                     "must be > 0 seconds")
        at_most(self, ("batch_size", "grad_accum"), MAX_BATCH)
        at_most(self, ("warmup_steps", "total_steps", "ema_warmup", "log_every",
                       "checkpoint_every", "sample_every", "export_every",
                       "max_nonfinite_in_row"), MAX_STEPS)
        at_most(self, ("num_workers",), 1024)
        self.require(0 <= self.seed <= MAX_SEED, "seed", f"must be in [0, {MAX_SEED}]")
        self.require(not self.schedule_from_budget or self.time_budget_s is not None,
                     "schedule_from_budget", "needs train.time_budget_s")


@dataclass(frozen=True)
class DataConfig(Validated):
    path: str | None = None  # image folder; None -> the embedded photo set
    labels: bool = False  # class labels from sub-folder names
    held_out: int = 16  # embedded set: fixed held-back crops for evaluation
    train_crops: int = 4096  # embedded set: number of distinct training crops per epoch
    # image folders: 1.0 = the paper's preprocessing (shorter side -> size, random crop); < 1:
    # squares of a random share in [crop_scale_min, 1] of the shorter side (few, large photos)
    crop_scale_min: float = 1.0
    eval_grid: int = 1  # image folders, evaluation: grid x grid crops of each centre square
    # image folders, training: share of crops whose colours are rotated about the grey axis by
    # a random angle (the embedded set always rotates half of them); 0 = off
    hue_rotation: float = 0.0
    # image folders, training: share of crops turned by a random 1, 2 or 3 quarter turns (with
    # the random left-right flip: all 8 symmetries of the square); new views of few photos; 0 = off
    quarter_turns: float = 0.0
    # training crops' side in pixels; None = model.image_size. The networks are convolutional
    # (attention placed by model.image_size), so a model can be fine-tuned on larger crops than
    # it was built for: GroupNorm then sees the statistics of the larger images it decodes
    crop_size: int | None = None
    # image folders, training: several crop sides, one drawn per batch from the run's seed
    # (multi-resolution training: GroupNorm learns the statistics of each size the model will
    # decode, e.g. 128 and 256 px); empty = crop_size alone
    crop_sizes: tuple[int, ...] = ()

    def crop_sides(self, image_size: int) -> tuple[int, ...]:
        """The training crops' sides: crop_sizes, else crop_size, else the model's size."""
        return self.crop_sizes or (self.crop_size or image_size,)

    def check(self) -> None:
        self.require(0 < self.crop_scale_min <= 1, "crop_scale_min", "must be in (0, 1]")
        self.require(self.crop_size is None or (8 <= self.crop_size <= 1024
                                                and self.crop_size % 8 == 0), "crop_size",
                     "must be None or a multiple of 8 in [8, 1024]")
        self.require(all(8 <= c <= 1024 and c % 8 == 0 for c in self.crop_sizes), "crop_sizes",
                     "must be multiples of 8 in [8, 1024]")
        self.require(len(self.crop_sizes) <= 16, "crop_sizes", "at most 16 sizes")
        self.require(not (self.crop_sizes and self.crop_size), "crop_sizes",
                     "give crop_sizes or crop_size, not both (fine-tuning an export "
                     "trained with crop_size: --set data.crop_size=none first)")
        self.require(self.eval_grid >= 1, "eval_grid", "must be >= 1")
        self.require(0 <= self.hue_rotation <= 1, "hue_rotation", "must be in [0, 1]")
        self.require(0 <= self.quarter_turns <= 1, "quarter_turns", "must be in [0, 1]")
        self.require(self.held_out >= 0, "held_out", "must be >= 0")
        self.require(self.train_crops >= 1, "train_crops", "must be >= 1")
        at_most(self, ("held_out", "train_crops"), MAX_COUNT)
        at_most(self, ("eval_grid",), 64)


@dataclass(frozen=True)
class InitConfig(Validated):
    """Fine-tuning: the exported model whose weights the run starts from (``swycc train
    --init``), and their tensor-content hash (``autoencoder.weights_sha256``), checked when the
    run starts and when it resumes. Both None: the networks' own random initialisation."""

    path: str | None = None
    weights_sha256: str | None = None

    def check(self) -> None:
        self.require((self.path is None) == (self.weights_sha256 is None), "weights_sha256",
                     "is set together with init.path (swycc train --init fills both)")


@dataclass(frozen=True)
class Config(JsonConfig):
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    init: InitConfig = field(default_factory=InitConfig)


def override(cfg: Any, path: str, value: Any) -> Any:
    """Return ``cfg`` with the dotted option ``path`` (e.g. ``train.lr``) replaced by ``value``,
    checked like any config value (ConfigError naming ``path``)."""
    return replace_path(cfg, path, value)


def override_text(cfg: Any, path: str, text: str) -> Any:
    """``override`` with a command-line string parsed as the option's declared type."""
    try:
        value = parse_text(text, field_type(cfg, path))
    except TypeError as e:
        raise ConfigError(path, str(e)) from None
    return override(cfg, path, value)


def apply_overrides(cfg: Any, flags: dict[str, Any], sets: list[str] | None) -> Any:
    """``cfg`` with the command line's options: ``flags`` {dotted option: value or None (not
    given)}, then each ``--set key=value`` text parsed as the option's type."""
    for key, value in flags.items():
        if value is not None:
            cfg = override(cfg, key, value)
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        cfg = override_text(cfg, key.strip(), value)
    return cfg


def _check_widths(c: Any) -> None:
    c.require(c.base_channels >= 1, "base_channels", "must be >= 1")
    c.require(len(c.channel_mults) >= 1 and all(m >= 1 for m in c.channel_mults),
              "channel_mults", "must be a non-empty list of integers >= 1")
    c.require(c.num_groups >= 1, "num_groups", "must be >= 1")
    for name in ("num_res_blocks", "num_mid_blocks"):
        if isinstance(getattr(c, name, None), int):
            c.require(getattr(c, name) >= 0, name, "must be >= 0")
    at_most(c, ("base_channels", "num_groups"), MAX_CHANNELS)
    c.require(len(c.channel_mults) <= MAX_LEVELS, "channel_mults",
              f"at most {MAX_LEVELS} levels")
    c.require(c.base_channels * max(c.channel_mults) <= MAX_CHANNELS, "channel_mults",
              f"base_channels x multiplier must be <= {MAX_CHANNELS}")
    at_most(c, tuple(n for n in ("num_res_blocks", "num_mid_blocks") if hasattr(c, n)),
            MAX_BLOCKS)


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


def _paper_shaped(size: int, width: int) -> Config:
    """The paper's networks (``Config()``: every level, block count and multiplier) at base
    width ``width`` instead of 128, at ``size`` px, with ``_cpu_preset``'s training recipe.
    Self-attention at the paper's relative level: 16x16 of 256 px is 1/16 of the image side."""
    paper, cpu = Config().model, _cpu_preset(size, width, width, width, (1,), (1,), (), 16)
    groups = dict(base_channels=width, num_groups=8)
    return replace(cpu, model=replace(
        paper, image_size=size, encoder=replace(paper.encoder, **groups),
        decoder=replace(paper.decoder, **groups),
        unet=replace(paper.unet, **groups, attn_resolutions=(size // 16,),
                     head_channels=width // 2, emb_channels=4 * width)))


PRESETS: dict[str, Config] = {
    # test-size: seconds per step on one core
    "tiny": _cpu_preset(32, enc=16, dec=16, unet=16, mults=(1, 2, 2), blocks=(1, 1, 1),
                        attn=(8,), batch=16),
    # the paper's proportions at 32 px (`swycc info --preset paper-cpu`): D_Refine ~10x
    # D_Initial's parameters (paper 614M / 63M), the encoder ~0.8x D_Initial (49.4M / 63.4M),
    # attention at 2x2 (1/16 of the side, as 16x16 of 256 px); for the converged comparisons
    "paper-cpu": _paper_shaped(32, width=16),
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
