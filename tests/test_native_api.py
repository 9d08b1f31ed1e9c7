"""The native API's edges: precision, sizes carried through encode/decode, explicit tiling,
a differentiable deterministic decode, and progress counts."""

import warnings

import pytest
import torch

from swycc.autoencoders.base import Autoencoder
from swycc.autoencoders.kinds import with_method
from swycc.config import get_preset, shrink
from swycc.autoencoders.tiling import TilingWarning


def tiny(method="swycc", seed=0):
    torch.manual_seed(seed)
    m = Autoencoder.from_config(with_method(shrink(get_preset("tiny")), method))
    for p in m.parameters():
        if p.ndim > 1:
            torch.nn.init.normal_(p, std=0.05)
    return m.eval()


@pytest.mark.parametrize("method", ["swycc", "gan", "dgae"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_decode_works_and_stays_close(method, dtype):
    ref = tiny(method)
    low = tiny(method).to(dtype)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    z, z_ref = low.encode(x), ref.encode(x)
    assert z.dtype == torch.float32
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    out = low.decode(z_ref, steps=2, generator=g())
    want = ref.decode(z_ref, steps=2, generator=g())
    assert out.dtype == torch.float32 and out.shape == want.shape
    # measured here (tiny random models): mean |diff| 0.0005-0.008 over kinds and dtypes
    assert float((out - want).abs().mean()) < 0.03
    assert float((z - z_ref).detach().abs().mean()) < 0.05 * float(z_ref.detach().abs().mean()) + 1e-3
    if method != "dgae":
        assert low.decode_initial(z_ref).dtype == torch.float32


def test_unsupported_dtype_is_refused_before_any_work():
    m = tiny().double()
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        m.decode(torch.zeros(1, 2, 4, 4), steps=1)
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        Autoencoder.from_pretrained("unused", torch_dtype=torch.int8)


@pytest.mark.parametrize("method", ["swycc", "gan"])
def test_decode_of_encode_has_the_inputs_size(method):
    m = tiny(method)
    x = torch.rand(2, 3, 70, 50) * 2 - 1
    z = m.encode(x)
    assert z.image_size == (70, 50) and z.shape[-2:] == m.latent_size(70, 50)
    assert m.decode(z, steps=1).shape == (2, 3, 70, 50)
    assert m.decode(z, steps=1, samples=2).shape == (2, 2, 3, 70, 50)
    assert m.decode_initial(z).shape == (2, 3, 70, 50)
    bare = z.clone()  # a copy carries no size: the latents' full size, or size=
    assert m.decode(bare, steps=1).shape[-2:] == (8 * z.shape[-2], 8 * z.shape[-1])
    assert m.decode(bare, steps=1, size=(70, 50)).shape[-2:] == (70, 50)
    # cropping is all that differs: the same pixels as decoding the padded latents
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(m.decode(z, steps=2, generator=g()),
                       m.decode(bare, steps=2, generator=g())[..., :70, :50])


def test_automatic_tiling_warns_and_explicit_choice_does_not():
    m = tiny("gan")
    x = torch.rand(1, 3, 48, 48) * 2 - 1  # 48^2 > 4 tiles of 16^2
    with pytest.warns(TilingWarning, match="automatic tiling threshold"):
        auto = m.encode(x, tile_size=16, tile_overlap=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = m.encode(x, tile=True, tile_size=16, tile_overlap=8)
        whole = m.encode(x, tile=False, tile_size=16, tile_overlap=8)
        m.decode(whole, tile=False, tile_size=16, tile_overlap=8)
    assert torch.equal(auto, chosen) and not torch.equal(auto, whole)


@pytest.mark.parametrize("method", ["swycc", "gan"])
def test_decode_initial_is_differentiable_on_request(method):
    m = tiny(method)
    z = (torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.3)
    z.requires_grad_(True)
    assert not m.decode_initial(z).requires_grad  # default: no graph, as before
    target = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def loss(zz):
        return (m.decode_initial(zz, grad=True) - target).square().mean()

    value = loss(z)
    value.backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    # the gradient against a central finite difference along a random direction, of the same
    # network in float64 (float32 differences drown in rounding)
    import copy

    net64 = copy.deepcopy(m.initial_decoder).double()
    t64 = target.double()

    def loss64(zz):
        return (net64(zz).clamp(-1, 1) - t64).square().mean()

    d = torch.randn(z.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    eps = 1e-5
    with torch.no_grad():
        z64 = z.detach().double()
        fd = (loss64(z64 + eps * d) - loss64(z64 - eps * d)) / (2 * eps)
    assert float((z.grad.double() * d).sum()) == pytest.approx(float(fd), rel=1e-3)
    # a few steps of gradient descent on z lower the loss
    opt = torch.optim.SGD([z], lr=50.0)
    first = float(value.detach())
    for _ in range(5):
        opt.zero_grad()
        current = loss(z)
        current.backward()
        opt.step()
    assert float(loss(z)) < first


@pytest.mark.parametrize("method,tile", [("swycc", False), ("swycc", True), ("gan", True),
                                         ("dgae", False)])
def test_progress_total_counts_every_network_evaluation(method, tile):
    m = tiny(method)
    z = torch.randn(1, 2, 8, 8) * 0.3
    calls = []
    m.decode(z, steps=3, tile=tile, tile_size=32, tile_overlap=16,
             on_tile=lambda: calls.append(1))
    total = m.progress_total((8, 8), steps=3, tile=tile, tile_size=32, tile_overlap=16)
    assert len(calls) == total
    if not tile:  # one latent-side pass, and one denoiser pass per step where it samples
        assert total == (1 + 3 if m.samples else 1)
    else:  # 64 px in 32 px tiles overlapping by 16: starts 0, 16, 32 on each axis
        assert total == (9 + 3 * 9 if m.samples else 9)


def test_cli_shows_progress_unless_asked_not_to(tmp_path, capsys):
    from swycc.cli import main
    from swycc.data import save_image

    tiny("gan").save_pretrained(tmp_path / "ae")
    save_image(torch.rand(3, 20, 12) * 2 - 1, tmp_path / "a.png")
    base = ["--checkpoint", str(tmp_path / "ae")]
    assert main(["reconstruct", str(tmp_path / "a.png"), "--out", str(tmp_path / "r"), *base]) == 0
    assert "reconstruct: 100%" in capsys.readouterr().err
    assert main(["encode", str(tmp_path / "a.png"), "--out", str(tmp_path / "z.safetensors"),
                 "--no-progress", *base]) == 0
    assert "encode:" not in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "z.safetensors"), "--out", str(tmp_path / "d"),
                 *base]) == 0
    assert "decode: 100%" in capsys.readouterr().err
    from swycc.data import load_image

    assert load_image(tmp_path / "d" / "a.png").shape == (3, 20, 12)
