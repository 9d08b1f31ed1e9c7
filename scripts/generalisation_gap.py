"""D_Initial's gain over bicubic-from-1/8 on photos it trained on against photos it never saw,
and against how much of each photo a view holds.

For each folder (e.g. the photo set's ``train`` and ``test`` splits) and size, every photo's
centre square of side ``share`` x its shorter side (``share`` 1: the whole photo, as ship-check
sees it; ``swycc.metrics.photo.load_square_photos``) is resized to the size; the script prints
the mean PSNR of D_Initial and of bicubic-from-1/8 and their difference. A gain that is much
larger on the training photos than on the test photos at share 1 is overfitting to the training
photos (or test photos that are harder); a gain that is larger at smaller shares says the model
works best on close-ups (the training crops' range, ``data.crop_scale_min``) rather than on whole
photos.

    .venv/bin/python scripts/generalisation_gap.py swycc/pretrained/small-swycc-f8c4 \\
        /work/data/photoset/train /work/data/photoset/test --shares 0.5 1 --json gap.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from swycc import Autoencoder
from swycc.io.outputs import write_text_atomic
from swycc.metrics import maths
from swycc.metrics.photo import bicubic_from_eighth, load_square_photos


@torch.no_grad()
def gain(model: Autoencoder, x: torch.Tensor) -> dict:
    """Mean PSNR (dB) of D_Initial and of bicubic-from-1/8 on x, and the difference."""
    ours = float(maths.psnr(maths.quantized(model.reconstruct_initial(x)), x).mean())
    bicubic = float(maths.psnr(maths.quantized(bicubic_from_eighth(x)), x).mean())
    return {"photos": len(x), "d_initial": ours, "bicubic": bicubic, "gain": ours - bicubic}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="an export folder or shipped name")
    p.add_argument("folders", nargs="+", help="photo folders, e.g. the train and test splits")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--shares", type=float, nargs="+", default=[1.0],
                   help="centre square side as a share of the shorter side (1 = whole photo)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    bad = [s for s in args.shares if not 0 < s <= 1]
    if bad:  # before the model loads; load_square_photos would refuse them too
        raise SystemExit(f"--shares must lie in (0, 1], got {bad}")
    model = Autoencoder.from_pretrained(args.model).eval()
    rows = []
    for folder in args.folders:
        for size in args.sizes:
            for share in args.shares:
                _, x = load_square_photos(folder, size, share)
                row = {"folder": str(folder), "size": size, "share": share, **gain(model, x)}
                rows.append(row)
                print(f"{Path(folder).name:>12} {size:4d} px share {share:.2f}: D_Initial "
                      f"{row['d_initial']:.2f} dB, bicubic {row['bicubic']:.2f} dB, "
                      f"gain {row['gain']:+.2f} dB ({row['photos']} photos)", flush=True)
    if args.json is not None:
        write_text_atomic(args.json, json.dumps({"model": args.model, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
