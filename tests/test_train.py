import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from swycc.config import TrainConfig, override
from swycc.train.autoencoder_task import train_autoencoder as train
from swycc.train.optim import lr_at
from swycc.train.objectives import draw_noise

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def image_dir(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        # smooth colour gradients + a little texture: learnable in a few dozen steps
        yy, xx = np.mgrid[0:40, 0:44] / 40.0
        img = np.stack([xx * (i + 1) % 1, yy, 0.5 + 0.3 * np.sin(6 * xx + i)], -1)
        img = img + 0.05 * rng.standard_normal(img.shape)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(d / f"{i}.png")
    return d


def _cfg(base, image_dir, **over):
    cfg = override(base, "data.path", str(image_dir))
    for k, v in over.items():
        cfg = override(cfg, k.replace("__", "."), v)
    return cfg


def test_lr_schedule_warmup_then_cosine():
    tc = TrainConfig(lr=1.0, warmup_steps=10, total_steps=110)
    assert lr_at(0, tc) == pytest.approx(0.1)
    assert lr_at(9, tc) == pytest.approx(1.0)
    assert lr_at(60, tc) == pytest.approx(0.5)
    assert lr_at(110, tc) == pytest.approx(0.0, abs=1e-12)


def test_conditioning_dropout_rate():
    keep = torch.cat([draw_noise(0, s, torch.arange(1000), 1000, (1, 1, 1), 0.1,
                                 torch.device("cpu")).keep for s in range(100)])
    assert abs(1 - keep.mean().item() - 0.1) < 0.005  # 100k draws: std 0.001
    assert set(keep.unique().tolist()) == {0.0, 1.0}


def test_loss_falls_when_overfitting(tiny_cfg, image_dir, tmp_path):
    cfg = _cfg(tiny_cfg, image_dir, train__lr=2e-3, train__warmup_steps=5)
    train(cfg, tmp_path / "run", max_steps=60, progress=False)
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = np.mean([r["loss"] for r in recs[:5]])
    last = np.mean([r["loss"] for r in recs[-5:]])
    assert last < 0.6 * first, (first, last)


def _weights(run):
    return load_file(str(run / "export" / "model.safetensors"))


def test_interrupted_run_resumes_exactly(tiny_cfg, image_dir, tmp_path):
    cfg = _cfg(tiny_cfg, image_dir)
    train(cfg, tmp_path / "a", max_steps=6, progress=False)
    train(cfg, tmp_path / "b", max_steps=3, progress=False)  # "killed" after step 3
    res = train(cfg, tmp_path / "b", max_steps=6, progress=False)  # the same command again
    assert res.step == 6
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))


def test_resume_refuses_another_model(tiny_cfg, image_dir, tmp_path):
    from swycc.train.loop import ConfigMismatchError

    train(_cfg(tiny_cfg, image_dir), tmp_path / "r", max_steps=1, progress=False)
    with pytest.raises(ConfigMismatchError, match="another model config"):
        train(_cfg(tiny_cfg, image_dir, model__encoder__latent_channels=4), tmp_path / "r",
              max_steps=2, progress=False)


def test_nonfinite_loss_skips_step_and_run_survives(tiny_cfg, image_dir, tmp_path, monkeypatch):
    from swycc.train import objectives

    real = objectives.SWYCCObjective.micro_loss

    def flaky(self, x, step, rows, global_batch):
        loss, logs = real(self, x, step, rows, global_batch)
        return (loss * float("nan") if step == 2 else loss), logs

    monkeypatch.setattr(objectives.SWYCCObjective, "micro_loss", flaky)
    res = train(_cfg(tiny_cfg, image_dir), tmp_path / "n", max_steps=5, progress=False)
    assert res.step == 5 and res.nonfinite_steps == 1
    assert all(torch.isfinite(v).all() for v in _weights(tmp_path / "n").values())


# Adam divides by sqrt(v): for parameters whose true gradient is ~0 (e.g. a conv bias right
# before a GroupNorm) it turns float rounding noise into full-size steps. The equivalence
# tests therefore use a large Adam eps, which makes the update linear in the gradient, so a
# difference in the gradients themselves would show and rounding noise would not.
LINEAR_ADAM = {"train__adam_eps": 1.0, "train__lr": 0.05}


def test_grad_accumulation_matches_full_batch(tiny_cfg, image_dir, tmp_path):
    cfg = _cfg(tiny_cfg, image_dir, **LINEAR_ADAM)
    train(cfg, tmp_path / "full", max_steps=2, progress=False)
    train(override(cfg, "train.grad_accum", 2), tmp_path / "acc", max_steps=2, progress=False)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "acc")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


@pytest.mark.parametrize("method", ["swycc", "gan"])
def test_passes_of_one_image_match_the_whole_batch(tiny_cfg, image_dir, tmp_path, method):
    """--pass-pixels: a separable objective (SWYCC) cut into one-image passes makes the same
    update and logs the same losses; the GAN (not separable: adaptive weight, discriminator
    batch) is never cut."""
    from swycc.autoencoders.kinds import with_method
    from swycc.train.loop import image_passes

    cfg = _cfg(with_method(tiny_cfg, method), image_dir, **LINEAR_ADAM)
    px = cfg.model.image_size ** 2
    train(cfg, tmp_path / "whole", max_steps=2, progress=False, pass_pixels=0)
    train(cfg, tmp_path / "cut", max_steps=2, progress=False, pass_pixels=px)
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    logs = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").open()]
            for run in ("whole", "cut")]
    assert logs[0][-1]["loss"] == pytest.approx(logs[1][-1]["loss"], rel=1e-5)
    x, rows = torch.zeros(5, 3, 8, 8), torch.arange(5)
    assert [len(r) for _, r in image_passes(x, rows, 2 * 64 + 1)] == [2, 2, 1]
    assert [r.tolist() for _, r in image_passes(x, rows, 1)] == [[0], [1], [2], [3], [4]]
    assert len(image_passes(x, rows, 0)) == 1 and len(image_passes((x, x), rows, 64)) == 1


def _cli_train(args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_two_process_ddp_equals_one_process(image_dir, tmp_path):
    common = ["train", "--preset", "tiny", "--data", str(image_dir), "--max-steps", "3",
              "--batch-size", "4", "--no-progress", "--set", "loss.perceptual_weight=0",
              "--set", "model.encoder.base_channels=8", "--set", "model.decoder.base_channels=8",
              "--set", "model.unet.base_channels=8", "--set", "train.warmup_steps=2",
              "--set", "train.adam_eps=1.0", "--lr", "0.05", "--no-bf16"]  # fp32: exact sums
    one = _cli_train(["-m", "swycc", *common, "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    two = _cli_train(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                      "-m", "swycc", *common, "--out", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    init = _initial_weights(common)
    assert any(not torch.allclose(a[k], init[k], atol=1e-4) for k in a)  # training did move


def _initial_weights(common):
    from swycc.autoencoders.base import Autoencoder
    from swycc.cli import make_parser
    from swycc.cli.args import build_config

    args = make_parser().parse_args([*common, "--out", "unused"])
    torch.manual_seed(0)
    return Autoencoder.from_config(build_config(args)).state_dict()


def test_bf16_autocast_trains_finite(tiny_cfg, image_dir, tmp_path):
    res = train(_cfg(tiny_cfg, image_dir, train__bf16=True), tmp_path / "bf", max_steps=2,
                progress=False)
    assert res.nonfinite_steps == 0
    w = _weights(tmp_path / "bf")
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in w.values())


def test_checkpoint_of_another_model_is_refused_without_config_json(tiny_cfg, image_dir, tmp_path):
    """A run directory whose config.json is gone still names its model: the config inside the
    newest checkpoint. Resuming another model from it is a clear error, not a traceback."""
    from swycc.train.loop import ConfigMismatchError

    train(_cfg(tiny_cfg, image_dir), tmp_path / "r", max_steps=1, progress=False)
    (tmp_path / "r" / "config.json").unlink()
    with pytest.raises(ConfigMismatchError, match="another model config"):
        train(_cfg(tiny_cfg, image_dir, model__encoder__latent_channels=4), tmp_path / "r",
              max_steps=2, progress=False)
    res = train(_cfg(tiny_cfg, image_dir), tmp_path / "r", max_steps=2, progress=False)
    assert res.step == 2  # the same config resumes


def test_training_leaves_subnormal_floats_alone_afterwards(tiny_cfg, tmp_path):
    """The loop flushes denormals while it trains (100x faster Adam on CPU) and switches the
    process-wide flag back off: later float maths keeps its subnormal values."""
    import math

    from swycc.train.autoencoder_task import train_autoencoder

    train_autoencoder(tiny_cfg, tmp_path / "run", max_steps=1, progress=False)
    assert math.exp(-740) > 0.0 and float(torch.tensor(1e-40)) > 0.0


def test_autoencoder_phase_leaves_d_refine_alone(tiny_cfg, image_dir, tmp_path):
    """loss.diffusion_weight = 0: E and D_Initial train on eq. (3)'s D_Initial terms alone;
    D_Refine keeps its weights (1 step and 3 steps export the same D_Refine) and no L_AE is
    computed."""
    cfg = _cfg(tiny_cfg, image_dir, loss__diffusion_weight=0.0, train__lr=2e-3,
               train__warmup_steps=0)
    train(cfg, tmp_path / "one", max_steps=1, progress=False)
    train(cfg, tmp_path / "three", max_steps=3, progress=False)
    one, three = _weights(tmp_path / "one"), _weights(tmp_path / "three")
    refine = [k for k in one if k.startswith("d_refine.")]
    initial = [k for k in one if k.startswith("d_initial.") and k.endswith("weight")]
    assert refine and initial
    assert all(torch.equal(one[k], three[k]) for k in refine)
    assert any(not torch.equal(one[k], three[k]) for k in initial)
    recs = [json.loads(ln) for ln in (tmp_path / "three" / "metrics.jsonl").read_text().splitlines()]
    assert recs and all("loss_ae" not in r and "loss_mse" in r for r in recs)


def test_pass_pixels_option_is_checked(tmp_path, capsys):
    from swycc.cli import main

    assert main(["train", "--pass-pixels", "-5", "--out", str(tmp_path / "r")]) == 2
    assert "--pass-pixels: must be 0 (no limit)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_log_mse_form_weights_each_image_by_its_inverse_mse():
    """loss.mse_form="log": mean_i ln(MSE_i + eps), whose gradient is the per-image MSE gradient
    scaled by 1 / (N (MSE_i + eps)); the default "mean" is the plain MSE over all pixels."""
    from swycc.config import LossConfig
    from swycc.train.objectives import LOG_MSE_EPS, add_initial_losses

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(3, 3, 8, 8, generator=g) * torch.tensor([0.01, 0.1, 0.5]).view(3, 1, 1, 1)
    x_hat = (x + noise).requires_grad_()
    cfg = LossConfig(perceptual_weight=0.0, mse_form="log", mse_weight=0.5)
    total, logs = add_initial_losses(x.new_zeros(()), {}, x, x_hat, cfg, None)
    err = x_hat.detach() - x  # noise up to rounding
    per = err.pow(2).flatten(1).mean(1)
    assert float(total) == pytest.approx(0.5 * float((per + LOG_MSE_EPS).log().mean()), rel=1e-6)
    assert float(logs["loss_mse"]) == pytest.approx(float(per.mean()), rel=1e-6)
    total.backward()
    want = 0.5 * 2 * err / (x[0].numel() * 3 * (per + LOG_MSE_EPS).view(3, 1, 1, 1))
    torch.testing.assert_close(x_hat.grad, want, rtol=1e-5, atol=1e-9)
    # the default form is the plain MSE over all pixels
    plain, _ = add_initial_losses(x.new_zeros(()), {}, x, x_hat.detach(),
                                  LossConfig(perceptual_weight=0.0), None)
    assert float(plain) == pytest.approx(float(per.mean()), rel=1e-6)


def test_patch_mean_error_sees_only_each_patchs_mean():
    """loss.patch_mean_weight: texture that averages to zero within each k x k patch costs
    nothing; a shift of one patch's mean costs its square over the patches."""
    from swycc.config import LossConfig
    from swycc.train.objectives import add_initial_losses, patch_mean_error

    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    checker = torch.ones(16, 16)
    checker[::2] *= -1
    checker[:, ::2] *= -1  # zero mean in every 8x8 (indeed 2x2) patch
    assert float(patch_mean_error(x + 0.3 * checker, x, 8)) == pytest.approx(0, abs=1e-12)
    shifted = x.clone()
    shifted[1, 2, :8, 8:] += 0.5  # one patch of one channel of one image
    # 2 images x 3 channels x 4 patches = 24 patch means, one off by 0.5
    assert float(patch_mean_error(shifted, x, 8)) == pytest.approx(0.25 / 24, rel=1e-6)
    cfg = LossConfig(perceptual_weight=0.0, mse_weight=0.0, patch_mean_weight=2.0)
    total, logs = add_initial_losses(x.new_zeros(()), {}, x, shifted, cfg, None)
    assert float(total) == pytest.approx(2 * 0.25 / 24, rel=1e-6)
    assert set(logs) == {"loss_patch_mean"}
