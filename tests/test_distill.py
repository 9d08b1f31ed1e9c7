"""Few-step decoding by progressive distillation (swycc.distill): the student's 1-step output,
the first round's target against the teacher's guided 2-step DDIM, the PD step identity, the
power-spectrum distance against a hand-computed value, exact resume across rounds, and the CLI
end to end at tiny size."""

import json
from dataclasses import replace
from itertools import product

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from swycc.autoencoders.base import Autoencoder
from swycc.autoencoders import SWYCC, DistilledSWYCC
from swycc.autoencoders.distilled import GuidanceFoldedError
from swycc.cli import main
from swycc.config import override
from swycc.autoencoders.kinds import with_method
from swycc.diffusion.schedule import alpha_sigma
from swycc.distill.config import DistillConfig
from swycc.distill.objective import (PDDraw, ProgressiveDistillObjective, ddim_step,
                                     draw_pd_noise, pd_target)
from swycc.distill.task import distill
from swycc.metrics.spectrum import radial_power_spectrum, spectrum_distance
from swycc.train.checkpoint import CheckpointDir


def _residual(cfg):
    return override(cfg, "model.unet.predict_residual", True)  # as the shipped model


def _randomise_output(model):
    """The U-Net's last conv starts at zero (v = 0 everywhere); give it weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        torch.nn.init.normal_(model.d_refine.conv_out.weight, std=0.05)
    return model


@pytest.fixture
def teacher_dir(tiny_cfg, tmp_path):
    torch.manual_seed(0)
    teacher = _randomise_output(SWYCC(_residual(tiny_cfg)))
    teacher.save_pretrained(tmp_path / "teacher")
    return tmp_path / "teacher"


@pytest.fixture
def image_dir(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 44, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return d


def test_student_one_step_output_shape_and_determinism(tiny_cfg, tmp_path):
    cfg = override(override(with_method(_residual(tiny_cfg), "swycc-distilled"),
                            "sampling.steps", 1), "sampling.guidance", 0.5)
    torch.manual_seed(0)
    student = _randomise_output(DistilledSWYCC(cfg)).eval()
    calls = []
    student.d_refine.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    x = torch.rand(2, 3, 24, 40) * 2 - 1
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    out = student.reconstruct(x, generator=g(3))  # defaults: 1 step, the folded guidance
    assert out.shape == (2, 3, 24, 40) and out.abs().max() <= 1
    assert calls == [2]  # one network call, on the condition only: no guided pair
    assert torch.equal(out, student.reconstruct(x, generator=g(3)))
    assert not torch.equal(out, student.reconstruct(x, generator=g(4)))
    assert student.reconstruct(x, steps=2, samples=3, generator=g(3)).shape == (2, 3, 3, 24, 40)
    with pytest.raises(GuidanceFoldedError, match="folded"):
        student.reconstruct(x, guidance=1.0)
    student.save_pretrained(tmp_path / "s")
    again = Autoencoder.from_pretrained(tmp_path / "s")
    assert type(again) is DistilledSWYCC and again.distilled_steps == 1
    assert torch.equal(again.reconstruct(x, generator=g(3)), out)


def test_first_round_target_is_the_teachers_guided_two_step_ddim(tiny_cfg):
    torch.manual_seed(0)
    teacher = _randomise_output(SWYCC(_residual(tiny_cfg))).eval()
    obj = ProgressiveDistillObjective(teacher, DistilledSWYCC(with_method(teacher.config,
                                                                          "swycc-distilled")),
                                      student_steps=1, teacher_guidance=0.5, seed=0)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    draw = PDDraw(torch.ones(3), torch.randn(3, 3, 32, 32))
    z_t, cond, target = obj.targets(x, draw)
    # the teacher's own sampler from the same start: guided DDIM, 2 steps, residual + anchor
    ref = teacher.denoiser.sample(cond, 2, 0.5, noise=z_t, anchor=cond)
    torch.testing.assert_close(teacher.denoiser.to_image(target, cond), ref, rtol=0, atol=1e-6)
    with torch.no_grad():  # not the unguided result: guidance is in the target
        unguided = teacher.denoiser.sample(cond, 2, 0.0, noise=z_t, anchor=cond)
    assert (unguided - ref).abs().max() > 1e-3


def test_target_is_the_x0_whose_one_step_lands_on_the_teachers_two(tiny_cfg):
    """PD eq.: one DDIM step t -> t - 1/N with x0 = y~ reaches the teacher's z_{t - 1/N}."""
    torch.manual_seed(0)
    den = _randomise_output(SWYCC(_residual(tiny_cfg))).eval().denoiser
    n, t = 2, torch.tensor([1.0, 1.0])
    z, cond = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32) * 0.3
    with torch.no_grad():
        y = pd_target(den, z, t, cond, n, 0.5, clip=2.0)
        z_mid, _ = ddim_step(den, z, t, t - 0.25, cond, 0.5, None, 2.0)
        z_end, _ = ddim_step(den, z_mid, t - 0.25, t - 0.5, cond, 0.5, None, 2.0)
    a, s = alpha_sigma(t[:1])
    a2, s2 = alpha_sigma(t[:1] - 0.5)
    landed = a2 * y + s2 * (z - a * y) / s
    torch.testing.assert_close(landed, z_end, rtol=0, atol=1e-5)


def test_noise_draw_is_per_global_row():
    full = draw_pd_noise(3, 7, torch.arange(6), 6, (3, 4, 4), 4, torch.device("cpu"))
    part = draw_pd_noise(3, 7, torch.tensor([1, 4]), 6, (3, 4, 4), 4, torch.device("cpu"))
    assert torch.equal(part.eps, full.eps[[1, 4]]) and torch.equal(part.t, full.t[[1, 4]])
    assert set((full.t * 4).round().tolist()) <= {1.0, 2.0, 3.0, 4.0}


def test_power_spectrum_distance_against_a_hand_computed_value():
    # x = 0.3 + A cos(2 pi 2 j / 8) on 8 x 8, three equal channels: power only at (0, +-2)
    a, size = 0.5, 8
    j = torch.arange(size, dtype=torch.float64)
    x = (0.3 + a * torch.cos(2 * torch.pi * 2 * j / size)).expand(1, 3, size, size)
    # |FFT|^2 = (A H W / 2)^2 at each of the two peaks, / (H W) -> A^2 H W / 4 each
    in_bin2 = sum(1 for u, v in product(range(-4, 4), repeat=2)
                  if round((u * u + v * v) ** 0.5) == 2)
    assert in_bin2 == 12
    expected = 2 * a**2 * size * size / 4 / in_bin2  # = 8 A^2 / 3
    s = radial_power_spectrum(x)
    assert s.shape == (1, 4)
    assert s[0, 1].item() == pytest.approx(expected, rel=1e-12)
    assert s[0, [0, 2, 3]].abs().max() < 1e-20
    # doubling the amplitude: +10 log10(4) dB in one of the 4 bins -> RMS 6.0206 / 2
    d = spectrum_distance((2 * (x - 0.3)).float(), x.float())
    assert d.item() == pytest.approx(10 * np.log10(4) / 2, abs=1e-4)
    assert spectrum_distance(x + 0.2, x).item() == pytest.approx(0.0, abs=1e-9)


def _dcfg(image_dir, **over):
    train = replace(DistillConfig().train, batch_size=4, log_every=1, checkpoint_every=1000)
    return DistillConfig(teacher_steps=4, round_steps=(2,), data_path=str(image_dir),
                         train=train, **over)


def test_distillation_resume_is_exact(teacher_dir, image_dir, tmp_path):
    cfg = _dcfg(image_dir)
    full = distill(cfg, teacher_dir, tmp_path / "a", progress=False)
    assert full.stopped_by == "done" and full.rounds_done == 2
    # "killed" inside round 1, then inside round 2, then the same command again
    assert distill(cfg, teacher_dir, tmp_path / "b", max_steps=1, progress=False
                   ).stopped_by == "max_steps"
    part = distill(cfg, teacher_dir, tmp_path / "b", max_steps=3, progress=False)
    assert part.rounds_done == 1 and part.export is None
    again = distill(cfg, teacher_dir, tmp_path / "b", progress=False)
    assert again.stopped_by == "done"
    a, b = load_file(str(full.export)), load_file(str(again.export))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = CheckpointDir(tmp_path / "a" / "round-2").load_latest()
    sb = CheckpointDir(tmp_path / "b" / "round-2").load_latest()
    for part_name in ("model", "ema"):
        flat_a, flat_b = sa[part_name], sb[part_name]
        flat_a = flat_a.get("shadow", flat_a)
        flat_b = flat_b.get("shadow", flat_b)
        assert all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a), part_name
    for k, st in sa["optimizer"]["state"].items():
        for name, v in st.items():
            assert torch.equal(v, sb["optimizer"]["state"][k][name]), (k, name)
    # only D_Refine trains: the encoder and D_Initial are the teacher's, bit for bit
    t = load_file(str(teacher_dir / "model.safetensors"))
    assert all(torch.equal(a[k], t[k]) for k in a if not k.startswith("d_refine"))
    assert any(not torch.equal(a[k], t[k]) for k in a if k.startswith("d_refine"))


def test_distill_cli_end_to_end(teacher_dir, image_dir, tmp_path, capsys):
    run, rep = tmp_path / "run", tmp_path / "rep"
    argv = ["distill", "--teacher", str(teacher_dir), "--out", str(run), "--data",
            str(image_dir), "--teacher-steps", "2", "--round-steps", "2", "--batch-size", "4",
            "--no-progress", "--set", "train.log_every=1"]
    assert main(argv) == 0
    student = Autoencoder.from_pretrained(run / "export")
    assert student.kind == "swycc-distilled" and student.config.sampling.steps == 1
    assert student.config.sampling.guidance == 0.5  # the teacher's, folded in
    summary = json.loads((run / "distill.json").read_text())
    assert [r["student_steps"] for r in summary["rounds"]] == [1]
    assert main(argv) == 0  # finished: the round is skipped, the export kept
    assert "rounds done: 1/1 (done)" in capsys.readouterr().out
    assert main(["distill-report", "--teacher", str(teacher_dir), "--student", str(run),
                 "--out", str(rep), "--eval-data", str(image_dir), "--teacher-steps", "2",
                 "--metrics", "none", "--timing-batch", "2", "--timing-repeats", "1",
                 "--no-progress"]) == 0
    report = json.loads((rep / "report.json").read_text())
    names = [r["decoder"] for r in report["results"]]
    assert names == ["D_Initial", "teacher 2 steps", "student 1 step", "student 2 steps",
                     "teacher 1 step (not distilled)", "teacher 2 steps (not distilled)"]
    # the same decoder from the same latents and noise scores the same
    assert report["results"][5]["psnr"] == report["results"][1]["psnr"]
    assert report["results"][1]["sharpness_gain_kept"] == pytest.approx(1.0)
    assert report["timing"]["ms_per_image"]["GAN decoder"] > 0
    # the student is D_Initial plus a U-Net pass: more FLOPs than D_Initial and the GAN decoder
    g = report["timing"]["gflops_per_image"]
    assert g["student 1 step"] > g["D_Initial"] > 0
    assert report["goals"]["decode_flops_vs_gan_1_step"] == pytest.approx(
        g["student 1 step"] / g["GAN decoder"])
    assert (rep / "grid.png").is_file() and "Goal" in (rep / "report.md").read_text()


def test_cli_refuses_bad_plans_and_kinds(teacher_dir, tiny_cfg, tmp_path, capsys):
    assert main(["distill", "--teacher", str(teacher_dir), "--out", str(tmp_path / "r"),
                 "--teacher-steps", "6"]) == 2
    assert "power of two" in capsys.readouterr().err
    gan = tmp_path / "gan"
    Autoencoder.from_config(with_method(tiny_cfg, "gan")).save_pretrained(gan)
    assert main(["distill", "--teacher", str(gan), "--out", str(tmp_path / "r")]) == 2
    assert "SWYCC teacher" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--method", "swycc-distilled",
                 "--out", str(tmp_path / "t")]) == 2
    assert "swycc distill" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "t").exists()


def test_decode_flops_counts_a_known_layer():
    from swycc.distill.report import decode_flops

    lin = torch.nn.Linear(4, 3, bias=False)
    x = torch.randn(2, 4)
    assert decode_flops(lambda: lin(x)) == 2 * 2 * 4 * 3  # 2 x batch x in x out
