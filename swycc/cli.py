"""Command line: swycc {demo, train, reconstruct, encode, decode, eval, info}.

Thin front: parses arguments, validates every input before writing anything, and turns a bad
input into one ``swycc: error: ...`` line. Exit status: 0 done; 2 bad input; 3 training
diverged (too many non-finite steps in a row); 75 stopped by SIGTERM after writing a checkpoint
(re-run the same command to resume); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from swycc.config import PRESETS, Config, get_preset, override, override_text, with_method

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM, checkpoint written; re-run to resume


def kind_names() -> list[str]:
    from swycc.kinds import KINDS

    return list(KINDS)


def build_config(args: argparse.Namespace) -> Config:
    """Preset (or a config JSON), then explicit flags, then ``--set a.b=value`` overrides; every
    value is checked against the option's type and range (a ConfigError names the option)."""
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise ValueError(f"--config {path}: no such file")
        cfg = Config.from_json(path.read_text())
    else:
        cfg = get_preset(args.preset)
    if args.method:
        cfg = with_method(cfg, args.method)
    flags = {"data.path": args.data,
             "train.batch_size": args.batch_size, "train.lr": args.lr,
             "train.time_budget_s": args.time_budget, "train.bf16": True if args.bf16 else None,
             "train.compile": True if args.compile else None,
             "train.seed": args.seed, "train.total_steps": args.total_steps}
    for key, value in flags.items():
        if value is not None:
            cfg = override(cfg, key, value)
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        cfg = override_text(cfg, key.strip(), value)
    return cfg


def add_train_options(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--preset", default="small", choices=list(PRESETS))
    p.add_argument("--config", help="a config JSON (e.g. a run's config.json) instead of a preset")
    p.add_argument("--method", choices=kind_names(), help="autoencoder kind (default: the "
                   "preset's, swycc)")
    p.add_argument("--data", help="image folder (default: the embedded photo set)")
    p.add_argument("--out", default=default_out, help="run directory (re-run to resume)")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=finite_float)
    p.add_argument("--total-steps", type=positive_int, help="length of the LR schedule")
    p.add_argument("--max-steps", type=positive_int,
                   help="stop after this step (schedule unchanged)")
    p.add_argument("--time-budget", type=finite_float,
                   help="seconds of training in this invocation (> 0)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the networks")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (GPU)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", type=device_arg,
                   help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any option, e.g. --set train.ema_decay=0.999")
    p.add_argument("--no-progress", action="store_true")


def add_sampling_options(p: argparse.ArgumentParser, samples: bool = True) -> None:
    p.add_argument("--checkpoint", help="exported model dir or .safetensors "
                   "(default: the small pretrained model shipped with swycc)")
    p.add_argument("--steps", type=positive_int, help="DDIM steps (default: the model's config)")
    p.add_argument("--guidance", type=finite_float,
                   help="classifier-free guidance w (default: the model's config, 0.5)")
    if samples:
        p.add_argument("--samples", type=positive_int, default=1, help="samples per image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")


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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
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
    from swycc.autoencoder import Autoencoder
    from swycc.pretrained import default_checkpoint

    path = args.checkpoint or default_checkpoint()
    return Autoencoder.from_pretrained(path).to(args.device)


def cmd_train(args: argparse.Namespace) -> int:
    from swycc.train.autoencoder_task import train_autoencoder

    cfg = build_config(args)
    res = train_autoencoder(cfg, args.out, device=args.device, max_steps=args.max_steps,
                            progress=not args.no_progress)
    print(f"stopped at step {res.step} ({res.stopped_by}); non-finite steps skipped: "
          f"{res.nonfinite_steps}; EMA export: {res.export}")
    if res.stopped_by == "signal":
        print(f"swycc: stopped by SIGTERM after writing the checkpoint; re-run the same command "
              f"to resume (exit status {EXIT_PREEMPTED})", file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


def _load_images(paths: list[str]) -> list[torch.Tensor]:
    from swycc.data import load_image

    return [load_image(p) for p in paths]  # raises ImageError naming the file


def _save_samples(xs: torch.Tensor, out: Path, stem: str) -> None:
    """(S, 3, H, W) -> out/stem.png, or out/stem_s1.png ... when S > 1."""
    from swycc.data import save_image

    for k in range(xs.shape[0]):
        suffix = "" if xs.shape[0] == 1 else f"_s{k + 1}"
        save_image(xs[k].cpu(), out / f"{stem}{suffix}.png")


def cmd_reconstruct(args: argparse.Namespace) -> int:
    images = _load_images(args.images)
    model = load_model(args)
    _check_samples(args.samples)
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    out = Path(args.out)
    for path, x in zip(args.images, images):
        xs = model.reconstruct(x[None].to(args.device), args.steps, args.guidance,
                               samples=args.samples, generator=g)[0]
        _save_samples(xs, out, Path(path).stem)
    print(f"wrote {len(images) * args.samples} image(s) to {out}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from swycc.latents_io import LatentEntry, save_latents

    images = _load_images(args.images)
    model = load_model(args)
    entries = [LatentEntry(Path(p).stem, tuple(x.shape[-2:]), model.encode(x[None].to(args.device))[0].cpu())
               for p, x in zip(args.images, images)]
    save_latents(entries, args.out, model.config.to_json())
    print(f"wrote latents of {len(entries)} image(s) to {args.out}")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from swycc.latents_io import load_latents

    model = load_model(args)
    _check_samples(args.samples)
    entries = load_latents(args.latents, model.config.model.latent_channels)
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    out = Path(args.out)
    for e in entries:
        xs = model.decode(e.z[None].to(args.device), args.steps, args.guidance,
                          samples=args.samples, generator=g, size=e.size)[0]
        _save_samples(xs, out, e.name)
    print(f"wrote {len(entries) * args.samples} image(s) to {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from swycc.autoencoder import Autoencoder, read_config
    from swycc.kinds import KINDS, get_kind

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
    from swycc.demo import run_demo

    return run_demo(args, build_config(args) if args.train else None)


def _check_samples(samples: int) -> None:
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swycc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("demo", help="the quick start: held-out grid, variance map, metrics")
    add_train_options(p, "runs/demo")
    p.add_argument("--train", action="store_true",
                   help="train a fresh model for --time-budget seconds first (default 480)")
    p.add_argument("--checkpoint", help="model to show (default: the shipped pretrained one)")
    p.add_argument("--steps", type=positive_int, default=20)
    p.add_argument("--guidance", type=finite_float, default=0.5)
    p.add_argument("--samples", type=positive_int, default=4)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train an autoencoder (re-run the same command to resume)")
    add_train_options(p, "runs/train")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("reconstruct", help="image files in, reconstructions out")
    p.add_argument("images", nargs="+")
    p.add_argument("--out", required=True, help="output directory")
    add_sampling_options(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("encode", help="image files in, one latents file out")
    p.add_argument("images", nargs="+")
    p.add_argument("--out", required=True, help="latents file (.safetensors)")
    add_sampling_options(p, samples=False)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="latents file in, images out")
    p.add_argument("latents")
    p.add_argument("--out", required=True, help="output directory")
    add_sampling_options(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("info", help="parameter counts of a preset or checkpoint (no weights)")
    p.add_argument("--preset", default="small", choices=list(PRESETS))
    p.add_argument("--checkpoint")
    p.add_argument("--method", choices=kind_names())
    p.set_defaults(func=cmd_info)

    from swycc.evaluate import add_eval_arguments, run_eval

    p = sub.add_parser("eval", help="metrics of one or several checkpoints")
    add_eval_arguments(p)
    p.set_defaults(func=lambda a: run_eval(a))
    for register in verb_modules():
        register(sub)
    return parser


def verb_modules():
    """Verbs that live beside their subsystem, each a ``register(subparsers)`` function."""
    from swycc.distill.cli import register as distill
    from swycc.experiments.cli import register as experiment

    return [experiment, _register_photoset, distill]


def _register_photoset(sub) -> None:
    from swycc import photoset

    p = sub.add_parser("photoset", help="build a training folder of real photos (train/, "
                       "test/, sources and licences) from desktop-background packages")
    photoset.add_arguments(p)
    p.set_defaults(func=photoset.run)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from swycc.errors import USER_ERRORS
    from swycc.train.loop import TrainingDivergedError

    try:
        return int(args.func(args) or 0)
    except TrainingDivergedError as e:
        print(f"swycc: error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except USER_ERRORS as e:
        print(f"swycc: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("swycc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
