"""``swycc experiment NAME``: one of the paper's comparisons, trained and scored, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from swycc.cli.args import (add_train_options, bounded_int, build_config, count_int, exit_status,
                            finite_float, guidance_float, positive_int, samples_int,
                            sampling_steps_int, train_steps_int)
from swycc.experiments import codec, decoding
from swycc.metrics.evaluate import parse_metrics


def register(sub) -> None:
    from swycc.experiments.catalog import EXPERIMENTS

    summaries = {**{k: v.summary for k, v in EXPERIMENTS.items()}, **decoding.SWEEPS,
                 **codec.SUMMARY}
    p = sub.add_parser("experiment", help="run one of the paper's comparisons (re-run to resume)",
                       description="; ".join(f"{k}: {v}" for k, v in summaries.items()))
    p.add_argument("name", choices=list(summaries))
    add_train_options(p, "runs/experiment")
    p.add_argument("--steps", type=train_steps_int, help="training steps per arm (required, except "
                   "for steps/guidance: there it trains one SWYCC model instead of --checkpoint)")
    p.add_argument("--eval-data", help="held-back image folder (required with --data)")
    p.add_argument("--eval-images", type=count_int, default=64)
    p.add_argument("--decode-steps", type=sampling_steps_int, default=20)
    p.add_argument("--ks", type=bounded_int(1, 64), nargs="+", default=[1, 2, 4, 8],
                   help="k-sweep: the relative compressions K")
    p.add_argument("--latent-channels", type=bounded_int(1, 1024), default=2,
                   help="dgae-latent: DGAE's C (SWYCC runs at C and 2C)")
    p.add_argument("--metrics", help="comma-separated (see `swycc eval`); default: PSNR, SSIM, "
                   "the EffNet-Lite0 proxies, and rFID/IS/CMMD/FD-DINOv2 where weights load")
    p.add_argument("--weights-dir", help="Inception/CLIP/DINOv2 weights for rFID/IS/CMMD/FD")
    add_sweep_arguments(p)
    add_codec_arguments(p)
    add_plateau_arguments(p)
    p.add_argument("--methods", nargs="+", help="the autoencoder kinds of k-sweep, dists and "
                   "the generation experiments (default swycc gan; dit-convergence: dgae swycc "
                   "gan)")
    g = p.add_argument_group("generation experiments (a latent DiT per arm)")
    g.add_argument("--dit-preset", default="dit-small-cpu")
    g.add_argument("--dit-steps", type=train_steps_int, default=2000, help="DiT steps per arm")
    g.add_argument("--dit-evals", type=count_int, default=3,
                   help="scores evenly spaced over the DiT steps (the last at --dit-steps)")
    g.add_argument("--dit-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DiT option, e.g. --dit-set dit.patch=1")
    g.add_argument("--gen-images", type=count_int, default=1000,
                   help="generated images per score (50000 for a paper-grade gFID)")
    g.add_argument("--reference-images", type=count_int,
                   help="training images the scores compare with (default: all)")
    g.add_argument("--sample-steps", type=sampling_steps_int, default=25, help="DiT DDIM steps")
    g.add_argument("--dit-guidance", type=guidance_float, help="DiT guidance (default: the preset's)")
    p.set_defaults(func=cmd_experiment)


def add_plateau_arguments(p: argparse.ArgumentParser) -> None:
    from swycc.experiments.converge import PlateauSettings

    d = PlateauSettings()
    g = p.add_argument_group("convergence (--until-plateau: --steps and --dit-steps become "
                             "upper bounds)")
    g.add_argument("--until-plateau", action="store_true", help="train each arm until its "
                   "held-out metric stops improving (or to the budget, which tables mark)")
    g.add_argument("--plateau-every", type=train_steps_int, default=d.every,
                   help="training steps between held-out evaluations")
    g.add_argument("--plateau-window", type=positive_int, default=d.window,
                   help="evaluations that must fail to beat the best before them")
    g.add_argument("--plateau-tol", type=finite_float, default=d.tol, help="relative "
                   "tolerance: a gain counts only above TOL x |best so far| (0.005 = 0.5%%)")
    g.add_argument("--plateau-metric", default=d.metric, help="autoencoder arms: the metric "
                   "(default psnr of the arm's decoder: SWYCC's samples at --decode-steps)")
    g.add_argument("--plateau-images", type=count_int, default=d.images,
                   help="autoencoder arms: held-out images per evaluation")
    g.add_argument("--dit-plateau-every", type=train_steps_int, help="generation experiments: "
                   "DiT steps between scores (default --plateau-every; the DiT's curve is its "
                   "first generation metric, scored on --gen-images)")


def plateau_settings(args: argparse.Namespace):
    """The --plateau-* options, checked, or None without --until-plateau."""
    from swycc.experiments.converge import PlateauSettings
    from swycc.metrics.evaluate import parse_metrics

    if not args.until_plateau:
        return None
    if args.plateau_tol < 0:
        raise ValueError(f"--plateau-tol must be >= 0 (a relative tolerance), got "
                         f"{args.plateau_tol}")
    metric = parse_metrics(args.plateau_metric)
    if len(metric) != 1:
        raise ValueError(f"--plateau-metric takes one metric, got {args.plateau_metric!r}")
    return PlateauSettings(args.plateau_every, args.plateau_window, args.plateau_tol,
                           metric[0], args.plateau_images, args.dit_plateau_every)


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="steps/guidance: the model to decode (default: the "
                   "shipped one; with --steps a SWYCC model is trained first instead)")
    p.add_argument("--sweep-steps", type=sampling_steps_int, nargs="+", metavar="N",
                   help="steps/guidance: DDIM step counts (steps: default "
                   f"{' '.join(map(str, decoding.STEPS))}; guidance: default --decode-steps)")
    p.add_argument("--sweep-guidance", type=guidance_float, nargs="+", metavar="W",
                   help="steps/guidance: guidance scales (guidance: default "
                   f"{' '.join(f'{w:g}' for w in decoding.GUIDANCE)}; steps: default the model's)")
    p.add_argument("--samples", type=samples_int, default=1,
                   help="steps/guidance: decodes per held-back image (all are scored)")


def cmd_experiment(args: argparse.Namespace) -> int:
    from swycc.experiments.runner import ExperimentStopped

    try:
        return _experiment(args)
    except ExperimentStopped:
        return exit_status("signal")  # exit 75: re-run the same command to resume


def _experiment(args: argparse.Namespace) -> int:
    from swycc.experiments.catalog import EXPERIMENTS
    from swycc.experiments.runner import Budget, run_experiment

    if args.method:
        raise ValueError("an experiment sets each arm's method itself; drop --method")
    if args.name in decoding.SWEEPS:
        if args.until_plateau:
            raise ValueError(f"--until-plateau is for the experiments that train arms, not the "
                             f"{args.name} sweep (train its model with one of them, or swycc "
                             f"train, then give --checkpoint)")
        return _decode_sweep(args)
    if args.name in codec.SUMMARY:
        if args.until_plateau:
            raise ValueError("--until-plateau is for the experiments that train arms, not the "
                             "codec experiment (it scores an exported model)")
        return _codec_experiment(args)
    if args.steps is None:
        raise ValueError(f"experiment {args.name} needs --steps (training steps per arm)")
    spec = EXPERIMENTS[args.name]
    base = build_config(args)
    arms = spec.arms(base, ks=tuple(args.ks), latent_channels=args.latent_channels,
                     methods=tuple(args.methods) if args.methods else None)
    budget = Budget(steps=args.steps, eval_images=args.eval_images,
                    decode_steps=args.decode_steps, plateau=plateau_settings(args))
    if spec.stage == "generation":
        return _generation(args, spec, arms, budget)
    run_experiment(args.name, arms, args.out, budget, args.data, args.eval_data,
                   device=args.device or "cpu", weights_dir=args.weights_dir,
                   progress=not args.no_progress, plot=spec.plot,
                   metrics=parse_metrics(args.metrics) if args.metrics else None,
                   extras=spec.extras, conclude=spec.conclude)
    print(Path(args.out, "results.md").read_text(), end="")
    print(f"wrote {args.out}/results.json, results.md and results.png")
    return 0


def _generation(args: argparse.Namespace, spec, arms, budget) -> int:
    from swycc.experiments.generation import (GenerationBudget, markdown,
                                              run_generation_experiment)
    from swycc.generation.evaluate import parse_gen_metrics

    gen = GenerationBudget(dit_preset=args.dit_preset, dit_steps=args.dit_steps,
                           dit_evals=args.dit_evals, dit_sets=tuple(args.dit_set),
                           images=args.gen_images, reference_images=args.reference_images,
                           sample_steps=args.sample_steps, guidance=args.dit_guidance,
                           decoder_steps=args.decode_steps, seed=args.seed or 0)
    report = run_generation_experiment(args.name, arms, args.out, budget, gen, args.data,
                                       device=args.device or "cpu",
                                       weights_dir=args.weights_dir,
                                       progress=not args.no_progress,
                                       metrics=parse_gen_metrics(args.metrics),
                                       plot_x=spec.plot_x, eval_data=args.eval_data)
    print(markdown(report))
    print(f"wrote {args.out}/results-{args.name}.json, .md and .png")
    return 0


def _decode_sweep(args: argparse.Namespace) -> int:
    if args.steps is None and args.data is not None:
        raise ValueError("--data is training data (with --steps); score on a folder of "
                         "held-back images with --eval-data")
    if args.steps is not None:
        if args.checkpoint:
            raise ValueError("give --checkpoint (a model to decode) or --steps (train one "
                             "first), not both")
        checkpoint = decoding.train_sweep_model(build_config(args), args.steps, args.out,
                                                args.data, args.eval_data, args.device,
                                                progress=not args.no_progress)
    else:
        from swycc.autoencoders.pretrained import default_checkpoint

        checkpoint = args.checkpoint or default_checkpoint()
    report = decoding.decode_sweep(
        args.name, checkpoint, args.out, sweep_steps=args.sweep_steps,
        sweep_guidance=args.sweep_guidance, decode_steps=args.decode_steps,
        eval_data=args.eval_data, eval_images=args.eval_images, samples=args.samples,
        seed=args.seed or 0, device=args.device or "cpu", weights_dir=args.weights_dir,
        metrics=parse_metrics(args.metrics) if args.metrics else None,
        progress=not args.no_progress)
    print(decoding.markdown(report))
    print(f"wrote {args.out}/results.json, results.md and results.png")
    return 0


def add_codec_arguments(p) -> None:
    g = p.add_argument_group("codec experiment")
    g.add_argument("--codec-sizes", type=positive_int, nargs="+", default=list(codec.SIZES),
                   help="photo sizes in px (default 256 512)")
    g.add_argument("--codec-images", type=count_int, nargs="+",
                   help="photos per size, one count per size (default: --eval-images each)")
    g.add_argument("--codec-qualities", type=positive_int, nargs="+", default=list(codec.QUALITIES),
                   help=f"swycc --quality values (default {' '.join(map(str, codec.QUALITIES))})")
    g.add_argument("--codec-max-bpp", type=finite_float, default=1.0,
                   help="baseline curves: qualities whose files stay under this (default 1)")


def _codec_experiment(args: argparse.Namespace) -> int:
    from swycc.autoencoders.base import Autoencoder
    from swycc.autoencoders.pretrained import default_checkpoint
    from swycc.codec.codec import quality_step

    if args.steps is not None:
        raise ValueError("experiment codec scores an exported model (--checkpoint); drop --steps")
    for q in args.codec_qualities:
        quality_step(q)
    codec.photo_folder(args.data)  # refused before anything loads
    images = tuple(args.codec_images or [args.eval_images] * len(args.codec_sizes))
    settings = codec.CodecSettings(sizes=tuple(args.codec_sizes), images=images,
                             qualities=tuple(args.codec_qualities),
                             decode_steps=args.decode_steps, seed=args.seed or 0,
                             max_bpp=args.codec_max_bpp)
    checkpoint = args.checkpoint or default_checkpoint()
    device = args.device or "cpu"
    model = Autoencoder.from_pretrained(checkpoint).to(device).eval()
    report = codec.run_codec_experiment(model, checkpoint, args.data, args.out, settings,
                                  device=device, progress=not args.no_progress)
    from swycc.experiments.codec_report import markdown

    print(markdown(report))
    print(f"wrote {args.out}/results.json, results.md, rate-distortion.png, "
          f"rate-perception.png and examples.png")
    return 0
