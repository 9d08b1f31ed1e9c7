"""``swycc eval``: metrics of one or several checkpoints on one set of images, one table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from swycc.cli.args import (add_threads_option, batch_int, count_int, device_arg, guidance_float,
                            image_size_int, samples_int, sampling_steps_int, seed_int)
from swycc.metrics.evaluate import (DEFAULT_METRICS, METRICS, ReferenceCache, data_identity,
                                    default_cache_dir, eval_dataset, evaluate_model,
                                    json_default, load_extractors, markdown_table, parse_metrics,
                                    report_notes)


def register(sub) -> None:
    p = sub.add_parser("eval", help="metrics of one or several checkpoints")
    add_eval_arguments(p)
    p.set_defaults(func=run_eval)


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="model dir or .safetensors (any kind; default: the "
                   "small pretrained model shipped with swycc)")
    p.add_argument("--compare", nargs="+", metavar="DIR", help="several checkpoints, one table")
    p.add_argument("--data", help="image folder (default: the embedded held-back crops)")
    p.add_argument("--image-size", type=image_size_int, help="crop size (default: the model's)")
    p.add_argument("--num-images", type=count_int, help="evaluate only the first N images")
    p.add_argument("--held-out", type=count_int, help="embedded set: number of held-back crops "
                   "(default: the checkpoint's data.held_out, 16); more crops overlap more")
    p.add_argument("--metrics", default="default", help="comma-separated, from: "
                   f"{', '.join(METRICS)}; 'all'; default: {','.join(DEFAULT_METRICS)}")
    p.add_argument("--steps", type=sampling_steps_int, help="DDIM steps (default: the model's config)")
    p.add_argument("--guidance", type=guidance_float, help="guidance w (default: the model's config)")
    p.add_argument("--samples", type=samples_int, default=1, help="decodes per image (all are scored)")
    p.add_argument("--decoder", choices=["sample", "initial"], default="sample",
                   help="score the samples, or the kind's deterministic reconstruction "
                   "(SWYCC: D_Initial(z))")
    p.add_argument("--batch-size", type=batch_int, default=16)
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--weights-dir", help="directory with the Inception/CLIP/DINOv2 weight files")
    p.add_argument("--cache-dir",
                   help=f"reference statistics cache (default {default_cache_dir()})")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--out", default="runs/eval", help="directory for metrics.json, metrics.md")
    p.add_argument("--no-progress", action="store_true")
    add_threads_option(p)


def run_eval(args: argparse.Namespace) -> int:
    """Validate everything (metrics, weights, checkpoints, data), evaluate, then write."""
    from swycc.autoencoders.base import Autoencoder, read_config
    from swycc.autoencoders.kinds import get_kind
    from swycc.io.outputs import OutputPlan

    # --out is a report directory: its two files are replaced as a pair, checked up front
    plan = OutputPlan(overwrite=True)
    out = Path(args.out)
    report_files = [plan.add_file(out / "metrics.json"), plan.add_file(out / "metrics.md")]
    plan.check()
    metrics = parse_metrics(args.metrics)
    if args.samples < 1 or args.batch_size < 1 or (args.steps is not None and args.steps < 1):
        raise ValueError("--samples, --batch-size and --steps must be >= 1")
    if args.compare and args.checkpoint:
        raise ValueError("give either --checkpoint or --compare, not both")
    if args.compare:
        paths = list(args.compare)
    else:
        from swycc.autoencoders.pretrained import default_checkpoint

        paths = [args.checkpoint or str(default_checkpoint())]
    configs = [read_config(p) for p in paths]  # CheckpointError names a bad one
    size = args.image_size or configs[0].model.image_size
    if "msssim" in metrics and size < 176:
        raise ValueError(f"msssim needs crops of at least 176 pixels (5 scales), got {size}")
    extractors = load_extractors(metrics, args.weights_dir, args.device)  # missing -> error
    held_out = configs[0].data.held_out if args.held_out is None else args.held_out
    if held_out < 1:
        raise ValueError(f"--held-out must be >= 1, got {held_out}")
    dataset = eval_dataset(args.data, size, held_out)
    n = len(dataset) if args.num_images is None else min(args.num_images, len(dataset))
    cache = ReferenceCache(None if args.no_cache else (args.cache_dir or default_cache_dir()))
    data_id = data_identity(args.data, dataset, size, n)
    rows = []
    for path in paths:
        model = Autoencoder.from_pretrained(path).to(args.device)
        res = evaluate_model(model, dataset, metrics, extractors, num_images=n, steps=args.steps,
                             guidance=args.guidance, samples=args.samples, seed=args.seed,
                             batch_size=args.batch_size, device=args.device, data_id=data_id,
                             cache=cache, progress=not args.no_progress,
                             decoder=args.decoder)
        method = model.kind
        if args.decoder == "initial" and model.samples:
            method = f"{method} {get_kind(method).initial_label}"
        rows.append({"checkpoint": str(path), "method": method, **res})
    report = {
        "data": args.data or "embedded held-back crops", "image_size": size, "images": n,
        "metrics": metrics, "definitions": {m: METRICS[m][1] for m in metrics},
        "notes": report_notes(metrics, rows, args.samples), "results": rows,
    }
    with plan.writing() as stage:
        stage(report_files[0]).write_text(json.dumps(report, indent=2, default=json_default))
        stage(report_files[1]).write_text(markdown_table(report))
    print(markdown_table(report))
    print(f"wrote {out / 'metrics.json'} and {out / 'metrics.md'}")
    return 0
