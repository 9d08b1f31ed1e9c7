"""The second stage on the command line: ``swycc encode-dataset``, ``train-dit``, ``generate``.

    swycc encode-dataset --checkpoint AE --data imagenet/train --out latents/ [--flip]
    swycc train-dit --latents latents/ --preset dit-L/2 --out runs/dit      # re-run to resume
    swycc generate --dit runs/dit/export --ae-checkpoint AE --classes 3,7 --out samples/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def register(sub) -> None:
    from swycc.cli import device_arg, finite_float, positive_int
    from swycc.dit_config import DIT_PRESETS

    p = sub.add_parser("encode-dataset", help="encode a class-labelled image folder into latents "
                       "for train-dit (torchrun: every rank its share; re-run to resume)")
    p.add_argument("--checkpoint", required=True, help="exported autoencoder (dir or file)")
    p.add_argument("--data", required=True, help="image folder, one sub-folder per class")
    p.add_argument("--out", required=True, help="latent dataset directory")
    p.add_argument("--flip", action="store_true", help="add each image's mirror image")
    p.add_argument("--image-size", type=positive_int,
                   help="centre square resized to this (default: the autoencoder's image size)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--shard-size", type=positive_int, default=4096, help="latents per shard")
    p.add_argument("--device", type=device_arg)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_encode_dataset)

    p = sub.add_parser("train-dit", help="train the class-conditional latent DiT (re-run the "
                       "same command to resume)")
    p.add_argument("--latents", required=True, help="directory made by encode-dataset")
    p.add_argument("--preset", default="dit-small-cpu", choices=list(DIT_PRESETS))
    p.add_argument("--out", required=True, help="run directory (re-run to resume)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any option, e.g. --set dit.depth=12 --set train.lr=2e-4")
    p.add_argument("--max-steps", type=positive_int,
                   help="stop after this step (schedule unchanged)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the network")
    p.add_argument("--compile", action="store_true", help="torch.compile the DiT (GPU)")
    p.add_argument("--device", type=device_arg,
                   help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train_dit)

    p = sub.add_parser("generate", help="class-conditional images: DiT latents decoded by the "
                       "autoencoder they were encoded with")
    p.add_argument("--dit", required=True, help="DiT export (RUN/export or its .safetensors)")
    p.add_argument("--ae-checkpoint", help="the autoencoder the DiT's latents came from "
                   "(required; its config and weights must match the DiT's record)")
    p.add_argument("--classes", required=True,
                   help="comma-separated class indices or names, e.g. 3,7 or goldfish,7")
    p.add_argument("--per-class", type=positive_int, default=8)
    p.add_argument("--guidance", type=finite_float, help="DiT guidance w (default: its config)")
    p.add_argument("--steps", type=positive_int, help="DiT DDIM steps (default: its config)")
    p.add_argument("--decoder-steps", type=positive_int, default=20)
    p.add_argument("--decoder-guidance", type=finite_float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per batch")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_generate)


# ---- encode-dataset ----

def cmd_encode_dataset(args: argparse.Namespace) -> int:
    from swycc.autoencoder import Autoencoder
    from swycc.latent_dataset import autoencoder_identity, encode_dataset, finalize
    from swycc.outputs import check_dir_usable
    from swycc.train.distributed import barrier, init_distributed, shutdown

    check_dir_usable(args.out)
    identity = autoencoder_identity(args.checkpoint)
    info = init_distributed(args.device)
    model = Autoencoder.from_pretrained(args.checkpoint).to(info.device)
    size = args.image_size or model.config.model.image_size
    if size % model.stride:
        raise ValueError(f"--image-size {size} must be a multiple of the autoencoder's stride "
                         f"{model.stride}")

    def encode_fn(x: torch.Tensor) -> torch.Tensor:
        return model.encode(x.to(info.device))

    try:
        summary = encode_dataset(encode_fn, identity, args.data, args.out, size, flip=args.flip,
                                 shard_size=args.shard_size, batch_size=args.batch_size,
                                 rank=info.rank, world_size=info.world_size,
                                 progress=not args.no_progress)
        index = summary.index
        if info.world_size > 1:  # every rank's shards are written; rank 0 adds index.json
            barrier(info)
            index = finalize(args.out, progress=not args.no_progress) if info.is_main else None
    finally:
        shutdown(info)
    if index is not None:
        shape = "x".join(map(str, index["latent_shape"]))
        print(f"wrote {index['num_latents']} latents of shape {shape} "
              f"({len(index['classes'])} classes, {index['num_skipped']} unreadable image(s) "
              f"skipped) to {args.out}; shards written {summary.shards_written}, resumed "
              f"{summary.shards_resumed}")
    return 0


# ---- train-dit ----

def build_dit_config(args: argparse.Namespace):
    from swycc.config import apply_overrides
    from swycc.dit_config import get_dit_preset

    flags = {"train.bf16": True if args.bf16 else None,
             "train.compile": True if args.compile else None}
    return apply_overrides(get_dit_preset(args.preset), flags, args.set)


def cmd_train_dit(args: argparse.Namespace) -> int:
    from swycc.cli import report_training
    from swycc.train.dit_task import train_dit

    cfg = build_dit_config(args)
    res = train_dit(cfg, args.latents, args.out, device=args.device, max_steps=args.max_steps,
                    progress=not args.no_progress)
    return report_training(res)


# ---- generate ----

class GenerateError(ValueError):
    """A class that the DiT does not know, or an autoencoder it was not trained with."""


def parse_classes(text: str, class_names: list[str]) -> list[int]:
    """'3,goldfish' -> class indices; an index >= num_classes or an unknown name is an error."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item in class_names:
            out.append(class_names.index(item))
        elif item.lstrip("-").isdigit():
            k = int(item)
            if not 0 <= k < len(class_names):
                raise GenerateError(f"--classes: class index {k} outside [0, "
                                    f"{len(class_names)}) of this DiT")
            out.append(k)
        else:
            shown = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
            raise GenerateError(f"--classes: unknown class {item!r} (this DiT knows "
                                f"{len(class_names)}: {shown})")
    if not out:
        raise GenerateError("--classes: no class given")
    return list(dict.fromkeys(out))  # each class once, in the order given


def check_autoencoder(dit_meta: dict, ae_checkpoint: str | None) -> dict:
    """The autoencoder's identity, refused unless it is the one the DiT's latents came from."""
    from swycc.latent_dataset import autoencoder_identity

    want = dit_meta["latents"]["identity"]
    if not ae_checkpoint:
        raise GenerateError("--ae-checkpoint is required: the DiT export records which "
                            "autoencoder its latents came from, not its weights; pass the "
                            "checkpoint given to encode-dataset")
    have = json.loads(json.dumps(autoencoder_identity(ae_checkpoint)))
    if have != want:
        what = ("weights" if have.get("config") == want.get("config") else "config")
        raise GenerateError(f"--ae-checkpoint {ae_checkpoint}: not the autoencoder this DiT was "
                            f"trained on (its {what} differ; "
                            f"expected weights sha256 {str(want.get('weights_sha256'))[:12]}..., "
                            f"got {have['weights_sha256'][:12]}...)")
    return have


def cmd_generate(args: argparse.Namespace) -> int:
    from swycc.autoencoder import Autoencoder
    from swycc.data import save_image
    from swycc.dit_objective import dit_sample
    from swycc.latent_dataset import _ch
    from swycc.outputs import OutputPlan, safe_stem
    from swycc.train.dit_task import load_dit
    from swycc.visual import save_grid

    dit, meta = load_dit(args.dit)
    lat = meta["latents"]
    names = list(lat["class_names"])
    classes = parse_classes(args.classes, names)
    check_autoencoder(meta, args.ae_checkpoint)
    plan = OutputPlan(overwrite=args.overwrite)
    out = Path(args.out)
    paths = {(c, k): plan.add_file(out / f"{c:04d}-{safe_stem(names[c])}_{k}.png")
             for c in classes for k in range(args.per_class)}
    grid_path = plan.add_file(out / "grid.png")
    plan.check()

    ae = Autoencoder.from_pretrained(args.ae_checkpoint).to(args.device)
    dit = dit.to(args.device)
    sampling = meta["config"].sampling
    steps = args.steps or sampling.steps
    guidance = sampling.guidance if args.guidance is None else args.guidance
    mean = torch.tensor(lat["mean"], dtype=torch.float32)
    std = torch.tensor(lat["std"], dtype=torch.float32)
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    order = [(c, k) for c in classes for k in range(args.per_class)]
    images: dict[tuple[int, int], torch.Tensor] = {}
    for i in range(0, len(order), args.batch_size):
        chunk = order[i:i + args.batch_size]
        labels = torch.tensor([c for c, _ in chunk], device=args.device)
        z = dit_sample(dit, labels, tuple(lat["latent_shape"]), steps, guidance, g)
        z = z * _ch(std, z) + _ch(mean, z)  # undo the dataset's per-channel normalisation
        with torch.no_grad():
            x = ae.decode(z, steps=args.decoder_steps, guidance=args.decoder_guidance,
                          generator=g).cpu()
        images.update(zip(chunk, x))
    with plan.writing() as stage:
        for key, path in paths.items():
            save_image(images[key], stage(path))
        save_grid([[images[(c, k)] for k in range(args.per_class)] for c in classes],
                  stage(grid_path))
    print(f"wrote {len(order)} image(s) ({len(classes)} classes x {args.per_class}) and "
          f"grid.png to {out}")
    return 0
