"""``swycc experiment NAME``: one of the paper's comparisons, trained and scored, resumable."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from swycc.cli import add_train_options, positive_int
    from swycc.experiments import decoding
    from swycc.experiments.catalog import EXPERIMENTS

    summaries = {**{k: v.summary for k, v in EXPERIMENTS.items()}, **decoding.SWEEPS}
    p = sub.add_parser("experiment", help="run one of the paper's comparisons (re-run to resume)",
                       description="; ".join(f"{k}: {v}" for k, v in summaries.items()))
    p.add_argument("name", choices=list(summaries))
    add_train_options(p, "runs/experiment")
    p.add_argument("--steps", type=positive_int, help="training steps per arm (required, except "
                   "for steps/guidance: there it trains one SWYCC model instead of --checkpoint)")
    p.add_argument("--eval-data", help="held-back image folder (required with --data)")
    p.add_argument("--eval-images", type=positive_int, default=64)
    p.add_argument("--decode-steps", type=positive_int, default=20)
    p.add_argument("--ks", type=positive_int, nargs="+", default=[1, 2, 4, 8],
                   help="k-sweep: the relative compressions K")
    p.add_argument("--latent-channels", type=positive_int, default=2,
                   help="dgae-latent: DGAE's C (SWYCC runs at C and 2C)")
    p.add_argument("--metrics", help="comma-separated (see `swycc eval`); default: PSNR, SSIM, "
                   "the EffNet-Lite0 proxies, and rFID/IS/CMMD/FD-DINOv2 where weights load")
    p.add_argument("--weights-dir", help="Inception/CLIP/DINOv2 weights for rFID/IS/CMMD/FD")
    decoding.add_arguments(p)
    p.set_defaults(func=cmd_experiment)


def cmd_experiment(args: argparse.Namespace) -> int:
    from swycc.cli import build_config
    from swycc.evaluate import parse_metrics
    from swycc.experiments.catalog import EXPERIMENTS
    from swycc.experiments.decoding import SWEEPS, cmd_decode_sweep
    from swycc.experiments.runner import Budget, run_experiment

    if args.method:
        raise ValueError("an experiment sets each arm's method itself; drop --method")
    if args.name in SWEEPS:
        return cmd_decode_sweep(args)
    if args.steps is None:
        raise ValueError(f"experiment {args.name} needs --steps (training steps per arm)")
    spec = EXPERIMENTS[args.name]
    base = build_config(args)
    arms = spec.arms(base, ks=tuple(args.ks), latent_channels=args.latent_channels)
    budget = Budget(steps=args.steps, eval_images=args.eval_images,
                    decode_steps=args.decode_steps)
    report = run_experiment(args.name, arms, args.out, budget, args.data, args.eval_data,
                            device=args.device or "cpu", weights_dir=args.weights_dir,
                            progress=not args.no_progress, plot=spec.plot,
                            metrics=parse_metrics(args.metrics) if args.metrics else None)
    from swycc.experiments.runner import markdown

    print(markdown(report))
    print(f"wrote {args.out}/results.json, results.md and results.png")
    return 0
