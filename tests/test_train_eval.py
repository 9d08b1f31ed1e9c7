"""What a long CPU run needs: held-out evaluation during training with a best export
(``--eval-data``), and the learning-rate schedule's length measured from a time budget."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from swycc.config import override
from swycc.metrics import maths
from swycc.metrics.photo import channel_mean_error, colour_shift
from swycc.train import budget as budget_mod
from swycc.train.autoencoder_task import train_autoencoder as train
from swycc.train.budget import BudgetSchedule
from swycc.train.optim import lr_at


def _photos(d, n, seed, size=(40, 48)):
    d.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        yy, xx = np.mgrid[0:size[0], 0:size[1]] / size[0]
        img = np.stack([xx * (i + 1) % 1, yy, 0.5 + 0.3 * np.sin(6 * xx + i)], -1)
        img = img + 0.05 * rng.standard_normal(img.shape)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(d / f"{i}.png")
    return d


@pytest.fixture
def folders(tmp_path):
    return _photos(tmp_path / "train", 6, 0), _photos(tmp_path / "held", 3, 1, (56, 36))


def _records(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


# ---- the colour measure ------------------------------------------------------------------------


def test_channel_mean_error_is_signed_levels():
    x = torch.full((2, 3, 8, 8), 100 / 127.5 - 1)  # level 100: exact in 8 bits (both quantised)
    y = x.clone()
    y[0, 0] += 10 / 127.5  # red 10 levels too bright everywhere
    y[1, 2, :4] -= 51 / 127.5  # blue 51 levels too dark on half the image: -25.5 on average
    err = channel_mean_error(y, x)
    assert err.flatten().tolist() == pytest.approx([10, 0, 0, 0, 0, -25.5], abs=1e-4)
    shift, rgb = colour_shift(y, x)
    assert shift.tolist() == pytest.approx([10, 25.5], abs=1e-4)
    assert torch.equal(rgb, err)  # colour_shift's second value: the signed errors


# ---- held-out evaluation -----------------------------------------------------------------------


def test_eval_during_training_logs_and_keeps_the_best(tiny_cfg, folders, tmp_path):
    train_dir, held = folders
    cfg = tiny_cfg
    for k, v in [("data.path", str(train_dir)), ("train.eval_data", str(held)),
                 ("train.eval_every", 2), ("train.eval_size", 32), ("train.lr", 2e-3)]:
        cfg = override(cfg, k, v)
    run = tmp_path / "run"
    train(cfg, run, max_steps=4, progress=False)
    train(cfg, run, max_steps=6, progress=False)  # resumed: evaluations continue, none twice
    evals = [r for r in _records(run) if "eval_psnr" in r]
    assert [r["step"] for r in evals] == [2, 4, 6]
    for r in evals:
        assert r["eval_images"] == 3
        assert r["eval_colour_shift_max"] >= r["eval_colour_shift_mean"] >= 0
        assert r["eval_colour_shift_max"] >= max(abs(r[f"eval_colour_error_{c}"]) for c in "rgb")
    best = json.loads((run / "best.json").read_text())
    top = max(evals, key=lambda r: r["eval_psnr"])
    assert best["step"] == top["step"] and best["eval_psnr"] == top["eval_psnr"]

    # the exported best model, measured independently, gives the logged numbers
    from swycc.autoencoders.base import Autoencoder
    from swycc.metrics.photo import load_square_photos

    model = Autoencoder.from_pretrained(run / "best").eval()
    _, x = load_square_photos(held, 32)
    with torch.no_grad():
        y = maths.quantized(model.reconstruct_initial(x))
    assert float(maths.psnr(y, x).mean()) == pytest.approx(best["eval_psnr"], abs=1e-6)
    assert float(channel_mean_error(y, x)[:, 1].mean()) == pytest.approx(
        best["eval_colour_error_g"], abs=1e-6)
    if top["step"] != 6:  # the last export is another model
        last = load_file(str(run / "export" / "model.safetensors"))
        kept = load_file(str(run / "best" / "model.safetensors"))
        assert any(not torch.equal(last[k], kept[k]) for k in last)


def test_eval_data_is_checked_before_anything_is_written(tiny_cfg, folders, tmp_path):
    from swycc.data.images import ImageError

    train_dir, held = folders
    cfg = override(override(tiny_cfg, "data.path", str(train_dir)), "train.eval_size", 30)
    with pytest.raises(ValueError, match="multiple of"):
        train(override(cfg, "train.eval_data", str(held)), tmp_path / "a", max_steps=1,
              progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises((ValueError, ImageError)):
        train(override(override(cfg, "train.eval_size", 32), "train.eval_data", str(empty)),
              tmp_path / "b", max_steps=1, progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---- the budget-derived schedule ---------------------------------------------------------------


def test_budget_measures_the_rate_then_fixes_the_length(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(budget_mod, "SETTLE_STEPS", 1)
    monkeypatch.setattr(budget_mod, "PROBE_STEPS", 4)
    tc = override(tiny_cfg, "train.time_budget_s", 100.0).train
    b = BudgetSchedule(tmp_path, tc)
    lengths = [b.measure(step, 0.5 * step, 0) for step in range(1, 6)]  # 2 steps/s
    # timed from step 1 (t = 0.5) to step 5 (t = 2.5): 97.5 s left at 2 steps/s, 95% of it
    assert lengths == [None, None, None, None, 5 + int(2 * 97.5 * 0.95)]
    b.fix(lengths[-1])
    again = BudgetSchedule(tmp_path, tc)  # a resumed invocation reads it back
    assert (again.total, again.fixed_at) == (190, 5)
    assert again.measure(6, 0.1, 5) is None  # fixed once, never re-measured
    assert again.lr_config(4).lr_schedule == "constant"  # before the length was known
    assert again.lr_config(5).total_steps == 190 and again.lr_config(5).lr_schedule == "cosine"


def test_budgeted_run_resumes_exactly(tiny_cfg, folders, tmp_path, monkeypatch):
    monkeypatch.setattr(budget_mod, "SETTLE_STEPS", 1)
    monkeypatch.setattr(budget_mod, "PROBE_STEPS", 3)
    cfg = override(tiny_cfg, "data.path", str(folders[0]))
    cfg = override(override(cfg, "train.time_budget_s", 3600.0), "train.schedule_from_budget",
                   True)
    cfg = override(override(cfg, "train.warmup_steps", 2), "train.lr", 1e-3)
    a = tmp_path / "a"
    train(cfg, a, max_steps=8, progress=False)
    sched = json.loads((a / "schedule.json").read_text())
    assert sched["measured_at_step"] == 4 and sched["total_steps"] > 8
    fixed = override(cfg, "train.total_steps", sched["total_steps"]).train
    for r in _records(a):
        step = r["step"] - 1  # the record of step n holds the LR of step index n - 1
        want = lr_at(step, fixed if step >= 4 else override(
            cfg, "train.lr_schedule", "constant").train)
        assert r["lr"] == pytest.approx(want, rel=1e-12), step
    # B: stopped before its length was fixed, with the same measurement on disk when it
    # resumes (as after a crash between writing schedule.json and the next checkpoint)
    b = tmp_path / "b"
    train(cfg, b, max_steps=3, progress=False)
    shutil.copy(a / "schedule.json", b / "schedule.json")
    train(cfg, b, max_steps=8, progress=False)
    wa = load_file(str(a / "export" / "model.safetensors"))
    wb = load_file(str(b / "export" / "model.safetensors"))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_budgeted_run_ends_with_its_measured_schedule(tiny_cfg, folders, tmp_path, monkeypatch):
    """No max_steps: the run stops at the length it measured (forced short here: a tiny share
    of the budget), with the cosine ended, long before the budget itself runs out."""
    monkeypatch.setattr(budget_mod, "SETTLE_STEPS", 1)
    monkeypatch.setattr(budget_mod, "PROBE_STEPS", 2)
    monkeypatch.setattr(budget_mod, "SAFETY", 1e-9)  # total = max(step + 1, step + 0)
    cfg = override(tiny_cfg, "data.path", str(folders[0]))
    cfg = override(override(cfg, "train.time_budget_s", 3600.0), "train.schedule_from_budget",
                   True)
    res = train(cfg, tmp_path / "r", progress=False)
    sched = json.loads((tmp_path / "r" / "schedule.json").read_text())
    assert sched["measured_at_step"] == 3 and sched["total_steps"] == 4
    assert (res.step, res.stopped_by) == (4, "total_steps")
    last = _records(tmp_path / "r")[-1]  # step index 3 of a cosine ending at 4 (warm-up 2)
    assert last["lr"] == pytest.approx(cfg.train.lr * 0.5 * (1 + np.cos(np.pi * 1 / 2)))


def test_time_budget_without_total_steps_is_budget_scheduled():
    from swycc.cli.args import build_config
    from swycc.cli.main import make_parser

    def cfg(*extra):
        return build_config(make_parser().parse_args(["train", "--preset", "tiny", *extra]))

    assert cfg("--time-budget", "60").train.schedule_from_budget is True
    assert cfg("--time-budget", "60", "--total-steps", "500").train.schedule_from_budget is False
    assert cfg().train.schedule_from_budget is False


def test_cli_train_with_eval_data(folders, tmp_path, capsys):
    """swycc train --eval-data ... --threads 1: the resolved bf16 default and the evaluation
    options land in config.json, the best export beside the last; a missing folder is one error
    line and nothing written."""
    from swycc.cli import main
    from swycc.train.hardware import cpu_has_bf16_matmul

    train_dir, held = folders
    common = ["train", "--preset", "tiny", "--set", "model.encoder.base_channels=8",
              "--set", "model.decoder.base_channels=8", "--set", "model.unet.base_channels=8",
              "--set", "loss.perceptual_weight=0", "--batch-size", "4", "--no-progress",
              "--data", str(train_dir), "--threads", "1", "--max-steps", "2",
              "--eval-every", "2", "--eval-size", "32"]
    run = tmp_path / "run"
    assert main([*common, "--eval-data", str(held), "--out", str(run)]) == 0
    cfg = json.loads((run / "config.json").read_text())["train"]
    assert cfg["bf16"] is cpu_has_bf16_matmul()
    assert (cfg["eval_data"], cfg["eval_every"], cfg["eval_size"]) == (str(held), 2, 32)
    assert (run / "best" / "model.safetensors").exists()
    assert (run / "export" / "model.safetensors").exists()
    assert [r["step"] for r in _records(run) if "eval_psnr" in r] == [2]
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main([*common, "--eval-data", str(tmp_path / "nowhere"), "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("swycc: error:") and "nowhere" in err[0]
    assert not bad.exists()
