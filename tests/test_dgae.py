"""DGAE: the KL term against its closed form, the reparameterisation, resume exactness, and
`--method dgae` through every CLI verb."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from swycc.autoencoders.dgae import DGAE, gaussian_kl
from swycc.cli import main
from swycc.config import override
from swycc.autoencoders.kinds import with_method
from swycc.train.checkpoint import CheckpointDir, flatten
from swycc.train.dgae_objective import DGAEObjective


@pytest.fixture
def dgae_cfg(tiny_cfg):
    return with_method(tiny_cfg, "dgae")


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mean, logvar = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, (0.5 * logvar).exp()),
        torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean)))
    assert torch.allclose(gaussian_kl(mean, logvar), ref, atol=1e-6)
    assert gaussian_kl(torch.zeros(3), torch.zeros(3)).abs().max() == 0  # q = prior


def test_encode_is_the_posterior_mean_and_training_samples_around_it(dgae_cfg):
    torch.manual_seed(0)
    model = DGAE(dgae_cfg)
    torch.nn.init.normal_(model.d_refine.conv_out.weight, std=0.1)  # zero at init: no signal
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mean, logvar = model.posterior(x)
    assert torch.equal(model.encode(x), mean) and mean.shape == (2, 2, 4, 4)
    obj = DGAEObjective(dgae_cfg, model, torch.device("cpu"))
    t, eps, keep = torch.full((2,), 0.3), torch.randn(2, 3, 32, 32), torch.ones(2)
    zero = torch.zeros_like(mean)
    base, logs = obj.loss_module(x, t, eps, keep, zero)
    moved, _ = obj.loss_module(x, t, eps, keep, torch.randn_like(mean))
    assert not torch.allclose(base, moved)  # z = mean + std * n reaches the decoder
    kl = gaussian_kl(mean, logvar).mean()
    assert torch.allclose(logs["kl"], kl)
    heavier = DGAEObjective(override(dgae_cfg, "loss.kl_weight", 1.0), model, torch.device("cpu"))
    total, _ = heavier.loss_module(x, t, eps, keep, zero)
    assert torch.allclose(total - base, (1.0 - dgae_cfg.loss.kl_weight) * kl, atol=1e-5)


def test_perceptual_term_only_at_low_noise(dgae_cfg):
    cfg = override(override(dgae_cfg, "loss.perceptual_weight", 0.1), "loss.perceptual_max_t", 0.5)
    torch.manual_seed(0)
    model = DGAE(cfg)
    obj = DGAEObjective(cfg, model, torch.device("cpu"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    n = torch.zeros(2, 2, 4, 4)
    _, high = obj.loss_module(x, torch.full((2,), 0.9), torch.randn_like(x), torch.ones(2), n)
    _, low = obj.loss_module(x, torch.tensor([0.1, 0.9]), torch.randn_like(x), torch.ones(2), n)
    assert "loss_perceptual" not in high and torch.isfinite(low["loss_perceptual"])


def test_residual_prediction_is_refused(dgae_cfg):
    with pytest.raises(ValueError, match="anchor"):
        DGAE(override(dgae_cfg, "model.unet.predict_residual", True))


def test_dgae_resumes_exactly(dgae_cfg, tmp_path):
    from swycc.train.autoencoder_task import train_autoencoder

    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)).save(d / f"{i}.png")
    cfg = override(override(dgae_cfg, "data.path", str(d)), "loss.perceptual_weight", 0.1)
    train_autoencoder(cfg, tmp_path / "a", max_steps=4, progress=False)
    train_autoencoder(cfg, tmp_path / "b", max_steps=2, progress=False)
    train_autoencoder(cfg, tmp_path / "b", max_steps=4, progress=False)
    a, b = CheckpointDir(tmp_path / "a").load(), CheckpointDir(tmp_path / "b").load()
    _, ta = flatten({k: a[k] for k in ("model", "optimizer", "ema")})
    _, tb = flatten({k: b[k] for k in ("model", "optimizer", "ema")})
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


TINY = ["--preset", "tiny", "--method", "dgae", "--set", "model.encoder.base_channels=8",
        "--set", "model.decoder.base_channels=8", "--set", "model.unet.base_channels=8",
        "--set", "loss.perceptual_weight=0", "--batch-size", "4", "--no-progress"]


def test_method_dgae_on_every_cli_verb(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run), "--max-steps", "2"]) == 0
    export = run / "export"
    assert main(["info", "--checkpoint", str(export)]) == 0
    assert main(["info", "--preset", "paper", "--method", "dgae"]) == 0
    out = capsys.readouterr().out
    assert "method: dgae" in out and "latent guide" in out and "D_Refine" in out
    rng = np.random.default_rng(0)
    img = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)).save(img)
    ck = ["--checkpoint", str(export), "--steps", "2"]
    assert main(["reconstruct", str(img), *ck, "--samples", "2", "--out", str(tmp_path / "r")]) == 0
    assert Image.open(tmp_path / "r" / "a_s2.png").size == (28, 20)
    assert main(["encode", str(img), "--checkpoint", str(export),
                 "--out", str(tmp_path / "z.safetensors")]) == 0
    assert main(["decode", str(tmp_path / "z.safetensors"), *ck, "--out", str(tmp_path / "d")]) == 0
    assert Image.open(tmp_path / "d" / "a.png").size == (28, 20)
    assert main(["demo", *ck, "--samples", "2", "--photo-size", "16",
                 "--out", str(tmp_path / "demo")]) == 0
    stats = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert stats["method"] == "dgae" and np.isfinite(stats["psnr_samples"])
    assert "psnr_initial" not in stats  # DGAE has no deterministic reconstruction
    assert "psnr_initial" not in stats["whole_photos"]["mean"]
    ev = ["eval", *ck, "--num-images", "4", "--no-cache", "--no-progress",
          "--metrics", "psnr,ssim", "--out", str(tmp_path / "ev")]
    assert main(ev) == 0
    row = json.loads((tmp_path / "ev" / "metrics.json").read_text())["results"][0]
    assert row["method"] == "dgae" and np.isfinite(row["metrics"]["psnr"])
    capsys.readouterr()
    assert main([*ev, "--decoder", "initial"]) == 2
    assert "no deterministic decoder" in capsys.readouterr().err
