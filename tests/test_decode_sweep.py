"""``swycc experiment steps`` / ``guidance`` end to end on a tiny model (two settings each),
resume (a re-run scores only what is missing), the training path, and bad input."""

import json

import pytest
import torch

from swycc.autoencoders.base import Autoencoder
from swycc.cli import main
from swycc.config import get_preset, override, shrink
from swycc.experiments.decoding import settings

FAST = ["--eval-images", "2", "--metrics", "psnr,ssim", "--no-progress"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    torch.manual_seed(0)
    cfg = override(shrink(get_preset("tiny")), "data.held_out", 2)
    Autoencoder.from_config(cfg).save_pretrained(root / "swycc")
    Autoencoder.from_config(override(cfg, "model.method", "gan")).save_pretrained(root / "gan")
    return root


def test_settings_order():
    assert settings("steps", [1, 2], [0.0, 1.0]) == [(1, 0.0), (2, 0.0), (1, 1.0), (2, 1.0)]
    assert settings("guidance", [5], [0.0, 2.0]) == [(5, 0.0), (5, 2.0)]


@pytest.mark.parametrize("name, extra, expect, proxies", [
    ("steps", ["--sweep-steps", "1", "2"], [(1, 0.5), (2, 0.5)], ["mmd_effnetlite0"]),
    ("guidance", ["--sweep-guidance", "0", "1", "--decode-steps", "2"], [(2, 0.0), (2, 1.0)], []),
])  # steps: w is the model's config (0.5); guidance: steps is --decode-steps
def test_sweep_end_to_end_and_resume(checkpoints, tmp_path, name, extra, expect, proxies):
    out = tmp_path / name
    argv = ["experiment", name, "--checkpoint", str(checkpoints / "swycc"), *FAST, *extra,
            "--metrics", ",".join(["psnr", "ssim", *proxies]), "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "results.json").read_text())
    assert [(r["steps"], r["guidance"]) for r in report["results"]] == expect
    assert report["initial"]["steps"] is None and report["images"] == 2
    want = ["psnr", "ssim", *proxies, "gradient_energy_ratio", "spectrum_distance_db"]
    assert report["metrics"] == want
    for r in [report["initial"], *report["results"]]:
        assert set(r["metrics"]) == set(want)
        assert all(v == v for v in r["metrics"].values())  # no NaN
    assert (out / "results.md").read_text().count("\n| ") == 1 + 1 + len(expect)
    assert (out / "results.png").stat().st_size > 0
    files = sorted((out / "settings").glob("*.json"))
    assert len(files) == 1 + len(expect)
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    files[-1].unlink()
    assert main(argv) == 0  # resume: only the missing setting is scored again
    for f in files[:-1]:
        assert f.stat().st_mtime_ns == stamps[f.name], f.name
    assert files[-1].exists()
    again = json.loads((out / "results.json").read_text())
    for a, b in zip(again["results"], report["results"]):
        assert a["metrics"] == pytest.approx(b["metrics"])  # same seed: the same numbers
    # another seed is another experiment: nothing is reused
    assert main([*argv, "--seed", "1"]) == 0
    assert all(f.stat().st_mtime_ns != stamps[f.name] for f in files[:-1])


def test_sweep_trains_one_model_with_a_budget(tmp_path):
    out = tmp_path / "trained"
    tiny = ["--preset", "tiny", "--set", "model.encoder.base_channels=8",
            "--set", "model.decoder.base_channels=8", "--set", "model.unet.base_channels=8",
            "--set", "loss.perceptual_weight=0", "--set", "data.held_out=2", "--batch-size", "2"]
    assert main(["experiment", "steps", *tiny, "--steps", "2", *FAST, "--sweep-steps", "1",
                 "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["checkpoint"].startswith(str(out / "model" / "export"))
    assert [(r["steps"], r["guidance"]) for r in report["results"]] == [(1, 0.5)]


def test_sweep_bad_input(checkpoints, tmp_path, capsys):
    out = tmp_path / "o"
    data = tmp_path / "data"  # beside --out, not around it (an --out inside the data is refused)
    data.mkdir()
    for argv, words in [
        (["--checkpoint", str(checkpoints / "gan")], "does not sample"),
        (["--checkpoint", str(tmp_path / "nope")], "no such checkpoint"),
        (["--checkpoint", str(checkpoints / "swycc"), "--steps", "2"], "not both"),
        (["--eval-data", str(tmp_path / "none")], "no such image folder"),
        (["--data", str(data)], "--eval-data"),
    ]:
        assert main(["experiment", "steps", *argv, *FAST, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("swycc: error:") and words in err[-1], err
    assert main(["experiment", "k-sweep", "--out", str(out)]) == 2
    assert "needs --steps" in capsys.readouterr().err
    assert not out.exists()
