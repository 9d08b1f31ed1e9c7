"""Generation scores (eval-generation), the generation experiments, and IDX -> image folders."""

import gzip
import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from swycc.cli import main
from swycc.metrics.evaluate import FeatureSet
from swycc.generation.generator import balanced_labels
from swycc.generation.evaluate import score_generated, stats_from_npz
from swycc.data.idx_folder import main as idx_main
from swycc.data.idx_folder import read_idx
from swycc.metrics import maths


class Pixels(torch.nn.Module):
    """A stand-in extractor: the mean colour of 2x2 blocks of a 4x4 downsample (12-d)."""

    name, dim, preprocess_id = "effnetlite0", 12, "test-pixels"

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1).double()


def _independent_fd(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_generated_scores_match_an_independent_frechet_distance():
    g = torch.Generator().manual_seed(0)
    gen = torch.rand(40, 3, 8, 8, generator=g) * 2 - 1
    ref = torch.rand(30, 3, 8, 8, generator=g) * 1.6 - 0.9
    net = Pixels()
    reference = FeatureSet(net, keep=True, logits=False)
    q = lambda x: maths.quantize_uint8(x).float() / 127.5 - 1.0  # noqa: E731 - what is scored
    reference.add(net, q(ref), 16)
    values, n = score_generated(iter(gen.split(7)), ["fd_effnetlite0", "mmd_effnetlite0"],
                                {"effnetlite0": net}, {"effnetlite0": reference}, batch_size=16)
    assert n == 40
    fa, fb = net(q(gen)).numpy(), net(q(ref)).numpy()
    assert values["fd_effnetlite0"] == pytest.approx(_independent_fd(fa, fb), rel=1e-6)
    assert values["mmd_effnetlite0"] == pytest.approx(
        maths.mmd2_rbf(maths.l2_normalize(torch.from_numpy(fa)),
                       maths.l2_normalize(torch.from_numpy(fb))), rel=1e-9)
    # precomputed reference statistics (ADM-style mu / sigma) give the same distance
    stats = maths.FeatureStats.from_moments(fb.mean(0), np.cov(fb, rowvar=False))
    assert np.allclose(stats.mean(), fb.mean(0)) and np.allclose(stats.cov(), np.cov(fb.T))
    only_stats = FeatureSet(net, keep=False, logits=False)
    only_stats.stats = stats
    again, _ = score_generated(iter([gen]), ["fd_effnetlite0"], {"effnetlite0": net},
                               {"effnetlite0": only_stats})
    assert again["fd_effnetlite0"] == pytest.approx(values["fd_effnetlite0"], rel=1e-6)


def test_reference_stats_file_is_checked(tmp_path):
    np.savez(tmp_path / "ok.npz", mu=np.zeros(3), sigma=np.eye(3))
    s = stats_from_npz(tmp_path / "ok.npz")
    assert np.allclose(s.cov(), np.eye(3)) and np.allclose(s.mean(), 0)
    np.savez(tmp_path / "bad.npz", mu=np.zeros(3), sigma=np.eye(2))
    with pytest.raises(ValueError, match="do not match"):
        stats_from_npz(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="'mu' and 'sigma'"):
        stats_from_npz(tmp_path / "missing.npz")


def test_balanced_labels_cycle_through_classes():
    assert balanced_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]


# ---- IDX files (Fashion-MNIST's format) -> a labelled folder ----

def _idx(path, arr: np.ndarray) -> None:
    head = bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())


def test_idx_folder_writes_padded_class_folders(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 0, 2, 1, 0, 2], dtype=np.uint8)
    _idx(tmp_path / "i.gz", images)
    _idx(tmp_path / "l.gz", labels)
    assert np.array_equal(read_idx(tmp_path / "i.gz"), images)
    out = tmp_path / "out"
    assert idx_main(["--images", str(tmp_path / "i.gz"), "--labels", str(tmp_path / "l.gz"),
                     "--per-class", "2", "--pad-to", "32", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir())[:3] == ["0-t-shirt-top", "1-trouser",
                                                          "2-pullover"]
    assert sorted(p.name for p in (out / "0-t-shirt-top").iterdir()) == ["00000.png",
                                                                        "00002.png"]
    px = np.asarray(Image.open(out / "2-pullover" / "00003.png"))
    assert px.shape == (32, 32) and np.array_equal(px[2:30, 2:30], images[3])
    assert px[:2].sum() == 0 and px[:, :2].sum() == 0  # zero border, every pixel kept
    # a non-IDX file, and a non-empty --out: one error line, exit 2, nothing written
    (tmp_path / "junk.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    assert idx_main(["--images", str(tmp_path / "junk.gz"), "--labels", str(tmp_path / "l.gz"),
                     "--out", str(tmp_path / "o2")]) == 2
    assert not (tmp_path / "o2").exists()
    assert idx_main(["--images", str(tmp_path / "i.gz"), "--labels", str(tmp_path / "l.gz"),
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not an IDX file" in err and "not an empty folder" in err


# ---- eval-generation and the generation experiments, end to end ----

@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    rng = np.random.default_rng(1)
    for name in ("cat", "dog"):
        (root / "data" / name).mkdir(parents=True)
        for i in range(3):
            base = rng.integers(0, 256, 3) if name == "cat" else np.array([20, 200, 60])
            img = np.clip(base + rng.integers(-30, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / "data" / name / f"{i}.png")
    return root


TINY = ["--preset", "tiny", "--steps", "2", "--dit-preset", "dit-tiny", "--dit-steps", "2",
        "--dit-evals", "2", "--gen-images", "4", "--sample-steps", "2", "--decode-steps", "2",
        "--eval-images", "2", "--metrics", "mmd_effnetlite0", "--no-progress"]  # no 1280-d sqrtm


def test_generation_experiment_end_to_end_and_resume(labelled, monkeypatch):
    out = labelled / "exp"
    argv = ["experiment", "generation", *TINY, "--ks", "8", "--data",
            str(labelled / "data"), "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "results-generation.json").read_text())
    arms = sorted({r["arm"] for r in report["results"]})
    assert arms == ["gan-K8", "swycc-K8"]
    assert sorted({r["dit_step"] for r in report["results"]}) == [1, 2]
    assert all(np.isfinite(r["metrics"]["mmd_effnetlite0"]) for r in report["results"])
    for name in ("results-generation.md", "results-generation.png", "arms/swycc-K8/samples.png",
                 "arms/gan-K8/latents/index.json"):
        assert (out / name).is_file()
    # re-running trains, encodes and scores nothing again
    import swycc.experiments.generation as gen_mod

    def boom(*a, **k):
        raise AssertionError("a finished score was recomputed")

    monkeypatch.setattr(gen_mod, "_score", boom)
    assert main(argv) == 0
    again = json.loads((out / "results-generation.json").read_text())
    assert again["results"] == report["results"]
    # dit-convergence in the same --out reuses the K = 8 arms and adds DGAE's
    monkeypatch.undo()
    assert main(["experiment", "dit-convergence", *TINY, "--latent-channels", "1", "--data",
                 str(labelled / "data"), "--out", str(out)]) == 0
    conv = json.loads((out / "results-dit-convergence.json").read_text())
    assert sorted({r["arm"] for r in conv["results"]}) == ["dgae-K8", "gan-K8", "swycc-K8"]
    same = [r for r in conv["results"] if r["arm"] == "swycc-K8"]
    assert same == [r for r in report["results"] if r["arm"] == "swycc-K8"]


def test_generation_experiment_needs_a_labelled_folder(tmp_path, capsys):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "flat" / "a.png")
    rc = main(["experiment", "generation", *TINY, "--data", str(tmp_path / "flat"), "--out",
               str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "class sub-folders" in err and not (tmp_path / "o").exists()


def test_eval_generation_end_to_end(labelled, capsys):
    exp = labelled / "exp" / "arms" / "swycc-K8"
    if not (exp / "dit" / "export").exists():
        pytest.skip("needs the experiment test's run")
    common = ["eval-generation", "--dit", str(exp / "dit" / "export"), "--ae-checkpoint",
              str(exp / "export"), "--reference", str(labelled / "data"), "--num-images", "4",
              "--steps", "2", "--decoder-steps", "2", "--metrics", "mmd_effnetlite0",
              "--no-progress", "--cache-dir",
              str(labelled / "cache")]
    assert main([*common, "--out", str(labelled / "ev1")]) == 0
    assert main([*common, "--out", str(labelled / "ev2")]) == 0  # cached reference
    a = json.loads((labelled / "ev1" / "metrics.json").read_text())
    b = json.loads((labelled / "ev2" / "metrics.json").read_text())
    assert a["values"] == b["values"] and a["generated_images"] == 4
    assert set(a["values"]) == {"mmd_effnetlite0"} and a["left_out"] == []
    assert "| MMD EffNet-Lite0" in (labelled / "ev1" / "metrics.md").read_text()
    # the same latents through D_Initial instead of D_Refine's sampling
    assert main([*common, "--decoder", "initial", "--out", str(labelled / "ev3")]) == 0
    c = json.loads((labelled / "ev3" / "metrics.json").read_text())
    assert c["decoder"] == "initial" and c["decoder_steps"] is None
    assert c["values"] != a["values"]
    assert "deterministic decoder" in (labelled / "ev3" / "metrics.md").read_text()
    capsys.readouterr()
    # bad inputs: one error line, exit 2, no report
    for bad, msg in ((["--metrics", "gfidd"], "unknown generation metric"),
                     (["--reference", str(labelled / "nope")], "no such image folder"),
                     (["--ae-checkpoint", str(labelled / "exp" / "arms" / "gan-K8" / "export")],
                      "not the autoencoder this DiT was trained on")):
        rc = main([*common, *bad, "--out", str(labelled / "bad")])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and err.count("swycc: error:") == 1, err
        assert not (labelled / "bad").exists()


def test_experiment_stops_with_exit_75_when_sigterm_stops_an_arm(labelled, monkeypatch, capsys):
    import swycc.train.autoencoder_task as task
    from swycc.train.loop import TrainResult

    calls = []

    def preempted(cfg, out, **kw):
        calls.append(out)
        return TrainResult(1, 0, "signal", out, None)

    monkeypatch.setattr(task, "train_autoencoder", preempted)
    for name in ("generation", "k-sweep"):
        out = labelled / f"stopped-{name}"
        extra = ["--eval-data", str(labelled / "data")] if name == "k-sweep" else []
        rc = main(["experiment", name, *TINY, "--ks", "8", "--data", str(labelled / "data"),
                   *extra, "--out", str(out)])
        assert rc == 75 and "re-run the same command" in capsys.readouterr().err
        assert not list(out.glob("results*"))  # no report of a half-trained arm
    assert len(calls) == 2  # each stopped at its first arm


def test_autoencoder_record_survives_options_added_later():
    """A DiT's record of its autoencoder's config, made before swycc grew an option, still
    matches that autoencoder; a real change of value does not."""
    from swycc.config import get_preset
    from swycc.generation.generator import config_differences

    now = json.loads(json.dumps(get_preset("tiny").to_dict()))
    old = json.loads(json.dumps(now))
    del old["loss"]["disc_lr_scale"]  # an option added after the record was written
    assert config_differences(old, now) == []
    old["model"]["encoder"]["latent_channels"] = 8
    assert config_differences(old, now) == ["model.encoder.latent_channels"]
