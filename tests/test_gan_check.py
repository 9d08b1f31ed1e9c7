"""gan-check: the GAN baseline against its decoder without the adversarial term, scored for
sharpness; the GAN's adaptive weight and D logits in metrics.jsonl; resume."""

import json

from dataclasses import replace

import pytest
import torch

from swycc.cli import main
from swycc.experiments.gan_check import (GAN_ARM, OFF_ARM, conclude, gan_check_arms, gan_state,
                                         sharpness_extras)

TINY = ["--preset", "tiny", "--set", "model.encoder.base_channels=8",
        "--set", "model.decoder.base_channels=8", "--set", "loss.disc_base_channels=8",
        "--set", "loss.perceptual_weight=0", "--set", "data.held_out=4",
        "--set", "loss.adversarial_start=0", "--set", "train.log_every=1",
        "--batch-size", "4", "--no-progress", "--steps", "2", "--eval-images", "4",
        "--metrics", "psnr,ssim"]
LOGGED = ("adv_weight", "d_logit_real", "d_logit_fake")


def test_arms_differ_only_in_the_adversarial_term(tiny_cfg):
    from swycc.config import override

    base = override(override(tiny_cfg, "loss.lecam_weight", 0.01), "loss.adversarial_start", 5)
    gan, off = gan_check_arms(base)
    assert (gan.name, off.name) == (GAN_ARM, OFF_ARM)
    assert gan.config.model == off.config.model and gan.config.model.method == "gan"
    assert gan.config.model.decoder.adaptive_norm  # the GAN kind's decoder in both arms
    assert gan.config.train == off.config.train and gan.config.data == off.config.data
    assert gan.config.loss.adversarial_weight > 0 and off.config.loss.adversarial_weight == 0
    assert gan.config.loss.lecam_weight == 0.01
    # inert without the adversarial term: the off arm keeps the defaults (one run for all tunings)
    assert off.config.loss.lecam_weight == 0.001 and off.config.loss.adversarial_start == 2000
    assert off.config.loss.mse_weight == gan.config.loss.mse_weight


def test_tiny_gan_training_logs_weight_and_logits(tiny_cfg, tmp_path):
    from swycc.config import override
    from swycc.train.autoencoder_task import train_autoencoder

    cfg = override(override(tiny_cfg, "model.method", "gan"), "loss.adversarial_start", 1)
    cfg = override(override(cfg, "train.total_steps", 3), "model.decoder.adaptive_norm", True)
    train_autoencoder(cfg, tmp_path / "run", progress=False)
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3]
    assert not set(LOGGED) & set(recs[0])  # step 0: the adversarial term is still off
    for r in recs[1:]:
        assert all(isinstance(r[k], float) for k in LOGGED) and r["adv_weight"] > 0
    state = gan_state(tmp_path / "run" / "metrics.jsonl")
    assert state["final"]["d_logit_fake"] == recs[-1]["d_logit_fake"]
    assert state["adversarial_records"] == 2 and state["first_step"] == 2


def test_gan_state_means_and_curve(tmp_path):
    path = tmp_path / "metrics.jsonl"
    recs = [{"step": 1, "loss": 1.0}] + [
        {"step": s, "adv_weight": 0.1 * s, "d_logit_real": 1.0, "d_logit_fake": -float(s),
         "loss_d": 0.5} for s in range(2, 14)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    st = gan_state(path, last=4, curve_points=6)
    assert st["adversarial_records"] == 12 and st["final_step"] == 13
    assert st["mean_last_4"]["adv_weight"] == pytest.approx(0.1 * (10 + 11 + 12 + 13) / 4)
    assert st["mean_last_4"]["d_logit_fake"] == pytest.approx(-11.5)
    assert st["curve"]["step"] == [2, 4, 6, 8, 10, 12]
    assert gan_state(tmp_path / "missing.jsonl") == {"adversarial_records": 0}
    # logs written before the keys were renamed (d_real / d_fake) read the same
    old = [{k.replace("d_logit_", "d_"): v for k, v in r.items()} for r in recs]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    assert gan_state(path, last=4, curve_points=6) == st


class _Identity(torch.nn.Module):
    def reconstruct_initial(self, x):
        return x


class _Blur(torch.nn.Module):
    def reconstruct_initial(self, x):
        return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1,
                                              count_include_pad=False)


def test_sharpness_of_a_perfect_and_a_blurring_decoder(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(3, 16, 16, generator=g) * 2 - 1, 0) for _ in range(5)]
    perfect = sharpness_extras(_Identity(), tmp_path, data, 5, "cpu")
    assert perfect["sharpness"]["gradient_energy_ratio"] == pytest.approx(1.0)
    assert perfect["sharpness"]["spectrum_distance_db"] == pytest.approx(0.0, abs=1e-9)
    assert perfect["per_image"]["gradient_energy_ratio"] == pytest.approx([1.0] * 5)
    assert perfect["gan_state"] == {"adversarial_records": 0}
    blur = sharpness_extras(_Blur(), tmp_path, data, 5, "cpu")
    assert blur["sharpness"]["gradient_energy_ratio"] < 0.5  # a 3x3 box kills white noise
    assert all(d > 1.0 for d in blur["per_image"]["spectrum_distance_db"])


def _row(arm, ger, dists, state=None):
    return {"arm": arm, "extras": {"sharpness": {"gradient_energy_ratio": ger,
                                                 "spectrum_distance_db": sum(dists) / len(dists),
                                                 "high_band_power_ratio": ger},
                                   "per_image": {"spectrum_distance_db": dists},
                                   "gan_state": state or {"adversarial_records": 0}}}


def test_verdict_needs_all_three_criteria():
    state = {"final_step": 9, "first_step": 2,
             "final": {"adv_weight": 0.2, "d_logit_real": 0.5, "d_logit_fake": -0.4},
             "mean_last_10": {"adv_weight": 0.3, "d_logit_real": 0.6, "d_logit_fake": -0.5}}
    sharp = {"results": [_row(GAN_ARM, 0.9, [1.0, 2.0, 3.0], state),
                         _row(OFF_ARM, 0.6, [2.0, 3.0, 4.0])]}
    summary, text = conclude(sharp)
    assert summary["gan_sharper"] and summary["spectrum_wins"] == 3
    assert summary["gan_final"]["adv_weight"] == 0.2
    assert "IS measurably sharper" in text and "adaptive weight 0.2 " in text
    # over-sharpened past 1 by more than the blur's shortfall: not closer to the original
    over = {"results": [_row(GAN_ARM, 1.5, [1.0, 2.0, 3.0], state),
                        _row(OFF_ARM, 0.6, [2.0, 3.0, 4.0])]}
    assert not conclude(over)[0]["gan_sharper"]
    # lower mean distance won on one image only: not measurable
    one = {"results": [_row(GAN_ARM, 0.9, [0.1, 3.5, 4.5], state),
                       _row(OFF_ARM, 0.6, [3.0, 3.0, 4.0])]}
    summary, text = conclude(one)
    assert summary["spectrum_distance_lower"] and not summary["gan_sharper"]
    assert "is NOT measurably sharper" in text
    assert summary["distribution_proxies_lower"] is None  # no proxies scored
    # the distribution reading, apart from the verdict: lower FD and MMD on an over-sharp GAN
    over["results"][0]["metrics"] = {"fd_effnetlite0": 180.0, "mmd_effnetlite0": 2.5}
    over["results"][1]["metrics"] = {"fd_effnetlite0": 200.0, "mmd_effnetlite0": 3.0}
    summary, text = conclude(over)
    assert summary["distribution_proxies_lower"] and not summary["gan_sharper"]
    assert "all lower (fd_effnetlite0 180 vs 200, mmd_effnetlite0 2.5 vs 3)" in text
    over["results"][0]["metrics"]["mmd_effnetlite0"] = 3.5
    assert conclude(over)[0]["distribution_proxies_lower"] is False


def test_gan_check_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "check"
    argv = ["experiment", "gan-check", *TINY, "--out", str(out)]
    assert main(argv) == 0
    assert "Verdict: the GAN" in capsys.readouterr().out
    report = json.loads((out / "results.json").read_text())
    assert [r["arm"] for r in report["results"]] == [GAN_ARM, OFF_ARM]
    assert all(r["steps_trained"] == 2 for r in report["results"])
    gan, off = (r["extras"] for r in report["results"])
    assert set(gan["gan_state"]["final"]) >= set(LOGGED)
    assert off["gan_state"] == {"adversarial_records": 0}  # no adversarial term, nothing logged
    assert report["conclusion"]["gan_final"] == gan["gan_state"]["final"]
    assert "## Sharpness" in (out / "results.md").read_text()
    assert (out / "results.png").stat().st_size > 0
    # half finished: the off arm never ran; the re-run trains and scores only that arm
    import shutil

    gan_files = [out / "arms" / GAN_ARM / f for f in ("eval.json", "metrics.jsonl")]
    stamps = [f.stat().st_mtime_ns for f in gan_files]
    shutil.rmtree(out / "arms" / OFF_ARM)
    (out / "results.json").unlink()
    assert main(argv) == 0
    assert [f.stat().st_mtime_ns for f in gan_files] == stamps
    again = json.loads((out / "results.json").read_text())
    assert again["results"][1]["metrics"] == pytest.approx(report["results"][1]["metrics"])
    assert again["results"][1]["extras"]["sharpness"] == pytest.approx(off["sharpness"])


def test_budget_moves_the_adversarial_start_into_short_runs(tiny_cfg):
    from swycc.autoencoders.kinds import with_method
    from swycc.experiments.runner import Budget, with_budget

    gan, off = gan_check_arms(tiny_cfg)
    assert gan.config.loss.adversarial_start == 2000
    assert with_budget(gan.config, Budget(1000), None).loss.adversarial_start == 250
    assert with_budget(gan.config, Budget(100_000), None).loss.adversarial_start == 2000
    early = replace(gan.config, loss=replace(gan.config.loss, adversarial_start=300))
    assert with_budget(early, Budget(800), None).loss.adversarial_start == 300  # inside: kept
    # no adversarial term, or not a GAN: the config is left as it is
    assert with_budget(off.config, Budget(1000), None).loss == off.config.loss
    swycc = with_method(tiny_cfg, "swycc")
    assert with_budget(swycc, Budget(1000), None).loss == swycc.loss
