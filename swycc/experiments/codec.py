"""``swycc experiment codec``: rate-distortion-perception curves of swycc's codec against JPEG,
WebP and AVIF, on whole photos.

    swycc experiment codec --data photoset --out runs/codec --codec-images 6 2

Each photo (a folder's ``test/`` split when it has one) is cut to its largest centre square,
resized to each size (default 256 and 512 px) and quantised to 8 bits. Per photo and size:

- swycc: one .swyc file per quality (bits per pixel counted from the file's bytes, header
  included), decoded by D_Initial (deterministic) and by the diffusion decoder (one sample,
  seed fixed, ``--decode-steps``);
- JPEG, WebP, AVIF (Pillow): every quality of the grids in ``swycc.codec.baselines`` whose file
  stays under ``--codec-max-bpp``, plus, for each swycc quality, the quality whose file comes
  nearest the .swyc file's size (matched bpp).

Every reconstruction is scored against the photo (``measure``). One photo's records are one JSON
(scalars) and one npz (EffNet-Lite0 features) in ``<out>/items/<size>px``, reused on a re-run
when the model, the file, the size and the settings are the same: the experiment resumes.
``swycc.experiments.codec_report`` then aggregates them into results.json, results.md and the plots.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

ITEM_VERSION = 1
SIZES = (256, 512)
QUALITIES = (2, 4, 6, 8, 12)
SWYCC_METHODS = ("swycc-initial", "swycc-samples")


@dataclass(frozen=True)
class CodecSettings:
    sizes: tuple[int, ...] = SIZES
    images: tuple[int, ...] = (64, 64)  # photos per size
    qualities: tuple[int, ...] = QUALITIES
    decode_steps: int = 20
    guidance: float | None = None  # None: the model's
    seed: int = 0
    max_bpp: float = 1.0  # baseline curves: qualities whose file stays under this


def photo_folder(data: str | None) -> Path:
    """The folder of photos: ``data/test`` when ``data`` is a photo set (has a test/ split),
    else ``data`` itself."""
    if data is None:
        raise ValueError("experiment codec needs --data: a folder of photos (a photo set's root, "
                         "whose test/ split is used, or any image folder)")
    root = Path(data)
    if not root.is_dir():
        raise ValueError(f"--data {data}: no such image folder")
    return root / "test" if (root / "test").is_dir() else root


@torch.no_grad()
def measure(y: torch.Tensor, x: torch.Tensor, nets: dict) -> tuple[dict, np.ndarray]:
    """Scores of a reconstruction y of photo x ((3, H, W), both 8-bit levels in [-1, 1]) and
    y's EffNet-Lite0 pooled features (for the distribution proxies)."""
    from swycc.metrics import maths
    from swycc.metrics.proxies import perceptual_pairs
    from swycc.metrics.spectrum import spectrum_distance
    from swycc.io.visual import gradient_energy

    y, x = maths.quantized(y[None].cpu()), maths.quantized(x[None].cpu())
    scores = {"psnr": float(maths.psnr(y, x)[0]), "ssim": float(maths.ssim(y, x)[0]),
              "perceptual_effnetlite0": float(perceptual_pairs(nets["perceptual"], y, x)[0]),
              "spectrum_distance_db": float(spectrum_distance(y, x)[0]),
              "gradient_energy": float(gradient_energy(y)[0])}
    return scores, nets["effnetlite0"](y).double()[0].numpy()


class ItemStore:
    """One photo's records at one size: ``<dir>/<name>.json`` + ``.npz``, valid for ``key``."""

    def __init__(self, directory: Path, name: str, key: dict):
        self.json, self.npz, self.key = directory / f"{name}.json", directory / f"{name}.npz", key

    def load(self) -> tuple[dict, dict] | None:
        if not (self.json.is_file() and self.npz.is_file()):
            return None
        rec = json.loads(self.json.read_text())
        if rec.get("key") != self.key:
            return None
        with np.load(self.npz) as z:
            return rec, {k: z[k] for k in z.files}

    def save(self, rec: dict, feats: dict) -> None:
        import os

        from swycc.io.outputs import write_text_atomic

        self.npz.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.npz.with_name(f".{self.npz.name}.tmp.npz")
        np.savez(tmp, **feats)
        os.replace(tmp, self.npz)
        write_text_atomic(self.json, json.dumps({**rec, "key": self.key}, indent=1))


def feature_key(method: str, setting: int) -> str:
    return f"{method}|{setting}"


@torch.no_grad()
def run_item(model, model_id: bytes, x: torch.Tensor, settings: CodecSettings, codecs: list[str],
             nets: dict, device: str, methods=SWYCC_METHODS) -> tuple[dict, dict]:
    """All records of one photo x (3, S, S) at one size: (scalars, features)."""
    from swycc.codec import baselines
    from swycc.codec.codec import compress, decode_image, read

    h, w = x.shape[-2:]
    px = h * w
    tiles = {"tile": None, "tile_size": 256, "tile_overlap": 64}
    rec: dict = {"pixels": px, "original": {}, "swycc": {}, "baselines": {}}
    scores, f = measure(x, x, nets)
    rec["original"]["gradient_energy"] = scores["gradient_energy"]
    feats = {"original|0": f}
    for q in settings.qualities:
        data = compress(model, x, q, model_id, **tiles)
        f_ = read(data, "item", model_id, model)
        row = {"bytes": len(data), "bpp": 8 * len(data) / px, "header_bytes": f_.header_bytes()}
        for method in methods:
            decoder = method.removeprefix("swycc-")
            g = torch.Generator(device=device).manual_seed(settings.seed)
            y = decode_image(model, f_, decoder, settings.decode_steps, settings.guidance, g,
                             device, tiles)
            row[method], feats[feature_key(method, q)] = measure(y, x, nets)
        rec["swycc"][str(q)] = row
    img = baselines.to_pil(x)
    for codec in codecs:
        sizes = baselines.sweep_sizes(img, codec)
        chosen = {q for q, b in sizes.items() if 8 * b / px <= settings.max_bpp}
        matched = {str(q): baselines.nearest_quality(sizes, rec["swycc"][str(q)]["bytes"])
                   for q in settings.qualities}
        rows = {}
        for cq in sorted(chosen | set(matched.values())):
            data = baselines.encode(img, codec, cq)
            scores, feats[feature_key(codec, cq)] = measure(baselines.decode(data), x, nets)
            rows[str(cq)] = {"bytes": len(data), "bpp": 8 * len(data) / px, **scores}
        rec["baselines"][codec] = {"sizes": {str(q): b for q, b in sizes.items()},
                                   "curve": sorted(chosen), "matched": matched, "rows": rows}
    return rec, feats


def item_key(model_sha: str, path: Path, root: Path, size: int, settings: CodecSettings,
             codecs: list[str]) -> dict:
    import PIL

    st = path.stat()
    return {"version": ITEM_VERSION, "weights_sha256": model_sha,
            "file": str(path.relative_to(root)), "file_bytes": st.st_size,
            "mtime_ns": st.st_mtime_ns, "size": size, "qualities": list(settings.qualities),
            "decode_steps": settings.decode_steps, "guidance": settings.guidance,
            "seed": settings.seed, "max_bpp": settings.max_bpp, "codecs": codecs,
            "pillow": PIL.__version__}


def run_codec_experiment(model, checkpoint, data: str | None, out, settings: CodecSettings,
                         device: str = "cpu", progress: bool = True) -> dict:
    """Score every photo at every size (resuming finished ones) and write the report."""
    from tqdm import tqdm

    from swycc.autoencoders.base import weights_sha256
    from swycc.codec import baselines
    from swycc.codec.fileformat import model_id_from_sha256
    from swycc.experiments.codec_report import write_report
    from swycc.data import center_crop_square, list_images, load_image
    from swycc.autoencoders.kinds import kind_of
    from swycc.metrics.maths import quantized
    from swycc.metrics.proxies import load_effnetlite0_proxies
    from swycc.io.outputs import safe_stem

    root = photo_folder(data)
    if len(settings.images) != len(settings.sizes):
        raise ValueError(f"--codec-images gives {len(settings.images)} count(s) for "
                         f"{len(settings.sizes)} size(s)")
    for s in settings.sizes:
        if s % model.stride:
            raise ValueError(f"size {s} must be a multiple of the model's stride {model.stride}")
    files = list_images(root)
    if min(settings.images) < 2 or len(files) < 2:
        raise ValueError(f"{root}: the distribution proxies need at least 2 photos per size "
                         f"({len(files)} found)")
    codecs = baselines.available_codecs()
    methods = [m for m in SWYCC_METHODS
               if m != "swycc-initial" or kind_of(model).initial_label is not None]
    sha = weights_sha256(checkpoint)
    model_id = model_id_from_sha256(sha)
    glob, perceptual = load_effnetlite0_proxies(device)
    nets = {"effnetlite0": glob, "perceptual": perceptual}
    out = Path(out)
    items: dict[int, list] = {}
    example = None
    jobs = [(s, i, p) for s, n in zip(settings.sizes, settings.images)
            for i, p in enumerate(files[:n])]
    bar = tqdm(jobs, desc="codec", unit="photo", disable=not progress)
    for size, i, path in bar:
        store = ItemStore(out / "items" / f"{size}px", f"{i:03d}-{safe_stem(path.stem)}",
                          item_key(sha, path, root, size, settings, codecs))
        got = store.load()
        if got is None:
            x = quantized(center_crop_square(load_image(path), size))
            got = run_item(model, model_id, x, settings, codecs, nets, device, methods)
            store.save(*got)
        if example is None:
            example = (path, size, got[0], store.key)
        items.setdefault(size, []).append((path.name, *got))
    from swycc.experiments.codec_examples import save_examples
    from swycc.autoencoders.pretrained import display_path

    path, size, rec, key = example
    x = quantized(center_crop_square(load_image(path), size))
    shown = save_examples(model, model_id, x, rec, key, settings, codecs, methods, device, out)
    meta = {"checkpoint": display_path(checkpoint), "weights_sha256": sha, "method": model.kind,
            "data": str(root), "device": device, "codecs": codecs, "swycc_methods": methods,
            **asdict(settings),
            "guidance_used": (model.config.sampling.guidance if settings.guidance is None
                              else settings.guidance),
            "examples": {"photo": path.name, "size": size, "bpp": shown["bpp"]}}
    return write_report(meta, items, out)


SUMMARY = {"codec": "swycc compress vs JPEG, WebP, AVIF: rate-distortion-perception on whole "
                    "photos (--data; --checkpoint, default the shipped model)"}


__all__ = ["CodecSettings", "ItemStore", "SUMMARY", "measure", "photo_folder",
           "run_codec_experiment", "run_item"]
