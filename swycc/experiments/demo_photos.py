"""The quick start's whole photos: the shipped test-split photos (``swycc.data.demo_photos``),
reconstructed whole at ``size`` px; ``photos.png`` (original | D_Initial | samples, one row per
photo) and their numbers for ``metrics.json``: PSNR of bicubic-from-1/8, D_Initial and the
samples, and the colour shift (``swycc.metrics.photo``) of D_Initial and of the samples."""

from __future__ import annotations

from pathlib import Path

import torch

PHOTO_SIZE = 128  # ship-check's first size; 256 costs 4x the decoding time
PHOTO_SAMPLES = 2  # samples per photo in the grid and the numbers


@torch.no_grad()
def show_whole_photos(model, out: Path, size: int = PHOTO_SIZE, steps: int = 20,
                      guidance: float = 0.5, samples: int = PHOTO_SAMPLES, seed: int = 0,
                      device: str = "cpu") -> dict:
    """Reconstruct every shipped photo whole; write ``out/photos.png``; return the numbers."""
    from swycc.autoencoders.kinds import kind_of
    from swycc.data.demo_photos import demo_photos
    from swycc.io.visual import save_grid
    from swycc.metrics import maths
    from swycc.metrics.photo import FACTOR, bicubic_from_eighth, colour_shift

    if size < FACTOR or size % FACTOR:
        raise ValueError(f"--photo-size must be a multiple of {FACTOR}, got {size}")
    names, x = demo_photos(size)
    x = x.to(device)
    kind = kind_of(model)
    initial = maths.quantized(model.reconstruct_initial(x)) if kind.initial_label else None
    s = samples if kind.samples else 1
    g = torch.Generator(device=device).manual_seed(seed)
    xs = maths.quantized(model.reconstruct(x, steps=steps, guidance=guidance, samples=s,
                                           generator=g))  # (N, S, 3, H, W)
    rows = []
    psnr_b = maths.psnr(maths.quantized(bicubic_from_eighth(x)), x)
    flat, x_rep = xs.flatten(0, 1), x.repeat_interleave(s, dim=0)
    psnr_s = maths.psnr(flat, x_rep).view(-1, s)
    shift_s = colour_shift(flat, x_rep)[0].view(-1, s)
    if initial is not None:
        psnr_i = maths.psnr(initial, x)
        shift_i, signed_i = colour_shift(initial, x)
    for k, name in enumerate(names):
        row = {"photo": name, "psnr_bicubic_from_1/8": float(psnr_b[k]),
               "psnr_samples": float(psnr_s[k].mean()),
               "colour_shift_samples": float(shift_s[k].mean())}
        if initial is not None:
            row.update(psnr_initial=float(psnr_i[k]), colour_shift_initial=float(shift_i[k]),
                       colour_shift_initial_rgb=[float(c) for c in signed_i[k]])
        rows.append(row)
    cols, labels = [x], ["original"]
    if initial is not None:
        cols.append(initial)
        labels.append(kind.initial_label)
    cols += [xs[:, j] for j in range(s)]
    labels += [f"sample {j + 1}" for j in range(s)] if kind.samples else ["reconstruction"]
    save_grid([[c[i].cpu() for c in cols] for i in range(len(names))], out / "photos.png",
              labels=labels)
    means = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]
             if k not in ("photo", "colour_shift_initial_rgb")}
    worst = max(r.get("colour_shift_initial", r["colour_shift_samples"]) for r in rows)
    return {"size": size, "photos": len(rows), "samples_per_photo": s, "mean": means,
            "worst_colour_shift": worst, "per_photo": rows,
            "source": "swycc/data/photos (the photo set's test split; README.md there)"}
