"""A labelled image folder (one sub-folder per class, the ImageNet layout ``encode-dataset`` and
``swycc experiment generation`` read) from IDX files, the format of MNIST and Fashion-MNIST.

    python -m swycc.data.idx_folder --images train-images-idx3-ubyte.gz \
        --labels train-labels-idx1-ubyte.gz --classes fashion-mnist --per-class 500 --pad-to 32 --out fm/

Fashion-MNIST installs offline from Debian's ``dataset-fashion-mnist`` package (MIT licence;
``scripts/fashion_mnist.sh`` fetches and converts it). IDX (LeCun et al.): big-endian magic
``0x0000 <dtype 0x08 = uint8> <ndim>``, then ndim uint32 sizes, then the values.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
from pathlib import Path

import numpy as np

# Fashion-MNIST's label names (Xiao et al. 2017), in label order
CLASS_NAMES = {
    "fashion-mnist": ("t-shirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                      "sneaker", "bag", "ankle-boot"),
    "mnist": tuple(str(d) for d in range(10)),
}


class IDXError(ValueError):
    """A file that is not an IDX array of unsigned bytes, or images and labels that differ."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (optionally gzipped) -> uint8 array of its shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise IDXError(f"{path}: cannot read ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise IDXError(f"{path}: not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    ndim = data[3]
    head = 4 + 4 * ndim
    shape = tuple(int(v) for v in np.frombuffer(data[4:head], dtype=">u4"))
    if len(data) - head != int(np.prod(shape)):
        raise IDXError(f"{path}: {len(data) - head} bytes of values for shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=head).reshape(shape)


def write_folder(images: np.ndarray, labels: np.ndarray, out: str | os.PathLike,
                 class_names: tuple[str, ...], per_class: int | None = None,
                 offset: int = 0, pad_to: int | None = None) -> dict[str, int]:
    """PNG files ``out/<k>-<name>/<index>.png`` for the first ``per_class`` images of every
    class from item ``offset`` on (None: all); returns images written per class folder.
    ``pad_to``: zero borders to this side (Fashion-MNIST's background is 0: 28 -> 32 px keeps
    every pixel, where resizing would blur them)."""
    from PIL import Image

    if pad_to is not None:
        h, w = images.shape[1:]
        if pad_to < max(h, w):
            raise IDXError(f"--pad-to {pad_to} is smaller than the images ({h}x{w})")
        top, left = (pad_to - h) // 2, (pad_to - w) // 2
        images = np.pad(images, ((0, 0), (top, pad_to - h - top), (left, pad_to - w - left)))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise IDXError(f"images {images.shape} and labels {labels.shape} do not pair up "
                       "(expected (N, H, W) and (N,))")
    if labels.max(initial=0) >= len(class_names):
        raise IDXError(f"label {int(labels.max())} has no name ({len(class_names)} classes)")
    out = Path(out)
    folders = [f"{k}-{name}" for k, name in enumerate(class_names)]
    counts = dict.fromkeys(folders, 0)
    for i in range(offset, len(labels)):
        folder = folders[int(labels[i])]
        if per_class is not None and counts[folder] >= per_class:
            continue
        path = out / folder / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        Image.fromarray(images[i]).save(tmp, format="PNG")
        os.replace(tmp, path)
        counts[folder] += 1
        if per_class is not None and all(c >= per_class for c in counts.values()):
            break
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m swycc.data.idx_folder", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--images", required=True, help="IDX images file (.gz or raw)")
    p.add_argument("--labels", required=True, help="IDX labels file (.gz or raw)")
    p.add_argument("--classes", default="fashion-mnist", choices=list(CLASS_NAMES))
    p.add_argument("--per-class", type=int, help="images per class (default: all)")
    p.add_argument("--offset", type=int, default=0, help="skip the first N items (a split)")
    p.add_argument("--pad-to", type=int, help="zero-pad every image to this square side")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    args = p.parse_args(argv)
    try:
        out = Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise IDXError(f"--out {out}: exists and is not an empty folder")
        if args.per_class is not None and args.per_class < 1:
            raise IDXError("--per-class must be >= 1")
        images, labels = read_idx(args.images), read_idx(args.labels)
        counts = write_folder(images, labels, out, CLASS_NAMES[args.classes], args.per_class,
                              args.offset, args.pad_to)
    except IDXError as e:
        print(f"swycc: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {sum(counts.values())} images in {len(counts)} class folders to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
