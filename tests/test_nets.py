import pytest
import torch

from swycc.autoencoders.base import Autoencoder
from swycc.config import PRESETS, get_preset, shrink


@pytest.mark.parametrize("name", list(PRESETS))
def test_shapes_every_preset_at_tiny_width(name):
    cfg = shrink(get_preset(name), width=8)
    torch.manual_seed(0)
    m = Autoencoder.from_config(cfg)
    size = 32 if name != "paper" else 64
    x = torch.rand(2, 3, size, size) * 2 - 1
    z = m.encoder(x)
    assert z.shape == (2, cfg.model.latent_channels, size // 8, size // 8)
    x0 = m.d_initial(z)
    assert x0.shape == x.shape
    v = m.d_refine(torch.cat([x, x0], 1), torch.zeros(2))
    assert v.shape == x.shape


def test_unet_output_starts_at_zero_and_attention_is_placed():
    from swycc.nn.blocks import SelfAttention

    cfg = shrink(get_preset("paper"), width=8)
    m = Autoencoder.from_config(cfg)
    v = m.d_refine(torch.randn(1, 6, 64, 64), torch.zeros(1))
    assert torch.count_nonzero(v) == 0  # zero-initialised output conv
    n_attn = sum(isinstance(mod, SelfAttention) for mod in m.d_refine.modules())
    # paper: attention only at 16x16 (the last level at 256 px): 8 down + 8 up + 1 middle
    assert n_attn == 8 + 8 + 1


def test_adaptive_norm_decoder_uses_latent():
    from dataclasses import replace

    cfg = shrink(get_preset("tiny"))
    cfg = replace(cfg, model=replace(cfg.model, decoder=replace(cfg.model.decoder,
                                                                adaptive_norm=True)))
    m = Autoencoder.from_config(cfg)
    z = torch.randn(1, cfg.model.latent_channels, 4, 4, requires_grad=True)
    m.d_initial(z).sum().backward()
    norm = m.d_initial.blocks[0].norm1
    assert norm.scale.weight.grad is not None and norm.scale.weight.grad.abs().sum() > 0
