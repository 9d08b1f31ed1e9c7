"""Growing on fine-tune (`swycc train --init EXPORT --set model.decoder.num_res_blocks=N`, or
wider levels): the grown model starts as exactly the export's function; only depth and width may
change."""

import dataclasses

import pytest
import torch

from swycc.autoencoders.base import Autoencoder
from swycc.autoencoders.grow import grown_state_dict, growth_of
from swycc.cli import main
from swycc.config import get_preset, override, shrink

FAST = ["--batch-size", "4", "--no-progress", "--set", "loss.perceptual_weight=0",
        "--set", "train.sample_every=0", "--set", "train.warmup_steps=1"]


def _deeper(cfg, enc=(2, 3), dec=(3, 2)):
    for net, (res, mid) in (("encoder", enc), ("decoder", dec)):
        cfg = override(override(cfg, f"model.{net}.num_res_blocks", res),
                       f"model.{net}.num_mid_blocks", mid)
    return cfg


def _grown_computes_the_same(source, target) -> torch.Tensor:
    """Loads ``source`` into ``target``; checks E and D_Initial agree on a batch, returned."""
    target.load_state_dict(grown_state_dict(source, target))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = source.encode(x)
        assert torch.allclose(target.encode(x), z, atol=1e-5)
        assert torch.allclose(target.initial_decoder(z), source.initial_decoder(z), atol=1e-5)
    return x


@pytest.mark.parametrize("method", ["swycc", "gan"])
def test_deepened_model_computes_what_the_export_computed(method):
    torch.manual_seed(0)
    cfg = shrink(get_preset("tiny"))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, method=method))
    source = Autoencoder.from_config(cfg)
    target = Autoencoder.from_config(_deeper(cfg))
    n_src = sum(p.numel() for p in source.parameters())
    assert sum(p.numel() for p in target.parameters()) > n_src
    x = _grown_computes_the_same(source, target)
    # the new blocks are trainable: their last convolution gets a gradient
    target.initial_decoder(target.encoder(x)).square().mean().backward()
    grads = [b.conv2.weight.grad for b in target.d_initial.blocks if hasattr(b, "conv2")]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_only_added_depth_is_accepted():
    cfg = shrink(get_preset("tiny"))
    assert growth_of(cfg.model, cfg.model) == []
    deeper = _deeper(cfg, enc=(1, 1), dec=(2, 1)).model
    assert growth_of(cfg.model, deeper) == ["decoder.num_res_blocks 1 -> 2"]
    with pytest.raises(ValueError, match="not remove them: model.decoder.num_res_blocks 2 -> 1"):
        growth_of(deeper, cfg.model)
    other = override(cfg, "model.encoder.latent_channels", 4).model
    with pytest.raises(ValueError, match="besides their depth and width"):
        growth_of(cfg.model, other)


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
                 "--set", "model.encoder.latent_channels=4", *FAST]) == 2
    assert "besides their depth and width" in capsys.readouterr().err
    assert not bad.exists()


def _wider(cfg, net="decoder", base=12, mults=(1, 2, 2, 4), groups=6):
    """tiny's widths [8, 16, 16, 32] at 2, 4, 4, 8 channels per group -> base x mults."""
    for field, value in (("base_channels", base), ("channel_mults", tuple(mults)),
                         ("num_groups", groups)):
        cfg = override(cfg, f"model.{net}.{field}", value)
    return cfg


@pytest.mark.parametrize("method,adaptive", [("swycc", False), ("gan", True)])
def test_widened_and_deepened_model_computes_what_the_export_computed(method, adaptive):
    torch.manual_seed(0)
    cfg = shrink(get_preset("tiny"))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, method=method))
    cfg = override(cfg, "model.decoder.adaptive_norm", adaptive)
    source = Autoencoder.from_config(cfg)
    grown_cfg = _wider(_wider(_deeper(cfg)), net="encoder", base=4, mults=(3, 4, 4, 8))
    assert growth_of(cfg.model, grown_cfg.model) == [
        "encoder.num_res_blocks 1 -> 2", "encoder.num_mid_blocks 1 -> 3",
        "decoder.num_res_blocks 1 -> 3", "decoder.num_mid_blocks 1 -> 2",
        "encoder widths [8, 16, 16, 32] -> [12, 16, 16, 32]",
        "decoder widths [8, 16, 16, 32] -> [12, 24, 24, 48]"]
    target = Autoencoder.from_config(grown_cfg)
    x = _grown_computes_the_same(source, target)
    assert target.d_initial.conv_out.weight.shape[1] == 12
    # the new channels are live: the output layer's weights from them get a gradient
    target.initial_decoder(target.encoder(x)).square().mean().backward()
    assert target.d_initial.conv_out.weight.grad[:, 8:].abs().sum() > 0


def test_only_widening_that_keeps_the_groups_is_accepted():
    cfg = shrink(get_preset("tiny"))
    cases = [
        (_wider(cfg, groups=4), "groups of 3 channels against the --init model's 2.*num_groups"),
        (_wider(cfg, base=4, groups=4), "not narrow it: decoder level 0 8 -> 4 channels"),
        (_wider(cfg, base=8, mults=(2, 2, 2, 4), groups=8), "1x1 skip"),
        (_wider(cfg, base=8, mults=(1, 2, 4), groups=4), "3 levels against the --init"),
    ]
    for grown, message in cases:
        with pytest.raises(ValueError, match=message):
            growth_of(cfg.model, grown.model)


def test_train_init_widens_end_to_end(tmp_path, capsys):
    torch.manual_seed(2)
    base = tmp_path / "base"
    Autoencoder.from_config(shrink(get_preset("tiny"))).save_pretrained(base)
    run = tmp_path / "run"
    assert main(["train", "--init", str(base), "--out", str(run), "--max-steps", "1",
                 "--set", "model.decoder.base_channels=12", "--set", "model.decoder.num_groups=6",
                 *FAST]) == 0, capsys.readouterr().err
    assert Autoencoder.from_pretrained(run / "export").config.model.decoder.base_channels == 12
    bad = tmp_path / "bad"
    assert main(["train", "--init", str(base), "--out", str(bad), "--max-steps", "1",
                 "--set", "model.decoder.base_channels=12", *FAST]) == 2
    assert "set model.decoder.num_groups so that the group size stays (e.g. 6)" in \
        capsys.readouterr().err
    assert not bad.exists()
