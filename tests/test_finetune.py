"""`swycc train --init EXPORT`: fine-tuning starts from the export's weights and config, and a
run resumes only from the same initial weights."""

import json
from pathlib import Path

import pytest
import torch

from swycc.autoencoders.base import Autoencoder, weights_sha256
from swycc.cli import main
from swycc.cli.args import init_config
from swycc.config import get_preset, override, shrink
from swycc.train.autoencoder_task import AutoencoderTask

FAST = ["--batch-size", "4", "--no-progress", "--set", "loss.perceptual_weight=0",
        "--set", "train.sample_every=0", "--set", "train.warmup_steps=1"]


def _export(path, seed):
    torch.manual_seed(seed)
    model = Autoencoder.from_config(shrink(get_preset("tiny")))
    model.save_pretrained(path)
    return model


def _distance(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sum((sa[k].float() - sb[k].float()).abs().sum().item() for k in sa)


def test_fine_tune_starts_from_the_export_and_resumes_only_from_it(tmp_path, capsys,
                                                                   monkeypatch):
    base, run = tmp_path / "base", tmp_path / "run"
    model = _export(base, seed=3)
    cfg = init_config(str(base))
    assert cfg.init.weights_sha256 == weights_sha256(base)
    assert cfg.model == model.config.model  # the export's networks, not the --preset's
    task = AutoencoderTask(cfg)
    built = task.build_model()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in built.state_dict().items())
    # the loop's later builds (modules its EMA weights are copied into) do not read it again
    monkeypatch.setattr("swycc.train.autoencoder_task.load_initial_weights",
                        lambda *a: pytest.fail("the init export was read twice"))
    task.build_model()
    monkeypatch.undo()

    args = ["train", "--init", str(base), "--out", str(run), "--max-steps", "2", *FAST]
    assert main(args) == 0
    recorded = json.loads((run / "config.json").read_text())["init"]
    assert recorded["weights_sha256"] == weights_sha256(base)
    tuned = Autoencoder.from_pretrained(run / "export")
    torch.manual_seed(0)
    fresh = Autoencoder.from_config(shrink(get_preset("tiny")))
    assert _distance(tuned, model) < 0.01 * _distance(tuned, fresh)
    assert tuned.config.init == cfg.init  # the export says where it started
    assert main([*args[:-len(FAST) - 1], "3", *FAST]) == 0  # resumes with the same --init
    assert "stopped at step 3" in capsys.readouterr().out

    other = tmp_path / "other"
    _export(other, seed=4)
    assert main(["train", "--init", str(other), "--out", str(run), "--max-steps", "4",
                 *FAST]) == 2
    assert "other initial weights" in capsys.readouterr().err
    _export(base, seed=5)  # the file the run started from was overwritten
    assert main([*args[:-len(FAST) - 1], "4", *FAST]) == 2
    assert "weights changed" in capsys.readouterr().err


def test_fine_tune_refuses_another_kind_and_a_second_config(tmp_path, capsys):
    _export(tmp_path / "base", seed=0)
    out = ["--out", str(tmp_path / "r"), "--max-steps", "1", *FAST]
    assert main(["train", "--init", str(tmp_path / "base"), "--method", "gan", *out]) == 2
    assert "--init model is a swycc model" in capsys.readouterr().err
    assert main(["train", "--init", str(tmp_path / "base"), "--config", "x.json", *out]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main(["train", "--init", str(tmp_path / "missing"), *out]) == 2
    assert not (tmp_path / "r").exists()


def test_fine_tune_on_larger_crops_keeps_the_networks(tmp_path, capsys):
    """data.crop_size: training crops larger than model.image_size (the convolutional networks
    and their attention placement stay those of the export)."""
    from PIL import Image

    from swycc.config import ConfigError

    base = tmp_path / "base"
    model = _export(base, seed=0)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = torch.Generator().manual_seed(0)
    for i in range(2):
        Image.fromarray((torch.rand(80, 96, 3, generator=rng) * 255).byte().numpy()).save(
            photos / f"p{i}.png")
    cfg = init_config(str(base))
    with pytest.raises(ConfigError, match="crop_size"):
        override(cfg, "data.crop_size", 60)
    cfg = override(override(cfg, "data.path", str(photos)), "data.crop_size", 48)
    assert cfg.model.image_size != 48
    assert AutoencoderTask(cfg).build_dataset()[0][0].shape == (3, 48, 48)
    run = tmp_path / "run"
    assert main(["train", "--init", str(base), "--data", str(photos), "--out", str(run),
                 "--max-steps", "2", "--set", "data.crop_size=48", *FAST]) == 0, \
        capsys.readouterr().err
    tuned = Autoencoder.from_pretrained(run / "export")
    assert tuned.config.model == model.config.model and tuned.config.data.crop_size == 48


def _fine_tune_config(export, *extra):
    """The config `swycc train --init EXPORT ...extra` would run with."""
    from swycc.cli.args import build_config
    from swycc.cli.main import make_parser

    args = ["train", "--init", str(export), "--out", str(Path(export).parent / "o"), *extra]
    return build_config(make_parser().parse_args(args))


def test_fine_tune_does_not_inherit_the_exports_time_budget(tmp_path):
    """An export trained with --time-budget carries time_budget_s and schedule_from_budget in
    its config; a fine-tune from it sizes its own schedule: --total-steps is its length, and
    without --time-budget no budget applies."""
    torch.manual_seed(0)
    cfg = shrink(get_preset("tiny"))
    cfg = override(override(cfg, "train.time_budget_s", 6000.0), "train.schedule_from_budget",
                   True)
    Autoencoder.from_config(cfg).save_pretrained(tmp_path / "budgeted")

    def tune(*extra):
        return _fine_tune_config(tmp_path / "budgeted", *extra).train

    assert Autoencoder.from_pretrained(tmp_path / "budgeted").config.train.time_budget_s == 6000
    t = tune("--total-steps", "4000")
    assert (t.total_steps, t.schedule_from_budget, t.time_budget_s) == (4000, False, None)
    assert (tune().schedule_from_budget, tune().time_budget_s) == (False, None)
    t = tune("--time-budget", "60")
    assert (t.schedule_from_budget, t.time_budget_s) == (True, 60.0)


def test_fine_tune_trains_jointly_after_the_autoencoder_phase(tmp_path):
    """An export of the autoencoder-alone phase (loss.diffusion_weight = 0) carries that weight;
    a fine-tune from it trains D_Refine jointly again (weight 1) unless --set keeps it at 0."""
    torch.manual_seed(0)
    cfg = override(shrink(get_preset("tiny")), "loss.diffusion_weight", 0.0)
    Autoencoder.from_config(cfg).save_pretrained(tmp_path / "ae")
    assert Autoencoder.from_pretrained(tmp_path / "ae").config.loss.diffusion_weight == 0

    def tune(*extra):
        return _fine_tune_config(tmp_path / "ae", *extra).loss.diffusion_weight

    assert tune() == 1.0
    assert tune("--set", "loss.diffusion_weight=0") == 0.0


def test_fine_tune_from_a_shipped_models_name(tmp_path, monkeypatch):
    """--init takes what --checkpoint takes: a shipped model's name resolves to its directory
    in the package (from any working directory), a local path of that name wins."""
    from swycc.autoencoders.hub import PRETRAINED_DIR, SHIPPED_NAMES

    monkeypatch.chdir(tmp_path)
    for name in SHIPPED_NAMES:  # both are shipped (test_pretrained)
        cfg = init_config(name)
        assert cfg.init.path == str(PRETRAINED_DIR / name / "model.safetensors")
        assert cfg.init.weights_sha256 == weights_sha256(PRETRAINED_DIR / name)
    local = tmp_path / SHIPPED_NAMES[0]
    _export(local, seed=1)
    assert init_config(SHIPPED_NAMES[0]).init.weights_sha256 == weights_sha256(local)
