"""docs/generation/fig2.png from a Fashion-MNIST run of docs/reproduction.md: the generation
proxies against K for GAN, SWYCC (D_Refine samples) and SWYCC's latents through D_Initial, and
against DiT steps for DGAE, SWYCC and GAN at K = 4.

    python scripts/generation_figures.py runs/fm runs/fm-early docs/generation/fig2.png
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(run: str, early: str, out: str) -> None:
    arms = Path(run) / "arms"
    metrics = ("fd_effnetlite0", "mmd_effnetlite0")
    titles = {"fd_effnetlite0": "FD EffNet-Lite0 ↓", "mmd_effnetlite0": "MMD EffNet-Lite0 ↓"}
    ks = (1, 2, 4, 8)

    def gen(arm, step, root=arms):
        return json.loads((root / arm / f"gen-{step}.json").read_text())["metrics"]

    def initial(arm):
        return json.loads((arms / arm / "gen-initial-3000" / "metrics.json").read_text())["values"]

    fig, axes = plt.subplots(2, 2, figsize=(8, 6.4))
    for j, m in enumerate(metrics):
        ax = axes[0][j]
        for label, vals in (("GAN", [gen(f"gan-K{k}", 3000)[m] for k in ks]),
                            ("SWYCC (D_Refine, 10 steps)", [gen(f"swycc-K{k}", 3000)[m]
                                                            for k in ks]),
                            ("SWYCC latents via D_Initial", [initial(f"swycc-K{k}")[m]
                                                             for k in ks])):
            ax.plot(ks, vals, marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("relative compression K (C = 8 / K)")
        ax.set_title(f"{titles[m]}, DiT step 3000", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[1][j]
        for arm in ("dgae-K4", "swycc-K4", "gan-K4"):
            steps = (250, 500, 1500, 3000)
            vals = [gen(arm, s, Path(early) / "arms")[m] for s in steps[:2]]
            vals += [gen(arm, s)[m] for s in steps[2:]]
            ax.plot(steps, vals, marker="o", label=arm.replace("-K4", " (C = 2)"))
        ax.set_xlabel("DiT training step")
        ax.set_title(f"{titles[m]} against DiT steps", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Fashion-MNIST, tiny autoencoders (800 steps), one DiT each; 400 generated "
                 "images per point", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main(*sys.argv[1:4])
