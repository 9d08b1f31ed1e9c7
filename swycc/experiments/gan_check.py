"""``gan-check``: is the GAN baseline a GAN? The GAN autoencoder against the same autoencoder with
the adversarial term off (``loss.adversarial_weight=0``: the same decoder trained on MSE +
perceptual only), on the same data, steps and seed, scored for sharpness on held-back images.

Sharpness, on 8-bit reconstructions y of originals x (the measures of ``swycc distill-report``,
``swycc.distill.report.score``):

- gradient-energy ratio  G = mean_i E(y_i) / mean_i E(x_i), E = mean squared finite difference
  (``swycc.io.visual.gradient_energy``): 1 keeps the originals' edges, < 1 blurs them;
- radial power-spectrum distance d (dB, ``swycc.metrics.spectrum``), lower is closer.

The GAN counts as measurably sharper when |G_gan - 1| < |G_off - 1|, mean d_gan < mean d_off,
and d_gan < d_off on more than half of the images (paired). Each arm's row also keeps the GAN
training state from its metrics.jsonl: the final adaptive weight lambda_adv and D's mean logits.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import torch

from swycc.config import Config, LossConfig, override
from swycc.autoencoders.kinds import with_method
from swycc.experiments.runner import Arm

GAN_ARM, OFF_ARM = "gan", "gan-no-adv"
GAN_LOG_KEYS = ("adv_weight", "d_logit_real", "d_logit_fake", "loss_d")
OLDER_LOG_NAMES = {"d_real": "d_logit_real", "d_fake": "d_logit_fake"}  # runs before the rename
# loss fields that act only through the adversarial term; the off arm keeps their defaults, so
# its config (and run) stays the same while the GAN arm's recipe is tuned
_ADVERSARIAL_ONLY = ("adversarial_start", "adaptive_adversarial_weight", "gan_loss",
                     "lecam_weight", "lecam_decay", "disc_lr_scale", "r1_weight")
SHARPNESS_KEYS = ("gradient_energy_ratio", "spectrum_distance_db", "high_band_power_ratio")
DISTRIBUTION_PROXIES = ("fd_effnetlite0", "mmd_effnetlite0")


def gan_check_arms(base: Config, **_) -> list[Arm]:
    gan = with_method(base, "gan")
    off = override(gan, "loss.adversarial_weight", 0.0)
    defaults = LossConfig()
    names = {f.name for f in fields(LossConfig)}
    for name in _ADVERSARIAL_ONLY:
        if name in names:
            off = override(off, f"loss.{name}", getattr(defaults, name))
    return [Arm(GAN_ARM, gan, {"adversarial": "on"}),
            Arm(OFF_ARM, off, {"adversarial": "off"})]


@torch.no_grad()
def sharpness_extras(model, run_dir: Path, dataset, num_images: int, device: str) -> dict:
    """Sharpness of one arm's deterministic reconstructions, per image and over the set, and
    the GAN state its training logged."""
    from swycc.distill.report import score
    from swycc.metrics.evaluate import image_batches
    from swycc.metrics.maths import quantized
    from swycc.metrics.spectrum import spectrum_distance
    from swycc.io.visual import gradient_energy

    xs = list(image_batches(dataset, num_images, 16))  # each held-back image read once
    ys = [model.reconstruct_initial(xb.to(device)).cpu() for xb in xs]
    y, x = quantized(torch.cat(ys)), quantized(torch.cat(xs))
    overall = score(y, x, {}, [])
    per_image = {"gradient_energy_ratio": (gradient_energy(y) / gradient_energy(x)).tolist(),
                 "spectrum_distance_db": spectrum_distance(y, x).tolist()}
    return {"sharpness": {k: overall[k] for k in SHARPNESS_KEYS},
            "per_image": per_image, "gan_state": gan_state(run_dir / "metrics.jsonl")}


def gan_state(metrics_path: Path, last: int = 10, curve_points: int = 200) -> dict:
    """From a run's metrics.jsonl: the last logged adversarial values, their means over the
    ``last`` records that hold them, and a subsampled curve of each over the steps."""
    recs = []
    if metrics_path.is_file():
        recs = [json.loads(ln) for ln in metrics_path.read_text().splitlines() if ln.strip()]
    recs = [{OLDER_LOG_NAMES.get(k, k): v for k, v in r.items()} for r in recs
            if "adv_weight" in r]
    if not recs:
        return {"adversarial_records": 0}
    stride = max(1, len(recs) // curve_points)
    keys = [k for k in GAN_LOG_KEYS if k in recs[-1]]
    return {"adversarial_records": len(recs), "first_step": recs[0]["step"],
            "final_step": recs[-1]["step"], "final": {k: recs[-1][k] for k in keys},
            f"mean_last_{last}": {k: sum(r[k] for r in recs[-last:]) / len(recs[-last:])
                                  for k in keys},
            "curve": {"step": [r["step"] for r in recs[::stride]],
                      **{k: [r[k] for r in recs[::stride]] for k in keys}}}


def conclude(report: dict) -> tuple[dict, str]:
    """Is the GAN arm measurably sharper than the no-adversarial arm? (summary, markdown)"""
    rows = {r["arm"]: r for r in report["results"]}
    gan, off = rows[GAN_ARM]["extras"], rows[OFF_ARM]["extras"]
    sg, so = gan["sharpness"], off["sharpness"]
    dg, do = gan["per_image"]["spectrum_distance_db"], off["per_image"]["spectrum_distance_db"]
    wins = sum(a < b for a, b in zip(dg, do))
    closer = abs(sg["gradient_energy_ratio"] - 1) < abs(so["gradient_energy_ratio"] - 1)
    lower = sg["spectrum_distance_db"] < so["spectrum_distance_db"]
    sharper = closer and lower and wins * 2 > len(dg)
    state = gan["gan_state"]
    # a second, distribution-level reading: the check above assumes a blurry decoder, and an
    # over-sharp one (ratio > 1) can gain realism without coming closer to the spectrum
    proxies = [m for m in DISTRIBUTION_PROXIES
               if m in rows[GAN_ARM].get("metrics", {}) and m in rows[OFF_ARM].get("metrics", {})]
    proxies_lower = (all(rows[GAN_ARM]["metrics"][m] < rows[OFF_ARM]["metrics"][m]
                         for m in proxies) if proxies else None)
    summary = {"gan_sharper": sharper, "distribution_proxies_lower": proxies_lower,
               "gradient_energy_ratio_closer_to_1": closer, "spectrum_distance_lower": lower,
               "spectrum_wins": wins, "images": len(dg),
               "gan_final": state.get("final"), "gan_final_step": state.get("final_step"),
               "gan_mean_last_10": state.get("mean_last_10")}
    lines = ["## Sharpness (deterministic reconstructions, 8-bit)", "",
             "| arm | gradient-energy ratio (1 = original) | spectrum distance (dB) ↓ | "
             "high-band power ratio |", "|---|---|---|---|"]
    for name in (GAN_ARM, OFF_ARM):
        s = rows[name]["extras"]["sharpness"]
        lines.append(f"| {name} | {s['gradient_energy_ratio']:.4f} | "
                     f"{s['spectrum_distance_db']:.3f} | {s['high_band_power_ratio']:.4f} |")
    lines += ["", f"GAN spectrum distance lower on {wins} of {len(dg)} images.", ""]
    if state.get("final"):
        f, m = state["final"], state["mean_last_10"]
        lines.append(f"GAN arm at step {state['final_step']} (adversarial from step "
                     f"{state['first_step']}): adaptive weight {f['adv_weight']:.4g} (mean of "
                     f"the last 10 logs {m['adv_weight']:.4g}); D logits real "
                     f"{f['d_logit_real']:.3f} / fake {f['d_logit_fake']:.3f} (means "
                     f"{m['d_logit_real']:.3f} / {m['d_logit_fake']:.3f}).")
    else:
        lines.append("GAN arm: the adversarial term never switched on in this run "
                     "(loss.adversarial_start >= steps).")
    verdict = "IS" if sharper else "is NOT"
    lines += ["", f"**Verdict: the GAN {verdict} measurably sharper than the same decoder "
                  f"without the adversarial term** (gradient-energy ratio closer to 1: "
                  f"{'yes' if closer else 'no'}; mean spectrum distance lower: "
                  f"{'yes' if lower else 'no'}; lower on most images: "
                  f"{'yes' if wins * 2 > len(dg) else 'no'}).", ""]
    if proxies_lower is not None:
        cells = ", ".join(f"{m} {rows[GAN_ARM]['metrics'][m]:.4g} vs "
                          f"{rows[OFF_ARM]['metrics'][m]:.4g}" for m in proxies)
        lines += [f"Distribution proxies (not part of the verdict): the GAN's are "
                  f"{'all lower' if proxies_lower else 'not all lower'} ({cells}).", ""]
    return summary, "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Bars: sharpness and the scored metrics per arm; lines: the GAN arm's lambda_adv and D
    logits over the steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from swycc.metrics.evaluate import METRICS
    from swycc.io.visual import save_figure

    rows = report["results"]
    panels = [(k, k.replace("_", " "), lambda r, k=k: r["extras"]["sharpness"][k])
              for k in SHARPNESS_KEYS]
    panels += [(m, METRICS[m][0], lambda r, m=m: r["metrics"][m]) for m in report["metrics"]]
    fig, axes = plt.subplots(1, len(panels) + 2, figsize=(2.6 * (len(panels) + 2), 3.2))
    names = [r["arm"] for r in rows]
    for ax, (_, title, get) in zip(axes, panels):
        ax.bar(range(len(rows)), [get(r) for r in rows], color=["tab:red", "tab:gray"])
        ax.set_xticks(range(len(rows)), names, fontsize=7)
        ax.set_title(title, fontsize=8)
    curve = next((r["extras"]["gan_state"].get("curve") for r in rows if r["arm"] == GAN_ARM),
                 None)
    if curve:
        axes[-2].plot(curve["step"], curve["adv_weight"], color="tab:red")
        axes[-2].set_yscale("log")
        axes[-2].set_title("GAN: adaptive weight", fontsize=8)
        axes[-1].plot(curve["step"], curve["d_logit_real"], label="D(real)")
        axes[-1].plot(curve["step"], curve["d_logit_fake"], label="D(fake)")
        axes[-1].legend(fontsize=7)
        axes[-1].set_title("GAN: mean D logits", fontsize=8)
    fig.suptitle(f"gan-check: {report['steps_per_arm']} steps per arm, {report['images']} "
                 f"held-back images", fontsize=9)
    save_figure(fig, path)


__all__ = ["conclude", "gan_check_arms", "gan_state", "plot", "sharpness_extras"]
