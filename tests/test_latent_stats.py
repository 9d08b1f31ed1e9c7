"""Latent statistics in exports: measured, stored, shown in the model card and used downstream."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from swycc.autoencoders.base import Autoencoder, read_latent_stats, weights_sha256
from swycc.data import center_crop_square, load_image
from swycc.autoencoders.latent_stats import LatentStats, LatentStatsError, RunningMoments


def _images(root, n=6, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for i in range(n):
        a = rng.integers(0, 256, (20 + 3 * i, 24, 3), dtype=np.uint8)
        Image.fromarray(a).save(root / f"im{i}.png")
    return root


def test_running_moments_equal_the_whole_tensor():
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, 3, 4, 5, generator=g) * 3 + 1 for n in (1, 4, 7)]
    m = RunningMoments()
    for p in parts:
        m.update(p)
    whole = torch.cat(parts).transpose(0, 1).flatten(1).double()
    torch.testing.assert_close(m.mean, whole.mean(1))
    torch.testing.assert_close(m.std(), whole.std(1))


def test_scaling_and_shift_factors_are_whole_tensor_moments():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(64, 2, 8, 8, generator=g) * torch.tensor([2.0, 0.5]).view(1, 2, 1, 1) \
        + torch.tensor([1.0, -3.0]).view(1, 2, 1, 1)
    m = RunningMoments()
    m.update(z)
    s = LatentStats(tuple(m.mean.tolist()), tuple(m.std().tolist()), 64, "test")
    assert s.shift_factor == pytest.approx(float(z.double().mean()), rel=1e-9)
    assert s.scaling_factor == pytest.approx(1 / float(z.double().std()), rel=1e-4)
    n = s.normalize(z)
    torch.testing.assert_close(n.transpose(0, 1).flatten(1).mean(1), torch.zeros(2),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(s.denormalize(n), z, atol=1e-5, rtol=0)
    with pytest.raises(LatentStatsError, match="std > 0"):
        LatentStats((0.0,), (0.0,), 1, "x")
    with pytest.raises(LatentStatsError, match="3 channels"):
        s.normalize(torch.zeros(1, 3, 2, 2))


def test_cli_adds_stats_to_an_old_export(tmp_path, random_tiny_model, capsys):
    from swycc.cli import main

    model = random_tiny_model()
    model.save_pretrained(tmp_path / "exp")
    before = weights_sha256(tmp_path / "exp")
    assert read_latent_stats(tmp_path / "exp") is None
    assert "Not recorded" in (tmp_path / "exp" / "README.md").read_text()
    data = _images(tmp_path / "photos")
    assert main(["latent-stats", str(tmp_path / "exp"), "--data", str(data),
                 "--no-progress"]) == 0
    assert "latent statistics over 6 images" in capsys.readouterr().out
    stats = read_latent_stats(tmp_path / "exp")
    assert weights_sha256(tmp_path / "exp") == before  # same tensors
    # independently: every image's centre square at the model's size, encoded, moments by torch
    size = model.config.model.image_size
    x = torch.stack([center_crop_square(load_image(p), size)
                     for p in sorted(data.iterdir())])
    with torch.no_grad():
        z = model.encode(x).double().transpose(0, 1).flatten(1)
    np.testing.assert_allclose(stats.mean, z.mean(1).numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(stats.std, z.std(1).numpy(), rtol=1e-5)
    assert stats.images == 6 and stats.data == str(data)
    assert Autoencoder.from_pretrained(tmp_path / "exp").latent_stats == stats
    card = (tmp_path / "exp" / "README.md").read_text()
    assert f"{stats.scaling_factor:.6g}" in card and "library_name: swycc" in card
    # bad input: one line, exit 2, the export untouched
    assert main(["latent-stats", str(tmp_path / "exp"), "--data", str(tmp_path / "nope")]) == 2
    assert "swycc: error: --data" in capsys.readouterr().err
    assert read_latent_stats(tmp_path / "exp") == stats


def test_training_ends_by_measuring_its_training_data(tiny_cfg, tmp_path):
    from swycc.data import build_dataset
    from swycc.train.autoencoder_task import train_autoencoder

    res = train_autoencoder(tiny_cfg, tmp_path / "run", device="cpu", max_steps=1,
                            progress=False)
    stats = read_latent_stats(res.export)
    model = Autoencoder.from_pretrained(res.export)
    assert f"{stats.scaling_factor:.6g}" in (res.export.parent / "README.md").read_text()
    data = build_dataset(tiny_cfg.data, tiny_cfg.model.image_size, train=True,
                         seed=tiny_cfg.train.seed)
    assert len(data) <= 256  # every crop is measured
    x = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        z = model.encode(x).double().transpose(0, 1).flatten(1)
    np.testing.assert_allclose(stats.mean, z.mean(1).numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(stats.std, z.std(1).numpy(), rtol=1e-5)
    assert stats.images == len(data) and "training crops" in stats.data


def test_model_card_carries_ship_check_metrics(tmp_path, random_tiny_model):
    report = {"data": "/x/test", "images": 4, "image_size": 128, "steps": 20, "guidance": 0.5,
              "pass": False, "baseline": {"checkpoint": "base.safetensors"},
              "candidate": {"held_back": {"D_Initial": {"psnr": 25.3146, "ssim": 0.7141},
                                          "samples": {"psnr": 24.1481, "ssim": 0.677}},
                            "criteria": {"1_initial_beats_bicubic": {"pass": False},
                                         "3_sample_spectrum": {"pass": True}}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    model = random_tiny_model()
    model.save_pretrained(tmp_path / "exp", ship_check=tmp_path / "report.json")
    card = (tmp_path / "exp" / "README.md").read_text()
    assert "| D_Initial | 25.31 | 0.7141 |" in card and "| samples | 24.15 | 0.677 |" in card
    assert "- 1_initial_beats_bicubic: FAIL" in card and "- 3_sample_spectrum: PASS" in card
    assert "verdict: FAIL against the baseline `base.safetensors`" in card
    assert f"- steps: {model.config.train.total_steps}" in card
    assert f"(trained on {model.config.model.image_size} px crops)" in card
    with pytest.raises(ValueError, match="not a readable ship-check report"):
        model.save_pretrained(tmp_path / "exp2", ship_check=tmp_path / "missing.json")
    assert not (tmp_path / "exp2").exists()


def test_encode_dataset_can_normalise_with_the_exports_stats(tmp_path, random_tiny_model,
                                                             capsys):
    from swycc.cli import main

    model = random_tiny_model()
    model.save_pretrained(tmp_path / "plain")
    model.latent_stats = LatentStats((0.25, -0.5), (2.0, 4.0), 10, "test")
    model.save_pretrained(tmp_path / "ae")
    root = tmp_path / "classes"
    for c in ("a", "b"):
        _images(root / c, n=2, seed=ord(c))
    assert main(["encode-dataset", "--checkpoint", str(tmp_path / "ae"), "--data", str(root),
                 "--out", str(tmp_path / "lat"), "--stats", "export", "--no-progress"]) == 0
    assert "(export, used to normalise): mean [0.25, -0.5]" in capsys.readouterr().out
    index = json.loads((tmp_path / "lat" / "index.json").read_text())
    assert index["stats_source"] == "export" and index["std"] == [2.0, 4.0]
    from swycc.generation.latents import LatentDataset

    raw, norm = LatentDataset(tmp_path / "lat", raw=True), LatentDataset(tmp_path / "lat")
    z = torch.stack([raw[i][0] for i in range(len(raw))]).double().transpose(0, 1).flatten(1)
    np.testing.assert_allclose(index["data_mean"], z.mean(1).numpy(), atol=1e-6)
    torch.testing.assert_close(norm[0][0], model.latent_stats.normalize(raw[0][0]))
    assert main(["encode-dataset", "--checkpoint", str(tmp_path / "plain"), "--data", str(root),
                 "--out", str(tmp_path / "lat2"), "--stats", "export", "--no-progress"]) == 2
    assert "records no latent statistics" in capsys.readouterr().err
    assert not (tmp_path / "lat2").exists()


def test_model_card_budget_schedule_and_crop_sizes(random_tiny_model):
    """A budget-sized schedule is not reported as the config's nominal total_steps, and the
    crops' sides (data.crop_sizes) are the ones named."""
    from swycc.autoencoders.model_card import model_card
    from swycc.config import override

    model = random_tiny_model()
    cfg = override(override(model.config, "train.time_budget_s", 600.0),
                   "train.schedule_from_budget", True)
    model.config = override(override(cfg, "data.path", "/x/photos/train"),
                            "data.crop_sizes", (128, 128, 256))
    card = model_card(model)
    assert "- steps: a schedule sized to a 600 s time budget" in card
    assert f"- steps: {cfg.train.total_steps} " not in card
    assert "(trained on 128 / 256 px crops)" in card and "`photos/train`" in card
