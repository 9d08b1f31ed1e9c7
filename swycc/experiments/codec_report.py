"""The codec experiment's report: per-photo records (``swycc.experiments.codec``) aggregated into
curves and matched-rate rows, written as results.json, results.md, rate-distortion.png and
rate-perception.png.

Over the photos of one size, a point (a method at one setting) gets the mean bits per pixel, the
means of PSNR, SSIM, the perceptual distance and the spectrum distance, the gradient-energy ratio
sum E(y) / sum E(x), and the two distribution proxies between the reconstructions' and the
photos' EffNet-Lite0 features (FD and MMD; with few photos these are noisy, see docs/codec.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PAIRED = ("psnr", "ssim", "perceptual_effnetlite0", "spectrum_distance_db")
POINT_METRICS = PAIRED + ("gradient_energy_ratio", "fd_effnetlite0", "mmd_effnetlite0")
LABELS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "perceptual_effnetlite0": "perceptual ↓",
          "spectrum_distance_db": "spectrum dist. (dB) ↓",
          "gradient_energy_ratio": "grad-energy ratio (1 = as sharp)",
          "fd_effnetlite0": "FD EffNet-Lite0 ↓", "mmd_effnetlite0": "MMD EffNet-Lite0 ↓"}
DISTORTION = ("psnr", "ssim")
PERCEPTION = ("perceptual_effnetlite0", "fd_effnetlite0", "mmd_effnetlite0",
              "spectrum_distance_db", "gradient_energy_ratio")
BPP_TICKS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
PERCEPTUAL_GOALS = ("spectrum_distance_db", "fd_effnetlite0", "mmd_effnetlite0",
                    "perceptual_effnetlite0")


def frechet_distance_few(fy: np.ndarray, fx: np.ndarray) -> float:
    """The Frechet distance between Gaussians fitted to feature rows fy, fx ((n, d) each,
    unbiased covariances), exact and fast when n << d:

        FD = ||mu_y - mu_x||^2 + Tr S_y + Tr S_x - 2 Tr (S_y S_x)^(1/2),

    with S = A A^T / (n - 1) for the centred rows A (d x n): the nonzero eigenvalues of S_y S_x
    are the squared singular values of M = A_y^T A_x / (n - 1), so Tr (S_y S_x)^(1/2) is the sum
    of M's singular values (an n x n SVD instead of a d x d matrix square root)."""
    if fy.shape != fx.shape or fy.shape[0] < 2:
        raise ValueError(f"need two (n >= 2, d) feature sets of one shape, got {fy.shape}, "
                         f"{fx.shape}")
    ay, ax = fy - fy.mean(0), fx - fx.mean(0)
    k = fy.shape[0] - 1
    diff = fy.mean(0) - fx.mean(0)
    cross = np.linalg.svd(ay @ ax.T / k, compute_uv=False).sum()
    return float(diff @ diff + (ay * ay).sum() / k + (ax * ax).sum() / k - 2 * cross)


def point(entries: list[tuple[float, dict, np.ndarray, float, np.ndarray]]) -> dict:
    """entries: per photo (bpp, scores, features, original gradient energy, original features)."""
    import torch

    from swycc.metrics import maths

    bpp = [e[0] for e in entries]
    out = {"bpp": float(np.mean(bpp)), "bpp_min": float(min(bpp)), "bpp_max": float(max(bpp)),
           "n": len(entries)}
    for m in PAIRED:
        out[m] = float(np.mean([e[1][m] for e in entries]))
    out["gradient_energy_ratio"] = (sum(e[1]["gradient_energy"] for e in entries)
                                    / sum(e[3] for e in entries))
    fy = np.stack([e[2] for e in entries])
    fx = np.stack([e[4] for e in entries])
    out["fd_effnetlite0"] = frechet_distance_few(fy, fx)
    out["mmd_effnetlite0"] = maths.mmd2_rbf(maths.l2_normalize(torch.from_numpy(fy)),
                                            maths.l2_normalize(torch.from_numpy(fx)))
    return out


def _orig(rec: dict, feats: dict) -> tuple[float, np.ndarray]:
    return rec["original"]["gradient_energy"], feats["original|0"]


def aggregate(items: list, qualities: list[int], codecs: list[str],
              swycc_methods: list[str]) -> dict:
    """items: (name, record, features) per photo of one size -> {"curves", "matched"}."""
    curves, matched = {}, {}
    for method in swycc_methods:
        curves[method] = []
        for q in qualities:
            es = [(r["swycc"][str(q)]["bpp"], r["swycc"][str(q)][method], f[f"{method}|{q}"],
                   *_orig(r, f)) for _, r, f in items]
            curves[method].append({"setting": q, **point(es)})
    for codec in codecs:
        common = set.intersection(*(set(r["baselines"][codec]["curve"]) for _, r, _ in items))
        curves[codec] = []
        for cq in sorted(common):
            es = [(r["baselines"][codec]["rows"][str(cq)]["bpp"],
                   r["baselines"][codec]["rows"][str(cq)], f[f"{codec}|{cq}"], *_orig(r, f))
                  for _, r, f in items]
            curves[codec].append({"setting": cq, **point(es)})
    for q in qualities:
        rows = {m: next(p for p in curves[m] if p["setting"] == q) for m in swycc_methods}
        for codec in codecs:
            es, settings = [], []
            for _, r, f in items:
                b = r["baselines"][codec]
                cq = b["matched"][str(q)]
                settings.append(cq)
                es.append((b["rows"][str(cq)]["bpp"], b["rows"][str(cq)], f[f"{codec}|{cq}"],
                           *_orig(r, f)))
            rows[codec] = {"setting": settings, **point(es)}
        matched[str(q)] = rows
    return {"curves": curves, "matched": matched}


def wins(matched: dict, ours: str, others: list[str]) -> dict:
    """Per matched quality and perceptual goal metric (lower is better for all four): the
    baselines among ``others`` that ``ours`` beats."""
    return {q: {m: [o for o in others if o in rows and rows[ours][m] < rows[o][m]]
                for m in PERCEPTUAL_GOALS}
            for q, rows in matched.items() if ours in rows}


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = ["# codec: swycc against JPEG, WebP and AVIF", "",
             f"Model {meta['checkpoint']} ({meta['method']}, weights sha256 "
             f"{meta['weights_sha256'][:12]}); photos of {meta['data']}, largest centre square "
             f"resized, 8-bit; swycc samples: {meta['decode_steps']} DDIM steps, guidance "
             f"{meta['guidance_used']:g}, seed {meta['seed']}; device {meta['device']}. Bits per "
             f"pixel are counted from the files (headers included). FD and MMD compare the "
             f"reconstructions' EffNet-Lite0 features with the photos' (offline proxies).", ""]
    ex = meta.get("examples")
    if ex:
        cells = "; ".join(f"Q{q}: " + ", ".join(f"{m} {v:.3f}" for m, v in row.items())
                          for q, row in ex["bpp"].items())
        lines += [f"examples.png: {ex['photo']} at {ex['size']} px; columns: the photo, then "
                  f"each method at matched rate; bits per pixel: {cells}.", ""]
    for size, res in report["sizes"].items():
        n = res["photos"]
        lines += [f"## {size} px ({n} photos)", "",
                  "Matched rate: each baseline at the quality whose file is nearest the .swyc "
                  "file's size, photo by photo.", ""]
        head = ["swycc Q", "method", "bpp", *[LABELS[m] for m in POINT_METRICS]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for q, rows in res["matched"].items():
            for method, p in rows.items():
                cells = [q, method, f"{p['bpp']:.3f}"] + [f"{p[m]:.4g}" for m in POINT_METRICS]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for ours, w in res["wins"].items():
            lines.append(f"Baselines {ours} beats at matched rate (lower is better): " +
                         "; ".join(f"Q{q}: " + ", ".join(f"{LABELS[m].split(' ')[0]} "
                                                          f"{'/'.join(v) or 'none'}"
                                                          for m, v in ws.items())
                                   for q, ws in w.items()) + ".")
            lines.append("")
        lines += ["Curves (every baseline quality under the bpp cap, means over the photos):",
                  "", "| method | setting | bpp | PSNR | SSIM | spectrum | FD | MMD |",
                  "|---|---|---|---|---|---|---|---|"]
        for method, pts in res["curves"].items():
            for p in pts:
                lines.append(f"| {method} | {p['setting']} | {p['bpp']:.3f} | {p['psnr']:.2f} | "
                             f"{p['ssim']:.3f} | {p['spectrum_distance_db']:.2f} | "
                             f"{p['fd_effnetlite0']:.4g} | {p['mmd_effnetlite0']:.4g} |")
        lines.append("")
    return "\n".join(lines)


def plot(report: dict, path: Path, metrics: tuple[str, ...]) -> None:
    """One row per size, one panel per metric: each method's curve against bpp (log axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from swycc.io.visual import save_figure

    sizes = list(report["sizes"])
    fig, axes = plt.subplots(len(sizes), len(metrics), squeeze=False,
                             figsize=(3.3 * len(metrics), 3.0 * len(sizes)))
    styles = {"swycc-samples": ("tab:red", "o", "-"), "swycc-initial": ("tab:orange", "s", "--"),
              "jpeg": ("tab:blue", ".", "-"), "webp": ("tab:green", ".", "-"),
              "avif": ("tab:purple", ".", "-")}
    for row, size in zip(axes, sizes):
        for ax, m in zip(row, metrics):
            for method, pts in report["sizes"][size]["curves"].items():
                color, marker, ls = styles.get(method, ("k", ".", "-"))
                ax.plot([p["bpp"] for p in pts], [p[m] for p in pts], color=color,
                        marker=marker, ls=ls, label=method, ms=4)
            if m == "gradient_energy_ratio":
                ax.axhline(1.0, color="k", lw=0.8, ls=":")
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(BPP_TICKS, [f"{t:g}" for t in BPP_TICKS])
            ax.set_xlabel("bits per pixel")
            ax.set_title(f"{LABELS[m]}, {size} px", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path)


def write_report(meta: dict, items: dict, out) -> dict:
    from swycc.experiments.runner import write_json
    from swycc.io.outputs import write_text_atomic

    out = Path(out)
    sizes = {}
    for size, its in items.items():
        res = aggregate(its, list(meta["qualities"]), meta["codecs"], meta["swycc_methods"])
        res["photos"] = len(its)
        res["photo_names"] = [name for name, _, _ in its]
        res["wins"] = {m: wins(res["matched"], m, meta["codecs"])
                       for m in meta["swycc_methods"]}
        sizes[str(size)] = res
    report = {"experiment": "codec", "meta": meta, "sizes": sizes}
    write_json(out / "results.json", report)
    write_text_atomic(out / "results.md", markdown(report))
    plot(report, out / "rate-distortion.png", DISTORTION)
    plot(report, out / "rate-perception.png", PERCEPTION)
    return report


__all__ = ["aggregate", "markdown", "plot", "point", "write_report"]
