"""The second stage on the command line: ``swycc encode-dataset`` and ``train-dit`` (generation
and its scores: swycc.cli.generate).

    swycc encode-dataset --checkpoint AE --data imagenet/train --out latents/ [--flip]
    swycc train-dit --latents latents/ --preset dit-L/2 --out runs/dit      # re-run to resume
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch


def register(sub) -> None:
    from swycc.cli.args import (add_threads_option, batch_int, count_int, device_arg,
                                image_size_int, train_steps_int)
    from swycc.generation.config import DIT_PRESETS

    p = sub.add_parser("encode-dataset", help="encode a class-labelled image folder into latents "
                       "for train-dit (torchrun: every rank its share; re-run to resume)")
    p.add_argument("--checkpoint", required=True, help="exported autoencoder (dir or file)")
    p.add_argument("--data", required=True, help="image folder, one sub-folder per class")
    p.add_argument("--out", required=True, help="latent dataset directory")
    p.add_argument("--flip", action="store_true", help="add each image's mirror image")
    p.add_argument("--image-size", type=image_size_int,
                   help="centre square resized to this (default: the autoencoder's image size)")
    p.add_argument("--batch-size", type=batch_int, default=64)
    p.add_argument("--shard-size", type=count_int, default=4096, help="latents per shard")
    p.add_argument("--device", type=device_arg)
    p.add_argument("--stats", choices=["data", "export"], default="data",
                   help="normalise the latents (and so the DiT) with their measured per-channel "
                   "statistics (data, the default) or with those the export records (export; "
                   "see `swycc latent-stats`)")
    p.add_argument("--no-progress", action="store_true")
    add_threads_option(p)
    p.set_defaults(func=cmd_encode_dataset)

    p = sub.add_parser("train-dit", help="train the class-conditional latent DiT (re-run the "
                       "same command to resume)")
    p.add_argument("--latents", required=True, help="directory made by encode-dataset")
    p.add_argument("--preset", default="dit-small-cpu", choices=list(DIT_PRESETS))
    p.add_argument("--out", required=True, help="run directory (re-run to resume)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any option, e.g. --set dit.depth=12 --set train.lr=2e-4")
    p.add_argument("--max-steps", type=train_steps_int,
                   help="stop after this step (schedule unchanged)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the network")
    p.add_argument("--compile", action="store_true", help="torch.compile the DiT (GPU)")
    p.add_argument("--device", type=device_arg,
                   help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true")
    add_threads_option(p)
    p.set_defaults(func=cmd_train_dit)


# ---- encode-dataset ----

def cmd_encode_dataset(args: argparse.Namespace) -> int:
    from swycc.autoencoders.base import Autoencoder
    from swycc.cli.args import exit_status
    from swycc.generation.latents import autoencoder_identity, encode_dataset, finalize
    from swycc.io.outputs import check_dir_usable
    from swycc.train.distributed import barrier, init_distributed, shutdown

    check_dir_usable(args.out)
    made_out = not Path(args.out).exists()
    identity = autoencoder_identity(args.checkpoint)
    info = init_distributed(args.device)
    model = Autoencoder.from_pretrained(args.checkpoint).to(info.device)
    export_stats = model.latent_stats if args.stats == "export" else None
    if args.stats == "export" and export_stats is None:
        raise ValueError(f"--stats export: {args.checkpoint} records no latent statistics; add "
                         f"them with `swycc latent-stats {args.checkpoint}` or use --stats data")
    size = args.image_size or model.config.model.image_size
    if size % model.stride:
        raise ValueError(f"--image-size {size} must be a multiple of the autoencoder's stride "
                         f"{model.stride}")

    def encode_fn(x: torch.Tensor) -> torch.Tensor:
        return model.encode(x.to(info.device))

    try:
        summary = _encode_or_clean(made_out, args.out, encode_dataset, encode_fn, identity,
                                   args.data, args.out, size, flip=args.flip,
                                   shard_size=args.shard_size, batch_size=args.batch_size,
                                   rank=info.rank, world_size=info.world_size,
                                   progress=not args.no_progress, export_stats=export_stats)
        index = summary.index
        # every rank's shards are written; rank 0 adds index.json
        if info.world_size > 1 and not summary.stopped:
            barrier(info)
            index = (finalize(args.out, progress=not args.no_progress,
                              export_stats=export_stats) if info.is_main else None)
    finally:
        shutdown(info)
    if summary.stopped:
        return exit_status("signal")
    if index is not None:
        shape = "x".join(map(str, index["latent_shape"]))
        print(f"wrote {index['num_latents']} latents of shape {shape} "
              f"({len(index['classes'])} classes, {index['num_skipped']} unreadable image(s) "
              f"skipped) to {args.out}; shards written {summary.shards_written}, resumed "
              f"{summary.shards_resumed}")
        print(f"per-channel latent statistics ({index['stats_source']}, used to normalise): "
              f"mean {_fmt(index['mean'])}, std {_fmt(index['std'])}")
    return 0


def _encode_or_clean(made_out: bool, out: str, encode, *args, **kwargs):
    """``encode(*args, **kwargs)``; when every image was unreadable, the --out folder this run
    made (its manifest, empty shards) is removed: nothing is left behind."""
    from swycc.generation.latents import NoReadableImageError

    try:
        return encode(*args, **kwargs)
    except NoReadableImageError:
        if made_out:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


# ---- train-dit ----

def build_dit_config(args: argparse.Namespace):
    from swycc.config import apply_overrides
    from swycc.generation.config import get_dit_preset

    flags = {"train.bf16": True if args.bf16 else None,
             "train.compile": True if args.compile else None}
    return apply_overrides(get_dit_preset(args.preset), flags, args.set)


def cmd_train_dit(args: argparse.Namespace) -> int:
    from swycc.cli.args import report_training
    from swycc.generation.task import train_dit

    cfg = build_dit_config(args)
    res = train_dit(cfg, args.latents, args.out, device=args.device, max_steps=args.max_steps,
                    progress=not args.no_progress)
    return report_training(res)
