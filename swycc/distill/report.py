"""``swycc distill-report``: a distilled student side by side with its teacher and D_Initial.

On held-back images (the embedded set's held-back crops, or ``--eval-data`` cut by
``data.eval_grid``), each decoder reconstructs the same images from the same latents and the same
start noise: D_Initial, the teacher at 20 guided steps, the student at 1 step and the 2-step
student (or the 1-step student run for 2 steps), and a GAN decoder when one is given. Scored,
after 8-bit quantisation as ``swycc eval`` does: PSNR, SSIM, gradient-energy ratio to the
original (sharpness), the share of the teacher's sharpness gain over D_Initial each decoder keeps,
the radial power-spectrum distance (dB) and high-band power ratio (``swycc.metrics.spectrum``),
and the offline EfficientNet-Lite0 distribution proxies. Decode time per image (latent -> image)
of every decoder, the GAN decoder's included (random weights are enough for timing), is measured
in this one process, interleaved, median of repeats. Writes report.json, report.md, grid.png.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from swycc.metrics import maths
from swycc.metrics.spectrum import high_band_power_ratio, spectrum_distance
from swycc.io.outputs import write_text_atomic
from swycc.io.visual import gradient_energy, save_grid

GOAL_SHARPNESS_KEPT = 0.9  # the 1-step student keeps >= 90% of the teacher's gain over D_Initial
GOAL_DECODE_RATIO = 2.0  # 1-step decode time <= 2x the GAN decoder's
PROXIES = ("fd_effnetlite0", "mmd_effnetlite0")


def score(y: torch.Tensor, x: torch.Tensor, extractors: dict, metrics: list[str]) -> dict:
    """Metrics of reconstructions y against originals x, both (N, 3, H, W) quantised."""
    out = {"psnr": float(maths.psnr(y, x).mean()), "ssim": float(maths.ssim(y, x).mean()),
           "gradient_energy_ratio": float(gradient_energy(y).mean() / gradient_energy(x).mean()),
           "spectrum_distance_db": float(spectrum_distance(y, x).mean()),
           "high_band_power_ratio": float(high_band_power_ratio(y, x).mean())}
    if any(m in metrics for m in PROXIES):
        net = extractors["effnetlite0"]
        fy, fx = net(y).double().cpu(), net(x).double().cpu()
        if "fd_effnetlite0" in metrics:
            sy, sx = maths.FeatureStats(net.dim), maths.FeatureStats(net.dim)
            sy.update(fy)
            sx.update(fx)
            out["fd_effnetlite0"] = maths.frechet_distance_from_stats(sy, sx)
        if "mmd_effnetlite0" in metrics:
            out["mmd_effnetlite0"] = maths.mmd2_rbf(maths.l2_normalize(fy),
                                                    maths.l2_normalize(fx))
    return out


def time_decoders(fns: dict, repeats: int, slow: set[str]) -> dict[str, float]:
    """Median seconds per call of each fn, calls interleaved round-robin after one warm-up
    (the ``slow`` ones: one timed call, no warm-up)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for name, fn in fns.items():
        if name not in slow:
            fn()
    for r in range(repeats):
        for name, fn in fns.items():
            if name in slow and r > 0:
                continue
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


@torch.no_grad()
def distill_report(teacher, student1, student2, out: str | os.PathLike, gan=None,
                   gan_trained: bool = False, teacher_steps: int = 20,
                   eval_data: str | None = None, num_images: int = 64, held_out: int = 64,
                   metrics: list[str] | None = None, seed: int = 0, device: str = "cpu",
                   timing_batch: int = 16, timing_repeats: int = 5, labels: dict | None = None,
                   baseline_steps: tuple[int, ...] = (1, 2), extra: dict | None = None,
                   progress: bool = True) -> dict:
    """``student2``: a model decoded at 2 steps (the 2-step round's student, or student1).
    ``gan``: a GAN autoencoder, scored only when ``gan_trained``; always timed.
    ``baseline_steps``: the teacher, guided, at these few steps (no distillation), for scale.
    ``extra``: {label: (distilled model, steps)}, e.g. the earlier rounds' students."""
    from tqdm import tqdm

    from swycc.data import build_dataset

    metrics = list(PROXIES) if metrics is None else metrics
    extractors = {}
    if any(m in metrics for m in PROXIES):
        from swycc.metrics.evaluate import load_extractors

        extractors = load_extractors([m for m in metrics if m in PROXIES], device=device)
    size = teacher.config.model.image_size
    data_cfg = replace(teacher.config.data, path=eval_data, held_out=held_out)
    dataset = build_dataset(data_cfg, size, train=False)
    n = min(num_images, len(dataset))
    if n < 2:
        raise ValueError(f"need at least 2 held-back images, got {n}")
    x = maths.quantized(torch.stack([dataset[i][0] for i in range(n)]).to(device))
    w = teacher.config.sampling.guidance
    decoders = {
        "D_Initial": (lambda xb, g: teacher.reconstruct_initial(xb), None),
        f"teacher {teacher_steps} steps": (
            lambda xb, g: teacher.reconstruct(xb, teacher_steps, w, generator=g), teacher_steps),
        "student 1 step": (lambda xb, g: student1.reconstruct(xb, 1, generator=g), 1),
        "student 2 steps": (lambda xb, g: student2.reconstruct(xb, 2, generator=g), 2),
    }
    for name, (m, k) in (extra or {}).items():
        decoders[name] = (lambda xb, g, m=m, k=k: m.reconstruct(xb, k, generator=g), k)
    for k in baseline_steps:  # what distillation buys: the teacher itself at few steps
        decoders[f"teacher {k} step{'s' if k > 1 else ''} (not distilled)"] = (
            lambda xb, g, k=k: teacher.reconstruct(xb, k, w, generator=g), k)
    if gan is not None and gan_trained:
        decoders["GAN decoder"] = (lambda xb, g: gan.reconstruct(xb), None)
    recon, rows = {}, []
    for name, (fn, steps) in tqdm(decoders.items(), desc="reconstruct", disable=not progress):
        g = torch.Generator(device=device).manual_seed(seed)  # same start noise for each
        recon[name] = maths.quantized(torch.cat([fn(x[i:i + 16], g) for i in range(0, n, 16)]))
        rows.append({"decoder": name, "steps": steps, **score(recon[name], x, extractors,
                                                             metrics)})
    init, teach = rows[0]["gradient_energy_ratio"], rows[1]["gradient_energy_ratio"]
    for r in rows:
        gain = teach - init
        r["sharpness_gain_kept"] = (r["gradient_energy_ratio"] - init) / gain if gain else None

    # ---- decode time per image, latent -> image, one process, interleaved ----
    xt = x.repeat((timing_batch + n - 1) // n, 1, 1, 1)[:timing_batch]
    z = teacher.encode(xt)
    g = torch.Generator(device=device)
    fns = {"D_Initial": lambda: teacher.decode_initial(z),
           f"teacher {teacher_steps} steps": lambda: teacher.decode(
               z, teacher_steps, w, generator=g.manual_seed(seed)),
           "student 1 step": lambda: student1.decode(z, 1, generator=g.manual_seed(seed)),
           "student 2 steps": lambda: student2.decode(z, 2, generator=g.manual_seed(seed))}
    for name, (m, k) in (extra or {}).items():
        fns[name] = lambda m=m, k=k: m.decode(z, k, generator=g.manual_seed(seed))
    for k in baseline_steps:
        fns[f"teacher {k} step{'s' if k > 1 else ''} (not distilled)"] = (
            lambda k=k: teacher.decode(z, k, w, generator=g.manual_seed(seed)))
    if gan is not None:
        zg = gan.encode(xt)
        fns["GAN decoder"] = lambda: gan.decode_initial(zg)
    secs = time_decoders(fns, timing_repeats, slow={f"teacher {teacher_steps} steps"})
    ms = {k: 1000.0 * v / timing_batch for k, v in secs.items()}
    gflops = {k: decode_flops(fns[k]) / timing_batch / 1e9
              for k in ("D_Initial", "student 1 step", "GAN decoder") if k in fns}
    for r in rows:
        r["decode_ms_per_image"] = ms.get(r["decoder"])
    one = next(r for r in rows if r["decoder"] == "student 1 step")
    ratio = ms["student 1 step"] / ms["GAN decoder"] if "GAN decoder" in ms else None
    report = {
        "images": n, "image_size": size, "eval_data": eval_data or "embedded held-back crops",
        "guidance": w, "seed": seed, "metrics": metrics, "models": labels or {},
        "device": f"{device}; {platform.processor() or platform.machine()}, "
                  f"{torch.get_num_threads()} torch thread(s), load average "
                  f"{os.getloadavg()[0]:.1f} at the end",
        "timing": {"batch": timing_batch, "repeats": timing_repeats,
                   "ms_per_image": ms, "gflops_per_image": gflops,
                   "gan_weights": "trained" if gan_trained else
                   ("random (timing only)" if gan is not None else None)},
        "results": rows,
        "goals": {"sharpness_gain_kept_1_step": one["sharpness_gain_kept"],
                  "sharpness_goal_met": (one["sharpness_gain_kept"] or 0) >= GOAL_SHARPNESS_KEPT,
                  "decode_time_vs_gan_1_step": ratio,
                  "decode_flops_vs_gan_1_step": (gflops["student 1 step"] / gflops["GAN decoder"]
                                                 if "GAN decoder" in gflops else None),
                  "decode_time_goal_met": None if ratio is None else ratio <= GOAL_DECODE_RATIO},
    }
    out = Path(out)
    order = list(decoders)[:4] + (["GAN decoder"] if "GAN decoder" in decoders else [])
    grid = [[x[i].cpu()] + [recon[k][i].cpu() for k in order] for i in range(min(8, n))]
    save_grid(grid, out / "grid.png", labels=["original"] + order)
    write_text_atomic(out / "report.json", json.dumps(report, indent=2))
    write_text_atomic(out / "report.md", markdown(report))
    return report


def decode_flops(fn) -> float:
    """Floating-point operations of one call of ``fn`` (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def markdown(report: dict) -> str:
    m = report["metrics"]
    head = ["decoder", "steps", "PSNR (dB) ↑", "SSIM ↑", "grad-energy ratio",
            "sharpness gain kept", "spectrum dist. (dB) ↓", "high-band power ratio"]
    proxies = [p for p in PROXIES if p in m]
    head += [{"fd_effnetlite0": "FD EffNet-Lite0 ↓", "mmd_effnetlite0": "MMD EffNet-Lite0 ↓"}[p]
             for p in proxies] + ["decode ms/image"]
    f = lambda v, p=4: "-" if v is None else (f"{v:.{p}g}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = [f"Held-back images: {report['images']} of {report['eval_data']} at "
             f"{report['image_size']} px; guidance w = {report['guidance']} (folded into the "
             f"students); seed {report['seed']}; device: {report['device']}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["results"]:
        cells = [r["decoder"], f(r["steps"]), f"{r['psnr']:.2f}", f"{r['ssim']:.4f}",
                 f"{r['gradient_energy_ratio']:.3f}", f(r["sharpness_gain_kept"], 3),
                 f"{r['spectrum_distance_db']:.2f}", f"{r['high_band_power_ratio']:.3f}"]
        cells += [f(r[p]) for p in proxies] + [f(r["decode_ms_per_image"], 3)]
        lines.append("| " + " | ".join(cells) + " |")
    t, goals = report["timing"], report["goals"]
    if "GAN decoder" in t["ms_per_image"] and not any(r["decoder"] == "GAN decoder"
                                                     for r in report["results"]):
        lines.append(f"| GAN decoder ({t['gan_weights']}) | - | - | - | - | - | - | - |"
                     + " - |" * len(proxies) + f" {t['ms_per_image']['GAN decoder']:.3g} |")
    kept = goals["sharpness_gain_kept_1_step"]
    lines += ["", f"Decode time: latent -> image, batch {t['batch']}, median of {t['repeats']} "
              f"interleaved calls (the teacher: one call), same process.", "",
              f"- Goal: the 1-step student keeps >= {GOAL_SHARPNESS_KEPT:.0%} of the teacher's "
              f"sharpness gain over D_Initial: kept {f(kept, 3)} -> "
              f"{'met' if goals['sharpness_goal_met'] else 'NOT met'}."]
    if goals["decode_time_vs_gan_1_step"] is not None:
        lines.append(f"- Goal: 1-step decode time <= {GOAL_DECODE_RATIO:g}x the GAN decoder's: "
                     f"{goals['decode_time_vs_gan_1_step']:.2f}x -> "
                     f"{'met' if goals['decode_time_goal_met'] else 'NOT met'}.")
    if goals.get("decode_flops_vs_gan_1_step") is not None:
        g = t["gflops_per_image"]
        lines.append(f"- FLOPs per image (torch's FlopCounterMode; attention kernels it does not "
                     f"count are left out, so the student's figure is a lower bound): student 1 "
                     f"step {g['student 1 step']:.3g} GFLOP (D_Initial {g['D_Initial']:.3g} + "
                     f"one U-Net pass) vs GAN decoder {g['GAN decoder']:.3g} GFLOP -> "
                     f"{goals['decode_flops_vs_gan_1_step']:.2f}x. Where this is above "
                     f"{GOAL_DECODE_RATIO:g}x, compute-bound hardware cannot meet the time goal "
                     f"with this D_Refine, however it is trained.")
    return "\n".join(lines) + "\n"
