"""The second stage end to end on the command line: encode-dataset -> train-dit -> generate."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from swycc.cli import main
from swycc.config_types import ConfigError
from swycc.generation.config import get_dit_preset, override_dit_text
from swycc.generation.latents import autoencoder_identity
from swycc.generation.dit import count_parameters
from swycc.generation.task import load_dit


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def make_autoencoder(path, seed: int):
    from swycc.autoencoders.base import Autoencoder
    from swycc.config import get_preset, shrink

    torch.manual_seed(seed)
    Autoencoder.from_config(shrink(get_preset("tiny"))).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """Two classes x 4 random 32 px images, a tiny autoencoder, its latents, a 3-step DiT."""
    root = tmp_path_factory.mktemp("dit")
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / "data" / name).mkdir(parents=True)
        for i in range(4):
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / "data" / name / f"{i}.png")
    make_autoencoder(root / "ae", seed=0)
    make_autoencoder(root / "ae-other", seed=1)  # same config, other weights
    assert main(["encode-dataset", "--checkpoint", str(root / "ae"), "--data",
                 str(root / "data"), "--out", str(root / "lat"), "--no-progress",
                 "--device", "cpu"]) == 0
    assert main(["train-dit", "--latents", str(root / "lat"), "--preset", "dit-tiny", "--out",
                 str(root / "run"), "--max-steps", "3", "--no-progress", "--device", "cpu"]) == 0
    return root


def test_info_counts_dit_l2_without_weights(capsys):
    rc, out, _ = run(capsys, "info", "--preset", "dit-L/2")
    m = re.search(r"^DiT: ([0-9.]+)M parameters$", out, re.M)
    assert rc == 0 and m
    n = float(m.group(1))
    assert abs(n / 458 - 1) < 0.10  # DiT paper, Table 1: DiT-L/2 458M
    assert n == pytest.approx(count_parameters(get_dit_preset("dit-L/2").dit) / 1e6, abs=0.05)


def test_set_overrides_are_typed_and_checked():
    cfg = override_dit_text(get_dit_preset("dit-tiny"), "dit.hidden", "64")
    assert cfg.dit.hidden == 64 and isinstance(cfg.dit.hidden, int)
    with pytest.raises(ConfigError, match=r"dit\.hidden"):
        override_dit_text(cfg, "dit.hidden", "6x")
    wide = override_dit_text(cfg, "dit.hidden", "48")  # 2 heads of 24
    with pytest.raises(ConfigError, match=r"dit\.heads.*multiple of 4"):  # 8 heads of 6
        override_dit_text(wide, "dit.heads", "8")
    with pytest.raises(ConfigError, match=r"dit\.hiden"):
        override_dit_text(cfg, "dit.hiden", "64")


def test_encode_train_generate_end_to_end(stage, capsys):
    model, meta = load_dit(stage / "run" / "export")
    assert meta["latents"]["identity"] == json.loads(json.dumps(autoencoder_identity(stage / "ae")))
    assert meta["latents"]["class_names"] == ["cat", "dog"]
    assert meta["latents"]["latent_shape"] == [2, 4, 4]  # tiny AE: C = 2, 32 px / 8
    assert (model.cfg.num_classes, model.cfg.latent_channels, model.cfg.latent_size) == (2, 2, 4)
    out = stage / "gen"
    rc, text, err = run(capsys, "generate", "--dit", stage / "run" / "export", "--ae-checkpoint",
                        stage / "ae", "--classes", "0,dog", "--per-class", 2, "--steps", 3,
                        "--decoder-steps", 2, "--out", out)
    assert rc == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["0000-cat_0.png", "0000-cat_1.png", "0001-dog_0.png", "0001-dog_1.png",
                     "grid.png"]
    for n in names[:4]:
        assert Image.open(out / n).size == (32, 32)
    pad = 2  # save_grid: 2 columns x 2 rows of 32 px, 2 px padding
    assert Image.open(out / "grid.png").size == (2 * (32 + pad) + pad, 2 * (32 + pad) + pad)
    # the same command (same seed), the same images; another seed, other images
    again = ["generate", "--dit", stage / "run" / "export", "--ae-checkpoint", stage / "ae",
             "--classes", "0,dog", "--per-class", 2, "--steps", 3, "--decoder-steps", 2]
    assert run(capsys, *again, "--out", stage / "gen-again")[0] == 0
    assert run(capsys, *again, "--seed", 1, "--out", stage / "gen-seed1")[0] == 0
    pixels = {d: np.asarray(Image.open(stage / d / "0001-dog_1.png"))
              for d in ("gen", "gen-again", "gen-seed1")}
    assert np.array_equal(pixels["gen"], pixels["gen-again"])
    assert not np.array_equal(pixels["gen"], pixels["gen-seed1"])


def test_resumed_dit_training_equals_an_uninterrupted_run(stage, capsys):
    common = ["train-dit", "--latents", stage / "lat", "--preset", "dit-tiny", "--no-progress",
              "--device", "cpu", "--set", "train.checkpoint_every=1000"]
    assert run(capsys, *common, "--out", stage / "a", "--max-steps", 2)[0] == 0
    assert run(capsys, *common, "--out", stage / "a", "--max-steps", 4)[0] == 0
    assert run(capsys, *common, "--out", stage / "b", "--max-steps", 4)[0] == 0
    a = load_file(stage / "a" / "export" / "dit.safetensors")
    b = load_file(stage / "b" / "export" / "dit.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = load_file(stage / "run" / "export" / "dit.safetensors")  # 3 steps: not the same
    assert not all(torch.equal(a[k], c[k]) for k in a)
    # another DiT into the same run directory is refused
    rc, _, err = run(capsys, *common, "--out", stage / "a", "--set", "dit.depth=3")
    assert rc == 2 and "another dit config" in err


def _assert_refused(result, *absent):
    rc, out, err = result
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("swycc: error: "), err
    for p in absent:
        assert not p.exists(), p
    return lines[0]


def test_bad_inputs_are_refused_before_any_output(stage, capsys):
    gen = ["generate", "--dit", stage / "run" / "export", "--per-class", 1, "--steps", 1,
           "--decoder-steps", 1]
    out = stage / "refused"
    msg = _assert_refused(run(capsys, *gen, "--ae-checkpoint", stage / "ae", "--classes", "0,2",
                              "--out", out), out)
    assert "class index 2" in msg
    msg = _assert_refused(run(capsys, *gen, "--ae-checkpoint", stage / "ae", "--classes",
                              "cat,horse", "--out", out), out)
    assert "'horse'" in msg
    msg = _assert_refused(run(capsys, *gen, "--ae-checkpoint", stage / "ae-other", "--classes",
                              "0", "--out", out), out)
    assert "not the autoencoder this DiT was trained on" in msg and "weights" in msg
    msg = _assert_refused(run(capsys, *gen, "--classes", "0", "--out", out), out)
    assert "--ae-checkpoint is required" in msg

    train = ["train-dit", "--preset", "dit-tiny", "--max-steps", 1, "--no-progress", "--device",
             "cpu"]
    run_dir = stage / "refused-run"
    # latents whose 4 x 4 side does not split into 3 x 3 patches
    msg = _assert_refused(run(capsys, *train, "--latents", stage / "lat", "--set",
                              "dit.latent_size=6", "--set", "dit.patch=3", "--out", run_dir),
                          run_dir)
    assert "patch" in msg
    # not a latent dataset; a damaged index; a truncated shard
    msg = _assert_refused(run(capsys, *train, "--latents", stage / "data", "--out", run_dir),
                          run_dir)
    assert "index.json" in msg
    import shutil

    for damage in ("index", "shard"):
        bad = stage / f"lat-{damage}"
        shutil.copytree(stage / "lat", bad)
        if damage == "index":
            (bad / "index.json").write_text("{not json")
        else:
            shard = next(bad.glob("shard-*.safetensors"))
            shard.write_bytes(shard.read_bytes()[:-40])
        msg = _assert_refused(run(capsys, *train, "--latents", bad, "--out", run_dir), run_dir)
        assert str(bad) in msg


def test_generate_survives_a_progress_bar_that_redraws(stage, capsys, monkeypatch):
    """tqdm's update returns True whenever it redraws (on a slow machine, at every batch); the
    generated images must not depend on it."""
    import tqdm.std

    original = tqdm.std.tqdm.update
    monkeypatch.setattr(tqdm.std.tqdm, "update", lambda self, n=1: original(self, n) or True)
    rc, _, err = run(capsys, "generate", "--dit", stage / "run" / "export", "--ae-checkpoint",
                     stage / "ae", "--classes", "0,dog", "--per-class", 2, "--steps", 2,
                     "--decoder-steps", 2, "--out", stage / "gen-redraw")
    assert rc == 0, err
    assert len(list((stage / "gen-redraw").glob("*.png"))) == 5
