"""``swycc ship-check``: may a candidate model replace the shipped one?

    swycc ship-check --candidate runs/x/export --data /work/photoset/test --out runs/ship

Measured on whole photos kept out of training (e.g. ``swycc photoset``'s ``test/``): each image's
largest centre square, resized to 128 px (models trained on smaller crops decode it whole: they
are convolutional), quantised to 8 bits like every reconstruction before any number. Criteria,
each PASS/FAIL with its numbers, for both models:

1. D_Initial beats bicubic-from-1/8: mean PSNR of D_Initial above that of the bicubic baseline
   (each 8x8 patch averaged to its mean colour, i.e. area downsampling by 8: 3 numbers per patch;
   then bicubic upsampling back to full size).
2. Colour: D_Initial's colour shift is at most 2 levels (of 255) on EVERY image. Colour shift of
   an image: for each RGB channel |mean over pixels of the reconstruction - mean over pixels of
   the original| in 8-bit levels; the largest of the three.
3. Texture: samples (20 DDIM steps, guidance 0.5) are closer to the original's radial power
   spectrum than D_Initial is (``swycc.metrics.spectrum``, dB, mean over images).
4. The held-back metrics of ``swycc eval`` (PSNR, SSIM and the EfficientNet-Lite0 proxies, of
   D_Initial and of the samples) are no worse for the candidate than for the baseline, up to a
   non-inferiority margin (``NO_WORSE_MARGIN``). D_Initial is deterministic: 0.1 dB PSNR, 0.005
   SSIM, 2% of the baseline's value for the proxies. The samples' margins are their measured
   seed-to-seed spread on 4 held-out photos (the shipped model, seeds 0-2: PSNR 24.15-24.53 dB,
   SSIM 0.664-0.677, perceptual +-1.1%, FD 347-365, MMD 3.88-4.39): 0.4 dB, 0.015 SSIM, and 3%
   / 6% / 15% for perceptual / FD / MMD. Without them a model equal to the baseline would fail
   on the sampling noise of a handful of photos.

The candidate passes when it meets 1-4. Writes report.json, report.md and grid.png (rows: images;
columns: original | bicubic-1/8 | D_Initial and sample of each model). Exit status: 0 the
candidate passes every criterion; 1 it fails at least one (the report is still written);
2 bad input (nothing written).
"""

from __future__ import annotations

from pathlib import Path

import torch

from swycc.metrics import maths
from swycc.metrics.photos import FACTOR, bicubic_from_eighth, colour_shift, load_square_photos
from swycc.metrics.spectrum import spectrum_distance

EXIT_FAILED = 1
SIZE = 128
MAX_COLOUR_SHIFT = 2.0  # levels of 255
STEPS, GUIDANCE = 20, 0.5
HELD_BACK = ("psnr", "ssim", "perceptual_effnetlite0", "fd_effnetlite0", "mmd_effnetlite0")
HIGHER_IS_BETTER = {"psnr", "ssim"}
# criterion 4's non-inferiority margins per decoder: absolute for PSNR (dB) and SSIM, a share of
# the baseline's value for the proxies (see the module docstring for the measurement)
NO_WORSE_MARGIN = {
    "D_Initial": {"psnr": 0.1, "ssim": 0.005, "perceptual_effnetlite0": 0.02,
                  "fd_effnetlite0": 0.02, "mmd_effnetlite0": 0.02},
    "samples": {"psnr": 0.4, "ssim": 0.015, "perceptual_effnetlite0": 0.03,
                "fd_effnetlite0": 0.06, "mmd_effnetlite0": 0.15}}
ABSOLUTE_MARGIN = {"psnr", "ssim"}
DEFINITIONS = {
    "bicubic_from_1/8": f"each {FACTOR}x{FACTOR} patch averaged to its mean colour (area "
                        f"downsampling: 3 numbers per patch), then bicubic upsampling (a = -0.75, "
                        f"align_corners=False, edges replicated) back to full size, clamped",
    "colour_shift": "per RGB channel |mean over pixels of the reconstruction - mean over pixels "
                    "of the original| in 8-bit levels (0-255), both quantised to 8 bits; the "
                    "image's colour shift is the largest of the three channels",
    "spectrum_distance_db": "RMS over radius bins of the dB difference of the radially averaged "
                            "power spectra (swycc.metrics.spectrum)",
}


# ---- the judgement -----------------------------------------------------------------------------


def judge_model(rows: list[dict]) -> dict:
    """Criteria 1-3 of one model from its per-image rows (psnr_bicubic, psnr_initial,
    colour_shift_initial, spectrum_db_initial, spectrum_db_sample)."""
    mean = lambda k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    worst = max(rows, key=lambda r: r["colour_shift_initial"])
    c1 = {"psnr_initial": mean("psnr_initial"), "psnr_bicubic": mean("psnr_bicubic")}
    c2 = {"worst_shift": worst["colour_shift_initial"], "worst_image": worst["image"],
          "limit": MAX_COLOUR_SHIFT, "mean_shift": mean("colour_shift_initial"),
          "images_over": [r["image"] for r in rows
                          if r["colour_shift_initial"] > MAX_COLOUR_SHIFT]}
    c3 = {"spectrum_db_sample": mean("spectrum_db_sample"),
          "spectrum_db_initial": mean("spectrum_db_initial")}
    c1["pass"] = c1["psnr_initial"] > c1["psnr_bicubic"]
    c2["pass"] = not c2["images_over"]
    c3["pass"] = c3["spectrum_db_sample"] < c3["spectrum_db_initial"]
    return {"1_initial_beats_bicubic": c1, "2_colour_shift": c2, "3_sample_spectrum": c3}


def no_worse_margin(decoder: str, metric: str, baseline: float) -> float:
    m = NO_WORSE_MARGIN[decoder].get(metric, 0.0)
    return m if metric in ABSOLUTE_MARGIN else m * abs(baseline)


def judge_held_back(candidate: dict, baseline: dict) -> dict:
    """Criterion 4: every metric of every decoder no worse for the candidate than the baseline
    by more than its margin (``no_worse_margin``)."""
    rows = []
    for decoder, metrics in candidate.items():
        for m, v in metrics.items():
            b = baseline[decoder][m]
            margin = no_worse_margin(decoder, m, b)
            ok = v >= b - margin if m in HIGHER_IS_BETTER else v <= b + margin
            rows.append({"decoder": decoder, "metric": m, "candidate": v, "baseline": b,
                         "margin": margin, "better": "higher" if m in HIGHER_IS_BETTER
                         else "lower", "pass": ok})
    return {"pass": all(r["pass"] for r in rows), "comparisons": rows}


# ---- measuring ---------------------------------------------------------------------------------


def load_photos(folder: str, size: int) -> tuple[list[str], torch.Tensor]:
    """Every image of ``folder``: largest centre square resized to ``size``, 8-bit levels.
    ImageError (naming the file) for an unreadable one; ImageError when there is none."""
    if not Path(folder).is_dir():
        raise ValueError(f"--data {folder}: no such image folder")
    return load_square_photos(folder, size)


@torch.no_grad()
def measure_model(model, x: torch.Tensor, names: list[str], steps: int, guidance: float,
                  seed: int, extractors: dict, device: str, progress: bool) -> dict:
    """Per-image numbers, D_Initial and samples (for the grid), and ``swycc eval``'s metrics."""
    from swycc.metrics.evaluate import evaluate_model

    x = x.to(device)
    initial = maths.quantized(torch.cat([model.reconstruct_initial(x[i:i + 8])
                                         for i in range(0, len(x), 8)]))
    g = torch.Generator(device=device).manual_seed(seed)
    sample = maths.quantized(torch.cat([model.reconstruct(x[i:i + 8], steps, guidance,
                                                          generator=g)
                                        for i in range(0, len(x), 8)]))
    shift, per_channel = colour_shift(initial, x)
    psnr_i, psnr_s = maths.psnr(initial, x), maths.psnr(sample, x)
    spec_i, spec_s = spectrum_distance(initial, x), spectrum_distance(sample, x)
    rows = [{"image": names[k], "psnr_initial": float(psnr_i[k]), "psnr_sample": float(psnr_s[k]),
             "colour_shift_initial": float(shift[k]),
             "colour_shift_rgb": [round(float(c), 4) for c in per_channel[k]],
             "spectrum_db_initial": float(spec_i[k]), "spectrum_db_sample": float(spec_s[k])}
            for k in range(len(names))]
    held = {}
    for decoder in ("initial", "sample"):
        ev = evaluate_model(model, x, list(HELD_BACK), extractors, steps=steps,
                            guidance=guidance, seed=seed, device=device, decoder=decoder,
                            progress=progress)
        held["D_Initial" if decoder == "initial" else "samples"] = ev["metrics"]
    return {"rows": rows, "held_back": held, "initial": initial.cpu(), "sample": sample.cpu()}


def ship_check(candidate: str, baseline: str, data: str, size: int = SIZE, steps: int = STEPS,
               guidance: float = GUIDANCE, seed: int = 0, device: str = "cpu",
               progress: bool = True) -> tuple[dict, dict]:
    """The report (JSON-ready) and the images for the grid; raises on bad input."""
    from swycc.autoencoders.base import Autoencoder, read_config, weights_file, weights_sha256
    from swycc.metrics.evaluate import load_extractors
    from swycc.autoencoders.kinds import get_kind
    from swycc.autoencoders.pretrained import display_path

    if size % FACTOR:
        raise ValueError(f"--size must be a multiple of {FACTOR}, got {size}")
    files = {"candidate": weights_file(candidate), "baseline": weights_file(baseline)}
    for role, f in files.items():
        kind = get_kind(read_config(f).model.method)  # CheckpointError names a bad file
        if not kind.samples or kind.initial_label != "D_Initial":
            raise ValueError(f"--{role} {f}: a {kind.name} model has no D_Initial and sampling "
                             f"decoder to check")
    names, x = load_photos(data, size)
    extractors = load_extractors(list(HELD_BACK), device=device)
    bicubic = maths.quantized(bicubic_from_eighth(x))
    psnr_b = maths.psnr(bicubic, x)
    measured, models, hashes = {}, {}, {}
    for role, f in files.items():
        hashes[role] = weights_sha256(f)
        same = [r for r in measured if hashes[r] == hashes[role]]
        model = Autoencoder.from_pretrained(f).to(device).eval()
        measured[role] = measured[same[0]] if same else measure_model(
            model, x, names, steps, guidance, seed, extractors, device, progress)
        for row, pb in zip(measured[role]["rows"], psnr_b):
            row["psnr_bicubic"] = float(pb)
        models[role] = {"checkpoint": display_path(f), "weights_sha256": hashes[role],
                        "method": model.kind, "trained_at": model.config.model.image_size,
                        "latent": f"{model.config.model.latent_channels} x "
                                  f"{size // model.config.model.encoder.downsample}^2",
                        "per_image": measured[role]["rows"],
                        "held_back": measured[role]["held_back"],
                        "criteria": judge_model(measured[role]["rows"])}
    c4 = judge_held_back(models["candidate"]["held_back"], models["baseline"]["held_back"])
    passed = all(c["pass"] for c in models["candidate"]["criteria"].values()) and c4["pass"]
    report = {"data": str(data), "images": len(names), "image_size": size, "steps": steps,
              "guidance": guidance, "seed": seed, "device": device,
              "definitions": DEFINITIONS, "candidate": models["candidate"],
              "baseline": models["baseline"], "4_held_back_no_worse": c4, "pass": passed,
              "exit_status": 0 if passed else EXIT_FAILED}
    images = {"original": x.cpu(), "bicubic": bicubic.cpu(),
              **{f"{r}_{k}": measured[r][k] for r in files for k in ("initial", "sample")}}
    return report, images


# ---- report ------------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summary_lines(report: dict) -> list[str]:
    """The PASS/FAIL lines, with numbers (printed, and the head of report.md)."""
    n = report["images"]
    lines = []
    for role in ("candidate", "baseline"):
        m = report[role]
        c1, c2, c3 = m["criteria"].values()
        lines += [f"{role}: {m['checkpoint']} ({m['method']}, trained at {m['trained_at']} px, "
                  f"latent {m['latent']})",
                  f"  [{_mark(c1['pass'])}] 1 D_Initial PSNR {c1['psnr_initial']:.2f} dB vs "
                  f"bicubic-from-1/8 {c1['psnr_bicubic']:.2f} dB (mean over {n} images; must "
                  f"be above)",
                  f"  [{_mark(c2['pass'])}] 2 D_Initial colour shift at most "
                  f"{c2['limit']:g} levels on every image: worst {c2['worst_shift']:.2f} "
                  f"({c2['worst_image']}), mean {c2['mean_shift']:.2f}; over the limit: "
                  f"{len(c2['images_over'])} of {n}",
                  f"  [{_mark(c3['pass'])}] 3 radial spectrum distance: samples "
                  f"({report['steps']} steps, w {report['guidance']:g}) "
                  f"{c3['spectrum_db_sample']:.2f} dB vs D_Initial "
                  f"{c3['spectrum_db_initial']:.2f} dB (mean; samples must be closer)"]
    c4 = report["4_held_back_no_worse"]
    worse = [f"{r['decoder']} {r['metric']} {r['candidate']:.4g} vs {r['baseline']:.4g}"
             for r in c4["comparisons"] if not r["pass"]]
    lines.append(f"[{_mark(c4['pass'])}] 4 held-back metrics (PSNR, SSIM, EffNet-Lite0 proxies "
                 f"of D_Initial and samples) no worse than the baseline's, within the margins "
                 f"in report.md"
                 + (f": worse: {'; '.join(worse)}" if worse else ""))
    lines.append(f"candidate: {_mark(report['pass'])} (exit status {report['exit_status']})")
    return lines


def markdown(report: dict) -> str:
    from swycc.metrics.evaluate import METRICS

    lines = [f"# ship-check: {report['images']} images of {report['data']} at "
             f"{report['image_size']} px", "", "```", *summary_lines(report), "```", "",
             "Definitions:", *[f"- {k}: {v}" for k, v in report["definitions"].items()], "",
             "| model | image | PSNR bicubic-1/8 | PSNR D_Initial | PSNR sample | colour shift "
             "D_Initial (R, G, B) | spectrum dB D_Initial | spectrum dB sample |",
             "|---|---|---|---|---|---|---|---|"]
    for role in ("candidate", "baseline"):
        for r in report[role]["per_image"]:
            rgb = ", ".join(f"{c:.2f}" for c in r["colour_shift_rgb"])
            lines.append(f"| {role} | {r['image']} | {r['psnr_bicubic']:.2f} | "
                         f"{r['psnr_initial']:.2f} | {r['psnr_sample']:.2f} | "
                         f"{r['colour_shift_initial']:.2f} ({rgb}) | "
                         f"{r['spectrum_db_initial']:.2f} | {r['spectrum_db_sample']:.2f} |")
    lines += ["", "| decoder | metric | candidate | baseline | margin | better | |",
              "|---|---|---|---|---|---|---|"]
    for r in report["4_held_back_no_worse"]["comparisons"]:
        lines.append(f"| {r['decoder']} | {METRICS[r['metric']][0]} | {r['candidate']:.4g} | "
                     f"{r['baseline']:.4g} | {r.get('margin', 0):.3g} | {r['better']} | "
                     f"{_mark(r['pass'])} |")
    return "\n".join(lines) + "\n"


__all__ = ["bicubic_from_eighth", "colour_shift", "judge_held_back", "judge_model",
           "no_worse_margin", "ship_check"]
