"""The paper's comparisons (and DGAE's claim) as experiments: each is a list of arms built from
one base config, plus how to plot the results.

- ``k-sweep`` (Fig. 1, Table 2): SWYCC and GAN at relative compression K (C = 8 / K).
- ``dists`` (Fig. 10): the K sweep with DISTS (or the offline DISTS-style loss) as auxiliary.
- ``aux-ablation`` (Table 1): SWYCC with lambda_p in {0, 0.1} x lambda_m in {0, 1}.
- ``dgae-latent`` (DGAE's "2x smaller latent"): DGAE at C against SWYCC at C and at 2C.
- ``generation`` (Fig. 2): the K sweep's autoencoders, one latent DiT each, generation scored.
- ``dit-convergence`` (DGAE's "faster convergence"): DiTs on DGAE, SWYCC and GAN latents of the
  same size, scored against DiT steps.
- ``gan-check``: the GAN baseline against its decoder without the adversarial term (sharpness).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from swycc.config import Config, override
from swycc.autoencoders.kinds import with_method
from swycc.experiments import gan_check
from swycc.experiments.runner import Arm


def _latent(cfg: Config, c: int) -> Config:
    return override(cfg, "model.encoder.latent_channels", c)


def k_sweep(base: Config, ks: tuple[int, ...] = (1, 2, 4, 8),
            methods: tuple[str, ...] | None = None, **_) -> list[Arm]:
    methods = methods or ("swycc", "gan")
    for k in ks:
        if k < 1 or 8 % k:
            raise ValueError(f"K must divide 8 (C = 8 / K), got {k}")
    return [Arm(f"{m}-K{k}", _latent(with_method(base, m), 8 // k), {"K": k})
            for m in methods for k in ks]


def dists_sweep(base: Config, ks: tuple[int, ...] = (1, 2, 4, 8),
                methods: tuple[str, ...] | None = None, **_) -> list[Arm]:
    """Fig. 10: the K sweep with DISTS as the auxiliary loss instead of the perceptual loss.
    DISTS proper (``dists-vgg16``) needs its weight files (``--set loss.perceptual_weights``);
    without them the offline DISTS-style loss on EfficientNet-Lite0 (``dists-effnetlite0``)."""
    net = base.loss.perceptual_net
    if not net.startswith("dists-"):
        net = "dists-effnetlite0"
    return [replace(a, name=f"{a.name}-{net}", config=override(a.config, "loss.perceptual_net",
                                                                  net), factors={**a.factors,
                                                                                 "aux": net})
            for a in k_sweep(base, ks, methods)]


def aux_ablation(base: Config, **_) -> list[Arm]:
    cfg = with_method(base, "swycc")
    return [Arm(f"swycc-p{p:g}-m{m:g}",
                override(override(cfg, "loss.perceptual_weight", p), "loss.mse_weight", m),
                {"lambda_p": p, "lambda_m": m})
            for p in (0.0, 0.1) for m in (0.0, 1.0)]


def dgae_latent(base: Config, latent_channels: int = 2, **_) -> list[Arm]:
    c = latent_channels
    return [Arm(f"dgae-C{c}", _latent(with_method(base, "dgae"), c), {"C_rel": "C"}),
            Arm(f"swycc-C{c}", _latent(with_method(base, "swycc"), c), {"C_rel": "C"}),
            Arm(f"swycc-C{2 * c}", _latent(with_method(base, "swycc"), 2 * c), {"C_rel": "2C"})]


def dit_convergence(base: Config, latent_channels: int = 2, methods=None, **_) -> list[Arm]:
    """DGAE, SWYCC and GAN at the same latent size C: the k-sweep's arms at K = 8 / C (an
    experiment run into the same --out reuses them)."""
    if latent_channels < 1 or 8 % latent_channels:
        raise ValueError(f"--latent-channels must divide 8 (K = 8 / C), got {latent_channels}")
    return k_sweep(base, (8 // latent_channels,), methods or ("dgae", "swycc", "gan"))


def metric_panel(ax, rows: list[dict], metric: str, x: str | None) -> None:
    """One metric on one matplotlib axis: a line per method over factor ``x`` (log2 axis), or a
    bar per arm when x is None."""
    if x is None:
        ax.bar(range(len(rows)), [r["metrics"][metric] for r in rows], color="tab:blue")
        ax.set_xticks(range(len(rows)), [r["arm"] for r in rows], rotation=30, ha="right",
                      fontsize=7)
        return
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r[x])
        ax.plot([r[x] for r in rs], [r["metrics"][metric] for r in rs], marker="o",
                label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(x)
    ax.legend(fontsize=7)


def plot_results(report: dict, path: Path, x: str | None = None) -> None:
    """One panel per metric: lines over factor ``x`` per method, or bars per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from swycc.metrics.evaluate import METRICS
    from swycc.io.visual import save_figure

    rows, metrics = report["results"], report["metrics"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        metric_panel(ax, rows, m, x)
        ax.set_title(METRICS[m][0], fontsize=9)
    bound = "at most " if report.get("plateau") else ""
    fig.suptitle(f"{report['experiment']}: {bound}{report['steps_per_arm']} steps per arm, "
                 f"{report['images']} held-back images", fontsize=9)
    save_figure(fig, path)


@dataclass(frozen=True)
class ExperimentSpec:
    summary: str
    arms: Callable[..., list[Arm]]
    plot_x: str | None  # the factor on the plot's x axis (None: bars per arm)
    plotter: Callable[[dict, Path], None] | None = None  # its own plot instead
    extras: Callable | None = None  # per-arm measurements (``run_experiment``'s ``extras``)
    conclude: Callable[[dict], tuple[dict, str]] | None = None  # a verdict on the report
    stage: str = "reconstruction"  # or "generation": a latent DiT per arm, generation scored

    def plot(self, report: dict, path: Path) -> None:
        if self.plotter is not None:
            self.plotter(report, path)
        else:
            plot_results(report, path, self.plot_x)


EXPERIMENTS: dict[str, ExperimentSpec] = {
    "k-sweep": ExperimentSpec("Fig. 1 / Table 2: SWYCC vs GAN across K (C = 8 / K)", k_sweep, "K"),
    "dists": ExperimentSpec("Fig. 10: the K sweep with DISTS as the auxiliary loss",
                            dists_sweep, "K"),
    "aux-ablation": ExperimentSpec("Table 1: lambda_p in {0, 0.1} x lambda_m in {0, 1}",
                                   aux_ablation, None),
    "dgae-latent": ExperimentSpec("DGAE at C vs SWYCC at C and 2C (the '2x smaller latent')",
                                  dgae_latent, None),
    "generation": ExperimentSpec("Fig. 2: generation from SWYCC vs GAN latents across K (a "
                                 "latent DiT per autoencoder)", k_sweep, "K",
                                 stage="generation"),
    "dit-convergence": ExperimentSpec("DGAE vs SWYCC vs GAN latents of one size: generation "
                                      "against DiT steps", dit_convergence, None,
                                      stage="generation"),
    "gan-check": ExperimentSpec("the GAN baseline vs the same decoder without its adversarial "
                                "term: is the GAN sharper?", gan_check.gan_check_arms, None,
                                gan_check.plot, gan_check.sharpness_extras,
                                gan_check.conclude),
}

__all__ = ["EXPERIMENTS", "ExperimentSpec", "aux_ablation", "dgae_latent", "dit_convergence",
           "k_sweep"]
