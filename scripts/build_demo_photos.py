"""Rebuild swycc/data/photos/: the quick start's whole photos, from a `swycc photoset` test split.

    python scripts/build_demo_photos.py /work/data/photoset

Each listed photo's largest centre square (swycc.data.images.center_crop_square, antialiased
bicubic) at 256 px, JPEG quality 95 without chroma subsampling. The list is the test split's
photos whose licences allow redistribution (swycc/data/photos/README.md names each licence).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 256
PHOTOS = ("lomiri-wallpapers-16.04_Dragonfly_by_Bolly",
          "lomiri-wallpapers-16.04_friends_by_Aitzol_Berasategi",
          "lomiri-wallpapers-16.04_greentock_by_Peter_Nerlich",
          "mate-backgrounds_mate_nature_TwoWings",
          "plasma-workspace-wallpapers_Path_2560x1600",
          "plasma-workspace-wallpapers_summer_1am_2560x1600")


def main(photoset: str) -> None:
    from swycc.data.images import center_crop_square, load_image
    from swycc.metrics.maths import quantize_uint8

    out = Path(__file__).resolve().parents[1] / "swycc" / "data" / "photos"
    out.mkdir(parents=True, exist_ok=True)
    for stem in PHOTOS:
        x = center_crop_square(load_image(Path(photoset) / "test" / f"{stem}.png"), SIZE)
        a = quantize_uint8(x).permute(1, 2, 0).numpy().astype(np.uint8)
        Image.fromarray(a).save(out / f"{stem}.jpg", quality=95, subsampling=0)
        print(out / f"{stem}.jpg")


if __name__ == "__main__":
    main(sys.argv[1])
