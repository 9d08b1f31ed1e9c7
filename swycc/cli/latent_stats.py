"""``swycc latent-stats``: add per-channel latent statistics to an export made before they
existed (``swycc.autoencoders.latent_stats``), or re-measure them on another image folder.

    swycc latent-stats runs/a/export                 # over its training data (config's data)
    swycc latent-stats runs/a/export --data photos/  # over a folder's images, centre squares

Rewrites the export's safetensors file with the same tensors (dtypes kept, weights_sha256
unchanged) and the statistics in its metadata, and its model card (README.md) beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    from swycc.cli.args import count_int, device_arg
    from swycc.autoencoders.latent_stats import DEFAULT_IMAGES

    p = sub.add_parser("latent-stats", help="measure the per-channel mean and std of an "
                       "export's latents and store them in the export")
    p.add_argument("export", help="exported model (directory or .safetensors file)")
    p.add_argument("--data", help="image folder to measure on (default: the export's training "
                   "data, from its config)")
    p.add_argument("--images", type=count_int, default=DEFAULT_IMAGES,
                   help=f"images encoded, spread over the set (default {DEFAULT_IMAGES})")
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_latent_stats)


def cmd_latent_stats(args: argparse.Namespace) -> int:
    from swycc.autoencoders.base import weights_file
    from swycc.autoencoders.stats_export import store_latent_stats

    file = weights_file(args.export)  # a local export: the file is rewritten
    if args.data is not None and not Path(args.data).is_dir():
        raise ValueError(f"--data {args.data}: no such image folder")
    s = store_latent_stats(file, args.images, args.data, args.device,
                           progress=not args.no_progress)
    card = file.parent / "README.md" if file.name == "model.safetensors" else None
    print(f"latent statistics over {s.images} images of {s.data}: mean "
          f"[{', '.join(f'{v:.4g}' for v in s.mean)}], std "
          f"[{', '.join(f'{v:.4g}' for v in s.std)}]; scaling_factor {s.scaling_factor:.4g}, "
          f"shift_factor {s.shift_factor:.4g}; wrote {file}"
          + (f" and {card}" if card is not None else ""))
    return 0
