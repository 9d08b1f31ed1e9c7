"""``swycc ship-check``: the PASS/FAIL rules on made-up numbers, each criterion's verdict on
hand-made reconstructions whose verdict is known (a colour offset of 3 levels, a perfect decoder,
a blurring sampler) through the real measurement, the verb end to end on tiny random models at
two sizes, the model card reading its report, bad input. (The maths: test_metrics_photo.py.)"""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from swycc.cli import main
from swycc.experiments.ship_check import (MAX_COLOUR_SHIFT, MIN_GAIN_DB, judge_held_back,
                                          judge_model, measure_decoders)
from swycc.metrics import maths


def _row(name, shift, psnr_i=27.0, psnr_b=24.0, spec_i=5.0, spec_s=3.0):
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
    # criterion 1 on the means, by MIN_GAIN_DB: (27 + 23) / 2 = 25 vs 24: +1 dB is not enough
    c = judge_model([_row("a", 0, psnr_i=27, psnr_b=24), _row("b", 0, psnr_i=23, psnr_b=24)])
    assert not c["1_initial_beats_bicubic"]["pass"]
    assert c["1_initial_beats_bicubic"]["gain_db"] == pytest.approx(1.0)
    assert MIN_GAIN_DB == 2.0
    assert judge_model([_row("a", 0, psnr_i=26.0, psnr_b=24.0)])[
        "1_initial_beats_bicubic"]["pass"]  # exactly +2 dB passes
    assert not judge_model([_row("a", 0, psnr_i=25.99, psnr_b=24.0)])[
        "1_initial_beats_bicubic"]["pass"]
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
    # with both models' leave-one-out values: the jackknife error of the difference, reported
    # beside a verdict it does not change; d = (0.1, 0.3, 0.2) -> sqrt(2/3 * 0.02)
    loo_c = {"D_Initial": {"psnr": [25.1, 25.3, 25.2], "fd_effnetlite0": [10.2, 10.4, 10.3]}}
    loo_b = {"D_Initial": {"psnr": [25.0, 25.0, 25.0], "fd_effnetlite0": [10.1, 10.1, 10.1]}}
    r = judge_held_back({"D_Initial": {"psnr": 24.85, "fd_effnetlite0": 10.3}}, init,
                        loo_c, loo_b)
    assert [c["pass"] for c in r["comparisons"]] == [False, False]
    for c in r["comparisons"]:
        assert c["difference_se"] == pytest.approx((2 / 3 * 0.02) ** 0.5)
    assert r["comparisons"][1]["difference"] == pytest.approx(0.3)
    assert "difference_se" not in judge_held_back(init, init)["comparisons"][0]


# ---- the criteria on hand-made reconstructions -------------------------------------------------


def hand_made_photos(n: int = 3, size: int = 32) -> torch.Tensor:
    """Seeded colour gradients with texture, in [-0.8, 0.8] (an offset of a few levels never
    clamps), 8-bit quantised."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size),
                            indexing="ij")
    base = torch.stack([xx, yy, -xx * yy])
    x = torch.stack([base.roll(k, 0) * 0.5 + 0.25 * torch.rand(3, size, size, generator=g) - 0.1
                     for k in range(n)])
    return maths.quantized(x.clamp(-0.8, 0.8))


def blur(x: torch.Tensor) -> torch.Tensor:
    """A 5x5 box blur (replicated edges), 8-bit quantised: a sampler that adds no texture."""
    return maths.quantized(F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1))


@pytest.fixture(scope="module")
def extractors():
    from swycc.experiments.ship_check import HELD_BACK
    from swycc.metrics.evaluate import load_extractors

    return load_extractors(list(HELD_BACK))


def verdicts(x, initial, sample, extractors) -> dict:
    names = [f"p{i}.png" for i in range(len(x))]
    got = measure_decoders(names, x, initial, sample, extractors)
    return {k[0]: c for k, c in got["criteria"].items()} | {"all": got}


def test_a_colour_offset_of_3_levels_fails_criterion_2(extractors):
    x = hand_made_photos()
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 3 / 127.5  # + 3 levels on the red channel, everywhere
    v = verdicts(x, maths.quantized(x + red), x, extractors)
    assert not v["2"]["pass"] and len(v["2"]["images_over"]) == len(x)
    rows = v["all"]["per_image"]
    assert [r["colour_shift_rgb"] for r in rows] == [[3.0, 0.0, 0.0]] * len(x)
    # minus 2 levels on green is within the limit (a signed error, judged by its size)
    green = torch.zeros(1, 3, 1, 1)
    green[0, 1] = -2 / 127.5
    v = verdicts(x, maths.quantized(x + green), x, extractors)
    assert v["2"]["pass"] and v["2"]["worst_shift"] == pytest.approx(2.0)
    assert v["all"]["per_image"][0]["colour_shift_rgb"] == [0.0, -2.0, 0.0]


def test_a_perfect_decoder_passes_criterion_1_and_bicubic_fails_it(extractors):
    from swycc.metrics.photo import bicubic_from_eighth

    x = hand_made_photos()
    v = verdicts(x, x, x, extractors)
    assert v["1"]["pass"] and v["1"]["psnr_initial"] == float("inf") and v["2"]["pass"]
    assert v["all"]["held_back"]["D_Initial"]["psnr"] == float("inf")
    assert v["all"]["gradient_energy_ratio"] == {"D_Initial": 1.0, "samples": 1.0}
    bicubic = maths.quantized(bicubic_from_eighth(x))  # no better than itself: +0 dB
    v = verdicts(x, bicubic, x, extractors)
    assert not v["1"]["pass"] and v["1"]["gain_db"] == pytest.approx(0.0)


def test_a_blurring_sampler_fails_criterion_3(extractors):
    x = hand_made_photos()
    v = verdicts(x, x, blur(x), extractors)  # D_Initial exact, samples blurred
    assert not v["3"]["pass"] and v["3"]["spectrum_db_initial"] == 0.0
    ge = v["all"]["gradient_energy_ratio"]
    assert ge["samples"] < 0.5 < ge["D_Initial"] == 1.0
    v = verdicts(x, blur(x), x, extractors)  # the other way round: samples restore texture
    assert v["3"]["pass"] and v["3"]["spectrum_db_sample"] == 0.0
    # criterion 4 sees the blur too: the blurred decoder is worse than the exact one
    blurred, exact = (verdicts(x, y, y, extractors)["all"] for y in (blur(x), x))
    worse = judge_held_back(blurred["held_back"], exact["held_back"],
                            blurred["held_back_leave_one_out"], exact["held_back_leave_one_out"])
    assert not worse["pass"]
    assert len(blurred["held_back_leave_one_out"]["samples"]["ssim"]) == len(x)
    se = {(c["decoder"], c["metric"]): c.get("difference_se") for c in worse["comparisons"]}
    assert se["D_Initial", "psnr"] is None  # the exact decoder's PSNR is infinite
    assert se["D_Initial", "ssim"] > 0 and se["samples", "mmd_effnetlite0"] > 0


# ---- the verb end to end -----------------------------------------------------------------------


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
                 "--data", str(setup / "photos"), "--out", str(out), "--sizes", "16,32",
                 "--no-progress"])
    report = json.loads((out / "report.json").read_text())
    assert code == report["exit_status"] == (0 if report["pass"] else 1)
    printed = capsys.readouterr().out
    # 3 criteria per model and size, criterion 4 per size
    assert printed.count("[PASS]") + printed.count("[FAIL]") == 2 * 2 * 3 + 2
    assert report["images"] == 2 and report["sizes"] == [16, 32]
    cand, base = report["candidate"], report["baseline"]
    assert list(cand["at"]) == list(base["at"]) == ["16", "32"]
    for size, at in cand["at"].items():
        assert [r["image"] for r in at["per_image"]] == ["p0.png", "p1.png"]
        for r in at["per_image"]:
            assert r["colour_shift_initial"] == pytest.approx(
                max(abs(c) for c in r["colour_shift_rgb"]), abs=1e-3)
        # the bicubic baseline does not depend on the model
        assert [r["psnr_bicubic"] for r in at["per_image"]] == \
            [r["psnr_bicubic"] for r in base["at"][size]["per_image"]]
        c1 = at["criteria"]["1_initial_beats_bicubic"]
        assert c1["pass"] == (c1["psnr_initial"] >= c1["psnr_bicubic"] + 2.0)
        # beside the criteria: codecs at the 2-channel fp16 latent's bytes, gradient energy
        assert at["latent_bytes"] == at["codecs"]["budget_bytes"] == 2 * (int(size) // 8) ** 2 * 2
        for fmt in ("jpeg", "webp"):
            c = at["codecs"][fmt]
            assert len(c["per_image"]) == 2
            assert all(r is None or r["bytes"] <= at["latent_bytes"] for r in c["per_image"])
            assert (c["psnr"] is None) == (c["images_fit"] == 0)
        assert set(at["gradient_energy_ratio"]) == {"D_Initial", "samples"}
    assert set(report["4_held_back_no_worse"]) == {"16", "32"}
    assert {c["decoder"] for c in report["4_held_back_no_worse"]["16"]["comparisons"]} == \
        {"D_Initial", "samples"}
    # two images leave too few for a jackknife: no standard errors, the same verdicts
    c4 = report["4_held_back_no_worse"]["16"]["comparisons"]
    assert not any("difference_se" in c for c in c4)
    assert Image.open(out / "grid.png").size == (6 * 18 + 2, 14 + 2 * 18 + 2)  # first size
    md = (out / "report.md").read_text()
    assert "colour shift" in md and "| candidate | 32 | p1.png |" in md and "PSNR JPEG" in md
    # the model card reads the two-size report
    from swycc.autoencoders.base import Autoencoder

    Autoencoder.from_pretrained(setup / "m1").save_pretrained(tmp_path / "exp",
                                                              ship_check=out / "report.json")
    card = (tmp_path / "exp" / "README.md").read_text()
    assert "at 16 and 32 px" in card and "- 2_colour_shift at 32 px:" in card
    assert f"| 32 | D_Initial | {cand['at']['32']['held_back']['D_Initial']['psnr']:.4g} |" in card


def test_ship_check_bad_input(setup, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    for argv, words in [
        (["--data", str(tmp_path / "empty")], "no images"),
        (["--data", str(tmp_path / "missing")], "no such image folder"),
        (["--data", str(setup / "photos"), "--sizes", "32,36"], "multiples of 8"),
        (["--data", str(setup / "photos"), "--sizes", "32,x"], "sizes like 128,256"),
        (["--data", str(setup / "photos"), "--baseline", str(tmp_path / "nope")],
         "no such checkpoint"),
    ]:
        code = main(["ship-check", "--candidate", str(setup / "m0"), *argv, "--out", str(out),
                     "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("swycc: error:"), err
        assert words in err[0], err
    assert not out.exists()
