"""Each experiment end to end at tiny size (two K values, two steps), and resume: a re-run
trains and scores only what is not done."""

import json

import pytest

from swycc.cli import main

TINY = ["--preset", "tiny", "--set", "model.encoder.base_channels=8",
        "--set", "model.decoder.base_channels=8", "--set", "model.unet.base_channels=8",
        "--set", "loss.perceptual_weight=0", "--set", "data.held_out=4", "--batch-size", "4",
        "--no-progress", "--steps", "2", "--eval-images", "4", "--decode-steps", "2",
        "--metrics", "psnr,ssim,mmd_effnetlite0"]


@pytest.mark.parametrize("name, extra, arms", [
    ("k-sweep", ["--ks", "4", "8"], ["swycc-K4", "swycc-K8", "gan-K4", "gan-K8"]),
    ("aux-ablation", [], ["swycc-p0-m0", "swycc-p0-m1", "swycc-p0.1-m0", "swycc-p0.1-m1"]),
    ("dgae-latent", ["--latent-channels", "1"], ["dgae-C1", "swycc-C1", "swycc-C2"]),
    ("dists", ["--ks", "8", "--set", "loss.perceptual_weight=0.1"],
     ["swycc-K8-dists-effnetlite0", "gan-K8-dists-effnetlite0"]),
])
def test_experiment_end_to_end_and_resume(name, extra, arms, tmp_path):
    out = tmp_path / name
    argv = ["experiment", name, *TINY, *extra, "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "results.json").read_text())
    assert [r["arm"] for r in report["results"]] == arms
    assert all(r["steps_trained"] == 2 for r in report["results"])
    assert (out / "results.md").read_text().count("\n| ") == len(arms) + 1
    assert (out / "results.png").stat().st_size > 0
    if name == "k-sweep":
        assert [r["latent_channels"] for r in report["results"]] == [2, 1, 2, 1]
    # resume: drop one arm's score; the re-run re-scores it and leaves the others alone
    stamps = {a: (out / "arms" / a / "eval.json").stat().st_mtime_ns for a in arms}
    (out / "arms" / arms[0] / "eval.json").unlink()
    assert main(argv) == 0
    for a in arms[1:]:
        assert (out / "arms" / a / "eval.json").stat().st_mtime_ns == stamps[a]
    again = json.loads((out / "results.json").read_text())
    assert again["results"][0]["metrics"] == pytest.approx(report["results"][0]["metrics"])


def test_experiment_needs_held_back_images_with_a_folder(tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    assert main(["experiment", "k-sweep", *TINY, "--data", str(tmp_path / "imgs"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "--eval-data" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_k_sweep_and_dists_take_the_methods(tiny_cfg):
    from swycc.experiments.catalog import dists_sweep, k_sweep

    assert [a.name for a in k_sweep(tiny_cfg, (2, 4), ("gan",))] == ["gan-K2", "gan-K4"]
    arms = dists_sweep(tiny_cfg, (4,), ("gan",))
    assert [a.name for a in arms] == ["gan-K4-dists-effnetlite0"]
    assert arms[0].config.loss.perceptual_net == "dists-effnetlite0"
    assert arms[0].config.model.latent_channels == 2 and arms[0].config.model.method == "gan"
