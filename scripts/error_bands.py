"""Where D_Initial's error is, against bicubic-from-1/8's, on whole photos.

Each reconstruction's error e = y - x (both quantised to 8 bits, [-1, 1]) splits exactly into
its 8x8 patch means (``patch``: each patch's mean error, spread over the patch) and the rest
(``texture``); the two mean squares add up to the MSE. Bicubic-from-1/8 starts from those patch
means, so its ``patch`` error is small; a model that beats it on texture can lose the gain there.
Prints one line per photo and size (mean squares x 1e4) and the means; ``--json`` keeps them.

    .venv/bin/python scripts/error_bands.py swycc/pretrained/small-swycc-f8c4 \\
        --data /work/data/photoset/test
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from swycc import Autoencoder
from swycc.experiments.ship_check import bicubic_from_eighth, load_photos
from swycc.io.outputs import write_text_atomic
from swycc.metrics import maths

PATCH = 8


def bands(e: torch.Tensor, k: int = PATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) error -> per image (mean square of the k x k patch means spread over their
    patches, mean square of the rest); they sum to the image's MSE."""
    patch = F.interpolate(F.avg_pool2d(e, k), scale_factor=k, mode="nearest")
    return patch.pow(2).flatten(1).mean(1), (e - patch).pow(2).flatten(1).mean(1)


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="an export folder or shipped name")
    p.add_argument("--data", required=True, help="whole held-out photos")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--json", type=Path, help="write the numbers here")
    args = p.parse_args()
    model = Autoencoder.from_pretrained(args.model).eval()
    out = {}
    for size in args.sizes:
        names, x = load_photos(args.data, size)
        rows = {"D_Initial": bands(maths.quantized(model.reconstruct_initial(x)) - x),
                "bicubic": bands(maths.quantized(bicubic_from_eighth(x)) - x)}
        out[str(size)] = {n: {k: [float(v[i]) for v in r] for k, r in rows.items()}
                          for i, n in enumerate(names)}
        for i, n in enumerate(names):
            (ap, at), (bp, bt) = ([float(v[i]) * 1e4 for v in r] for r in rows.values())
            print(f"{size} px  D_Initial patch {ap:7.2f} texture {at:7.2f} | bicubic patch "
                  f"{bp:7.2f} texture {bt:7.2f}  {n}")
        means = [float(v.mean()) * 1e4 for r in rows.values() for v in r]
        print(f"{size} px  mean: D_Initial patch {means[0]:.2f} texture {means[1]:.2f} | "
              f"bicubic patch {means[2]:.2f} texture {means[3]:.2f}  (x 1e-4)")
    if args.json is not None:
        write_text_atomic(args.json, json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
