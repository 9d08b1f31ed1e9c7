"""``examples.png`` of the codec experiment: one photo, side by side at matched rates.

Rows: two swycc qualities (the middle and the highest of the run). Columns: the photo, swycc's
D_Initial and one sample from the same .swyc file, then JPEG, WebP and AVIF at the quality whose
file is nearest that .swyc file's size (the experiment's matched setting). The bits per pixel of
every cell go to ``examples.json``; the figure is remade only when its inputs change.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


@torch.no_grad()
def save_examples(model, model_id: bytes, x: torch.Tensor, rec: dict, key: dict, settings,
                  codecs: list[str], methods: list[str], device: str, out: Path) -> dict:
    from swycc.codec import baselines
    from swycc.codec.codec import compress, decode_image, read
    from swycc.io.outputs import write_text_atomic
    from swycc.io.visual import save_grid

    qs = sorted({settings.qualities[(len(settings.qualities) - 1) // 2], settings.qualities[-1]})
    info = {"key": key, "qualities": qs, "columns": ["original", *methods, *codecs]}
    meta = out / "examples.json"
    if meta.is_file() and (out / "examples.png").is_file():
        old = json.loads(meta.read_text())
        if {k: old.get(k) for k in info} == info:
            return old
    tiles = {"tile": None, "tile_size": 256, "tile_overlap": 64}
    rows, bpp = [], {}
    img = baselines.to_pil(x)
    for q in qs:
        f = read(compress(model, x, q, model_id, **tiles), "example", model_id, model)
        row = [x]
        for method in methods:
            g = torch.Generator(device=device).manual_seed(settings.seed)
            row.append(decode_image(model, f, method.removeprefix("swycc-"),
                                    settings.decode_steps, settings.guidance, g, device, tiles))
        cells = {m: rec["swycc"][str(q)]["bpp"] for m in methods}
        for codec in codecs:
            cq = rec["baselines"][codec]["matched"][str(q)]
            row.append(baselines.decode(baselines.encode(img, codec, cq)))
            cells[f"{codec} (q {cq})"] = rec["baselines"][codec]["rows"][str(cq)]["bpp"]
        rows.append([r.cpu() for r in row])
        bpp[str(q)] = cells
    save_grid(rows, out / "examples.png", labels=info["columns"])
    info["bpp"] = bpp
    write_text_atomic(meta, json.dumps(info, indent=1))
    return info


__all__ = ["save_examples"]
