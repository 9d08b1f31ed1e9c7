"""``swycc ship-check``: the bicubic baseline and the colour shift against hand-computed values,
the PASS/FAIL rules on made-up numbers, the verb end to end on tiny random models, bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from swycc.cli import main
from swycc.experiments.ship_check import (MAX_COLOUR_SHIFT, bicubic_from_eighth, colour_shift,
                              judge_held_back, judge_model)


def keys_cubic(d: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel (what bicubic interpolation weights neighbours by)."""
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a if d < 2 else 0.0


def test_bicubic_from_eighth_by_hand():
    # two 8x8 patches side by side, each with mean 0 (left) and 1 (right) but not constant:
    # only the patch means survive the downsampling
    x = torch.zeros(1, 3, 8, 16)
    x[..., :, 8:] = 1.0
    x[..., 0:4, 0] += 0.5
    x[..., 4:8, 0] -= 0.5  # left patch mean still 0
    y = bicubic_from_eighth(x)
    assert y.shape == x.shape
    # output column j samples the 2-pixel low-res row at s = (j + 0.5) / 8 - 0.5, edges
    # replicated: v(j) = sum_k keys(s - k) * low[clamp(k)]
    low = [0.0, 1.0]
    for j in range(16):
        s = (j + 0.5) / 8 - 0.5
        k0 = int(np.floor(s))
        want = sum(keys_cubic(s - k) * low[min(max(k, 0), 1)] for k in range(k0 - 1, k0 + 3))
        assert y[0, 0, 3, j].item() == pytest.approx(min(max(want, -1), 1), abs=1e-6), j
    # column 7 by hand: s = 0.4375, neighbours 0, 0, 1, 1 -> keys(0.5625) + keys(1.5625)
    assert y[0, 1, 0, 7].item() == pytest.approx(0.51055908203125 - 0.08074951171875, abs=1e-6)
    assert y[0, 2, 5, 8].item() == pytest.approx(1 - 0.4298095703125, abs=1e-6)  # symmetric
    assert torch.equal(bicubic_from_eighth(torch.full((2, 3, 16, 16), 0.25)),
                       torch.full((2, 3, 16, 16), 0.25))  # a flat image is kept exactly
    with pytest.raises(ValueError, match="multiple of 8"):
        bicubic_from_eighth(torch.zeros(1, 3, 12, 16))


def test_colour_shift_by_hand():
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    y[0, 0, :2, :2] = 0.5  # R: +0.5 on 4 of 16 pixels -> +0.125 -> 15.9375 levels
    y[0, 1] = -0.2  # G: -0.2 everywhere -> 25.5 levels
    y[1, 2, 0, 0] = 16 / 127.5  # B: 16 levels on 1 of 16 pixels -> 1 level
    shift, rgb = colour_shift(y, x)
    assert rgb[0].tolist() == pytest.approx([15.9375, 25.5, 0.0])
    assert rgb[1].tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert shift.tolist() == pytest.approx([25.5, 1.0])
    # a shift up on one half and down on the other cancels: colour shift is about the mean
    z = x[:1].clone()
    z[..., :2, :] = 0.1
    z[..., 2:, :] = -0.1
    assert colour_shift(z, x[:1])[0].item() == pytest.approx(0.0, abs=1e-9)


def _row(name, shift, psnr_i=25.0, psnr_b=24.0, spec_i=5.0, spec_s=3.0):
    return {"image": name, "psnr_initial": psnr_i, "psnr_bicubic": psnr_b,
            "colour_shift_initial": shift, "spectrum_db_initial": spec_i,
            "spectrum_db_sample": spec_s}


def test_judge_model_rules():
    ok = judge_model([_row("a", 0.5), _row("b", MAX_COLOUR_SHIFT)])  # 2.0 exactly is allowed
    assert all(c["pass"] for c in ok.values())
    # one image over the colour limit fails criterion 2 even though the mean is small
    bad = judge_model([_row("a", 0.0), _row("b", 0.0), _row("c", 2.01)])
    assert not bad["2_colour_shift"]["pass"] and bad["2_colour_shift"]["images_over"] == ["c"]
    assert bad["2_colour_shift"]["mean_shift"] == pytest.approx(0.67)
    # criterion 1 on the means: 25 + 22 < 24 + 24
    c = judge_model([_row("a", 0, psnr_i=25, psnr_b=24), _row("b", 0, psnr_i=22, psnr_b=24)])
    assert not c["1_initial_beats_bicubic"]["pass"]
    assert c["1_initial_beats_bicubic"]["psnr_initial"] == pytest.approx(23.5)
    c = judge_model([_row("a", 0, spec_i=3.0, spec_s=3.0)])  # not closer: fails
    assert not c["3_sample_spectrum"]["pass"]


def test_judge_held_back_directions():
    base = {"samples": {"psnr": 25.0, "fd_effnetlite0": 10.0}}
    assert judge_held_back(base, base)["pass"]  # equal is no worse
    # samples: FD margin 6% of 10 = 0.6, PSNR margin 0.4 dB
    r = judge_held_back({"samples": {"psnr": 25.1, "fd_effnetlite0": 10.7}}, base)
    assert [c["pass"] for c in r["comparisons"]] == [True, False] and not r["pass"]
    assert r["comparisons"][1]["margin"] == pytest.approx(0.6)
    r = judge_held_back({"samples": {"psnr": 24.5, "fd_effnetlite0": 9.0}}, base)
    assert [c["pass"] for c in r["comparisons"]] == [False, True]
    # within the margins: a candidate of equal quality that lands a little below passes
    r = judge_held_back({"samples": {"psnr": 24.7, "fd_effnetlite0": 10.5}}, base)
    assert r["pass"]
    # D_Initial is deterministic: tighter margins (0.1 dB, 2%)
    init = {"D_Initial": {"psnr": 25.0, "fd_effnetlite0": 10.0}}
    r = judge_held_back({"D_Initial": {"psnr": 24.85, "fd_effnetlite0": 10.3}}, init)
    assert [c["pass"] for c in r["comparisons"]] == [False, False]
    assert judge_held_back({"D_Initial": {"psnr": 24.95, "fd_effnetlite0": 10.15}}, init)["pass"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from swycc.autoencoders.base import Autoencoder
    from swycc.config import get_preset, shrink

    root = tmp_path_factory.mktemp("ship")
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = Autoencoder.from_config(shrink(get_preset("tiny")))
        for p in model.parameters():
            if p.ndim > 1:
                torch.nn.init.normal_(p, std=0.05)
        model.save_pretrained(root / f"m{seed}")
    (root / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 56), (48, 36)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            root / "photos" / f"p{i}.png")
    return root


def test_ship_check_end_to_end(setup, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["ship-check", "--candidate", str(setup / "m1"), "--baseline", str(setup / "m0"),
                 "--data", str(setup / "photos"), "--out", str(out), "--size", "32",
                 "--no-progress"])
    report = json.loads((out / "report.json").read_text())
    assert code == report["exit_status"] == (0 if report["pass"] else 1)
    printed = capsys.readouterr().out
    assert printed.count("[PASS]") + printed.count("[FAIL]") == 7  # 3 per model + criterion 4
    assert report["images"] == 2 and report["image_size"] == 32
    cand, base = report["candidate"], report["baseline"]
    assert [r["image"] for r in cand["per_image"]] == ["p0.png", "p1.png"]
    for r in cand["per_image"]:
        assert r["colour_shift_initial"] == pytest.approx(max(r["colour_shift_rgb"]), abs=1e-3)
    # the bicubic baseline does not depend on the model
    assert [r["psnr_bicubic"] for r in cand["per_image"]] == \
        [r["psnr_bicubic"] for r in base["per_image"]]
    c1 = cand["criteria"]["1_initial_beats_bicubic"]
    assert c1["pass"] == (c1["psnr_initial"] > c1["psnr_bicubic"])
    assert {c["decoder"] for c in report["4_held_back_no_worse"]["comparisons"]} == \
        {"D_Initial", "samples"}
    assert Image.open(out / "grid.png").size == (6 * 34 + 2, 14 + 2 * 34 + 2)
    assert "colour shift" in (out / "report.md").read_text()
    # a model against itself: criterion 4 passes (equal is no worse), same numbers both sides
    code = main(["ship-check", "--candidate", str(setup / "m0"), "--baseline",
                 str(setup / "m0" / "model.safetensors"), "--data", str(setup / "photos"),
                 "--out", str(out), "--size", "32", "--no-progress"])
    again = json.loads((out / "report.json").read_text())
    assert again["4_held_back_no_worse"]["pass"]
    assert again["candidate"]["per_image"] == again["baseline"]["per_image"]
    assert again["baseline"]["per_image"] == base["per_image"]  # seeded: m0 measured alike


def test_ship_check_bad_input(setup, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    for argv, words in [
        (["--data", str(tmp_path / "empty")], "no images"),
        (["--data", str(tmp_path / "missing")], "no such image folder"),
        (["--data", str(setup / "photos"), "--size", "36"], "multiple of 8"),
        (["--data", str(setup / "photos"), "--baseline", str(tmp_path / "nope")],
         "no such checkpoint"),
    ]:
        code = main(["ship-check", "--candidate", str(setup / "m0"), *argv, "--out", str(out),
                     "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("swycc: error:"), err
        assert words in err[0], err
    assert not out.exists()
