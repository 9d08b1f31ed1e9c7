import pytest
import torch

from swycc.config import PRESETS, Config, get_preset, override, shrink
from swycc.autoencoder import Autoencoder


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
    from swycc.cli import build_config, make_parser

    args = make_parser().parse_args(["train", "--preset", "tiny", "--bf16", "--compile",
                                     "--batch-size", "4", "--set", "train.num_workers=2"])
    cfg = build_config(args)
    assert cfg.train.bf16 and cfg.train.compile
    assert cfg.train.batch_size == 4 and cfg.train.num_workers == 2
    plain = build_config(make_parser().parse_args(["train", "--preset", "tiny"]))
    assert not plain.train.bf16 and not plain.train.compile
