"""``swycc distill`` (train a few-step student, resumable) and ``swycc distill-report``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    from swycc.cli.args import (add_threads_option, batch_int, count_int, device_arg,
                                finite_float, guidance_float, sampling_steps_int,
                                seed_int, train_steps_int)

    p = sub.add_parser("distill", help="distil a SWYCC decoder to few steps, guidance folded in "
                       "(progressive distillation; re-run the same command to resume)")
    p.add_argument("--teacher", help="exported SWYCC model (default: the shipped small model)")
    p.add_argument("--out", default="runs/distill", help="run directory (RUN/round-k per round, "
                   "RUN/export the last student)")
    p.add_argument("--data", help="training image folder (default: the teacher's data, e.g. "
                   "the embedded photo set)")
    p.add_argument("--teacher-steps", type=sampling_steps_int, help="guided teacher steps the first "
                   "round imitates (default 16)")
    p.add_argument("--student-steps", type=sampling_steps_int, help="steps of the last student "
                   "(default 1); teacher/student steps must be a power of two")
    p.add_argument("--round-steps", type=train_steps_int, nargs="+", metavar="N",
                   help="optimiser steps per round: one value, or one per round")
    p.add_argument("--guidance", type=guidance_float, help="guidance w to fold in (default: "
                   "the teacher's config)")
    p.add_argument("--batch-size", type=batch_int)
    p.add_argument("--lr", type=finite_float)
    p.add_argument("--seed", type=seed_int)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the networks")
    p.add_argument("--device", type=device_arg, help="cpu, cuda, cuda:1")
    p.add_argument("--max-steps", type=train_steps_int, help="stop after this many optimiser steps "
                   "counted over all rounds (re-run to go on)")
    p.add_argument("--time-budget", type=finite_float, help="seconds of training in this "
                   "invocation, over all rounds")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any distillation "
                   "option, e.g. --set weighting=snr+1 --set train.ema_decay=0.999")
    p.add_argument("--report", action="store_true", help="when every round is done, write "
                   "the distill-report into RUN/report")
    p.add_argument("--no-progress", action="store_true")
    add_threads_option(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("distill-report", help="a distilled student against its teacher, "
                       "D_Initial and a GAN decoder: quality, sharpness, spectrum, decode time")
    p.add_argument("--teacher", help="the teacher export (default: the shipped small model)")
    p.add_argument("--student", required=True, help="a `swycc distill` run directory (its "
                   "1-step and 2-step students), or a distilled export")
    p.add_argument("--student2", help="the export decoded at 2 steps (default: the run's 2-step "
                   "student, else --student)")
    p.add_argument("--gan", help="a trained GAN export, scored and timed (default: a GAN decoder "
                   "of the teacher's size with random weights, timed only)")
    p.add_argument("--out", required=True, help="directory for report.json, report.md, grid.png")
    p.add_argument("--teacher-steps", type=sampling_steps_int, default=20)
    p.add_argument("--eval-data", help="held-back image folder (default: the embedded held-back "
                   "crops); cut by the teacher's data.eval_grid")
    p.add_argument("--num-images", type=count_int, default=64)
    p.add_argument("--held-out", type=count_int, default=64,
                   help="embedded set: number of held-back crops")
    p.add_argument("--metrics", default="fd_effnetlite0,mmd_effnetlite0",
                   help="distribution proxies to add to PSNR/SSIM/sharpness/spectrum "
                   "(comma-separated, or 'none')")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--baseline-steps", type=sampling_steps_int, nargs="*", default=[1, 2],
                   metavar="N", help="also the teacher itself (guided, not distilled) at these "
                   "step counts (default 1 2)")
    p.add_argument("--timing-batch", type=batch_int, default=16)
    p.add_argument("--timing-repeats", type=count_int, default=5)
    p.add_argument("--no-progress", action="store_true")
    add_threads_option(p)
    p.set_defaults(func=cmd_distill_report)


def build_distill_config(args: argparse.Namespace):
    from swycc.config import apply_overrides
    from swycc.distill.config import DistillConfig

    flags = {"teacher_steps": args.teacher_steps, "student_steps": args.student_steps,
             "round_steps": tuple(args.round_steps) if args.round_steps else None,
             "guidance": args.guidance, "data_path": args.data,
             "train.batch_size": args.batch_size, "train.lr": args.lr, "train.seed": args.seed,
             "train.bf16": True if args.bf16 else None, "train.time_budget_s": args.time_budget}
    cfg = apply_overrides(DistillConfig(), flags, args.set)
    if args.data is not None and not Path(args.data).is_dir():
        raise ValueError(f"--data {args.data}: no such image folder")
    return cfg


def _teacher(path: str | None) -> str:
    from swycc.autoencoders.pretrained import default_checkpoint

    return path or str(default_checkpoint())


def cmd_distill(args: argparse.Namespace) -> int:
    from swycc.cli.args import exit_status
    from swycc.distill.task import distill

    cfg = build_distill_config(args)
    res = distill(cfg, _teacher(args.teacher), args.out, device=args.device,
                  max_steps=args.max_steps, progress=not args.no_progress)
    print(f"rounds done: {res.rounds_done}/{res.rounds} ({res.stopped_by}); "
          f"student export: {res.export or '-'}")
    if res.stopped_by == "signal":
        return exit_status(res.stopped_by)
    if args.report and res.export is not None:
        report_args = argparse.Namespace(
            teacher=args.teacher, student=args.out, student2=None, gan=None,
            out=str(Path(args.out) / "report"), teacher_steps=20, eval_data=None,
            num_images=64, held_out=64, metrics="fd_effnetlite0,mmd_effnetlite0",
            seed=0, device=args.device or "cpu", timing_batch=16, timing_repeats=5,
            baseline_steps=[1, 2],
            no_progress=args.no_progress)
        return cmd_distill_report(report_args)
    return 0


def load_students(student: str, student2: str | None):
    """(1-step student, model decoded at 2 steps, their paths, {label: (model, steps)} of the
    run's other rounds) from a run directory or exports."""
    from swycc.autoencoders.base import Autoencoder
    from swycc.distill.task import round_exports

    run = Path(student)
    if (run / "distill.json").is_file():
        one = run / "export"
        rounds = round_exports(run)
        two = Path(student2) if student2 else rounds.get(2, one)
        others = {k: p for k, p in rounds.items() if k > 2}
    elif run.is_dir() and (run / "round-1").is_dir() and not (run / "model.safetensors").exists():
        raise ValueError(f"{run}: the distillation has not finished (no distill.json); re-run "
                         f"`swycc distill` with the same options")
    else:
        one, two, others = run, Path(student2) if student2 else run, {}
    models = []
    for path in (one, two):
        m = Autoencoder.from_pretrained(path)
        if m.kind != "swycc-distilled":
            raise ValueError(f"{path}: a {m.kind!r} model, not a distilled decoder "
                             f"(swycc-distilled)")
        models.append(m)
    extra = {f"student {k} steps": (Autoencoder.from_pretrained(p), k) for k, p in others.items()}
    return models[0], models[1], str(one), str(two), extra


def cmd_distill_report(args: argparse.Namespace) -> int:
    import torch

    from swycc.autoencoders.base import Autoencoder
    from swycc.autoencoders import GANAutoencoder
    from swycc.autoencoders.kinds import with_method
    from swycc.distill.report import PROXIES, distill_report

    metrics = [] if args.metrics == "none" else [m.strip() for m in args.metrics.split(",")
                                                   if m.strip()]
    bad = [m for m in metrics if m not in PROXIES]
    if bad:
        raise ValueError(f"--metrics: unknown {bad}; choose from {', '.join(PROXIES)} or 'none'")
    if args.eval_data is not None and not Path(args.eval_data).is_dir():
        raise ValueError(f"--eval-data {args.eval_data}: no such image folder")
    teacher_path = _teacher(args.teacher)
    teacher = Autoencoder.from_pretrained(teacher_path)
    if teacher.kind != "swycc":
        raise ValueError(f"{teacher_path}: the teacher must be a SWYCC model, got {teacher.kind!r}")
    s1, s2, p1, p2, extra = load_students(args.student, args.student2)
    for path, s in ((p1, s1), (p2, s2)):
        same = all(torch.equal(a, b) for a, b in zip(s.encoder.state_dict().values(),
                                                      teacher.encoder.state_dict().values()))
        if not same:
            raise ValueError(f"{path}: its encoder is not the teacher's ({teacher_path}); give "
                             f"the teacher it was distilled from (--teacher)")
    if args.gan:
        gan = Autoencoder.from_pretrained(args.gan)
        if not isinstance(gan, GANAutoencoder):
            raise ValueError(f"{args.gan}: a {gan.kind!r} model, not a GAN autoencoder")
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            gan = GANAutoencoder(with_method(teacher.config, "gan")).eval()
    dev = args.device
    report = distill_report(
        teacher.to(dev), s1.to(dev), s2.to(dev), args.out, gan=gan.to(dev),
        gan_trained=bool(args.gan), teacher_steps=args.teacher_steps, eval_data=args.eval_data,
        num_images=args.num_images, held_out=args.held_out, metrics=metrics, seed=args.seed,
        device=dev, timing_batch=args.timing_batch, timing_repeats=args.timing_repeats,
        labels={"teacher": teacher_path, "student_1": p1, "student_2": p2,
                "gan": args.gan or "random weights (timing only)"},
        baseline_steps=tuple(args.baseline_steps), extra=extra, progress=not args.no_progress)
    from swycc.distill.report import markdown

    print(markdown(report))
    print(f"wrote {args.out}/report.json, report.md and grid.png")
    return 0
