import json

import pytest
import torch

from swycc.config import PRESETS, Config, get_preset, override, shrink
from swycc.autoencoders.base import Autoencoder


def test_json_round_trip_every_preset():
    for name, cfg in PRESETS.items():
        assert Config.from_json(cfg.to_json()) == cfg, name


def test_unknown_option_is_an_error():
    d = get_preset("tiny").to_dict()
    d["train"]["learning_rate"] = 1.0
    with pytest.raises(ValueError, match="learning_rate"):
        Config.from_dict(d)
    with pytest.raises(ValueError, match="lrr"):
        override(get_preset("tiny"), "train.lrr", 1.0)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("huge")


def test_override_nested():
    cfg = override(get_preset("tiny"), "model.unet.base_channels", 7)
    assert cfg.model.unet.base_channels == 7
    assert get_preset("tiny").model.unet.base_channels != 7


def _count(module):
    return sum(p.numel() for p in module.parameters()) / 1e6


def test_paper_parameter_counts_match_table3():
    with torch.device("meta"):
        m = Autoencoder.from_config(get_preset("paper"))
    for got, want in [(_count(m.encoder), 49.4), (_count(m.d_initial), 63.4),
                      (_count(m.d_refine), 614.1)]:
        assert abs(got - want) / want < 0.10, (got, want)


def test_shrink_keeps_structure():
    cfg = shrink(get_preset("paper"), width=8)
    assert cfg.model.unet.channel_mults == get_preset("paper").model.unet.channel_mults
    assert cfg.model.encoder.base_channels == 8


def test_cli_flags_reach_the_config():
    from swycc.cli import make_parser
    from swycc.cli.args import build_config

    args = make_parser().parse_args(["train", "--preset", "tiny", "--bf16", "--compile",
                                     "--batch-size", "4", "--set", "train.num_workers=2"])
    cfg = build_config(args)
    assert cfg.train.bf16 and cfg.train.compile
    assert cfg.train.batch_size == 4 and cfg.train.num_workers == 2
    plain = build_config(make_parser().parse_args(["train", "--preset", "tiny", "--no-bf16"]))
    assert not plain.train.bf16 and not plain.train.compile  # (the default: test_cpu_speed.py)


# ---- typed options: every bad value names its option -----------------------------------------

@pytest.mark.parametrize("item, needle", [
    ("train.batch_size=abc", "option train.batch_size: expected an integer"),
    ("train.lr=abc", "option train.lr: expected a number"),
    ("train.lr=1e-3x", "option train.lr: expected a number"),
    ("train.lr=nan", "option train.lr: must be a finite number"),
    ("train.checkpoint_every=0", "option train.checkpoint_every: must be >= 1"),
    ("model.method=xyz", "option model.method: must be one of swycc, gan, dgae"),
    ("loss.gan_loss=wgan", "option loss.gan_loss: must be one of"),
    ("train.bf16=maybe", "option train.bf16: expected true or false"),
    ("model.unet.channel_mults=1,x", "option model.unet.channel_mults"),
    ("train.nope=1", "option train.nope: unknown option"),
])
def test_set_errors_name_the_option(item, needle, tmp_path, capsys):
    from swycc.cli import main

    assert main(["train", "--preset", "tiny", "--set", item, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("swycc: error:") and needle in err[0], err
    assert not (tmp_path / "r").exists()


def test_set_parses_numbers_strictly_and_by_type():
    from swycc.config import override_text

    cfg = get_preset("tiny")
    assert override_text(cfg, "train.lr", "1e-3").train.lr == 0.001
    assert override_text(cfg, "train.lr", "2").train.lr == 2.0  # an int widens to the float
    assert override_text(cfg, "train.time_budget_s", "none").train.time_budget_s is None
    assert override_text(cfg, "data.path", "123").data.path == "123"  # a str stays a str
    assert override_text(cfg, "model.unet.attn_resolutions", "[4,8]").model.unet \
        .attn_resolutions == (4, 8)
    assert override_text(cfg, "model.unet.attn_resolutions", "4,8").model.unet \
        .attn_resolutions == (4, 8)


def test_config_file_values_are_checked(tmp_path):
    from swycc.config import ConfigError

    d = get_preset("tiny").to_dict()
    d["train"]["lr"] = "abc"
    with pytest.raises(ConfigError, match="option train.lr: expected a number"):
        Config.from_dict(d)
    d = get_preset("tiny").to_dict()
    d["model"]["method"] = "xyz"  # checked where a config enters (configs know no registry)
    from swycc.autoencoders.kinds import check_method

    with pytest.raises(ConfigError, match="option model.method"):
        check_method(Config.from_dict(d))
    d = get_preset("tiny").to_dict()
    d["model"]["encoder"]["latent_channels"] = True  # a bool is not an int here
    with pytest.raises(ConfigError, match="option model.encoder.latent_channels"):
        Config.from_dict(d)
    d = get_preset("tiny").to_dict()
    d["model"]["decoder"]["channel_mults"] = "1,2,2,4"
    with pytest.raises(ConfigError, match="channel_mults: expected a list of integers, got"):
        Config.from_dict(d)
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"train": {"batch_size": "16"}}))
    from swycc.cli import main

    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2


def test_autoencoder_alone_needs_a_d_initial_term():
    from swycc.config import ConfigError

    cfg = override(get_preset("tiny"), "loss.diffusion_weight", 0.0)  # MSE still on: fine
    assert cfg.loss.diffusion_weight == 0
    for name in ("loss.colour_weight", "loss.perceptual_weight"):
        cfg = override(cfg, name, 0.0)
    with pytest.raises(ConfigError, match="option loss.diffusion_weight: 0 needs a D_Initial"):
        override(cfg, "loss.mse_weight", 0.0)
