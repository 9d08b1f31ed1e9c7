"""``swycc latent-stats``: add per-channel latent statistics to an export made before they
existed (``swycc.latent_stats``), or re-measure them on another image folder.

    swycc latent-stats runs/a/export                 # over its training data (config's data)
    swycc latent-stats runs/a/export --data photos/  # over a folder's images, centre squares

Rewrites the export's safetensors file with the same tensors (dtypes kept, weights_sha256
unchanged) and the statistics in its metadata, and its model card (README.md) beside it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file


def register(sub) -> None:
    from swycc.cli import device_arg, positive_int
    from swycc.latent_stats import DEFAULT_IMAGES

    p = sub.add_parser("latent-stats", help="measure the per-channel mean and std of an "
                       "export's latents and store them in the export")
    p.add_argument("export", help="exported model (directory or .safetensors file)")
    p.add_argument("--data", help="image folder to measure on (default: the export's training "
                   "data, from its config)")
    p.add_argument("--images", type=positive_int, default=DEFAULT_IMAGES,
                   help=f"images encoded, spread over the set (default {DEFAULT_IMAGES})")
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_latent_stats)


def write_stats(file: Path, stats) -> None:
    """The export ``file`` with ``stats`` in its metadata: same tensors, written atomically."""
    from swycc.latent_stats import STATS_KEY

    with safe_open(str(file), framework="pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta[STATS_KEY] = stats.to_json()
    tmp = file.with_name(f".{file.name}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)


def cmd_latent_stats(args: argparse.Namespace) -> int:
    from swycc.autoencoder import Autoencoder, weights_file
    from swycc.latent_stats import training_data_stats
    from swycc.model_card import card_text, write_model_card

    file = weights_file(args.export)  # a local export: the file is rewritten
    if args.data is not None and not Path(args.data).is_dir():
        raise ValueError(f"--data {args.data}: no such image folder")
    model = Autoencoder.from_pretrained(file).to(args.device)
    model.latent_stats = training_data_stats(model, args.images, args.data,
                                             progress=not args.no_progress)
    card = card_text(model) if file.name == "model.safetensors" else None
    write_stats(file, model.latent_stats)
    if card is not None:
        write_model_card(file.parent, card)
    s = model.latent_stats
    print(f"latent statistics over {s.images} images of {s.data}: mean "
          f"[{', '.join(f'{v:.4g}' for v in s.mean)}], std "
          f"[{', '.join(f'{v:.4g}' for v in s.std)}]; scaling_factor {s.scaling_factor:.4g}, "
          f"shift_factor {s.shift_factor:.4g}; wrote {file}"
          + (f" and {file.parent / 'README.md'}" if card is not None else ""))
    return 0
