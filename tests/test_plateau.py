"""--until-plateau: the rule on synthetic metric sequences (where it stops, never past the budget,
an exact resume mid-window), the paper-cpu preset's proportions, and the option end to end."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from swycc.cli import main
from swycc.experiments.converge import run_until_plateau
from swycc.experiments.plateau import LearningCurve, PlateauRule

# rises, then flattens: after the 7th score the last 3 (13.52, 13.53, 13.51) beat the best
# before them (13.5) by 0.03 <= 0.005 x 13.5 = 0.0675; after the 6th they beat 13 by 0.53
RISING_THEN_FLAT = [10, 12, 13, 13.5, 13.52, 13.53, 13.51, 13.6, 13.7]


class FakeRun:
    """A stand-in training run: train_to records the steps asked for; evaluate replays a
    sequence (score k at step k x every)."""

    def __init__(self, values, every, crash_after=None):
        self.values, self.every, self.crash_after = values, every, crash_after
        self.trained, self.step = [], 0

    def train_to(self, step):
        self.trained.append(step)
        self.step = step
        return step

    def evaluate(self, step):
        if self.crash_after is not None and len(self.trained) > self.crash_after:
            raise KeyboardInterrupt("killed mid-window")
        return self.values[-(-step // self.every) - 1]


def test_rule_stops_at_the_first_flat_window(tmp_path):
    rule = PlateauRule(every=10, window=3, tol=0.005, budget=1000)
    assert [rule.flat(RISING_THEN_FLAT[:n]) for n in range(1, 8)] == [False] * 6 + [True]
    run = FakeRun(RISING_THEN_FLAT, 10)
    curve = run_until_plateau(tmp_path / "p.json", rule, {}, run.train_to, run.evaluate)
    assert curve.stopped(rule) == "plateau" and curve.last_step == 70
    assert run.trained == [10, 20, 30, 40, 50, 60, 70]
    # lower-is-better metrics: the same sequence negated stops at the same point
    low = PlateauRule(10, 3, 0.005, 1000, higher_is_better=False)
    assert [low.flat([-v for v in RISING_THEN_FLAT[:n]]) for n in (6, 7)] == [False, True]
    # tol 0: a window that only equals the best is flat; any gain is not
    zero = PlateauRule(1, 1, 0.0, 10)
    assert zero.flat([1.0, 1.0]) and not zero.flat([1.0, 1.0 + 1e-9])


def test_rule_never_trains_past_the_budget(tmp_path):
    rule = PlateauRule(every=10, window=2, tol=0.005, budget=45)
    run = FakeRun([float(v) for v in range(1, 20)], 10)  # always improving
    curve = run_until_plateau(tmp_path / "p.json", rule, {}, run.train_to, run.evaluate)
    assert curve.stopped(rule) == "budget"
    assert run.trained == [10, 20, 30, 40, 45] and max(run.trained) == rule.budget
    with pytest.raises(ValueError, match="already stopped"):
        curve.add(rule, 55, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="expected the evaluation at step 10"):
        LearningCurve().add(rule, 20, 1.0, 0.0, 0.0)


def test_resume_mid_window_is_exact(tmp_path):
    rule = PlateauRule(every=10, window=3, tol=0.005, budget=1000)
    whole = FakeRun(RISING_THEN_FLAT, 10)
    ref = run_until_plateau(tmp_path / "a.json", rule, {"m": 1}, whole.train_to, whole.evaluate)
    # killed after the 5th score (inside the window that ends at the 7th), then re-run
    first = FakeRun(RISING_THEN_FLAT, 10, crash_after=5)
    with pytest.raises(KeyboardInterrupt):
        run_until_plateau(tmp_path / "b.json", rule, {"m": 1}, first.train_to, first.evaluate)
    assert len(json.loads((tmp_path / "b.json").read_text())["points"]) == 5
    second = FakeRun(RISING_THEN_FLAT, 10)
    curve = run_until_plateau(tmp_path / "b.json", rule, {"m": 1}, second.train_to,
                              second.evaluate)
    assert second.trained == [60, 70]  # continues where the stored curve stops
    assert [(p.step, p.value) for p in curve.points] == [(p.step, p.value) for p in ref.points]
    assert curve.stopped(rule) == ref.stopped(rule) == "plateau"
    # a curve of other settings is refused, not mixed
    with pytest.raises(ValueError, match="other --until-plateau settings"):
        run_until_plateau(tmp_path / "b.json", PlateauRule(10, 2, 0.005, 1000), {"m": 1},
                          second.train_to, second.evaluate)


def _counts(preset):
    from swycc import get_preset
    from swycc.autoencoders.base import Autoencoder

    with torch.device("meta"):
        model = Autoencoder.from_config(get_preset(preset))
    return {k: sum(p.numel() for p in v.parameters()) for k, v in model.parts().items()}


def test_paper_cpu_preset_has_the_papers_proportions(capsys):
    from swycc import get_preset

    c = _counts("paper-cpu")
    # paper: D_Refine 614M / D_Initial 63.4M = 9.7; encoder 49.4M / 63.4M = 0.78
    assert 8.5 <= c["D_Refine"] / c["D_Initial"] <= 11.5
    assert 0.65 <= c["encoder"] / c["D_Initial"] <= 0.9
    paper = _counts("paper")  # the full-size preset, structure for structure
    assert c["D_Refine"] / c["D_Initial"] == pytest.approx(
        paper["D_Refine"] / paper["D_Initial"], rel=0.02)
    cfg = get_preset("paper-cpu").model
    assert cfg.image_size == 32 and cfg.unet.attn_resolutions == (32 // 16,)
    assert main(["info", "--preset", "paper-cpu"]) == 0
    assert f"{c['D_Refine'] / 1e6:9.2f}M" in capsys.readouterr().out


TINY = ["--preset", "tiny", "--set", "model.encoder.base_channels=8",
        "--set", "model.decoder.base_channels=8", "--set", "model.unet.base_channels=8",
        "--set", "loss.perceptual_weight=0", "--set", "data.held_out=4", "--batch-size", "4",
        "--no-progress", "--eval-images", "4", "--decode-steps", "2", "--metrics", "psnr",
        "--until-plateau", "--plateau-every", "2", "--plateau-images", "4"]


def test_until_plateau_end_to_end(tmp_path, monkeypatch):
    # window 1, tol 100 (10000%): flat at the 2nd score (step 4), before the budget of 8
    plateau = ["experiment", "k-sweep", *TINY, "--ks", "8", "--methods", "gan", "--steps", "8",
               "--plateau-window", "1", "--plateau-tol", "100", "--out", str(tmp_path / "p")]
    # window 2 but a budget of 4 steps: 2 scores, never more than the window: the budget
    budget = ["experiment", "k-sweep", *TINY, "--ks", "8", "--methods", "swycc", "--steps", "4",
              "--plateau-window", "2", "--out", str(tmp_path / "b")]
    assert main(plateau) == 0 and main(budget) == 0
    for out, arm, steps, why in (("p", "gan-K8", 4, "plateau"), ("b", "swycc-K8", 4, "budget")):
        report = json.loads((tmp_path / out / "results.json").read_text())
        row = report["results"][0]
        assert (row["arm"], row["steps_trained"], row["stopped_on"]) == (arm, steps, why)
        assert [p["step"] for p in row["curve"]] == [2, 4]
        assert row["curve"][-1]["cpu_s"] > row["curve"][0]["cpu_s"] > 0
        assert f"| {steps} ({why}) |" in (tmp_path / out / "results.md").read_text()
        with Image.open(tmp_path / out / "results.png") as im:  # the curves below the panels
            assert im.height > 500
    # the curve's last point is the arm's final score (same images, same decoder)
    row = json.loads((tmp_path / "p" / "results.json").read_text())["results"][0]
    assert row["curve"][-1]["value"] == pytest.approx(row["metrics"]["psnr"])
    # killed mid-curve (after the first score), then re-run: the same curve as uninterrupted
    import swycc.metrics.evaluate as ev

    real, calls = ev.evaluate_model, []

    def dies_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(ev, "evaluate_model", dies_on_second)
    again = [*plateau[:-1], str(tmp_path / "r")]
    assert main(again) != 0  # "swycc: interrupted"
    monkeypatch.undo()
    assert main(again) == 0
    curves = [json.loads((tmp_path / o / "arms/gan-K8/plateau.json").read_text())["points"]
              for o in ("p", "r")]
    assert [(p["step"], p["value"]) for p in curves[0]] == [(p["step"], p["value"])
                                                          for p in curves[1]]
    # a finished run re-scores nothing
    stamp = (tmp_path / "p/arms/gan-K8/eval.json").stat().st_mtime_ns
    assert main(plateau) == 0
    assert (tmp_path / "p/arms/gan-K8/eval.json").stat().st_mtime_ns == stamp


def test_until_plateau_bad_options(tmp_path, capsys):
    base = ["experiment", "k-sweep", *TINY, "--ks", "8", "--steps", "4"]
    assert main([*base, "--plateau-metric", "gradient_energy_ratio", "--out",
                 str(tmp_path / "a")]) == 2
    assert main([*base, "--plateau-tol", "-1", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "better higher or lower" in err and "--plateau-tol must be >= 0" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_until_plateau_in_a_generation_experiment(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("cat", "dog"):
        for part in ("data", "held"):
            (tmp_path / part / name).mkdir(parents=True)
            for i in range(3):
                img = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
                Image.fromarray(img).save(tmp_path / part / name / f"{i}.png")
    common = [*TINY[:-7], "--ks", "8", "--methods", "gan", "--data", str(tmp_path / "data"),
              "--steps", "4", "--dit-preset", "dit-tiny", "--dit-steps", "3", "--gen-images",
              "4", "--sample-steps", "2", "--metrics", "mmd_effnetlite0", "--until-plateau",
              "--plateau-every", "2", "--plateau-images", "2", "--plateau-window", "2",
              "--dit-plateau-every", "1", "--plateau-tol", "100", "--out", str(tmp_path / "o")]
    assert main(["experiment", "generation", *common]) == 2  # the AE curves need --eval-data
    assert not (tmp_path / "o").exists()
    assert main(["experiment", "generation", *common, "--eval-data",
                 str(tmp_path / "held")]) == 0
    report = json.loads((tmp_path / "o" / "results-generation.json").read_text())
    rows = report["results"]
    # the autoencoder: 2 scores <= window 2 -> budget; the DiT: flat at its 3rd score (step 3
    # is also the budget: a plateau found there counts as the plateau)
    assert [r["dit_step"] for r in rows] == [1, 2, 3]
    assert {(r["ae_steps"], r["ae_stopped_on"], r["dit_stopped_on"]) for r in rows} == \
        {(4, "budget", "plateau")}
    md = (tmp_path / "o" / "results-generation.md").read_text()
    assert "| 4 (budget) | 3 (plateau) |" in md
