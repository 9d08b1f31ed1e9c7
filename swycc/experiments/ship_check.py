"""``swycc ship-check``: may a candidate model replace the shipped one?

    swycc ship-check --candidate runs/x/export --data /work/photoset/test --out runs/ship

Measured on whole photos kept out of training (e.g. ``swycc photoset``'s ``test/``): each image's
largest centre square, resized to each of ``--sizes`` (default 128 and 256 px, both in one run;
models trained on smaller crops decode it whole: they are convolutional), quantised to 8 bits
like every reconstruction before any number. Criteria, each PASS/FAIL with its numbers, for both
models at every size (the maths: ``swycc.metrics.photo``):

1. D_Initial beats bicubic-from-1/8 by ``MIN_GAIN_DB`` (2.0 dB): mean PSNR of D_Initial at least
   that far above the bicubic baseline's (each 8x8 patch averaged to its mean colour, i.e. area
   downsampling by 8: 3 numbers per patch; then bicubic upsampling back to full size).
2. Colour: D_Initial's colour shift is at most 2 levels (of 255) on EVERY image. Colour shift of
   an image: per RGB channel the signed error mean(reconstruction) - mean(original) in 8-bit
   levels; the largest magnitude of the three.
3. Texture: samples (20 DDIM steps, guidance 0.5) are closer to the original's radial power
   spectrum than D_Initial is (``swycc.metrics.spectrum``, dB, mean over images).
4. The held-back metrics of ``swycc eval`` (PSNR, SSIM and the EfficientNet-Lite0 proxies, of
   D_Initial and of the samples) are no worse for the candidate than for the baseline, up to a
   non-inferiority margin (``NO_WORSE_MARGIN``). D_Initial is deterministic: 0.1 dB PSNR, 0.005
   SSIM, 2% of the baseline's value for the proxies. The samples' margins are their measured
   seed-to-seed spread on 4 held-out photos (the shipped model, seeds 0-2: PSNR 24.15-24.53 dB,
   SSIM 0.664-0.677, perceptual +-1.1%, FD 347-365, MMD 3.88-4.39): 0.4 dB, 0.015 SSIM, and 3%
   / 6% / 15% for perceptual / FD / MMD. Without them a model equal to the baseline would fail
   on the sampling noise of a handful of photos. Reported beside each comparison, not part of
   the verdict: the jackknife standard error of the difference over the images (leave one image
   out, both models), i.e. how much of a difference the choice of photos alone could make; on
   the 10 test photos at 256 px the f8c4 D_Initial's MMD proxy is 0.265 above f8c2's with an
   error of 0.197, against a margin of 0.023.

Reported beside them, not criteria: JPEG and WebP at each model's latent size in bytes (fp16:
C x H/8 x W/8 x 2; the Pillow quality whose file is the largest not above it,
``swycc.metrics.codecs``), their PSNR and spectrum distance; the gradient-energy ratio of
samples and of D_Initial to the originals.

The candidate passes when it meets 1-4 at every size. Writes report.json, report.md and grid.png
(at the first size; rows: images; columns: original | bicubic-1/8 | D_Initial and sample of each
model). Exit status: 0 the candidate passes every criterion; 1 it fails at least one (the report
is still written); 2 bad input (nothing written).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from swycc.metrics import maths
from swycc.metrics.codecs import FORMATS, codec_at_bytes
from swycc.metrics.photo import (FACTOR, bicubic_from_eighth, colour_shift,
                                 gradient_energy_ratio, latent_bytes, load_square_photos)
from swycc.metrics.spectrum import spectrum_distance

EXIT_FAILED = 1
SIZES = (128, 256)
MIN_GAIN_DB = 2.0  # criterion 1: D_Initial's mean PSNR at least this far above bicubic's
MAX_COLOUR_SHIFT = 2.0  # levels of 255
STEPS, GUIDANCE = 20, 0.5
BATCH = 8
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
    "colour_shift": "per RGB channel the signed error mean over pixels of the reconstruction - "
                    "mean over pixels of the original, in 8-bit levels (0-255), both quantised "
                    "to 8 bits; the image's colour shift is the largest magnitude of the three",
    "spectrum_distance_db": "RMS over radius bins of the dB difference of the radially averaged "
                            "power spectra (swycc.metrics.spectrum)",
    "gradient_energy_ratio": "sum over the images of the reconstructions' gradient energy over "
                             "the originals' (1: as sharp; below 1 blurrier)",
    "difference_se": "criterion 4's jackknife standard error of candidate - baseline over the "
                     "images: sqrt((N-1)/N sum_i (d_i - mean d)^2), d_i the difference with image "
                     "i left out of both models' metric; reported, not part of the verdict",
    "jpeg/webp": "Pillow, default settings, the quality (0-100) whose file is the largest not "
                 "above the model's fp16 latent size (C x H/8 x W/8 x 2 bytes); an image no "
                 "quality fits is left out of the means",
}

__all__ = ["bicubic_from_eighth", "colour_shift", "codec_rows", "judge_held_back", "judge_model",
           "measure_decoders", "no_worse_margin", "photo_rows", "ship_check"]


# ---- the judgement -----------------------------------------------------------------------------


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def judge_model(rows: list[dict]) -> dict:
    """Criteria 1-3 of one model at one size from its per-image rows (psnr_bicubic,
    psnr_initial, colour_shift_initial, spectrum_db_initial, spectrum_db_sample)."""
    worst = max(rows, key=lambda r: r["colour_shift_initial"])
    c1 = {"psnr_initial": _mean(rows, "psnr_initial"), "psnr_bicubic": _mean(rows, "psnr_bicubic"),
          "min_gain_db": MIN_GAIN_DB}
    c1["gain_db"] = c1["psnr_initial"] - c1["psnr_bicubic"]
    c2 = {"worst_shift": worst["colour_shift_initial"], "worst_image": worst["image"],
          "limit": MAX_COLOUR_SHIFT, "mean_shift": _mean(rows, "colour_shift_initial"),
          "images_over": [r["image"] for r in rows
                          if r["colour_shift_initial"] > MAX_COLOUR_SHIFT]}
    c3 = {"spectrum_db_sample": _mean(rows, "spectrum_db_sample"),
          "spectrum_db_initial": _mean(rows, "spectrum_db_initial")}
    c1["pass"] = c1["psnr_initial"] >= c1["psnr_bicubic"] + MIN_GAIN_DB
    c2["pass"] = not c2["images_over"]
    c3["pass"] = c3["spectrum_db_sample"] < c3["spectrum_db_initial"]
    return {"1_initial_beats_bicubic": c1, "2_colour_shift": c2, "3_sample_spectrum": c3}


def no_worse_margin(decoder: str, metric: str, baseline: float) -> float:
    m = NO_WORSE_MARGIN[decoder].get(metric, 0.0)
    return m if metric in ABSOLUTE_MARGIN else m * abs(baseline)


def judge_held_back(candidate: dict, baseline: dict, candidate_loo: dict | None = None,
                    baseline_loo: dict | None = None) -> dict:
    """Criterion 4: every metric of every decoder no worse for the candidate than the baseline
    by more than its margin (``no_worse_margin``); metrics one model lacks are not compared.
    With both models' leave-one-out replicates (same images), each comparison also reports the
    jackknife standard error of the difference candidate - baseline (``difference_se``): how
    much the verdict owes to the choice of images. Reported only; the verdict is the margin's."""
    from swycc.metrics.reconstructions import jackknife_se

    rows = []
    for decoder, metrics in candidate.items():
        for m, v in metrics.items():
            if m not in baseline.get(decoder, {}):
                continue
            b = baseline[decoder][m]
            margin = no_worse_margin(decoder, m, b)
            ok = v >= b - margin if m in HIGHER_IS_BETTER else v <= b + margin
            row = {"decoder": decoder, "metric": m, "candidate": v, "baseline": b,
                   "difference": v - b, "margin": margin,
                   "better": "higher" if m in HIGHER_IS_BETTER else "lower", "pass": ok}
            c_reps = (candidate_loo or {}).get(decoder, {}).get(m)
            b_reps = (baseline_loo or {}).get(decoder, {}).get(m)
            if c_reps and b_reps and len(c_reps) == len(b_reps):
                se = jackknife_se([c - d for c, d in zip(c_reps, b_reps)])
                if math.isfinite(se):  # not for a perfect decoder's infinite PSNR
                    row["difference_se"] = se
            rows.append(row)
    return {"pass": all(r["pass"] for r in rows), "comparisons": rows}


# ---- measuring ---------------------------------------------------------------------------------


def load_photos(folder: str, size: int) -> tuple[list[str], torch.Tensor]:
    """Every image of ``folder``: largest centre square resized to ``size``, 8-bit levels.
    ImageError (naming the file) for an unreadable one; ImageError when there is none."""
    if not Path(folder).is_dir():
        raise ValueError(f"--data {folder}: no such image folder")
    return load_square_photos(folder, size)


def photo_rows(names: list[str], x: torch.Tensor, initial: torch.Tensor,
               sample: torch.Tensor) -> list[dict]:
    """Per image: PSNR of bicubic-from-1/8, D_Initial and the sample; D_Initial's colour shift
    (and each channel's signed error); the spectrum distances of D_Initial and the sample.
    All images 8-bit quantised (N, 3, H, W) in [-1, 1]."""
    bicubic = maths.quantized(bicubic_from_eighth(x))
    shift, signed = colour_shift(initial, x)
    psnr_b, psnr_i, psnr_s = (maths.psnr(y, x) for y in (bicubic, initial, sample))
    spec_i, spec_s = spectrum_distance(initial, x), spectrum_distance(sample, x)
    return [{"image": names[k], "psnr_bicubic": float(psnr_b[k]),
             "psnr_initial": float(psnr_i[k]), "psnr_sample": float(psnr_s[k]),
             "colour_shift_initial": float(shift[k]),
             "colour_shift_rgb": [round(float(c), 4) for c in signed[k]],
             "spectrum_db_initial": float(spec_i[k]), "spectrum_db_sample": float(spec_s[k])}
            for k in range(len(names))]


def codec_rows(x: torch.Tensor, budget: int) -> dict:
    """JPEG and WebP of every image at ``budget`` bytes: per format the per-image quality,
    bytes, PSNR and spectrum distance (None where no quality fits) and their means."""
    out = {"budget_bytes": budget}
    for fmt in FORMATS:
        coded = codec_at_bytes(x, fmt, budget)
        per_image = []
        for k, c in enumerate(coded):
            if c is None:
                per_image.append(None)
                continue
            y, ref = c["image"][None], x[k:k + 1].cpu()
            per_image.append({"quality": c["quality"], "bytes": c["bytes"],
                              "psnr": float(maths.psnr(y, ref)[0]),
                              "spectrum_db": float(spectrum_distance(y, ref)[0])})
        fit = [r for r in per_image if r is not None]
        out[fmt] = {"per_image": per_image, "images_fit": len(fit),
                    **{k: (_mean(fit, k) if fit else None)
                       for k in ("quality", "bytes", "psnr", "spectrum_db")}}
    return out


def measure_decoders(names: list[str], x: torch.Tensor, initial: torch.Tensor,
                     sample: torch.Tensor, extractors: dict) -> dict:
    """Everything ship-check reads off one model's reconstructions at one size: the per-image
    rows, criteria 1-3, the held-back metrics and the gradient-energy ratios."""
    from swycc.metrics.reconstructions import score_reconstructions, score_with_leave_one_out

    rows = photo_rows(names, x, initial, sample)
    held_back, replicates = {}, {}
    for decoder, y in (("D_Initial", initial), ("samples", sample)):
        if len(x) >= 3:  # a jackknife needs two images left in each replicate
            held_back[decoder], replicates[decoder] = score_with_leave_one_out(
                y, x, list(HELD_BACK), extractors)
        else:
            held_back[decoder] = score_reconstructions(y, x, list(HELD_BACK), extractors)
    return {"per_image": rows, "criteria": judge_model(rows), "held_back": held_back,
            "held_back_leave_one_out": replicates,
            "gradient_energy_ratio": {"D_Initial": gradient_energy_ratio(initial, x),
                                      "samples": gradient_energy_ratio(sample, x)}}


@torch.no_grad()
def decode_both(model, x: torch.Tensor, steps: int, guidance: float, seed: int, device: str,
                bar=None) -> tuple[torch.Tensor, torch.Tensor]:
    """D_Initial and one sample of every image, in batches of ``BATCH``, 8-bit quantised."""
    x = x.to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    initial, sample = [], []
    for i in range(0, len(x), BATCH):
        initial.append(model.reconstruct_initial(x[i:i + BATCH]))
        sample.append(model.reconstruct(x[i:i + BATCH], steps, guidance, generator=g))
        if bar is not None:
            bar.update(len(x[i:i + BATCH]))
    return (maths.quantized(torch.cat(initial)).cpu(), maths.quantized(torch.cat(sample)).cpu())


def _check_models(files: dict) -> None:
    from swycc.autoencoders.base import read_config
    from swycc.autoencoders.kinds import get_kind

    for role, f in files.items():
        kind = get_kind(read_config(f).model.method)  # CheckpointError names a bad file
        if not kind.samples or kind.initial_label != "D_Initial":
            raise ValueError(f"--{role} {f}: a {kind.name} model has no D_Initial and sampling "
                             f"decoder to check")


def ship_check(candidate: str, baseline: str, data: str, sizes: tuple[int, ...] = SIZES,
               steps: int = STEPS, guidance: float = GUIDANCE, seed: int = 0,
               device: str = "cpu", progress: bool = True) -> tuple[dict, dict]:
    """The report (JSON-ready) and the images for the grid (first size); raises on bad
    input before any work."""
    from tqdm import tqdm

    from swycc.autoencoders.base import Autoencoder, weights_file, weights_sha256
    from swycc.autoencoders.pretrained import display_path
    from swycc.metrics.evaluate import load_extractors

    sizes = tuple(dict.fromkeys(sizes))
    if not sizes or any(s % FACTOR or s < FACTOR for s in sizes):
        raise ValueError(f"--sizes must be multiples of {FACTOR}, got {list(sizes)}")
    files = {"candidate": weights_file(candidate), "baseline": weights_file(baseline)}
    _check_models(files)
    photos = {s: load_photos(data, s) for s in sizes}
    names = photos[sizes[0]][0]
    extractors = load_extractors(list(HELD_BACK), device=device)
    hashes = {role: weights_sha256(f) for role, f in files.items()}
    roles = [r for r in files if r == "candidate" or hashes[r] != hashes["candidate"]]
    models, decoded, codecs = {}, {}, {}
    bar = tqdm(total=len(roles) * len(sizes) * len(names), unit="img", desc="ship-check",
               disable=not progress, leave=False)
    for role in roles:
        model = Autoencoder.from_pretrained(files[role]).to(device).eval()
        c, ds = model.config.model.latent_channels, model.config.model.encoder.downsample
        models[role] = {"checkpoint": display_path(files[role]), "weights_sha256": hashes[role],
                        "method": model.kind, "trained_at": model.config.model.image_size,
                        "latent_channels": c, "at": {}}
        for s in sizes:
            x = photos[s][1]
            decoded[role, s] = decode_both(model, x, steps, guidance, seed, device, bar)
            budget = latent_bytes(c, s, s, ds)
            if (s, budget) not in codecs:
                codecs[s, budget] = codec_rows(x, budget)
            models[role]["at"][str(s)] = {
                "latent": f"{c} x {s // ds}^2", "latent_bytes": budget,
                **measure_decoders(names, x, *decoded[role, s], extractors),
                "codecs": codecs[s, budget]}
        del model
    bar.close()
    if "baseline" not in models:  # the same weights: measured once
        models["baseline"] = {**models["candidate"], "checkpoint": display_path(files["baseline"])}
        decoded.update({("baseline", s): decoded["candidate", s] for s in sizes})
    at = {role: models[role]["at"] for role in ("candidate", "baseline")}
    c4 = {str(s): judge_held_back(at["candidate"][str(s)]["held_back"],
                                  at["baseline"][str(s)]["held_back"],
                                  at["candidate"][str(s)]["held_back_leave_one_out"],
                                  at["baseline"][str(s)]["held_back_leave_one_out"])
          for s in sizes}
    passed = all(c["pass"] for at in models["candidate"]["at"].values()
                 for c in at["criteria"].values()) and all(c["pass"] for c in c4.values())
    report = {"data": str(data), "images": len(names), "sizes": list(sizes), "steps": steps,
              "guidance": guidance, "seed": seed, "device": device,
              "definitions": DEFINITIONS, "candidate": models["candidate"],
              "baseline": models["baseline"], "4_held_back_no_worse": c4, "pass": passed,
              "exit_status": 0 if passed else EXIT_FAILED}
    s0, x0 = sizes[0], photos[sizes[0]][1]
    images = {"original": x0, "bicubic": maths.quantized(bicubic_from_eighth(x0)),
              **{f"{r}_{k}": decoded[r, s0][i] for r in ("candidate", "baseline")
                 for i, k in enumerate(("initial", "sample"))}}
    return report, images
