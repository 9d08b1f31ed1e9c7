"""The quick start's whole photos: the shipped files (test-split photos, licensed, small, of
varied colour), ``swycc demo``'s photos.png and metrics.json checked against an independent
recomputation, other kinds' columns, and a bad --photo-size."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from swycc.cli import main
from swycc.data.demo_photos import PHOTOS_DIR, demo_photo_files, demo_photos
from swycc.metrics import maths

ALLOWED = {"CC-BY-4.0", "CC-BY-SA-4.0", "GPL-2+", "LGPL-3"}


def test_shipped_photos_are_few_small_licensed_and_colourful():
    files = demo_photo_files()
    assert 4 <= len(files) <= 6
    assert sum(p.stat().st_size for p in files) < 500_000
    readme = (PHOTOS_DIR / "README.md").read_text()
    for p in files:
        assert Image.open(p).size == (256, 256)
        assert "opencv" not in p.name.lower()
        row = next(line for line in readme.splitlines() if f"`{p.name}`" in line)
        named = set(re.findall(r"CC-BY(?:-SA)?-4\.0|GPL-2\+|LGPL-3", row))
        assert named and named <= ALLOWED, row
        assert re.search(r"`[0-9a-f]{64}`", row), row  # the original's SHA-256
    for text in ("CC-BY-4.0", "CC-BY-SA-4.0", "GPL-2", "GPL-3", "LGPL-3"):
        assert (PHOTOS_DIR / "licenses" / f"{text}.txt").stat().st_size > 5000
    # varied colour: the photos' mean colours span most of the RGB cube's diagonal directions
    names, x = demo_photos(64)
    assert names == [p.stem for p in files] and x.shape == (len(files), 3, 64, 64)
    mean = ((x + 1) * 127.5).mean((-2, -1))  # (N, 3) levels
    chroma = mean - mean.mean(1, keepdim=True)  # colour cast of each photo, grey removed
    assert float(torch.cdist(chroma, chroma).max()) > 60  # e.g. violet vs orange
    assert bool((chroma.argmax(1)[:, None] == torch.arange(3)).any(0).all())  # R, G, B lead


def test_demo_shows_whole_photos(random_tiny_model, tmp_path, capsys):
    model = random_tiny_model(seed=3)
    model.save_pretrained(tmp_path / "m")
    out = tmp_path / "demo"
    assert main(["demo", "--checkpoint", str(tmp_path / "m"), "--steps", "2", "--samples", "2",
                 "--photo-size", "32", "--out", str(out), "--no-progress"]) == 0
    n = len(demo_photo_files())
    assert Image.open(out / "photos.png").size == (4 * 34 + 2, 14 + n * 34 + 2)
    assert "photos.png" in capsys.readouterr().out
    whole = json.loads((out / "metrics.json").read_text())["whole_photos"]
    assert whole["size"] == 32 and whole["photos"] == n and whole["samples_per_photo"] == 2
    # D_Initial is deterministic: recompute its PSNR and colour shift independently
    names, x = demo_photos(32)
    with torch.no_grad():
        y = maths.quantize_uint8(model.reconstruct_initial(x))
    xl = maths.quantize_uint8(x)
    for k, row in enumerate(whole["per_photo"]):
        assert row["photo"] == names[k]
        mse = float((y[k] - xl[k]).square().mean())
        assert row["psnr_initial"] == pytest.approx(10 * np.log10(255 ** 2 / mse), rel=1e-6)
        signed = (y[k].mean((-2, -1)) - xl[k].mean((-2, -1))).tolist()
        assert row["colour_shift_initial_rgb"] == pytest.approx(signed, abs=1e-9)
        assert row["colour_shift_initial"] == pytest.approx(max(map(abs, signed)), abs=1e-9)
    assert whole["mean"]["psnr_initial"] == pytest.approx(
        np.mean([r["psnr_initial"] for r in whole["per_photo"]]))
    assert whole["worst_colour_shift"] == max(r["colour_shift_initial"]
                                              for r in whole["per_photo"])


def test_whole_photos_of_a_deterministic_kind(random_tiny_model, tmp_path):
    from swycc.experiments.demo_photos import show_whole_photos

    gan = random_tiny_model(**{"model.method": "gan"})
    got = show_whole_photos(gan, tmp_path, size=16, steps=2, samples=3)
    assert got["samples_per_photo"] == 1  # one reconstruction, nothing to sample
    # original | GAN decoder | its reconstruction (the same decoder: identical columns)
    grid = np.asarray(Image.open(tmp_path / "photos.png"))
    assert grid.shape[1] == 3 * 18 + 2
    a, b = grid[16:32, 20:36], grid[16:32, 38:54]
    assert np.array_equal(a, b)
    row = got["per_photo"][0]
    assert row["psnr_initial"] == pytest.approx(row["psnr_samples"])


def test_demo_refuses_a_bad_photo_size(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--photo-size", "20", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("swycc: error:") and "multiple of 8" in err[0]
    assert not out.exists()
