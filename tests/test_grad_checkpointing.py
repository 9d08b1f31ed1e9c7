"""Activation checkpointing (grad_checkpointing in the encoder, decoder and U-Net configs): same
loss and gradients as without it, blocks really recomputed in training only, names unchanged."""

import torch

from swycc.autoencoders import SWYCC
from swycc.diffusion.schedule import add_noise, v_target
from swycc.nn.blocks import EmbResBlock, ResBlock, SelfAttention
from swycc.autoencoders.pretrained import default_checkpoint

FLAGS = ("model.encoder.grad_checkpointing", "model.decoder.grad_checkpointing",
         "model.unet.grad_checkpointing")


def _model(make, checkpointing: bool) -> SWYCC:
    """Dropout on (its masks must match in the recomputation), weights non-zero everywhere."""
    return make(**{"model.unet.dropout": 0.2}, **{f: checkpointing for f in FLAGS}).train()


def _loss_and_grads(m: SWYCC) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    t, eps = torch.rand(2, generator=g), torch.randn(2, 3, 32, 32, generator=g)
    torch.manual_seed(2)  # the dropout masks
    cond = m.d_initial(m.encoder(x))
    v_hat = m.denoiser(add_noise(x, t, eps), t, cond)
    loss = (v_hat - v_target(x, t, eps)).pow(2).mean() + (cond - x).pow(2).mean()
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in m.named_parameters()}


def _count_block_calls(m: SWYCC) -> list[int]:
    """Counts block forward runs, recomputations included (hooks do not see those)."""
    calls = [0]

    def counting(forward):
        def run(*args):
            calls[0] += 1
            return forward(*args)
        return run

    for mod in m.modules():
        if isinstance(mod, (ResBlock, EmbResBlock, SelfAttention)):
            mod.forward = counting(mod.forward)
    return calls


def test_checkpointing_gives_the_same_loss_and_gradients(random_tiny_model):
    plain, ckpt = _model(random_tiny_model, False), _model(random_tiny_model, True)
    assert plain.state_dict().keys() == ckpt.state_dict().keys()  # names unchanged
    ckpt.load_state_dict(plain.state_dict())
    loss_a, grads_a = _loss_and_grads(plain)
    calls = _count_block_calls(ckpt)
    loss_b, grads_b = _loss_and_grads(ckpt)
    assert torch.allclose(loss_a, loss_b, rtol=1e-6, atol=0)
    for k, ga in grads_a.items():
        assert ga.abs().max() > 0, k
        assert torch.allclose(ga, grads_b[k], rtol=1e-5, atol=1e-7), k
    blocks = sum(isinstance(mod, (ResBlock, EmbResBlock, SelfAttention))
                 for mod in ckpt.modules())
    assert calls[0] == 2 * blocks  # every block ran again in backward


def test_checkpointing_is_off_in_eval_and_without_grad(random_tiny_model):
    m = _model(random_tiny_model, True)
    calls = _count_block_calls(m)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    m.eval()
    m.d_initial(m.encoder(x)).sum().backward()
    m.train()
    with torch.no_grad():
        m.d_initial(m.encoder(x))
    blocks = sum(isinstance(mod, ResBlock) for mod in m.modules())
    assert calls[0] == 2 * blocks  # once per block per pass, no recomputation


def test_shipped_model_still_loads_and_checkpointing_flag_defaults_off():
    m = SWYCC.from_pretrained(default_checkpoint())
    assert not m.config.model.unet.grad_checkpointing
    assert not m.config.model.encoder.grad_checkpointing
