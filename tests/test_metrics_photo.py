"""swycc.metrics.photo, .codecs and .reconstructions against hand-computed or independent values:
the bicubic-from-1/8 baseline (Keys' kernel by hand), the signed colour shift, the gradient-energy
ratio, the fp16 latent size, JPEG/WebP at a byte budget, the Frechet distance from feature rows
(against scipy's sqrtm), scoring reconstructions in hand (against ``evaluate_model``) and their
leave-one-out replicates (against scoring the other images)."""

import math

import numpy as np
import pytest
import torch

from swycc.metrics import maths
from swycc.metrics.codecs import codec_at_bytes, encode, largest_within
from swycc.metrics.photo import (bicubic_from_eighth, colour_shift, gradient_energy_ratio,
                                 latent_bytes)
from swycc.metrics.reconstructions import (frechet_distance_rows, jackknife_se,
                                          score_reconstructions, score_with_leave_one_out)


def keys_cubic(d: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel (what bicubic interpolation weights neighbours by)."""
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a if d < 2 else 0.0


def test_bicubic_from_eighth_by_hand():
    # two 8x8 patches side by side, each with mean 0 (left) and 1 (right) but not constant:
    # only the patch means survive the downsampling
    x = torch.zeros(1, 3, 8, 16)
    x[..., :, 8:] = 1.0
    x[..., 0:4, 0] += 0.5
    x[..., 4:8, 0] -= 0.5  # left patch mean still 0
    y = bicubic_from_eighth(x)
    assert y.shape == x.shape
    # output column j samples the 2-pixel low-res row at s = (j + 0.5) / 8 - 0.5, edges
    # replicated: v(j) = sum_k keys(s - k) * low[clamp(k)]
    low = [0.0, 1.0]
    for j in range(16):
        s = (j + 0.5) / 8 - 0.5
        k0 = int(np.floor(s))
        want = sum(keys_cubic(s - k) * low[min(max(k, 0), 1)] for k in range(k0 - 1, k0 + 3))
        assert y[0, 0, 3, j].item() == pytest.approx(min(max(want, -1), 1), abs=1e-6), j
    # column 7 by hand: s = 0.4375, neighbours 0, 0, 1, 1 -> keys(0.5625) + keys(1.5625)
    assert y[0, 1, 0, 7].item() == pytest.approx(0.51055908203125 - 0.08074951171875, abs=1e-6)
    assert y[0, 2, 5, 8].item() == pytest.approx(1 - 0.4298095703125, abs=1e-6)  # symmetric
    assert torch.equal(bicubic_from_eighth(torch.full((2, 3, 16, 16), 0.25)),
                       torch.full((2, 3, 16, 16), 0.25))  # a flat image is kept exactly
    with pytest.raises(ValueError, match="multiple of 8"):
        bicubic_from_eighth(torch.zeros(1, 3, 12, 16))


def levels(t) -> torch.Tensor:
    """8-bit levels -> [-1, 1]."""
    return torch.as_tensor(t, dtype=torch.float32) / 127.5 - 1.0


def test_colour_shift_by_hand():
    x = levels(torch.full((2, 3, 4, 4), 100.0))
    y = x.clone()
    y[0, 0, :2, :2] = levels(164)  # R: +64 levels on 4 of 16 pixels -> +16
    y[0, 1] = levels(74)  # G: -26 levels everywhere
    y[1, 2, 0, 0] = levels(116)  # B: +16 levels on 1 of 16 pixels -> +1
    shift, rgb = colour_shift(y, x)
    assert rgb[0].tolist() == [16.0, -26.0, 0.0]  # signed, exact
    assert rgb[1].tolist() == [0.0, 0.0, 1.0]
    assert shift.tolist() == [26.0, 1.0]  # the largest magnitude
    # both are quantised to levels first: 0.3 levels more is no shift, 0.6 is one level
    assert colour_shift(x + 0.3 / 127.5, x)[0].tolist() == [0.0, 0.0]
    assert colour_shift(x + 0.6 / 127.5, x)[0].tolist() == [1.0, 1.0]
    # a shift up on one half and down on the other cancels: colour shift is about the mean
    z = x[:1].clone()
    z[..., :2, :] = levels(110)
    z[..., 2:, :] = levels(90)
    assert colour_shift(z, x[:1])[0].item() == 0.0
    with pytest.raises(ValueError, match="one shape"):
        colour_shift(y[:1], x)


def test_gradient_energy_ratio_and_latent_bytes_by_hand():
    # a vertical edge of height 1 between columns 1 and 2 of a 4x4 image: gradient energy =
    # horizontal: 4 of 12 differences are 1 -> 1/3; vertical: 0. Half the step: 1/12
    x = torch.zeros(1, 3, 4, 4)
    x[..., 2:] = 1.0
    assert gradient_energy_ratio(x * 0.5, x) == pytest.approx(0.25)
    assert gradient_energy_ratio(torch.cat([x, x]), torch.cat([x, x * 0.5])) == \
        pytest.approx((1 / 3 + 1 / 3) / (1 / 3 + 1 / 12))  # a ratio of sums, not of ratios
    assert np.isnan(gradient_energy_ratio(x, torch.zeros_like(x)))
    assert latent_bytes(4, 128, 128) == 4 * 16 * 16 * 2 == 2048
    assert latent_bytes(2, 256, 128) == 2 * 32 * 16 * 2
    with pytest.raises(ValueError, match="multiple of 8"):
        latent_bytes(4, 100, 128)


def _photo(size: int = 32, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with seeded noise: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    a = np.stack([200 * xx + 20, 180 * yy + 30, 120 * (1 - xx) + 60], -1)
    return np.clip(a + rng.normal(0, 6, a.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_codec_keeps_the_largest_file_within_the_budget(fmt):
    rgb = _photo()
    sizes = {q: len(encode(rgb, fmt, q)) for q in (10, 50, 90)}
    assert sizes[10] < sizes[50] < sizes[90]
    # a budget of exactly quality 50's size: a file of that size, never larger
    r = largest_within(rgb, fmt, sizes[50])
    assert r["bytes"] == sizes[50] and r["image"].shape == rgb.shape
    # one byte less: something smaller, still no smaller than quality 10's file
    r = largest_within(rgb, fmt, sizes[50] - 1)
    assert sizes[10] <= r["bytes"] < sizes[50]
    assert len(encode(rgb, fmt, r["quality"])) == r["bytes"]
    assert largest_within(rgb, fmt, 10) is None  # no file is 10 bytes
    # the tensor interface: 8-bit levels in, the decoded file back in [-1, 1]
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
    (c,) = codec_at_bytes(x, fmt, sizes[90])
    assert c["bytes"] <= sizes[90] and c["quality"] >= 90 - (fmt == "webp") * 5
    back = ((c["image"] + 1) * 127.5).round().permute(1, 2, 0).numpy().astype(np.uint8)
    assert np.array_equal(back, largest_within(rgb, fmt, sizes[90])["image"])
    assert 25 < float(maths.psnr(c["image"][None], x)[0]) < 60
    with pytest.raises(ValueError, match="unknown format"):
        largest_within(rgb, "gif", 1000)


def test_frechet_distance_rows_equals_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for n1, n2, d in [(6, 9, 20), (50, 40, 8)]:  # fewer rows than dimensions, and more
        a, b = rng.normal(size=(n1, d)), rng.normal(size=(n2, d)) + 0.3
        want = maths.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                                      np.cov(b, rowvar=False))
        # sqrtm of a rank-deficient product loses digits: agreement to 1e-7, not 1e-15
        assert frechet_distance_rows(a, b) == pytest.approx(want, rel=1e-7)
    assert frechet_distance_rows(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="feature sets"):
        frechet_distance_rows(a[:1], b)


def test_score_reconstructions_matches_evaluate_model(random_tiny_model):
    from swycc.metrics.evaluate import evaluate_model, load_extractors

    names = ["psnr", "ssim", "perceptual_effnetlite0", "mmd_effnetlite0",
             "spectrum_distance_db"]
    extractors = load_extractors(names)
    model = random_tiny_model()
    g = torch.Generator().manual_seed(0)
    x = maths.quantized(torch.rand(3, 3, 32, 32, generator=g) * 2 - 1)
    want = evaluate_model(model, x, names, extractors, decoder="initial",
                          progress=False)["metrics"]
    with torch.no_grad():
        y = model.reconstruct_initial(x)
        got = score_reconstructions(y, x, names + ["fd_effnetlite0"], extractors)
        net = extractors["effnetlite0"]
        fd = frechet_distance_rows(net(maths.quantized(y)), net(x))
    assert set(got) == set(want) | {"fd_effnetlite0"}
    for m in names:
        assert got[m] == pytest.approx(want[m], rel=1e-6), m
    # FD (scipy's sqrtm takes 4 s at 1280 dimensions: its agreement is the test above)
    assert got["fd_effnetlite0"] == pytest.approx(fd, rel=1e-9) and fd > 0
    with pytest.raises(ValueError, match="does not compute"):
        score_reconstructions(x, x, ["is"], extractors)


def test_leave_one_out_scores_are_the_scores_of_the_other_images(random_tiny_model):
    from swycc.metrics.evaluate import load_extractors

    names = ["psnr", "ssim", "perceptual_effnetlite0", "mmd_effnetlite0", "fd_effnetlite0"]
    extractors = load_extractors(names)
    g = torch.Generator().manual_seed(1)
    x = maths.quantized(torch.rand(4, 3, 32, 32, generator=g) * 2 - 1)
    with torch.no_grad():
        y = random_tiny_model().reconstruct_initial(x)
        full, loo = score_with_leave_one_out(y, x, names, extractors)
        assert full == pytest.approx(score_reconstructions(y, x, names, extractors), rel=1e-9)
        for i in range(4):  # each replicate: the plain score of the three other pairs
            keep = torch.arange(4) != i
            want = score_reconstructions(y[keep], x[keep], names, extractors)
            assert {m: v[i] for m, v in loo.items()} == pytest.approx(want, rel=1e-6), i
    # the jackknife error of a mean is the textbook standard error s / sqrt(N)
    per_image = maths.psnr(maths.quantized(y), x).double()
    assert jackknife_se(loo["psnr"]) == pytest.approx(
        float(per_image.std() / 4 ** 0.5), rel=1e-9)
    assert jackknife_se([1.0, 2.0, 3.0]) == pytest.approx((4 / 3) ** 0.5)
    assert math.isnan(jackknife_se([1.0, float("inf"), 3.0]))
    with pytest.raises(ValueError, match="at least 3 image pairs"):
        score_with_leave_one_out(y[:2], x[:2], names, extractors)
