"""swycc.codec: deterministic tables, exact entropy coding, the .swyc format and its bad inputs,
compress / decompress end to end."""

import hashlib
import math
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from swycc.cli import main
from swycc.codec.codec import decode_latent, encode_latent, quality_step, quantize, read
from swycc.codec.entropy import decode_symbols, encode_symbols
from swycc.codec.fileformat import CodecFileError, pack, unpack
from swycc.codec.prior import (TABLE_TOTAL, ChannelParams, LatentPrior, code_length_bits,
                               exp_neg, fit_prior, fit_symbol_params, frequency_table)


def test_exp_neg_matches_libm():
    # up to 700: beyond ~708 exp(-x) is subnormal, and the training loop's
    # torch.set_flush_denormal(True) (set earlier in the same test process) flushes it to 0
    xs = np.concatenate([np.linspace(0, 50, 20001), np.linspace(50, 700, 3001)])
    rel = max(abs(exp_neg(float(x)) / math.exp(-x) - 1) for x in xs)
    assert rel < 1e-13


def test_frequency_table_is_the_discretised_laplace():
    from scipy.stats import laplace

    lo, hi, mu, b = -20, 25, 1.25, 3.5
    f = np.array(frequency_table(lo, hi, mu, b))
    assert f.sum() == TABLE_TOTAL and f.min() >= 1
    edges = np.arange(lo, hi) + 0.5
    cdf = np.concatenate([[0.0], laplace.cdf(edges, mu, b), [1.0]])
    p = np.diff(cdf)
    # floor(p (TOTAL - n)) + 1, the remainder on the mode: within n / TOTAL of p everywhere
    assert np.abs(f / TABLE_TOTAL - p).max() < len(f) / TABLE_TOTAL


def test_frequency_table_bits_are_pinned():
    """The tables every machine must build alike: a change here breaks every existing file."""
    tables = [frequency_table(-40, 37, 0.5, 6.25), frequency_table(-3, 2, -0.125, 0.3),
              frequency_table(0, 1, 0.0, 1.0 / 64)]
    digest = hashlib.sha256(np.array(sum(tables, []), dtype="<i8").tobytes()).hexdigest()
    assert digest == "9a853936f8c82c7565d5142b1c0dc12a402dc77602f854b3a54226aac54b9cc2"
    # and the coder's bytes for fixed symbols and tables (constriction's fixed-point model)
    q = (np.arange(2 * 9 * 11).reshape(2, 9, 11) * 7919 % 23 - 11).astype(np.int32)
    params = [ChannelParams(-11, 11, 0.5, 4.0), ChannelParams(-11, 11, -2.0, 1.5)]
    assert hashlib.sha256(encode_symbols(q, params)).hexdigest() == \
        "8832f8e915bc4afd4e22ad00b1d891eef132cae75ada4a683224a25c619fe250"


def _laplace_ints(shape, scale, seed):
    rng = np.random.default_rng(seed)
    return np.round(rng.laplace(0.3, scale, size=shape)).astype(np.int32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entropy_round_trip_exact(seed):
    q = np.concatenate([_laplace_ints((2, 17, 23), 4.0 + seed, seed),
                        np.full((1, 17, 23), -3, np.int32),  # one-value alphabet: no bits
                        _laplace_ints((1, 17, 23), 0.2, seed + 10)])
    params = fit_symbol_params(q)
    data = encode_symbols(q, params)
    back = decode_symbols(data, params, 17, 23)
    assert back.dtype == np.int32 and np.array_equal(back, q)
    ideal = sum(code_length_bits(q[c], p.lo, p.table()) for c, p in enumerate(params))
    assert ideal <= 8 * len(data) <= ideal + 64  # range coding: within two 32-bit words


def test_file_round_trip_and_latent_error_within_half_a_step():
    z = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(0)) * 1.3
    data = encode_latent(z, 6, b"\x01" * 8, (40, 56))
    f = unpack(data, "x")
    assert (f.width, f.height, f.latent_shape, f.quality) == (56, 40, (2, 5, 7), 6)
    assert f.step == quality_step(6) == 0.5
    assert pack(f) == data
    zh = decode_latent(f)
    assert torch.equal(zh[0], torch.from_numpy(quantize(z, f.step).astype(np.float32)) * 0.5)
    assert (zh[0] - z).abs().max() <= 0.25 + 1e-6


def test_a_given_prior_is_used_and_round_trips():
    z = torch.randn(3, 6, 6, generator=torch.Generator().manual_seed(1))
    prior = fit_prior(z[None])
    data = encode_latent(z, 8, b"\x02" * 8, (48, 48), prior)
    f = unpack(data, "x")
    assert f.channels[0].mu == pytest.approx(float(prior.mean[0]) / f.step, rel=2e-3)
    assert torch.equal(decode_latent(f)[0],
                       torch.from_numpy(quantize(z, f.step)).float() * f.step)
    from_std = LatentPrior.from_mean_std(torch.zeros(3), torch.full((3,), 2.0))
    assert float(from_std.scale[0]) == pytest.approx(math.sqrt(2.0))


def _valid_file():
    z = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(2))
    return encode_latent(z, 8, b"\x03" * 8, (32, 32))


@pytest.mark.parametrize("case, message", [
    ("truncated", "truncated"), ("empty", "truncated"), ("flipped", "checksum"),
    ("trailing", "unexpected bytes"), ("foreign", "not a .swyc file"),
    ("future", "version 2, made by a newer swycc")])
def test_bad_files_are_named(case, message):
    data = _valid_file()
    bad = {"truncated": data[:-7], "empty": b"", "trailing": data + b"\0",
           "flipped": data[:40] + bytes([data[40] ^ 0x10]) + data[41:],
           "foreign": b"\x89PNG\r\n\x1a\n" + data[8:], "future": data[:4] + b"\x02" + data[5:]}
    with pytest.raises(CodecFileError, match=message):
        unpack(bad[case], "f.swyc")
    for cut in range(len(data)):  # every truncation is caught, none crashes
        with pytest.raises(CodecFileError):
            unpack(data[:cut], "f.swyc")


def test_another_model_is_refused():
    with pytest.raises(CodecFileError, match="another model"):
        read(_valid_file(), "f.swyc", expect_model_id=b"\x04" * 8)


# ---- the verbs, end to end -----------------------------------------------------------------

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import random_images_and_tiny_export

    from swycc.autoencoders.base import Autoencoder
    from swycc.config import get_preset, shrink

    root = tmp_path_factory.mktemp("codec")
    imgs = random_images_and_tiny_export(root)
    torch.manual_seed(1)
    Autoencoder.from_config(shrink(get_preset("tiny"))).save_pretrained(root / "other")
    return root, imgs


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("swycc: error:"), err
    return err[0]


def test_compress_decompress_end_to_end(setup, tmp_path, capsys):
    root, imgs = setup
    ck = ["--checkpoint", str(root / "model")]
    assert main(["compress", *map(str, imgs), "--out", str(tmp_path / "c"), "--quality", "5",
                 *ck]) == 0
    out = capsys.readouterr().out
    files = sorted((tmp_path / "c").iterdir())
    assert [f.name for f in files] == ["img0.swyc", "img1.swyc"]
    size = files[0].stat().st_size
    assert f"img0.swyc: 36x24, {size} bytes, {8 * size / (36 * 24):.4f} bpp" in out
    for decoder, extra in (("initial", []), ("samples", ["--steps", "2"])):
        d = tmp_path / decoder
        assert main(["decompress", *map(str, files), "--out", str(d), "--decoder", decoder,
                     *extra, *ck]) == 0
        for img in imgs:
            assert Image.open(d / f"{img.stem}.png").size == Image.open(img).size
    # the initial decode is what D_Initial gives the dequantised latent
    from swycc.autoencoders.base import Autoencoder
    from swycc.data import load_image

    model = Autoencoder.from_pretrained(root / "model")
    f = read(files[0].read_bytes(), "x")
    want = model.decode_initial(decode_latent(f))[0, :, :24, :36]
    got = load_image(tmp_path / "initial" / "img0.png")
    assert (got - ((want.clamp(-1, 1) + 1) * 127.5).round() / 127.5 + 1).abs().max() < 1e-5


def test_compress_writes_only_inside_out(setup, tmp_path, capsys):
    root, imgs = setup
    weird = tmp_path / "src" / "..img.png"
    weird.parent.mkdir()
    weird.write_bytes(imgs[0].read_bytes())
    before = {p for p in tmp_path.rglob("*")}
    assert main(["compress", str(weird), "--out", str(tmp_path / "o"),
                 "--checkpoint", str(root / "model")]) == 0
    new = {p for p in tmp_path.rglob("*")} - before
    assert new == {tmp_path / "o", tmp_path / "o" / "img.swyc"}


def test_bad_swyc_files_exit_2_and_write_nothing(setup, tmp_path, capsys):
    root, imgs = setup
    ck = ["--checkpoint", str(root / "model")]
    assert main(["compress", str(imgs[0]), "--out", str(tmp_path / "c"), *ck]) == 0
    good = (tmp_path / "c" / "img0.swyc").read_bytes()
    cases = {"truncated.swyc": (good[:-5], "truncated"),
             "corrupt.swyc": (good[:30] + bytes([good[30] ^ 1]) + good[31:], "checksum"),
             "foreign.swyc": (imgs[0].read_bytes(), "not a .swyc file"),
             "future.swyc": (good[:4] + struct.pack("B", 9) + good[5:], "version 9")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        capsys.readouterr()
        code = main(["decompress", str(tmp_path / "c" / "img0.swyc"), str(tmp_path / name),
                     "--out", str(tmp_path / "d"), "--decoder", "initial", *ck])
        assert code == 2
        err = _err(capsys)
        assert name in err and message in err
        assert not (tmp_path / "d").exists()
    code = main(["decompress", str(tmp_path / "c" / "img0.swyc"), "--out", str(tmp_path / "d"),
                 "--checkpoint", str(root / "other")])
    assert code == 2 and "made by another model" in _err(capsys)
    assert not (tmp_path / "d").exists()
    assert main(["compress", str(imgs[0]), "--out", str(tmp_path / "q"), "--quality", "17",
                 *ck]) == 2
    assert "--quality" in _err(capsys) and not (tmp_path / "q").exists()
