"""The model card (README.md) written beside every export, in the Hub's format.

YAML front matter (library, tags, pipeline) for the Hub, then what a user needs before using the
model: its kind and networks, the training data and steps, how to load it (swycc and diffusers),
its latent statistics with the scaling factor, and, where a ``swycc ship-check`` report is
given, its measured metrics and verdict. Every number comes from the export or that report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from swycc.io.outputs import write_text_atomic

CARD_NAME = "README.md"


def _folder(path) -> str:
    """A folder's last two parts (``photoset/train``): names the set without this machine's
    paths."""
    return "/".join(Path(str(path)).parts[-2:])


def _data_line(cfg) -> str:
    if cfg.data.path is None:
        return (f"the embedded photo set ({cfg.data.train_crops} training crops, "
                f"{cfg.data.held_out} photos held out)")
    return f"the image folder `{_folder(cfg.data.path)}`"


def _ship_check_lines(report: dict) -> list[str]:
    cand = report.get("candidate") or {}
    # one block per size: a report of several sizes keeps them under candidate["at"]
    at = cand.get("at") or {str(report.get("image_size")): cand}
    lines = [f"## Metrics (`swycc ship-check`: {report.get('images')} held-out photos of "
             f"`{_folder(report.get('data'))}` at {' and '.join(at)} px, "
             f"{report.get('steps')} steps, guidance {report.get('guidance')})", ""]
    for size, block in at.items():
        held = block.get("held_back") or {}
        names = list(next(iter(held.values()), {}))
        if names:
            lines += ["| px | decoder | " + " | ".join(names) + " |",
                      "|---" * (len(names) + 2) + "|"]
            lines += [f"| {size} | {decoder} | " + " | ".join(f"{values[n]:.4g}" for n in names)
                      + " |" for decoder, values in held.items()]
            lines.append("")
        lines += [f"- {name}{'' if len(at) == 1 else f' at {size} px'}: "
                  f"{'PASS' if crit.get('pass') else 'FAIL'}"
                  for name, crit in (block.get("criteria") or {}).items()]
    lines += [f"- verdict: {'PASS' if report.get('pass') else 'FAIL'} against the baseline "
              f"`{(report.get('baseline') or {}).get('checkpoint', '?')}`", ""]
    return lines


def _steps_line(tc) -> str:
    if tc.schedule_from_budget:  # total_steps was measured by the run, not stored here
        length = (f"a schedule sized to a {tc.time_budget_s:g} s time budget (its run's "
                  "schedule.json)")
    else:
        length = f"{tc.total_steps}"
    return f"- steps: {length} (batch {tc.batch_size}, lr {tc.lr:g}, seed {tc.seed})"


def _crops(cfg) -> str:
    sizes = cfg.data.crop_sides(cfg.model.image_size)
    return " / ".join(map(str, dict.fromkeys(sizes))) + " px"


def model_card(model, ship_check: dict | None = None) -> str:
    """The card's text for ``model`` (an ``Autoencoder``)."""
    cfg, kind = model.config, type(model)
    m = cfg.model
    ds = m.encoder.downsample
    params = sum(p.numel() for p in model.parameters())
    lines = ["---", "library_name: swycc", "tags:", "- autoencoder", "- image-compression",
             f"- {model.kind}", "- diffusers", "pipeline_tag: image-to-image", "---", "",
             f"# swycc: {model.kind} autoencoder", "",
             f"{kind.summary[0].upper()}{kind.summary[1:]}. {params / 1e6:.2f}M parameters; "
             f"images of any size map to {m.latent_channels}-channel latents at 1/{ds} of their "
             f"side (trained on {_crops(cfg)} crops).", "",
             "## Training", "",
             f"- data: {_data_line(cfg)}",
             _steps_line(cfg.train)]
    if cfg.init.path is not None:
        lines.append(f"- fine-tuned from an export with weights sha256 "
                     f"{cfg.init.weights_sha256[:12]}...")
    if kind.samples:
        lines.append(f"- decoding defaults: {cfg.sampling.steps} DDIM steps, guidance "
                     f"{cfg.sampling.guidance}")
    lines += ["", "## Use", "", "```python", "from swycc import Autoencoder",
              "model = Autoencoder.from_pretrained(\"ORG/NAME\")  # or this folder's path",
              "z = model.encode(x)          # x: (N, 3, H, W) in [-1, 1]",
              "x_hat = model.decode(z)      # (N, 3, H, W), x's size", "",
              "from swycc.integrations.diffusers import AutoencoderSWYCC",
              "vae = AutoencoderSWYCC.from_swycc(\"ORG/NAME\")  # a diffusers ModelMixin",
              "latents = vae.encode(x).latent_dist.sample() * vae.config.scaling_factor", "```",
              ""]
    stats = model.latent_stats
    lines += ["## Latent statistics", ""]
    if stats is None:
        lines += ["Not recorded: run `swycc latent-stats EXPORT` to add them.", ""]
    else:
        data = stats.data if stats.data.startswith("embedded") else f"`{_folder(stats.data)}`"
        lines += [f"Per channel over {stats.images} images of {data}; normalise latents "
                  "as `(z - mean) / std` per channel, or as a whole with diffusers' "
                  "`(z - shift_factor) * scaling_factor`.", "",
                  "| channel | mean | std |", "|---|---|---|"]
        lines += [f"| {c} | {mu:.6g} | {sd:.6g} |"
                  for c, (mu, sd) in enumerate(zip(stats.mean, stats.std))]
        lines += ["", f"scaling_factor = {stats.scaling_factor:.6g}, shift_factor = "
                      f"{stats.shift_factor:.6g}", ""]
    if ship_check is not None:
        lines += _ship_check_lines(ship_check)
    return "\n".join(lines).rstrip() + "\n"


def read_ship_check(path: str | os.PathLike) -> dict:
    """A ship-check ``report.json`` (its file, or the directory holding it)."""
    p = Path(path)
    file = p / "report.json" if p.is_dir() else p
    try:
        report = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{file}: not a readable ship-check report ({type(e).__name__})") \
            from None
    if not isinstance(report, dict) or "candidate" not in report:
        raise ValueError(f"{file}: not a ship-check report.json")
    return report


def card_text(model, ship_check: str | os.PathLike | None = None) -> str:
    """The card, with the metrics of the ship-check report at ``ship_check`` if given."""
    return model_card(model, read_ship_check(ship_check) if ship_check is not None else None)


def write_model_card(out_dir: str | os.PathLike, text: str) -> Path:
    path = Path(out_dir) / CARD_NAME
    write_text_atomic(path, text)
    return path
