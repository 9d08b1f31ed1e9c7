"""ship-check's words: the PASS/FAIL lines (printed, and the head of report.md) and report.md's
tables, from the JSON-ready report of :func:`swycc.experiments.ship_check.ship_check`."""

from __future__ import annotations


def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def model_lines(report: dict, role: str, size: str) -> list[str]:
    """Criteria 1-3 of one model at one size, and what is reported beside them."""
    n, at = report["images"], report[role]["at"][size]
    c1, c2, c3 = at["criteria"].values()
    ge, cod = at["gradient_energy_ratio"], at["codecs"]
    codecs = "; ".join(f"{f.upper()} {_fmt(cod[f]['psnr'])} dB, spectrum "
                       f"{_fmt(cod[f]['spectrum_db'])} dB (quality {_fmt(cod[f]['quality'], '.1f')}"
                       f", {cod[f]['images_fit']} of {n} fit)" for f in ("jpeg", "webp"))
    return [f"  {size} px (latent {at['latent']}, {at['latent_bytes']} bytes in fp16):",
            f"    [{_mark(c1['pass'])}] 1 D_Initial PSNR {c1['psnr_initial']:.2f} dB vs "
            f"bicubic-from-1/8 {c1['psnr_bicubic']:.2f} dB: {c1['gain_db']:+.2f} dB (mean over "
            f"{n} images; must be at least +{c1['min_gain_db']:g})",
            f"    [{_mark(c2['pass'])}] 2 D_Initial colour shift at most {c2['limit']:g} levels "
            f"on every image: worst {c2['worst_shift']:.2f} ({c2['worst_image']}), mean "
            f"{c2['mean_shift']:.2f}; over the limit: {len(c2['images_over'])} of {n}",
            f"    [{_mark(c3['pass'])}] 3 radial spectrum distance: samples ({report['steps']} "
            f"steps, w {report['guidance']:g}) {c3['spectrum_db_sample']:.2f} dB vs D_Initial "
            f"{c3['spectrum_db_initial']:.2f} dB (mean; samples must be closer)",
            f"    beside: gradient-energy ratio samples {ge['samples']:.3f}, D_Initial "
            f"{ge['D_Initial']:.3f}; at the latent's bytes: {codecs}"]


def summary_lines(report: dict) -> list[str]:
    """The PASS/FAIL lines, with numbers."""
    lines = []
    for role in ("candidate", "baseline"):
        m = report[role]
        lines.append(f"{role}: {m['checkpoint']} ({m['method']}, trained at {m['trained_at']} "
                     f"px, {m['latent_channels']} latent channels)")
        for size in m["at"]:
            lines += model_lines(report, role, size)
    for size, c4 in report["4_held_back_no_worse"].items():
        worse = [f"{r['decoder']} {r['metric']} {r['candidate']:.4g} vs {r['baseline']:.4g}"
                 + (f" (difference {r['difference']:+.3g} +- {r['difference_se']:.3g} jackknife "
                    f"SE over the images)" if "difference_se" in r else "")
                 for r in c4["comparisons"] if not r["pass"]]
        lines.append(f"[{_mark(c4['pass'])}] 4 at {size} px: held-back metrics (PSNR, SSIM, "
                     f"EffNet-Lite0 proxies of D_Initial and samples) no worse than the "
                     f"baseline's, within the margins in report.md"
                     + (f": worse: {'; '.join(worse)}" if worse else ""))
    lines.append(f"candidate: {_mark(report['pass'])} (exit status {report['exit_status']})")
    return lines


def _image_table(report: dict) -> list[str]:
    lines = ["| model | px | image | PSNR bicubic-1/8 | PSNR D_Initial | PSNR sample | PSNR JPEG "
             "| PSNR WebP | colour shift D_Initial (signed R, G, B) | spectrum dB D_Initial | "
             "spectrum dB sample |", "|---" * 11 + "|"]
    for role in ("candidate", "baseline"):
        for size, at in report[role]["at"].items():
            jpeg, webp = (at["codecs"][f]["per_image"] for f in ("jpeg", "webp"))
            for k, r in enumerate(at["per_image"]):
                rgb = ", ".join(f"{c:+.2f}" for c in r["colour_shift_rgb"])
                codec = [_fmt(c[k]["psnr"]) if c[k] else "-" for c in (jpeg, webp)]
                lines.append(f"| {role} | {size} | {r['image']} | {r['psnr_bicubic']:.2f} | "
                             f"{r['psnr_initial']:.2f} | {r['psnr_sample']:.2f} | "
                             f"{codec[0]} | {codec[1]} | {r['colour_shift_initial']:.2f} ({rgb}) "
                             f"| {r['spectrum_db_initial']:.2f} | {r['spectrum_db_sample']:.2f} |")
    return lines


def markdown(report: dict) -> str:
    from swycc.metrics.evaluate import METRICS

    sizes = " and ".join(str(s) for s in report["sizes"])
    lines = [f"# ship-check: {report['images']} images of {report['data']} at {sizes} px", "",
             "```", *summary_lines(report), "```", "",
             "Definitions:", *[f"- {k}: {v}" for k, v in report["definitions"].items()], "",
             *_image_table(report), "",
             "| px | decoder | metric | candidate | baseline | margin | difference +- jackknife "
             "SE | better | |", "|---" * 9 + "|"]
    for size, c4 in report["4_held_back_no_worse"].items():
        for r in c4["comparisons"]:
            diff = f"{r['candidate'] - r['baseline']:+.3g}" + (
                f" +- {r['difference_se']:.3g}" if "difference_se" in r else "")
            lines.append(f"| {size} | {r['decoder']} | {METRICS[r['metric']][0]} | "
                         f"{r['candidate']:.4g} | {r['baseline']:.4g} | {r['margin']:.3g} | "
                         f"{diff} | {r['better']} | {_mark(r['pass'])} |")
    return "\n".join(lines) + "\n"


__all__ = ["markdown", "model_lines", "summary_lines"]
