"""`swycc train --log tensorboard`: scalars and sample grids in RUN/tb beside metrics.jsonl,
read back with TensorBoard's own EventAccumulator; a resumed run purges the steps it repeats."""

import json

import pytest

pytest.importorskip("tensorboard")  # the `dev` extra installs it

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator)

from swycc.cli import main  # noqa: E402

TINY = ["--preset", "tiny", "--set", "model.encoder.base_channels=8",
        "--set", "model.decoder.base_channels=8", "--set", "model.unet.base_channels=8",
        "--set", "loss.perceptual_weight=0", "--batch-size", "4", "--no-progress",
        "--set", "train.log_every=1", "--set", "train.sample_every=2",
        "--set", "data.held_out=2", "--set", "data.train_crops=16"]


def _events(run):
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_train_writes_tensorboard_scalars_and_sample_grids(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", *TINY, "--out", str(run), "--log", "tensorboard", "--max-steps", "2"]
    assert main(args) == 0
    assert f"tensorboard --logdir {run / 'tb'}" in capsys.readouterr().out
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]  # the JSONL log stays

    acc = _events(run)
    tags = set(acc.Tags()["scalars"])
    assert {"loss", "lr", "grad_norm", "images_per_s", "nonfinite_steps", "elapsed_s"} <= tags
    assert tags == {k for k, v in records[0].items()
                    if k != "step" and isinstance(v, (int, float))}
    for tag in ("loss", "lr"):
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert got == [(r["step"], pytest.approx(r[tag], rel=1e-6)) for r in records], tag
    assert acc.Tags()["images"] == ["samples"]
    (image,) = acc.Images("samples")
    assert image.step == 2 and image.width > 0 and image.height > 0

    # resume to step 3: each step is logged once
    assert main([*args[:-1], "3"]) == 0
    acc = _events(run)
    assert [e.step for e in acc.Scalars("loss")] == [1, 2, 3]


def test_train_logs_no_tensorboard_by_default(tmp_path):
    assert main(["train", *TINY, "--out", str(tmp_path / "run"), "--max-steps", "1"]) == 0
    assert not (tmp_path / "run" / "tb").exists()
    assert (tmp_path / "run" / "metrics.jsonl").exists()


def test_resume_purges_the_steps_logged_after_the_last_checkpoint(tmp_path):
    from swycc.train.tensorboard_log import TensorBoardLog

    first = TensorBoardLog(tmp_path)  # ran to step 3, checkpoint at step 1, then stopped
    for step in (1, 2, 3):
        first.scalars({"step": step, "loss": float(step), "note": "text", "missing": None})
    first.close()
    again = TensorBoardLog(tmp_path, resume_step=1)
    for step in (2, 3):
        again.scalars({"step": step, "loss": 10.0 * step})
    again.close()
    acc = _events(tmp_path)
    assert acc.Tags()["scalars"] == ["loss"]
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 1.0), (2, 20.0), (3, 30.0)]
