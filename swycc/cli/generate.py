"""Generation on the command line: ``swycc generate`` (images and a grid per class) and
``swycc eval-generation`` (gFID, IS, FD-DINOv2, CMMD and the offline proxies of N images).

    swycc generate --dit runs/dit/export --ae-checkpoint AE --classes 3,7 --out samples/
    swycc eval-generation --dit runs/dit/export --ae-checkpoint AE --reference imagenet/train \\
        --num-images 50000 --out runs/gen-eval
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _sampling_args(p: argparse.ArgumentParser) -> None:
    from swycc.cli.args import (batch_int, device_arg, guidance_float, sampling_steps_int,
                                seed_int)

    p.add_argument("--dit", required=True, help="DiT export (RUN/export or its .safetensors)")
    p.add_argument("--ae-checkpoint", help="the autoencoder the DiT's latents came from "
                   "(required; its config and weights must match the DiT's record)")
    p.add_argument("--guidance", type=guidance_float, help="DiT guidance w (default: its config)")
    p.add_argument("--steps", type=sampling_steps_int, help="DiT DDIM steps (default: its config)")
    p.add_argument("--decoder-steps", type=sampling_steps_int, default=20)
    p.add_argument("--decoder-guidance", type=guidance_float, default=0.5)
    p.add_argument("--decoder", choices=["sample", "initial"], default="sample",
                   help="initial: decode with the deterministic decoder (SWYCC's D_Initial), "
                   "the same latents without D_Refine's sampling")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--batch-size", type=batch_int, default=16, help="images per batch")


def register(sub) -> None:
    from swycc.cli.args import add_threads_option, count_int, per_class_int

    p = sub.add_parser("generate", help="class-conditional images: DiT latents decoded by the "
                       "autoencoder they were encoded with")
    _sampling_args(p)
    p.add_argument("--classes", required=True,
                   help="comma-separated class indices or names, e.g. 3,7 or goldfish,7")
    p.add_argument("--per-class", type=per_class_int, default=8)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-progress", action="store_true")
    add_threads_option(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("eval-generation", help="score N generated images against reference "
                       "images: gFID, IS, FD-DINOv2, CMMD where their weights load, and the "
                       "offline proxies")
    _sampling_args(p)
    p.add_argument("--reference", required=True, help="reference image folder (the DiT's "
                   "training images; largest centre square at the autoencoder's size)")
    p.add_argument("--reference-images", type=count_int,
                   help="score against the first N reference images (default: all)")
    p.add_argument("--reference-stats", help="precomputed Inception mu/sigma (.npz) for gFID "
                   "instead of the reference folder's")
    p.add_argument("--num-images", type=count_int, default=1000,
                   help="generated images, classes in turn (50000 for a paper-grade number)")
    p.add_argument("--metrics", help="comma-separated of gfid, is, fd_dinov2, cmmd, "
                   "fd_effnetlite0, mmd_effnetlite0 (all must load); default: the offline "
                   "proxies and every other metric whose weights load")
    p.add_argument("--weights-dir", help="Inception/CLIP/DINOv2 weight files")
    p.add_argument("--cache-dir", help="reference feature cache (default ~/.cache/swycc/eval)")
    p.add_argument("--out", required=True, help="report directory (metrics.json, metrics.md)")
    p.add_argument("--no-progress", action="store_true")
    add_threads_option(p)
    p.set_defaults(func=cmd_eval_generation)


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from swycc.data.images import save_image
    from swycc.generation.generator import Generator
    from swycc.io.outputs import OutputPlan, safe_stem
    from swycc.io.visual import save_grid

    # the DiT, its autoencoder (checked against its record), the classes and the outputs are
    # all validated before any image is made
    gen = Generator.load(args.dit, args.ae_checkpoint, args.device)
    gen.check_decoder(args.decoder)
    labels = gen.labels(args.classes, args.per_class)
    classes = list(dict.fromkeys(labels.tolist()))
    names = gen.class_names
    plan = OutputPlan(overwrite=args.overwrite)
    out = Path(args.out)
    order = [(c, k) for c in classes for k in range(args.per_class)]  # = labels, in order
    paths = {key: plan.add_file(out / f"{key[0]:04d}-{safe_stem(names[key[0]])}_{key[1]}.png")
             for key in order}
    grid_path = plan.add_file(out / "grid.png")
    plan.check()

    from tqdm import tqdm

    with tqdm(total=len(labels), unit="img", desc="generate", disable=args.no_progress) as bar:
        xs = []  # not `bar.update(n) or x`: update returns True whenever it redraws the bar
        for _, x in gen.batches(labels, steps=args.steps, guidance=args.guidance,
                                decoder_steps=args.decoder_steps,
                                decoder_guidance=args.decoder_guidance, seed=args.seed,
                                batch_size=args.batch_size, decoder=args.decoder):
            xs.append(x)
            bar.update(x.shape[0])
    images = dict(zip(order, torch.cat(xs)))
    with plan.writing() as stage:
        for key, path in paths.items():
            save_image(images[key], stage(path))
        save_grid([[images[(c, k)] for k in range(args.per_class)] for c in classes],
                  stage(grid_path))
    print(f"wrote {len(order)} image(s) ({len(classes)} classes x {args.per_class}) and "
          f"grid.png to {out}")
    return 0


def cmd_eval_generation(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from swycc.metrics.evaluate import ReferenceCache, data_identity, default_cache_dir, eval_dataset
    from swycc.generation.generator import Generator, balanced_labels
    from swycc.generation.evaluate import (GEN_METRICS, load_gen_extractors, parse_gen_metrics,
                                       reference_features, score_generated, stats_from_npz)
    from swycc.io.outputs import OutputPlan

    plan = OutputPlan(overwrite=True)  # a report directory: its two files replaced as a pair
    out = Path(args.out)
    files = [plan.add_file(out / "metrics.json"), plan.add_file(out / "metrics.md")]
    plan.check()
    if not Path(args.reference).is_dir():
        raise ValueError(f"--reference {args.reference}: no such image folder")
    metrics, extractors, left_out = load_gen_extractors(parse_gen_metrics(args.metrics),
                                                        args.weights_dir, args.device)
    if args.reference_stats and "gfid" not in metrics:
        raise ValueError("--reference-stats serves gFID, which is not measured here (no "
                         "Inception weights; see --weights-dir)")
    gen = Generator.load(args.dit, args.ae_checkpoint, args.device)
    gen.check_decoder(args.decoder)
    size = gen.image_size
    dataset = eval_dataset(args.reference, size)
    n_ref = min(args.reference_images or len(dataset), len(dataset))
    inception_stats = stats_from_npz(args.reference_stats) if args.reference_stats else None
    ref_metrics = [m for m in metrics if not (m == "gfid" and inception_stats)]
    reference = reference_features(
        dataset, n_ref, ref_metrics, extractors, cache=ReferenceCache(
            args.cache_dir or default_cache_dir()), device=args.device,
        data_id=data_identity(args.reference, dataset, size, n_ref), batch_size=args.batch_size,
        progress=not args.no_progress)
    if inception_stats is not None:
        from swycc.metrics.evaluate import FeatureSet

        reference["inception"] = FeatureSet(extractors["inception"], keep=False, logits=False)
        reference["inception"].stats = inception_stats
    labels = balanced_labels(args.num_images, len(gen.class_names))
    bar = tqdm(total=len(labels), unit="img", desc="generate", disable=args.no_progress)

    def images():
        for _, x in gen.batches(labels, steps=args.steps, guidance=args.guidance,
                                decoder_steps=args.decoder_steps,
                                decoder_guidance=args.decoder_guidance, seed=args.seed,
                                batch_size=args.batch_size, decoder=args.decoder):
            bar.update(x.shape[0])
            yield x

    values, n = score_generated(images(), metrics, extractors, reference,
                                batch_size=args.batch_size, device=args.device)
    bar.close()
    sampling = gen.meta["config"].sampling
    report = {"dit": str(args.dit), "autoencoder": str(args.ae_checkpoint),
              "reference": args.reference_stats or args.reference, "reference_images": n_ref,
              "generated_images": n, "classes": len(gen.class_names), "image_size": size,
              "dit_steps": args.steps or sampling.steps,
              "dit_guidance": sampling.guidance if args.guidance is None else args.guidance,
              "decoder": args.decoder,
              "decoder_steps": (args.decoder_steps if gen.autoencoder.samples
                                and args.decoder == "sample" else None),
              "decoder_guidance": (args.decoder_guidance if gen.autoencoder.samples
                                   and args.decoder == "sample" else None),
              "seed": args.seed, "metrics": metrics, "left_out": left_out, "values": values,
              "definitions": {m: GEN_METRICS[m][1] for m in metrics}}
    md = generation_markdown(report)
    with plan.writing() as stage:
        stage(files[0]).write_text(json.dumps(report, indent=2))
        stage(files[1]).write_text(md)
    print(md)
    print(f"wrote {files[0]} and {files[1]}")
    return 0


def generation_markdown(report: dict) -> str:
    from swycc.generation.evaluate import GEN_METRICS

    v = report["values"]
    head = [GEN_METRICS[m][0] for m in report["metrics"]]
    cells = [f"{v[m]:.4g}" + (f" ± {v['is_std']:.2f}" if m == "is" else "")
             for m in report["metrics"]]
    how = ("decoded by the deterministic decoder (D_Initial)" if report["decoder"] == "initial"
           else f"decoded with {report['decoder_steps']} steps at w = "
                f"{report['decoder_guidance']}" if report["decoder_steps"] else "decoded")
    lines = [f"{report['generated_images']} generated images ({report['classes']} classes in "
             f"turn, DiT {report['dit_steps']} steps at w = {report['dit_guidance']}; {how}) "
             "against "
             f"{report['reference_images']} reference images of {report['reference']} at "
             f"{report['image_size']} px.", ""]
    if report["left_out"]:
        lines += [f"Not measured (weights not present): {', '.join(report['left_out'])}.", ""]
    if report["generated_images"] < 50_000 and any(m.startswith(("gfid", "fd_"))
                                                   for m in report["metrics"]):
        lines += ["Frechet distances over fewer than 50k images are biased upwards: compare "
                  "only numbers over the same N.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
              "| " + " | ".join(cells) + " |"]
    return "\n".join(lines) + "\n"
