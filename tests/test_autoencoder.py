import pytest
import torch

from swycc.autoencoders.base import Autoencoder, CheckpointError, read_config
from swycc.config import get_preset, override, shrink


def _model(seed=0, **over):
    cfg = shrink(get_preset("tiny"))
    for k, v in over.items():
        cfg = override(cfg, k, v)
    torch.manual_seed(seed)
    m = Autoencoder.from_config(cfg)
    for p in m.parameters():  # non-trivial output weights (the U-Net's are zero at init)
        torch.nn.init.normal_(p, std=0.05) if p.ndim > 1 else None
    return m.eval()


def test_save_load_round_trip(tmp_path):
    m = _model()
    file = m.save_pretrained(tmp_path / "exp")
    assert read_config(tmp_path / "exp") == m.config
    m2 = Autoencoder.from_pretrained(tmp_path / "exp")
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    assert file.name == "model.safetensors"


def test_any_size_pads_and_crops_back():
    m = _model()
    x = torch.rand(2, 3, 21, 35) * 2 - 1
    g = torch.Generator().manual_seed(0)
    assert m.reconstruct(x, steps=2, generator=g).shape == x.shape
    assert m.reconstruct(x, steps=2, samples=3, generator=g).shape == (2, 3, 3, 21, 35)
    assert m.reconstruct_initial(x).shape == x.shape


def test_reconstruct_reproducible_and_samples_differ():
    m = _model()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    a = m.reconstruct(x, steps=3, samples=2, generator=torch.Generator().manual_seed(1))
    b = m.reconstruct(x, steps=3, samples=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.equal(a[:, 0], a[:, 1])


def test_gan_decode_is_deterministic_one_step():
    m = _model(**{"model.method": "gan"})
    assert not m.samples and "D_Refine" not in m.parts()
    z = m.encode(torch.rand(1, 3, 16, 16) * 2 - 1)
    out = m.decode(z, samples=2)
    assert torch.equal(out[:, 0], out[:, 1])
    assert torch.allclose(out[:, 0], m.decode_initial(z))


def test_bad_latents_and_checkpoints(tmp_path):
    m = _model()
    with pytest.raises(ValueError, match="latents must have shape"):
        m.decode(torch.zeros(1, 5, 2, 2))
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Autoencoder.from_pretrained(tmp_path / "missing")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a safetensors"):
        Autoencoder.from_pretrained(bad)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    m = _model()
    file = m.save_pretrained(tmp_path)
    other = override(m.config, "model.encoder.base_channels", 16)
    save_file(load_file(str(file)), str(tmp_path / "x.safetensors"),
              metadata={"format": "swycc", "config": json.dumps(other.to_dict())})
    with pytest.raises(CheckpointError, match="do not match"):
        Autoencoder.from_pretrained(tmp_path / "x.safetensors")


def test_half_precision_export_loads_as_float32(tmp_path):
    m = _model()
    m.save_pretrained(tmp_path, dtype=torch.float16)
    m2 = Autoencoder.from_pretrained(tmp_path)
    w, w2 = m.encoder.conv_in.weight, m2.encoder.conv_in.weight
    assert w2.dtype == torch.float32 and torch.equal(w2, w.half().float())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own, on importing dynamo
def test_compile_networks_keeps_parameter_names():
    """Compiling in place (lazy: nothing is compiled until a forward) leaves the state dict, and
    so checkpoints and EMA, exactly as they were."""
    m = _model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.compile_networks()
    after = m.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
