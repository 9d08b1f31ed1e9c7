"""One JSON-config mixin for Config, DiTRunConfig and DistillConfig: same errors, same checks;
configs know nothing of the registries, which check where a config enters."""

import json

import pytest
from safetensors.torch import save_file

from swycc.config import PERCEPTUAL_NET_NAMES, Config, ConfigError, get_preset
from swycc.distill.config import DistillConfig
from swycc.generation.config import DiTRunConfig, get_dit_preset

CONFIGS = [get_preset("tiny"), get_dit_preset("dit-tiny"), DistillConfig()]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: type(c).__name__)
def test_round_trip_and_the_same_errors(cfg):
    cls = type(cfg)
    assert cls.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="not valid JSON"):
        cls.from_json("{bad")
    with pytest.raises(ConfigError, match="not valid JSON"):
        cls.from_json("[" * 100_000)  # nesting beyond the parser's recursion limit
    with pytest.raises(ConfigError, match="expected a mapping"):
        cls.from_dict([1, 2])
    d = cfg.to_dict()
    d["nope"] = 1
    with pytest.raises(ConfigError, match="option nope: unknown option"):
        cls.from_dict(d)
    d = cfg.to_dict()
    d["train"]["lr_schedule"] = "sawtooth"  # a choice field, checked through from_dict too
    with pytest.raises(ConfigError, match="option train.lr_schedule: must be one of"):
        cls.from_dict(d)


def test_perceptual_names_match_the_losses_registry():
    from swycc.losses.registry import DISTS_NET_NAMES, PERCEPTUAL_NETS

    assert set(PERCEPTUAL_NET_NAMES) == {*PERCEPTUAL_NETS, *DISTS_NET_NAMES}


def test_an_unknown_method_is_refused_where_a_config_enters(tmp_path):
    import torch

    from swycc.autoencoders.base import Autoencoder, CheckpointError, read_config

    d = get_preset("tiny").to_dict()
    d["model"]["method"] = "vqgan"
    cfg = Config.from_dict(d)  # a config alone does not know the kinds
    assert cfg.model.method == "vqgan"
    file = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(1)}, str(file), metadata={"config": json.dumps(d)})
    for load in (read_config, Autoencoder.from_pretrained):
        with pytest.raises(CheckpointError, match="option model.method: must be one of dgae, gan, swycc.*vqgan"):
            load(file)
    with pytest.raises(ConfigError, match="option model.method"):
        Autoencoder.from_config(cfg)


def test_dit_run_config_checks_like_the_others():
    d = get_dit_preset("dit-tiny").to_dict()
    d["dit"]["heads"] = 3  # 32 / 3 is not an integer head width
    with pytest.raises(ConfigError, match="option dit.hidden"):
        DiTRunConfig.from_dict(d)
