"""`swycc eval`: the streamed evaluation, the reference cache, the CLI end to end."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from swycc.metrics import evaluate as E
from swycc.metrics import maths


class CountingNet(nn.Module):
    """A cheap stand-in extractor (mean colour + spread): counts the images it sees."""

    name = "effnetlite0"
    dim = 6
    weights_sha256 = "test"

    def __init__(self, preprocess_id="count:v1"):
        super().__init__()
        self.preprocess_id = preprocess_id
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


@pytest.fixture
def model(tiny_cfg):
    from swycc.autoencoders.base import Autoencoder

    torch.manual_seed(0)
    return Autoencoder.from_config(tiny_cfg).eval()


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 3, 32, 32, generator=g) * 2 - 1


def test_parse_metrics():
    assert E.parse_metrics(None) == list(E.DEFAULT_METRICS)
    assert E.parse_metrics("ssim, psnr,ssim") == ["ssim", "psnr"]
    assert E.parse_metrics("all") == list(E.METRICS)
    with pytest.raises(ValueError, match="unknown metric.*'fid'.*choose from"):
        E.parse_metrics("psnr,fid")
    for name in ("rfid", "is", "cmmd", "fd_dinov2"):
        assert name not in E.DEFAULT_METRICS


def test_evaluate_model_matches_direct_computation(model, images):
    net = CountingNet()
    res = E.evaluate_model(model, images, ["psnr", "ssim", "fd_effnetlite0", "mmd_effnetlite0"],
                           {"effnetlite0": net}, steps=2, samples=2, seed=5, batch_size=4,
                           progress=False)
    assert res["samples_per_image"] == 2 and res["images"] == 6 and res["steps"] == 2
    # the same reconstructions, by hand: two batches (4 + 2), one generator
    g = torch.Generator().manual_seed(5)
    q = maths.quantize_uint8(images).float() / 127.5 - 1
    ys = torch.cat([model.reconstruct(q[i:i + 4], steps=2, samples=2, generator=g).flatten(0, 1)
                    for i in (0, 4)])
    xr = q.repeat_interleave(2, dim=0)
    m = res["metrics"]
    assert m["psnr"] == pytest.approx(maths.psnr(ys, xr).mean().item(), rel=1e-6)
    assert m["ssim"] == pytest.approx(maths.ssim(ys, xr).mean().item(), rel=1e-6)
    yq = maths.quantize_uint8(ys).float() / 127.5 - 1
    fy, fx = net(yq).double().numpy(), net(q).double().numpy()
    want_fd = maths.frechet_distance(fy.mean(0), np.cov(fy, rowvar=False), fx.mean(0),
                                     np.cov(fx, rowvar=False))
    assert m["fd_effnetlite0"] == pytest.approx(want_fd, rel=1e-5, abs=1e-8)
    want_mmd = maths.mmd2_rbf(maths.l2_normalize(torch.from_numpy(fy)),
                              maths.l2_normalize(torch.from_numpy(fx)))
    assert m["mmd_effnetlite0"] == pytest.approx(want_mmd, rel=1e-5, abs=1e-9)


def test_evaluate_d_initial_of_a_swycc_model(model, images):
    res = E.evaluate_model(model, images, ["psnr", "gradient_energy_ratio",
                                           "spectrum_distance_db"], {}, samples=3,
                           decoder="initial", batch_size=4, progress=False)
    assert res["decoder"] == "initial" and res["samples_per_image"] == 1 and res["steps"] is None
    q = maths.quantize_uint8(images).float() / 127.5 - 1
    y = maths.quantize_uint8(model.reconstruct_initial(q)).float() / 127.5 - 1
    m = res["metrics"]
    assert m["psnr"] == pytest.approx(maths.psnr(y, q).mean().item(), rel=1e-6)

    def energy(t):  # mean squared horizontal + vertical neighbour difference, summed over images
        t = t.double()
        return float(((t[..., 1:] - t[..., :-1]) ** 2).mean((1, 2, 3)).sum()
                     + ((t[..., 1:, :] - t[..., :-1, :]) ** 2).mean((1, 2, 3)).sum())

    assert m["gradient_energy_ratio"] == pytest.approx(energy(y) / energy(q), rel=1e-6)
    from swycc.metrics.spectrum import spectrum_distance

    want = spectrum_distance(y, q).mean().item()
    assert m["spectrum_distance_db"] == pytest.approx(want, rel=1e-6) and want > 0
    with pytest.raises(ValueError, match="decoder"):
        E.evaluate_model(model, images, ["psnr"], {}, decoder="mean", progress=False)


def test_reference_cache_reused_and_invalidated(model, images, tmp_path):
    cache = E.ReferenceCache(tmp_path / "cache")
    run = dict(metrics=["fd_effnetlite0"], steps=1, batch_size=8, progress=False, cache=cache)
    data_id = E.data_identity(None, images, 32, 6)
    net = CountingNet()
    first = E.evaluate_model(model, images, extractors={"effnetlite0": net}, data_id=data_id,
                             **run)
    assert net.seen == 12 and first["reference_cache"] == {"effnetlite0": "computed"}
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    net = CountingNet()
    again = E.evaluate_model(model, images, extractors={"effnetlite0": net}, data_id=data_id,
                             **run)
    assert net.seen == 6 and again["reference_cache"] == {"effnetlite0": "reused"}
    assert again["metrics"] == pytest.approx(first["metrics"])
    net = CountingNet("count:v2")  # preprocessing changed -> recomputed
    E.evaluate_model(model, images, extractors={"effnetlite0": net}, data_id=data_id, **run)
    assert net.seen == 12 and len(list((tmp_path / "cache").glob("*.npz"))) == 2
    other = images.clone()
    other[0, 0, 0, 0] = 1.0 if other[0, 0, 0, 0] < 0 else -1.0  # one pixel of the data
    assert E.data_identity(None, other, 32, 6) != data_id
    assert E.data_identity(None, images, 32, 5) != data_id


def test_deterministic_gan_scored_once(tiny_cfg, images):
    from dataclasses import replace

    from swycc.autoencoders.base import Autoencoder

    cfg = replace(tiny_cfg, model=replace(tiny_cfg.model, method="gan"))
    gan = Autoencoder.from_config(cfg).eval()
    res = E.evaluate_model(gan, images, ["psnr"], {}, samples=3, steps=7, progress=False)
    assert res["samples_per_image"] == 1 and res["steps"] is None and res["guidance"] is None
    want = maths.psnr(gan.reconstruct(maths.quantize_uint8(images).float() / 127.5 - 1),
                      maths.quantize_uint8(images).float() / 127.5 - 1).mean().item()
    assert res["metrics"]["psnr"] == pytest.approx(want, rel=1e-6)


def test_eval_images_per_second(model):
    ips = E.eval_images_per_second(model, num_images=4, batch_size=2, metrics=("psnr", "ssim"),
                                   steps=1)
    assert ips > 0


# ---- the command line ----------------------------------------------------------------------------

@pytest.fixture
def checkpoints(model, tiny_cfg, tmp_path):
    from dataclasses import replace

    from swycc.autoencoders.base import Autoencoder

    a = tmp_path / "swycc_ckpt"
    model.save_pretrained(a)
    b = tmp_path / "gan_ckpt"
    cfg = replace(tiny_cfg, model=replace(tiny_cfg.model, method="gan"))
    Autoencoder.from_config(cfg).save_pretrained(b)
    return a, b


@pytest.fixture
def image_dir(tmp_path):
    from PIL import Image
    from skimage import data

    d = tmp_path / "imgs"
    d.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera"):
        im = getattr(data, name)()
        im = np.stack([im] * 3, -1) if im.ndim == 2 else im
        Image.fromarray(im).resize((48, 40)).save(d / f"{name}.png")
    return d


def _main(argv, capsys):
    from swycc.cli import main

    code = main(argv)
    return code, capsys.readouterr()


def test_cli_eval_end_to_end(checkpoints, image_dir, tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["eval", "--checkpoint", str(checkpoints[0]), "--data", str(image_dir), "--steps", "2",
            "--samples", "2", "--batch-size", "3", "--num-images", "4", "--out", str(out),
            "--cache-dir", str(cache), "--no-progress"]
    code, cap = _main(argv, capsys)  # the default metrics
    assert code == 0, cap.err
    report = json.loads((out / "metrics.json").read_text())
    (row,) = report["results"]
    assert list(row["metrics"]) == list(E.DEFAULT_METRICS)
    assert row["images"] == 4 and row["samples_per_image"] == 2 and row["steps"] == 2
    assert all(np.isfinite(v) for v in row["metrics"].values())
    assert any("2 samples per image" in n for n in report["notes"])
    md = (out / "metrics.md").read_text()
    assert "PSNR (dB)" in md and "FD EffNet-Lite0" in md and str(checkpoints[0]) in md
    for text in (md, (out / "metrics.json").read_text(), cap.out):
        assert "fid" not in text.lower() and "cmmd" not in text.lower()  # proxies only
    # same data and extractor, other metrics: the cached reference features are reused
    code, _ = _main(argv + ["--metrics", "mmd_effnetlite0,psnr"], capsys)
    again = json.loads((out / "metrics.json").read_text())["results"][0]
    assert code == 0 and again["reference_cache"] == {"effnetlite0": "reused"}
    assert again["metrics"] == pytest.approx({k: row["metrics"][k] for k in again["metrics"]})


def test_cli_eval_compare(checkpoints, image_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    code, cap = _main(["eval", "--compare", *map(str, checkpoints), "--data", str(image_dir),
                       "--metrics", "psnr,ssim", "--steps", "1", "--out", str(out), "--no-cache",
                       "--no-progress"], capsys)
    assert code == 0, cap.err
    rows = json.loads((out / "metrics.json").read_text())["results"]
    assert [r["method"] for r in rows] == ["swycc", "gan"]
    table = [ln for ln in (out / "metrics.md").read_text().splitlines() if ln.startswith("| ")]
    assert len(table) == 3 and "SSIM" in table[0]


def test_compare_reuses_reference_features_in_memory(model, images):
    cache, net = E.ReferenceCache(None), CountingNet()
    data_id = E.data_identity(None, images, 32, 6)
    for expected in (12, 18):  # second checkpoint: only its reconstructions are extracted
        E.evaluate_model(model, images, ["fd_effnetlite0"], {"effnetlite0": net}, steps=1,
                         data_id=data_id, cache=cache, progress=False)
        assert net.seen == expected
    with pytest.raises(ValueError, match="no extractor"):
        E.evaluate_model(model, images, ["fd_effnetlite0"], {}, progress=False)


def test_cli_eval_embedded_default_data(checkpoints, tmp_path, capsys):
    out = tmp_path / "emb"
    code, cap = _main(["eval", "--checkpoint", str(checkpoints[1]), "--metrics", "psnr",
                       "--out", str(out), "--no-cache", "--no-progress"], capsys)
    assert code == 0, cap.err
    report = json.loads((out / "metrics.json").read_text())
    assert report["data"] == "embedded held-back crops" and report["images"] >= 2
    code, cap = _main(["eval", "--checkpoint", str(checkpoints[1]), "--metrics", "psnr",
                       "--held-out", "5", "--out", str(out), "--no-cache", "--no-progress"],
                      capsys)
    assert code == 0, cap.err
    assert json.loads((out / "metrics.json").read_text())["images"] == 5
    for bad in ("-1", "0"):
        code, cap = _main(["eval", "--checkpoint", str(checkpoints[1]), "--held-out", bad,
                           "--out", str(tmp_path / "never")], capsys)
        assert code != 0 and "--held-out" in cap.err and not (tmp_path / "never").exists()


def test_cli_eval_missing_weights_is_clear_and_writes_nothing(checkpoints, image_dir, tmp_path,
                                                              capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SWYCC_WEIGHTS_DIR", raising=False)
    out = tmp_path / "never"
    code, cap = _main(["eval", "--checkpoint", str(checkpoints[0]), "--data", str(image_dir),
                       "--metrics", "psnr,rfid", "--out", str(out), "--no-progress"], capsys)
    assert code != 0
    assert "pt_inception-2015-12-05-6726825d.pth" in cap.err and "github.com" in cap.err
    assert not out.exists()
    code, cap = _main(["eval", "--checkpoint", str(checkpoints[0]), "--metrics", "psnr,fid",
                       "--out", str(out)], capsys)
    assert code != 0 and "unknown metric" in cap.err and not out.exists()


def test_images_are_streamed_not_held(model):
    """At most about one batch of images is alive at any time, whatever the image count."""
    import weakref

    class Lazy:
        def __init__(self, n):
            self.n, self.alive, self.peak = n, weakref.WeakSet(), 0

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            self.peak = max(self.peak, len(self.alive))
            t = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)) * 2 - 1
            self.alive.add(t)
            return t, 0

    data = Lazy(40)
    res = E.evaluate_model(model, data, ["psnr", "fd_effnetlite0"], {"effnetlite0": CountingNet()},
                           steps=1, batch_size=4, progress=False)
    assert res["images"] == 40 and data.peak <= 4
