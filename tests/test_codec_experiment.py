"""``swycc experiment codec`` end to end at tiny size: files counted, matched rates, resume."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from swycc.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from swycc.autoencoders.base import Autoencoder
    from swycc.config import get_preset, shrink
    from swycc.autoencoders.tiling import texture_image

    root = tmp_path_factory.mktemp("codecexp")
    (root / "photos" / "test").mkdir(parents=True)
    (root / "photos" / "train").mkdir()  # the photo set layout: only test/ is scored
    for i in range(3):
        x = texture_image(48, seed=i, waves=8)[0]
        a = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(a[:, : 40 + 4 * i]).save(root / "photos" / "test" / f"p{i}.png")
    Image.new("RGB", (40, 40)).save(root / "photos" / "train" / "unused.png")
    torch.manual_seed(0)
    model = Autoencoder.from_config(shrink(get_preset("tiny")))
    for p in model.parameters():
        if p.ndim > 1:
            torch.nn.init.normal_(p, std=0.05)
    model.save_pretrained(root / "model")
    return root


def _run(root, out):
    return main(["experiment", "codec", "--data", str(root / "photos"), "--out", str(out),
                 "--checkpoint", str(root / "model"), "--codec-sizes", "32", "--codec-images",
                 "3", "--codec-qualities", "2", "6", "--decode-steps", "1", "--no-progress"])


def test_codec_experiment_end_to_end(setup, tmp_path, capsys):
    from swycc.autoencoders.base import Autoencoder, weights_sha256
    from swycc.codec import baselines
    from swycc.codec.codec import compress
    from swycc.codec.fileformat import model_id_from_sha256
    from swycc.data import center_crop_square, load_image
    from swycc.metrics.maths import quantized

    out = tmp_path / "exp"
    assert _run(setup, out) == 0
    rep = json.loads((out / "results.json").read_text())
    for name in ("results.md", "rate-distortion.png", "rate-perception.png"):
        assert (out / name).stat().st_size > 0
    res = rep["sizes"]["32"]
    assert res["photos"] == 3 and res["photo_names"] == ["p0.png", "p1.png", "p2.png"]
    codecs = rep["meta"]["codecs"]
    assert set(res["matched"]["2"]) == {"swycc-initial", "swycc-samples", *codecs}
    # bits per pixel are the files' sizes: compress and encode again, count the bytes
    model = Autoencoder.from_pretrained(setup / "model")
    mid = model_id_from_sha256(weights_sha256(setup / "model"))
    items = sorted((out / "items" / "32px").glob("*.json"))
    bpps = {q: [] for q in ("2", "6")}
    for path, photo in zip(items, ["p0", "p1", "p2"]):
        rec = json.loads(path.read_text())
        x = quantized(center_crop_square(load_image(setup / "photos" / "test" / f"{photo}.png"),
                                         32))
        for q in ("2", "6"):
            data = compress(model, x, int(q), mid, tile=None, tile_size=256, tile_overlap=64)
            assert rec["swycc"][q]["bytes"] == len(data)
            assert rec["swycc"][q]["bpp"] == 8 * len(data) / (32 * 32)
            bpps[q].append(8 * len(data) / 1024)
        for codec in codecs:
            b = rec["baselines"][codec]
            cq = b["matched"]["6"]
            size = len(baselines.encode(baselines.to_pil(x), codec, cq))
            assert b["rows"][str(cq)]["bytes"] == size == b["sizes"][str(cq)]
            others = [abs(s - rec["swycc"]["6"]["bytes"]) for s in b["sizes"].values()]
            assert abs(size - rec["swycc"]["6"]["bytes"]) == min(others)  # nearest file size
    for q in ("2", "6"):
        assert res["matched"][q]["swycc-samples"]["bpp"] == pytest.approx(np.mean(bpps[q]))
    pts = res["curves"]["swycc-initial"]
    assert pts[0]["bpp"] < pts[1]["bpp"]  # a finer step costs more bits
    ex = json.loads((out / "examples.json").read_text())
    assert (out / "examples.png").is_file() and ex["qualities"] == [2, 6]
    first = json.loads(items[0].read_text())
    assert ex["bpp"]["6"]["swycc-samples"] == first["swycc"]["6"]["bpp"]
    # resume: nothing recomputed, the same report
    stamps = [p.stat().st_mtime_ns for p in items]
    capsys.readouterr()
    assert _run(setup, out) == 0
    assert [p.stat().st_mtime_ns for p in items] == stamps
    again = json.loads((out / "results.json").read_text())
    assert again["sizes"] == rep["sizes"]


def test_codec_experiment_needs_photos(setup, tmp_path, capsys):
    assert main(["experiment", "codec", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "needs --data" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
