"""Deepening on fine-tune (`swycc train --init EXPORT --set model.decoder.num_res_blocks=N`):
the deeper model starts as exactly the export's function; only depth may change."""

import dataclasses

import pytest
import torch

from swycc.autoencoders.base import Autoencoder
from swycc.autoencoders.grow import deepened_state_dict, deepening_of
from swycc.cli import main
from swycc.config import get_preset, override, shrink

FAST = ["--batch-size", "4", "--no-progress", "--set", "loss.perceptual_weight=0",
        "--set", "train.sample_every=0", "--set", "train.warmup_steps=1"]


def _deeper(cfg, enc=(2, 3), dec=(3, 2)):
    for net, (res, mid) in (("encoder", enc), ("decoder", dec)):
        cfg = override(override(cfg, f"model.{net}.num_res_blocks", res),
                       f"model.{net}.num_mid_blocks", mid)
    return cfg


@pytest.mark.parametrize("method", ["swycc", "gan"])
def test_deepened_model_computes_what_the_export_computed(method):
    torch.manual_seed(0)
    cfg = shrink(get_preset("tiny"))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, method=method))
    source = Autoencoder.from_config(cfg)
    target = Autoencoder.from_config(_deeper(cfg))
    n_src = sum(p.numel() for p in source.parameters())
    assert sum(p.numel() for p in target.parameters()) > n_src
    target.load_state_dict(deepened_state_dict(source, target))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = source.encode(x)
        assert torch.allclose(target.encode(x), z, atol=1e-6)
        assert torch.allclose(target.initial_decoder(z), source.initial_decoder(z), atol=1e-5)
    # the new blocks are trainable: their last convolution gets a gradient
    target.initial_decoder(target.encoder(x)).square().mean().backward()
    grads = [b.conv2.weight.grad for b in target.d_initial.blocks if hasattr(b, "conv2")]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_only_added_depth_is_accepted():
    cfg = shrink(get_preset("tiny"))
    assert deepening_of(cfg.model, cfg.model) == []
    deeper = _deeper(cfg, enc=(1, 1), dec=(2, 1)).model
    assert deepening_of(cfg.model, deeper) == ["decoder.num_res_blocks 1 -> 2"]
    with pytest.raises(ValueError, match="not remove them: model.decoder.num_res_blocks 2 -> 1"):
        deepening_of(deeper, cfg.model)
    wider = override(cfg, "model.decoder.base_channels", 32).model
    with pytest.raises(ValueError, match="besides their depth"):
        deepening_of(cfg.model, wider)


def test_train_init_deepens_end_to_end(tmp_path, capsys):
    torch.manual_seed(1)
    base = tmp_path / "base"
    Autoencoder.from_config(shrink(get_preset("tiny"))).save_pretrained(base)
    run = tmp_path / "run"
    args = ["train", "--init", str(base), "--out", str(run), "--max-steps", "1",
            "--set", "model.decoder.num_res_blocks=2", *FAST]
    assert main(args) == 0, capsys.readouterr().err
    tuned = Autoencoder.from_pretrained(run / "export")
    assert tuned.config.model.decoder.num_res_blocks == 2
    assert main([*args[:-len(FAST)], *FAST]) == 0  # resumes (stopped at its step)
    bad = tmp_path / "bad"
    assert main(["train", "--init", str(base), "--out", str(bad), "--max-steps", "1",
                 "--set", "model.encoder.base_channels=32", *FAST]) == 2
    assert "besides their depth" in capsys.readouterr().err
    assert not bad.exists()
