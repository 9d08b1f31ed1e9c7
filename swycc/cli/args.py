"""The bottom of the command line: shared argument types, exit codes, size limits, config
building and the options every training or sampling verb shares. Verb modules import from here;
this module imports no verb.

Exit status: 0 done; 1 ``ship-check``: the candidate failed a criterion; 2 bad input; 3 training
diverged (too many non-finite steps in a row); 75 stopped by SIGTERM after writing a checkpoint
(re-run the same command to resume); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from swycc.autoencoders.pretrained import DEFAULT_NAME, SHIPPED_NAMES
from swycc.autoencoders.kinds import check_method, with_method
from swycc.config import (GUIDANCE_RANGE, MAX_BATCH, MAX_COUNT, MAX_IMAGE_SIZE, MAX_SAMPLES,
                          MAX_SAMPLING_STEPS, MAX_SEED, MAX_STEPS, PRESETS, Config, InitConfig,
                          LossConfig, apply_overrides, get_preset)

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM, checkpoint written; re-run to resume

# Largest images the verbs take without tiling (pixels; --max-pixels raises them). Measured on
# the 2-core CPU dev machine with the shipped small model: encoding costs ~0.64 KB per pixel
# (2048 x 2048: ~2.7 GB); decoding grows with the square of the pixel count through D_Refine's
# self-attention (512 x 512: 1.4 GB, 768 x 768: 6.3 GB, 1024 x 1024: ~19 GB extrapolated).
MAX_PIXELS_ENCODE = 2048 * 2048
MAX_PIXELS_DECODE = 768 * 768
# With tiling (the default above 512 x 512, swycc.autoencoders.tiling) memory is bounded by the tile: the
# shipped model peaked at 1.95 GB for a 4096 x 4096 decode (bench/results_tiling_cpu.json).
MAX_PIXELS_TILED = 4096 * 4096


# the folders verbs read (argparse dest -> option); no verb's --out may lie inside one of them
INPUT_FOLDERS = {"data": "--data", "eval_data": "--eval-data", "reference": "--reference",
                 "latents": "--latents"}


FILE_OUT_VERBS = {"encode"}  # verbs whose --out is a file; every other --out is a directory


def check_out_outside_inputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an --out inside a folder the verb reads, and a directory --out
    that is a file or cannot be made (OutputError)."""
    from swycc.io.outputs import check_dir_usable, check_out_outside

    if getattr(args, "out", None) is not None:
        check_out_outside(args.out, {opt: getattr(args, dest, None)
                                     for dest, opt in INPUT_FOLDERS.items()})
        if getattr(args, "verb", None) not in FILE_OUT_VERBS:
            check_dir_usable(args.out)


def kind_names() -> list[str]:
    from swycc.autoencoders.kinds import KINDS

    return list(KINDS)


def build_config(args: argparse.Namespace) -> Config:
    """Preset (or a config JSON), then explicit flags, then ``--set a.b=value`` overrides; every
    value is checked against the option's type and range (a ConfigError names the option)."""
    init = getattr(args, "init", None)
    if init and getattr(args, "config", None):
        raise ValueError("--init and --config both name a config: give one of them")
    if init:
        cfg = init_config(init)
        if args.method and args.method != cfg.model.method:
            raise ValueError(f"--method {args.method}: the --init model is a "
                             f"{cfg.model.method} model (fine-tuning keeps its kind)")
    elif getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise ValueError(f"--config {path}: no such file")
        cfg = Config.from_json(path.read_text())
    else:
        cfg = get_preset(args.preset)
    if args.method and not init:
        cfg = with_method(cfg, args.method)
    flags = {"data.path": args.data,
             "train.batch_size": args.batch_size, "train.lr": args.lr,
             "train.time_budget_s": args.time_budget, "train.bf16": resolve_bf16(args),
             "train.compile": True if args.compile else None,
             "train.seed": args.seed, "train.total_steps": args.total_steps,
             # an explicit --total-steps is the schedule's length, whatever the config said
             "train.schedule_from_budget": (True if getattr(args, "budget_schedule", False)
                                            and args.time_budget is not None
                                            and args.total_steps is None
                                            else False if args.total_steps is not None
                                            else None),
             **eval_flags(args)}
    return check_method(apply_overrides(cfg, flags, args.set))


def resolve_bf16(args: argparse.Namespace) -> bool | None:
    """--bf16 / --no-bf16 as given; by default (None) bf16 on a CPU with bf16 matrix units,
    fp32 on other CPUs, and the config's own value on CUDA (``swycc.train.hardware``)."""
    if args.bf16 is not None:
        return args.bf16
    from swycc.train.hardware import default_bf16

    device = getattr(args, "device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
    return default_bf16(torch.device(device).type)


def eval_flags(args: argparse.Namespace) -> dict:
    """--eval-data, --eval-every, --eval-size of ``swycc train`` (other verbs have none)."""
    return {"train.eval_data": getattr(args, "eval_data", None),
            "train.eval_every": getattr(args, "eval_every", None),
            "train.eval_size": getattr(args, "eval_size", None)}


def init_config(path: str) -> Config:
    """The config a fine-tuning run starts from: the export's own (networks, losses, sampling,
    training recipe), with ``init`` naming the export and the hash of its weights."""
    from swycc.autoencoders.base import read_config, weights_file, weights_sha256
    from swycc.autoencoders.hub import resolve_export

    # a local path, a shipped model's name (small-swycc-f8c4) or a Hub id, as --checkpoint takes;
    # CheckpointError (a ValueError) names a missing or bad export
    file = weights_file(resolve_export(path))
    cfg = read_config(file)
    # a time budget belongs to the invocation that gave it, not to the recipe: the fine-tune's
    # schedule is its own --total-steps or --time-budget, never the export's measured one
    train = dataclasses.replace(cfg.train, time_budget_s=None, schedule_from_budget=False)
    # so is the autoencoder-alone phase (loss.diffusion_weight = 0): a fine-tune from its export
    # trains D_Refine jointly again unless --set says otherwise
    loss = dataclasses.replace(cfg.loss, diffusion_weight=LossConfig.diffusion_weight)
    return dataclasses.replace(cfg, train=train, loss=loss, init=InitConfig(
        path=str(file), weights_sha256=weights_sha256(file)))


def add_train_options(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--preset", default="small", choices=list(PRESETS))
    p.add_argument("--config", help="a config JSON (e.g. a run's config.json) instead of a preset")
    p.add_argument("--method", choices=kind_names(), help="autoencoder kind (default: the "
                   "preset's, swycc)")
    p.add_argument("--data", help="image folder (default: the embedded photo set)")
    p.add_argument("--out", default=default_out, help="run directory (re-run to resume)")
    p.add_argument("--batch-size", type=batch_int)
    p.add_argument("--lr", type=finite_float)
    p.add_argument("--total-steps", type=train_steps_int, help="length of the LR schedule")
    p.add_argument("--max-steps", type=train_steps_int,
                   help="stop after this step (schedule unchanged)")
    p.add_argument("--time-budget", type=finite_float,
                   help="seconds of training in this invocation (> 0); without --total-steps "
                        "it also sets the LR schedule's length from the step rate measured "
                        "over the first steps (recorded in OUT/schedule.json, kept on resume)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for the networks (default: on for a CPU with bf16 "
                        "matrix units, e.g. AVX512-BF16 or AMX; off on other CPUs; on CUDA the "
                        "config's value); the resolved value is recorded in OUT/config.json")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the networks (GPU: 1.5x at paper size; CPU: ~8%% faster "
                        "bf16 steps at small size after a one-off compile of minutes: for long "
                        "runs)")
    p.add_argument("--seed", type=seed_int)
    p.add_argument("--device", type=device_arg,
                   help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any option, e.g. --set train.ema_decay=0.999")
    p.add_argument("--no-progress", action="store_true")
    add_threads_option(p)


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=positive_int,
                   help="CPU threads for torch (default: torch's, one per core); on a machine "
                        "shared with other computing processes, the cores left free (too many "
                        "threads oversubscribe the cores and run many times slower)")


def apply_threads(args: argparse.Namespace) -> None:
    """--threads N, before any work (the verbs that have the option)."""
    if getattr(args, "threads", None):
        from swycc.train.hardware import set_threads

        set_threads(args.threads)


def add_sampling_options(p: argparse.ArgumentParser, samples: bool = True,
                         max_pixels: int = MAX_PIXELS_DECODE) -> None:
    p.add_argument("--checkpoint", help="exported model dir or .safetensors, a shipped model's "
                   f"name ({', '.join(SHIPPED_NAMES)}) or a Hub id (default: {DEFAULT_NAME}, "
                   "shipped with swycc)")
    p.add_argument("--steps", type=sampling_steps_int,
                   help="DDIM steps (default: the model's config)")
    p.add_argument("--guidance", type=guidance_float,
                   help="classifier-free guidance w (default: the model's config, 0.5)")
    if samples:
        p.add_argument("--samples", type=samples_int, default=1, help="samples per image")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--max-pixels", type=positive_int,
                   help=f"refuse larger images, before any work (default: {max_pixels:,} = "
                        f"{math.isqrt(max_pixels)}^2 with --no-tile, {MAX_PIXELS_TILED:,} = "
                        f"{math.isqrt(MAX_PIXELS_TILED)}^2 otherwise; see the README)")
    p.set_defaults(untiled_max_pixels=max_pixels)
    p.add_argument("--tile", action=argparse.BooleanOptionalAction, default=None,
                   help="overlapping tiles blended, one global sampler: bounded memory for "
                        "large images (default: on above 4 tiles of pixels)")
    p.add_argument("--tile-size", type=tile_int, default=256, help="pixels (default 256)")
    p.add_argument("--tile-overlap", type=tile_int, default=64, help="pixels (default 64)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (default: refuse them)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_option(p)


def device_arg(text: str) -> str:
    """A torch device this build can use (argparse turns a ValueError into exit 2)."""
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (cpu, cuda, cuda:N)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: this torch build has no usable CUDA "
                                             f"device; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: only {torch.cuda.device_count()} "
                                             f"CUDA device(s)")
    elif dev.type not in ("cpu", "mps"):
        raise argparse.ArgumentTypeError(f"{text!r}: unsupported device type {dev.type!r}")
    return text


def bounded_int(low: int, high: int, why: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (argparse names the option in the error)."""
    def parse(text: str) -> int:
        value = positive_int(text) if low >= 1 else _int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high:,}]{why}, got {value}")
        return value
    return parse


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


# Ceilings of the size options, checked before any work (swycc.config documents the values):
# a value past them would ask for more memory or time than any run here can have.
MAX_PER_CLASS = 1000  # generate keeps every image for its grid
MAX_TILE = 4096  # pixels of a decoding tile
samples_int = bounded_int(1, MAX_SAMPLES)  # decodes per image
batch_int = bounded_int(1, MAX_BATCH)
sampling_steps_int = bounded_int(1, MAX_SAMPLING_STEPS)  # DDIM steps
train_steps_int = bounded_int(1, MAX_STEPS)  # optimiser steps
count_int = bounded_int(1, MAX_COUNT)  # numbers of images, crops, latents
per_class_int = bounded_int(1, MAX_PER_CLASS)
image_size_int = bounded_int(8, MAX_IMAGE_SIZE)
tile_int = bounded_int(1, MAX_TILE)
seed_int = bounded_int(0, MAX_SEED)


def guidance_float(text: str) -> float:
    """Guidance w in the documented range ``swycc.config.GUIDANCE_RANGE``: far past it the
    sampler returns saturated garbage, not an image."""
    value = finite_float(text)
    lo, hi = GUIDANCE_RANGE
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"guidance must be in [{lo:g}, {hi:g}], got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


MAX_PASS_PIXELS = 1 << 30


def pass_pixels_int(text: str) -> int:
    """--pass-pixels: 0 (no limit) or at least one 8 x 8 patch, at most MAX_PASS_PIXELS."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value != 0 and not 64 <= value <= MAX_PASS_PIXELS:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or in [64, {MAX_PASS_PIXELS}], "
                                         f"got {value}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def load_model(args: argparse.Namespace):
    from swycc.autoencoders.base import Autoencoder
    from swycc.autoencoders.pretrained import default_checkpoint

    path = args.checkpoint or default_checkpoint()
    return Autoencoder.from_pretrained(path).to(args.device)


def report_training(res) -> int:
    """The final line of a training run (``swycc.train.loop.TrainResult``) and its exit status."""
    from swycc.data.images import describe_skips

    skipped = sum(res.data_counts.values())
    files = f"{skipped} ({describe_skips(res.data_counts)})" if skipped else "0"
    print(f"stopped at step {res.step} ({res.stopped_by}); non-finite steps skipped: "
          f"{res.nonfinite_steps}; files skipped: {files}; EMA export: {res.export}")
    return exit_status(res.stopped_by)


def exit_status(stopped_by: str) -> int:
    """0, or EXIT_PREEMPTED (with a line saying so) when SIGTERM stopped the run."""
    if stopped_by != "signal":
        return 0
    print(f"swycc: stopped by SIGTERM after writing the checkpoint; re-run the same command "
          f"to resume (exit status {EXIT_PREEMPTED})", file=sys.stderr)
    return EXIT_PREEMPTED


def tiling(args: argparse.Namespace) -> dict:
    """The model's tiling keywords from --tile/--no-tile, --tile-size, --tile-overlap."""
    return {"tile": args.tile, "tile_size": args.tile_size, "tile_overlap": args.tile_overlap}


def decode_progress(args: argparse.Namespace, model, latent_sizes: list[tuple[int, int]],
                    desc: str):
    """A tqdm bar over every network evaluation of the coming decodes (tiles x steps);
    ``--no-progress`` silences it."""
    from tqdm import tqdm

    total = sum(model.progress_total(s, args.steps, **tiling(args)) for s in latent_sizes)
    return tqdm(total=total, desc=desc, unit="eval", disable=args.no_progress)


def resolve_max_pixels(args: argparse.Namespace) -> None:
    """--max-pixels, or its default: the untiled limit with --no-tile, the tiled one else."""
    if args.max_pixels is None:
        args.max_pixels = (args.untiled_max_pixels if args.tile is False
                           else max(MAX_PIXELS_TILED, args.untiled_max_pixels))


def _allow_pixels(max_pixels: int) -> None:
    """Let Pillow open what --max-pixels allows (its own bomb guard would refuse it first)."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels


def load_images(paths: list[str], max_pixels: int) -> list[torch.Tensor]:
    """Every image, checked: sizes from the headers first (a too-large one is refused before any
    is decoded), then decoded; ImageError naming the file."""
    from swycc.data.images import image_size, load_image

    _allow_pixels(max_pixels)
    for p in paths:
        image_size(p, max_pixels)
    return [load_image(p, max_pixels) for p in paths]


def save_samples(xs: torch.Tensor, paths: list[Path], stage) -> None:
    """(S, 3, H, W) -> the S planned paths (``OutputPlan.add_images``), staged."""
    from swycc.data.images import save_image

    for k, path in enumerate(paths):
        save_image(xs[k].cpu(), stage(path))


def report_written(plan, count: int, where: Path) -> None:
    for line in plan.describe_renames():
        print(line)
    print(f"wrote {count} image(s) to {where}")
