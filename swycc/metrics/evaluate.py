"""``swycc eval``: reconstruction metrics of one or several checkpoints, streamed in batches.

    swycc eval --checkpoint runs/a/export --metrics psnr,ssim,fd_effnetlite0 --steps 20
    swycc eval --compare runs/swycc/export runs/gan/export --data /imagenet/val --out runs/cmp

Every image is centre-cropped to the model's size (``--data``: the largest centre square, resized;
default: the embedded photo set's held-back crops), reconstructed, and both are quantised to
8 bits (what a PNG holds) before any metric. Paired metrics (PSNR, SSIM, ...) are averaged over
pairs; distribution metrics compare the set of reconstructions with the set of the crops fed
to the model (rFID etc.). With ``--samples S`` each image is decoded S times and every sample
counts, each against its own original. Only features are kept, never images, so memory does not
grow with the number of images except by their small feature rows. Reference features are
cached in an npz keyed by the data, the crop size and the extractor's preprocessing and weights.

Writes ``metrics.json`` and ``metrics.md`` (one row per checkpoint) only once all is computed.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from swycc.metrics import maths
from swycc.metrics.proxies import PROXY_METRICS

# name -> (table label, definition, extractor or None)
METRICS: dict[str, tuple[str, str, str | None]] = {
    "psnr": ("PSNR (dB) ↑", "PSNR on 8-bit [0, 255] images, mean over pairs", None),
    "ssim": ("SSIM ↑", "SSIM (Wang et al. 2004; Gaussian 11x11, sigma 1.5) on 8-bit images, "
             "mean over pairs", None),
    "msssim": ("MS-SSIM ↑", "MS-SSIM (5 scales) on 8-bit images, mean over pairs", None),
    "rfid": ("rFID ↓", "FID (pytorch-fid InceptionV3 pool features) between reconstructions and "
             "the crops fed to the model", "inception"),
    "is": ("IS ↑", "Inception Score of the reconstructions, 10 splits", "inception"),
    "cmmd": ("CMMD ↓", "CMMD: MMD^2 x 1000, RBF sigma 10, CLIP ViT-L/14@336 embeddings", "clip"),
    "fd_dinov2": ("FD-DINOv2 ↓", "Frechet distance on DINOv2 ViT-L/14 CLS features", "dinov2"),
    "fd_effnetlite0": ("FD EffNet-Lite0 ↓", PROXY_METRICS["fd_effnetlite0"], "effnetlite0"),
    "mmd_effnetlite0": ("MMD EffNet-Lite0 ↓", PROXY_METRICS["mmd_effnetlite0"], "effnetlite0"),
    "perceptual_effnetlite0": ("Perceptual EffNet-Lite0 ↓",
                               PROXY_METRICS["perceptual_effnetlite0"], "perceptual"),
    "gradient_energy_ratio": ("grad-energy ratio (1 = as sharp)", "sharpness: mean gradient "
                              "energy (swycc.io.visual.gradient_energy) of the reconstructions over "
                              "the originals'; below 1 blurrier, above 1 more high-frequency "
                              "detail (or noise)", None),
    "spectrum_distance_db": ("spectrum dist. (dB) ↓", "radial power-spectrum distance "
                             "(swycc.metrics.spectrum), mean over pairs", None),
}
DEFAULT_METRICS = ("psnr", "ssim", "fd_effnetlite0", "mmd_effnetlite0", "perceptual_effnetlite0")
PAIRED = ("psnr", "ssim", "msssim", "perceptual_effnetlite0", "spectrum_distance_db")
KEEP_FEATURES = ("clip", "effnetlite0")  # extractors whose feature rows are kept (for MMD)
CACHE_VERSION = 1


def parse_metrics(text: str | None) -> list[str]:
    """"psnr,ssim,..." (or "default", "all") -> validated metric names, in the given order."""
    if not text or text == "default":
        return list(DEFAULT_METRICS)
    names = list(METRICS) if text == "all" else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def load_extractors(metrics: list[str], weights_dir: str | None = None,
                    device: str = "cpu") -> dict[str, nn.Module]:
    """The frozen networks the metrics need; a missing weight file raises before any work."""
    from swycc.metrics.clip import load_clip
    from swycc.metrics.dinov2 import load_dinov2
    from swycc.metrics.inception import load_inception
    from swycc.metrics.proxies import load_effnetlite0_proxies

    needed = {METRICS[m][2] for m in metrics} - {None}
    out: dict[str, nn.Module] = {}
    loaders = {"inception": load_inception, "clip": load_clip, "dinov2": load_dinov2}
    for name in ("inception", "clip", "dinov2"):
        if name in needed:
            out[name] = loaders[name](weights_dir, device=device)
    if needed & {"effnetlite0", "perceptual"}:
        out["effnetlite0"], out["perceptual"] = load_effnetlite0_proxies(device)
    return out


def load_available(wanted: list[str] | None, weights_dir: str | None = None,
                   device: str = "cpu", offline: tuple[str, ...] = (),
                   weighted: tuple[str, ...] = (), loads_as: dict[str, str] | None = None
                   ) -> tuple[list[str], dict[str, nn.Module]]:
    """(metrics, extractors): ``wanted``, all of which must load (a missing weight file is an
    error); or, when None, the ``offline`` metrics always and each ``weighted`` one whose weights
    load. ``loads_as`` names the METRICS entry whose extractor a metric uses (gfid -> rfid)."""
    loads_as = loads_as or {}

    def load(names):
        return load_extractors([loads_as.get(m, m) for m in names], weights_dir, device)

    if wanted:
        return list(wanted), load(wanted)
    metrics, extractors = list(offline), load(offline)
    for m in weighted:
        try:
            if METRICS[loads_as.get(m, m)][2] not in extractors:
                extractors.update(load([m]))
            metrics.append(m)
        except (OSError, ValueError):
            pass  # weights not present here: the metric is left out and the report says so
    return metrics, extractors


# ---- reference statistics cache -------------------------------------------------------------


def data_identity(data: str | None, dataset, image_size: int, num_images: int) -> str:
    """A key for the evaluation images: a folder's files (paths, sizes, mtimes), or the embedded
    crops' pixels, plus crop size and count. Changing any image changes the key."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{image_size}|{num_images}".encode())
    if data is not None:
        root = Path(data).resolve()
        h.update(str(root).encode())
        for p in sorted(q for q in root.rglob("*") if q.is_file()):
            st = p.stat()
            h.update(f"|{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        h.update(b"embedded")
        for i in range(num_images):
            h.update(maths.quantize_uint8(_image(dataset[i])).to(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ReferenceCache:
    """Reference features per (data, extractor preprocessing, weights) in ``dir/<key>.npz``
    (``directory`` None: kept in memory only, e.g. across the checkpoints of ``--compare``)."""

    def __init__(self, directory: str | os.PathLike | None):
        self.dir = Path(directory) if directory is not None else None
        self.memory: dict[str, dict[str, np.ndarray]] = {}

    @staticmethod
    def key(data_id: str, net: nn.Module) -> str:
        ident = f"{data_id}|{net.name}|{net.preprocess_id}|{getattr(net, 'weights_sha256', '?')}"
        return f"{net.name}-{hashlib.sha256(ident.encode()).hexdigest()[:24]}"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        if key in self.memory:
            return self.memory[key]
        if self.dir is None or not (self.dir / f"{key}.npz").is_file():
            return None
        with np.load(self.dir / f"{key}.npz") as z:
            return {k: z[k] for k in z.files}

    def save(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        self.memory[key] = arrays
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f"{key}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, self.dir / f"{key}.npz")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "swycc" / "eval"


# ---- the streamed evaluation ------------------------------------------------------------------


class FeatureSet:
    """One image set's features for one extractor: streaming stats (+ rows, + IS logits)."""

    def __init__(self, net: nn.Module, keep: bool, logits: bool):
        self.stats = maths.FeatureStats(net.dim)
        self.rows: list[torch.Tensor] | None = [] if keep else None
        self.logits: list[torch.Tensor] | None = [] if logits else None

    def add(self, net: nn.Module, x: torch.Tensor, batch: int) -> None:
        for i in range(0, x.shape[0], batch):
            f = net(x[i:i + batch]).float().cpu()
            self.stats.update(f)
            if self.rows is not None:
                self.rows.append(f)
            if self.logits is not None:
                self.logits.append(net.logits(f.to(net.fc.weight.device)).cpu())

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"n": np.array(self.stats.n), "sum": self.stats.sum, "outer": self.stats.outer}
        if self.rows is not None:
            out["rows"] = torch.cat(self.rows).numpy()
        return out

    @classmethod
    def from_arrays(cls, net: nn.Module, a: dict[str, np.ndarray]) -> FeatureSet:
        f = cls(net, keep=net.name in KEEP_FEATURES, logits=False)
        f.stats.n, f.stats.sum, f.stats.outer = int(a["n"]), a["sum"], a["outer"]
        f.rows = [torch.from_numpy(a["rows"])] if "rows" in a else f.rows
        return f

    def matrix(self) -> torch.Tensor:
        return torch.cat(self.rows)


MMD_METRICS = ("cmmd", "mmd_effnetlite0")


def distribution_scores(metric: str, feats: FeatureSet, ref: FeatureSet) -> dict[str, float]:
    """One distribution metric of an image set's features against the reference set's:
    Inception Score (``is`` and ``is_std``; needs the set's logits), an MMD^2 on L2-normalised
    rows (CMMD's estimator), or else the Frechet distance of the two Gaussians."""
    if metric == "is":
        score, std = maths.inception_score(torch.cat(feats.logits))
        return {"is": score, "is_std": std}
    if metric in MMD_METRICS:
        return {metric: maths.mmd2_rbf(maths.l2_normalize(feats.matrix().double()),
                                       maths.l2_normalize(ref.matrix().double()))}
    return {metric: maths.frechet_distance_from_stats(feats.stats, ref.stats)}


def _image(item) -> torch.Tensor:
    return item[0] if isinstance(item, (tuple, list)) else item


def image_batches(dataset, n: int, batch: int):
    for i in range(0, n, batch):
        yield torch.stack([_image(dataset[j]) for j in range(i, min(n, i + batch))])


@torch.no_grad()
def evaluate_model(model, dataset, metrics: list[str], extractors: dict[str, nn.Module], *,
                   num_images: int | None = None, steps: int | None = None,
                   guidance: float | None = None, samples: int = 1, seed: int = 0,
                   batch_size: int = 16, device: str = "cpu", data_id: str | None = None,
                   cache: ReferenceCache | None = None, progress: bool = True,
                   decoder: str = "sample") -> dict:
    """Reconstruct ``dataset``'s images (each (3, H, W) in [-1, 1], or (image, label)) with
    ``model`` and return {"metrics": {name: value}, ...}. ``data_id`` names the images for the
    reference cache (None: no caching). ``decoder="initial"`` scores SWYCC's deterministic
    first reconstruction D_Initial(z) instead of its samples."""
    from tqdm import tqdm

    from swycc.autoencoders.kinds import kind_of
    from swycc.metrics.spectrum import spectrum_distance
    from swycc.io.visual import gradient_energy

    if decoder not in ("sample", "initial"):
        raise ValueError(f"decoder must be 'sample' or 'initial', got {decoder!r}")

    n = len(dataset) if num_images is None else min(num_images, len(dataset))
    if decoder == "initial" and kind_of(model).initial_label is None:
        raise ValueError(f"a {model.kind} autoencoder has no deterministic decoder to score "
                         f"(--decoder initial); score its samples")
    deterministic = not model.samples or decoder == "initial"
    s = 1 if deterministic else samples
    if n < 2 or ("is" in metrics and n * s < 10):
        raise ValueError(f"{n} image(s) x {s} sample(s) are too few for {metrics}")
    used = {METRICS[m][2] for m in metrics} - {None}
    if used - set(extractors):
        raise ValueError(f"no extractor {sorted(used - set(extractors))} for {metrics}; "
                         "see load_extractors()")
    cache = cache or ReferenceCache(None)
    nets = {k: v for k, v in extractors.items() if k != "perceptual"}
    recon = {k: FeatureSet(v, k in KEEP_FEATURES, logits=k == "inception" and "is" in metrics)
             for k, v in nets.items() if k in used}
    refs, keys = {}, {}
    for k in recon:
        keys[k] = ReferenceCache.key(data_id, nets[k]) if data_id else None
        cached = cache.load(keys[k]) if keys[k] else None
        refs[k] = FeatureSet.from_arrays(nets[k], cached) if cached else None
    todo = {k: FeatureSet(nets[k], k in KEEP_FEATURES, False) for k in recon if refs[k] is None}
    sums = {m: 0.0 for m in metrics if m in PAIRED}
    energy = [0.0, 0.0]  # gradient energy of reconstructions, of originals
    pairs = 0
    g = torch.Generator(device=device).manual_seed(seed)
    start = time.perf_counter()
    bar = tqdm(total=n, unit="img", desc="eval", disable=not progress, leave=False)
    for x in image_batches(dataset, n, batch_size):
        x = maths.quantized(x.to(device))  # the 8-bit levels a PNG holds
        if decoder == "initial":
            xs = model.reconstruct_initial(x).unsqueeze(1)
        else:
            xs = model.reconstruct(x, steps=steps, guidance=guidance, samples=s, generator=g)
        y = maths.quantized(xs.flatten(0, 1))  # (B*S, 3, H, W)
        xr = x.repeat_interleave(s, dim=0)
        for m in sums:
            if m == "perceptual_effnetlite0":
                from swycc.metrics.proxies import perceptual_pairs

                v = torch.cat([perceptual_pairs(extractors["perceptual"], y[i:i + batch_size],
                                                xr[i:i + batch_size])
                               for i in range(0, y.shape[0], batch_size)])
            else:
                v = {"psnr": maths.psnr, "ssim": maths.ssim, "msssim": maths.ms_ssim,
                     "spectrum_distance_db": spectrum_distance}[m](y, xr)
            sums[m] += float(v.double().sum())
        if "gradient_energy_ratio" in metrics:
            energy[0] += float(gradient_energy(y).double().sum())
            energy[1] += float(gradient_energy(xr).double().sum())
        pairs += y.shape[0]
        for k, feats in recon.items():
            feats.add(nets[k], y, batch_size)
        for k, feats in todo.items():
            feats.add(nets[k], x, batch_size)
        bar.update(x.shape[0])
    bar.close()
    seconds = time.perf_counter() - start
    for k, feats in todo.items():
        refs[k] = feats
        if keys[k]:
            cache.save(keys[k], feats.arrays())
    values = {}
    for m in metrics:
        ext = METRICS[m][2]
        if m in sums:
            values[m] = sums[m] / pairs
        elif m == "gradient_energy_ratio":
            values[m] = energy[0] / energy[1] if energy[1] > 0 else float("nan")
        else:
            values.update(distribution_scores(m, recon[ext], refs[ext]))
    return {"metrics": values, "images": n, "samples_per_image": s, "decoder": decoder,
            "steps": None if deterministic else (steps or model.config.sampling.steps),
            "guidance": None if deterministic else (model.config.sampling.guidance
                                                    if guidance is None else guidance),
            "seconds": seconds, "images_per_s": n / seconds,
            "reference_cache": {k: ("reused" if k not in todo else "computed")
                                for k in recon} if data_id else {}}


def eval_images_per_second(model, num_images: int = 32, batch_size: int = 16,
                           metrics: tuple[str, ...] = DEFAULT_METRICS, steps: int | None = None,
                           guidance: float | None = None, samples: int = 1,
                           device: str = "cpu", extractors: dict | None = None) -> float:
    """For the bench script: evaluation throughput (original images/s, reconstruction and all
    metrics included, model and extractor loading excluded) on seeded random images."""
    size = model.config.model.image_size
    g = torch.Generator().manual_seed(0)
    images = torch.rand(num_images, 3, size, size, generator=g) * 2 - 1
    extractors = load_extractors(list(metrics), device=device) if extractors is None else extractors
    res = evaluate_model(model, images, list(metrics), extractors, steps=steps, guidance=guidance,
                         samples=samples, batch_size=batch_size, device=device, progress=False)
    return res["images_per_s"]


# ---- command line -----------------------------------------------------------------------------


def eval_dataset(data: str | None, size: int, held_out: int = 16):
    """Evaluation images: every image of a folder (class sub-folders or not), largest centre
    square resized to ``size`` (the latents' preprocessing too), or the embedded held-back
    crops."""
    from swycc.config import DataConfig
    from swycc.data import build_dataset

    return build_dataset(DataConfig(path=data, held_out=held_out), size, train=False)


def report_notes(metrics: list[str], rows: list[dict], samples: int) -> list[str]:
    notes = ["images quantised to 8 bits before every metric; PSNR and SSIM on [0, 255]"]
    if samples > 1:
        notes.append(f"stochastic decoders: {samples} samples per image, metrics over all "
                     "samples (each sample against its original); deterministic (GAN) "
                     "decoders are scored once")
    if any(m.endswith("effnetlite0") for m in metrics):
        notes.append("*_effnetlite0: offline proxies on EfficientNet-Lite0 features, not "
                     "comparable with the Inception-, CLIP- or DINOv2-based metrics")
    if any(m in ("rfid", "fd_dinov2", "fd_effnetlite0") for m in metrics) and rows and \
            rows[0]["images"] < 2048:
        notes.append(f"Frechet distances over {rows[0]['images']} images are biased upwards; "
                     "compare only numbers computed over the same images")
    return notes


def markdown_table(report: dict) -> str:
    metrics = report["metrics"]
    head = ["checkpoint", "method", "steps", "guidance", "samples"]
    head += [METRICS[m][0] for m in metrics] + ["images/s"]
    lines = [f"Data: {report['data']}, {report['images']} images at {report['image_size']}px.",
             *[f"- {n}" for n in report["notes"]], "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["results"]:
        v = r["metrics"]
        cells = [r["checkpoint"], r["method"], _fmt(r["steps"]), _fmt(r["guidance"]),
                 str(r["samples_per_image"])]
        cells += [_fmt(v[m]) + (f" ± {v['is_std']:.2f}" if m == "is" else "") for m in metrics]
        lines.append("| " + " | ".join(cells + [f"{r['images_per_s']:.2f}"]) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v)


def json_default(o):
    return o.item() if hasattr(o, "item") else str(o)
