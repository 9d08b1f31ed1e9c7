"""The autoencoder verbs: demo, train, reconstruct, encode, decode, info."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from swycc.cli.args import (MAX_PIXELS_ENCODE, add_sampling_options, add_train_options,
                            build_config, decode_progress, guidance_float, image_size_int,
                            kind_names, load_images, load_model, pass_pixels_int,
                            report_training, report_written, resolve_max_pixels,
                            samples_int, sampling_steps_int, save_samples, tiling, train_steps_int)
from swycc.autoencoders.kinds import with_method
from swycc.io.outputs import check_out_outside
from swycc.config import MAX_IMAGE_SIZE, PRESETS, get_preset


def register(sub) -> None:
    """demo, train, reconstruct, encode, decode, info."""
    p = sub.add_parser("demo", help="the quick start: held-out grid, variance map, metrics")
    add_train_options(p, "runs/demo")
    p.add_argument("--train", action="store_true",
                   help="train a fresh model for --time-budget seconds first (default 480)")
    p.add_argument("--checkpoint", help="model to show (default: the shipped pretrained one)")
    p.add_argument("--steps", type=sampling_steps_int, default=20)
    p.add_argument("--guidance", type=guidance_float, default=0.5)
    p.add_argument("--samples", type=samples_int, default=4)
    p.add_argument("--photo-size", type=photo_size, default=128,
                   help="side of the whole test-split photos shown beside the crops "
                        "(a multiple of 8; 0: none)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train an autoencoder (re-run the same command to resume)")
    add_train_options(p, "runs/train")
    p.add_argument("--init", metavar="EXPORT", help="fine-tune: start from this exported model "
                   "(e.g. small-swycc-f8c4 or a path), its weights and its config; --preset "
                   "is then unused, the other options and --set change the recipe; --set "
                   "may also deepen or widen E and D_Initial (the first step decodes as the "
                   "export did)")
    p.add_argument("--log", choices=["jsonl", "tensorboard"], default="jsonl",
                   help="tensorboard: also write scalars and sample grids to OUT/tb "
                        "(metrics.jsonl is always written)")
    p.add_argument("--allow-data-change", action="store_true",
                   help="resume although the --data folder's files changed since the run "
                        "started (default: refuse)")
    p.add_argument("--pass-pixels", type=pass_pixels_int, metavar="N",
                   help="the most pixels in one forward/backward pass: larger batches are "
                        "cut into passes and their gradients summed, the same update (default "
                        "on a CPU 65536, one 256 px image: 1.5x faster steps at 256 px "
                        "there; elsewhere 0, no limit)")
    add_eval_options(p)
    p.set_defaults(func=cmd_train, budget_schedule=True)

    p = sub.add_parser("reconstruct", help="image files in, reconstructions out")
    p.add_argument("images", nargs="+")
    p.add_argument("--out", required=True, help="output directory")
    add_sampling_options(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("encode", help="image files in, one latents file out")
    p.add_argument("images", nargs="+")
    p.add_argument("--out", required=True, help="latents file (.safetensors)")
    add_sampling_options(p, samples=False, max_pixels=MAX_PIXELS_ENCODE)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="latents file in, images out")
    p.add_argument("latents")
    p.add_argument("--out", required=True, help="output directory")
    add_sampling_options(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("info", help="parameter counts of a preset or checkpoint (no weights)")
    from swycc.generation.config import DIT_PRESETS

    p.add_argument("--preset", default="small", choices=list(PRESETS) + list(DIT_PRESETS))
    p.add_argument("--checkpoint")
    p.add_argument("--method", choices=kind_names())
    p.set_defaults(func=cmd_info)


def add_eval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval-data", metavar="DIR", help="held-out photos evaluated during "
                   "training: PSNR and colour shift logged to metrics.jsonl (eval_*), the best "
                   "export by PSNR kept at OUT/best")
    p.add_argument("--eval-every", type=train_steps_int, metavar="N",
                   help="evaluate every N steps (default: train.eval_every, 500)")
    p.add_argument("--eval-size", type=image_size_int, metavar="PX",
                   help="each photo's largest centre square resized to this (default 128)")


def cmd_train(args: argparse.Namespace) -> int:
    from swycc.train.autoencoder_task import train_autoencoder

    cfg = build_config(args)
    check_out_outside(args.out, {"--data": cfg.data.path})
    res = train_autoencoder(cfg, args.out, device=args.device, max_steps=args.max_steps,
                            progress=not args.no_progress, tensorboard=args.log == "tensorboard",
                            allow_data_change=args.allow_data_change,
                            pass_pixels=args.pass_pixels)
    return report_training(res)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    resolve_max_pixels(args)
    from swycc.io.outputs import OutputPlan

    plan = OutputPlan(overwrite=args.overwrite)
    out = Path(args.out)
    targets = [plan.add_images(out, Path(p).stem, args.samples) for p in args.images]
    plan.check()
    images = load_images(args.images, args.max_pixels)
    model = load_model(args)
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    bar = decode_progress(args, model, [model.latent_size(*x.shape[-2:]) for x in images],
                          "reconstruct")
    with plan.writing() as stage, bar:
        for paths, x in zip(targets, images):
            xs = model.reconstruct(x[None].to(args.device), args.steps, args.guidance,
                                   samples=args.samples, generator=g, on_tile=bar.update,
                                   **tiling(args))[0]
            save_samples(xs, paths, stage)
    report_written(plan, len(images) * args.samples, out)
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    resolve_max_pixels(args)
    from swycc.io.latents import LatentEntry, save_latents
    from swycc.io.outputs import OutputPlan

    plan = OutputPlan(overwrite=args.overwrite)
    out = plan.add_file(args.out)
    plan.check()
    images = load_images(args.images, args.max_pixels)
    model = load_model(args)
    from tqdm import tqdm

    with torch.inference_mode():
        entries = [LatentEntry(Path(p).stem, tuple(x.shape[-2:]),
                               model.encode(x[None].to(args.device), **tiling(args))[0].cpu())
                   for p, x in tqdm(list(zip(args.images, images)), desc="encode", unit="img",
                                    disable=args.no_progress)]
    with plan.writing() as stage:
        save_latents(entries, stage(out), model.config.to_json())
    print(f"wrote latents of {len(entries)} image(s) to {out}")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    resolve_max_pixels(args)
    from swycc.io.latents import LatentsError, load_latents
    from swycc.io.outputs import OutputPlan

    model = load_model(args)
    down = model.config.model.encoder.downsample
    entries = load_latents(args.latents, model.config.model.latent_channels, down)
    for i, e in enumerate(entries):
        h, w = e.z.shape[1] * down, e.z.shape[2] * down
        if h * w > args.max_pixels:
            raise LatentsError(f"{args.latents}: entry {i} ({e.name!r}) decodes to {w}x{h} = "
                               f"{h * w:,} pixels, over the limit of {args.max_pixels:,} "
                               f"(--max-pixels)")
    plan = OutputPlan(overwrite=args.overwrite)
    out = Path(args.out)
    targets = [plan.add_images(out, e.name, args.samples) for e in entries]
    plan.check()
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    bar = decode_progress(args, model, [tuple(e.z.shape[-2:]) for e in entries], "decode")
    with plan.writing() as stage, bar:
        for paths, e in zip(targets, entries):
            xs = model.decode(e.z[None].to(args.device), args.steps, args.guidance,
                              samples=args.samples, generator=g, size=e.size,
                              on_tile=bar.update, **tiling(args))[0]
            save_samples(xs, paths, stage)
    report_written(plan, len(entries) * args.samples, out)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from swycc.autoencoders.base import Autoencoder, read_config
    from swycc.autoencoders.kinds import KINDS, get_kind

    if not args.checkpoint and args.preset.startswith("dit-"):  # the second stage's DiT
        from swycc.generation.config import get_dit_preset
        from swycc.generation.dit import count_parameters

        print(f"DiT: {count_parameters(get_dit_preset(args.preset).dit) / 1e6:.1f}M parameters")
        return 0
    cfg = read_config(args.checkpoint) if args.checkpoint else get_preset(args.preset)
    if args.method:
        cfg = with_method(cfg, args.method)
    with torch.device("meta"):  # counts without allocating weights
        model = Autoencoder.from_config(cfg)
    kind = get_kind(cfg.model.method)
    print(f"preset/config: {args.checkpoint or args.preset}  method: {kind.name} ({kind.summary})"
          f"  image size: {cfg.model.image_size}  latent: {cfg.model.latent_channels} x "
          f"{cfg.model.image_size // cfg.model.encoder.downsample}^2")
    for name, mod in model.parts().items():
        print(f"{name:>13}: {sum(p.numel() for p in mod.parameters()) / 1e6:9.2f}M parameters")
    print(f"kinds: {', '.join(KINDS)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from swycc.experiments.demo import run_demo

    return run_demo(args.out, build_config(args) if args.train else None, args.checkpoint,
                    device=args.device, steps=args.steps, guidance=args.guidance,
                    samples=args.samples, seed=args.seed or 0, max_steps=args.max_steps,
                    progress=not args.no_progress, preset=args.preset,
                    photo_size=args.photo_size)


def photo_size(text: str) -> int:
    """0 (no whole photos) or a positive multiple of 8."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0 or value % 8 or value > MAX_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be 0 or a multiple of 8 up to {MAX_IMAGE_SIZE}, "
                                         f"got {value}")
    return value
