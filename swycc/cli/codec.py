"""``swycc compress`` and ``swycc decompress``: image files to .swyc files and back.

    swycc compress photo.jpg --out codes/ --quality 8          # codes/photo.swyc
    swycc decompress codes/photo.swyc --out decoded/ --steps 20  # decoded/photo.png

Every input is checked (images: readable and within --max-pixels; .swyc files: the format, the
checksum and the model's identity) before anything is computed or written; outputs follow
``swycc.io.outputs.OutputPlan`` (all or nothing, never outside --out, existing files refused
without --overwrite).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def register(sub) -> None:
    from swycc.cli.args import MAX_PIXELS_ENCODE, add_sampling_options, positive_int
    from swycc.codec.codec import DEFAULT_QUALITY, QUALITIES

    p = sub.add_parser("compress", help="image files in, one .swyc file each out (the "
                       "entropy-coded latent; see docs/codec.md)")
    p.add_argument("images", nargs="+")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quality", type=positive_int, default=DEFAULT_QUALITY,
                   help=f"{QUALITIES[0]}..{QUALITIES[-1]}: quantisation step 2^((4 - Q) / 2) "
                        f"(default {DEFAULT_QUALITY}); +2 halves the step")
    add_sampling_options(p, samples=False, max_pixels=MAX_PIXELS_ENCODE)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help=".swyc files in, PNGs at the original size out")
    p.add_argument("files", nargs="+")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--decoder", choices=("samples", "initial"), default="samples",
                   help="samples: the diffusion decoder (default); initial: the deterministic "
                        "first reconstruction (SWYCC's D_Initial)")
    add_sampling_options(p, samples=False)
    p.set_defaults(func=cmd_decompress)


def model_and_id(args: argparse.Namespace):
    """The model of --checkpoint (default: the shipped one) and its 8-byte identity."""
    from swycc.autoencoders.base import Autoencoder, weights_sha256
    from swycc.codec.fileformat import model_id_from_sha256
    from swycc.autoencoders.pretrained import default_checkpoint

    path = args.checkpoint or default_checkpoint()
    model = Autoencoder.from_pretrained(path).to(args.device)
    return model, model_id_from_sha256(weights_sha256(path))


def cmd_compress(args: argparse.Namespace) -> int:
    from swycc.cli.args import load_images, resolve_max_pixels, tiling
    from swycc.codec.codec import compress, file_bpp, quality_step
    from swycc.io.outputs import OutputPlan

    resolve_max_pixels(args)
    quality_step(args.quality)  # an out-of-range quality is refused before any work
    plan = OutputPlan(overwrite=args.overwrite)
    out = Path(args.out)
    targets = [plan.add_images(out, Path(p).stem, 1, suffix=".swyc")[0] for p in args.images]
    plan.check()
    images = load_images(args.images, args.max_pixels)
    model, model_id = model_and_id(args)
    total_bytes = total_pixels = 0
    with plan.writing() as stage:
        for path, x in zip(targets, images):
            data = compress(model, x, args.quality, model_id, **tiling(args))
            stage(path).write_bytes(data)
            total_bytes += len(data)
            total_pixels += x.shape[-2] * x.shape[-1]
            print(f"{path.name}: {x.shape[-1]}x{x.shape[-2]}, {len(data)} bytes, "
                  f"{file_bpp(len(data), x.shape[-2], x.shape[-1]):.4f} bpp")
    for line in plan.describe_renames():
        print(line)
    print(f"wrote {len(images)} file(s) to {out}: {8 * total_bytes / total_pixels:.4f} bpp "
          f"overall")
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    from swycc.cli.args import report_written, resolve_max_pixels, tiling
    from swycc.codec.codec import decode_image, read
    from swycc.codec.fileformat import CodecFileError
    from swycc.data.images import save_image
    from swycc.autoencoders.kinds import kind_of
    from swycc.io.outputs import OutputPlan

    resolve_max_pixels(args)
    model, model_id = model_and_id(args)
    if args.decoder == "initial" and kind_of(model).initial_label is None:
        raise ValueError(f"--decoder initial: a {model.kind} model has no deterministic decoder")
    files = []
    for name in args.files:
        p = Path(name)
        if not p.is_file():
            raise CodecFileError(f"{p}: file not found")
        f = read(p.read_bytes(), str(p), model_id, model)
        if f.width * f.height > args.max_pixels:
            raise CodecFileError(f"{p}: decodes to {f.width}x{f.height} = "
                                 f"{f.width * f.height:,} pixels, over the limit of "
                                 f"{args.max_pixels:,} (--max-pixels)")
        files.append(f)
    plan = OutputPlan(overwrite=args.overwrite)
    out = Path(args.out)
    targets = [plan.add_images(out, Path(n).stem)[0] for n in args.files]
    plan.check()
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    with plan.writing() as stage:
        for path, f in zip(targets, files):
            x = decode_image(model, f, args.decoder, args.steps, args.guidance, g, args.device,
                             tiling(args))
            save_image(x.cpu(), stage(path))
    report_written(plan, len(files), out)
    return 0
