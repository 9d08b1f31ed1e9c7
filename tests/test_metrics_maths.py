"""Metric maths against exact closed forms and independent implementations (scipy, skimage,
scikit-learn)."""

import math

import numpy as np
import pytest
import torch
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics.pairwise import rbf_kernel

from swycc.metrics import maths


def _images(seed=0, n=3, h=40, w=37, noise=0.3):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g) * 2 - 1
    y = (x + noise * torch.randn(n, 3, h, w, generator=g)).clamp(-1, 1)
    return x, y


def _hwc_uint8(t):
    return maths.quantize_uint8(t).permute(1, 2, 0).numpy().astype(np.uint8)


# ---- quantisation, PSNR -----------------------------------------------------------------------

def test_quantize_uint8_levels():
    x = torch.tensor([-1.0, -2.0, 0.0, 1.0, 3.0, -1 + 1 / 127.5, -1 + 0.49 / 127.5])
    assert maths.quantize_uint8(x).tolist() == [0, 0, 128, 255, 255, 1, 0]


def test_psnr_closed_form():
    x = torch.full((1, 3, 8, 8), -1.0)  # level 0
    y = x.clone()
    y[..., 0, 0] = -1 + 10 / 127.5  # one pixel per channel differs by 10 levels
    mse = 100 / 64
    assert maths.psnr(x, y).item() == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    assert maths.psnr(x, x).item() == math.inf


def test_psnr_matches_skimage():
    x, y = _images()
    ours = maths.psnr(x, y)
    for i in range(x.shape[0]):
        ref = peak_signal_noise_ratio(_hwc_uint8(x[i]), _hwc_uint8(y[i]), data_range=255)
        assert ours[i].item() == pytest.approx(ref, abs=1e-9)


# ---- SSIM, MS-SSIM ----------------------------------------------------------------------------

def test_gaussian_window_is_scipys():
    from scipy.ndimage import gaussian_filter1d

    impulse = np.zeros(21)
    impulse[10] = 1
    ref = gaussian_filter1d(impulse, 1.5, truncate=3.5)[5:16]  # skimage's gaussian_weights
    assert np.allclose(maths.gaussian_window().numpy(), ref, atol=1e-15)


@pytest.mark.parametrize("seed,noise", [(0, 0.3), (1, 0.05), (2, 1.0)])
def test_ssim_matches_skimage(seed, noise):
    x, y = _images(seed, noise=noise)
    ours = maths.ssim(x, y)
    for i in range(x.shape[0]):
        ref = structural_similarity(_hwc_uint8(x[i]), _hwc_uint8(y[i]), gaussian_weights=True,
                                    use_sample_covariance=False, data_range=255, channel_axis=-1)
        assert ours[i].item() == pytest.approx(ref, abs=1e-10)


def test_ssim_exact_cases():
    x, _ = _images()
    assert torch.allclose(maths.ssim(x, x), torch.ones(3, dtype=torch.float64))
    # constant images a, b: SSIM = (2ab + C1) / (a^2 + b^2 + C1) (variances vanish)
    a, b = torch.full((1, 3, 16, 16), -1 + 100 / 127.5), torch.full((1, 3, 16, 16), -1 + 50 / 127.5)
    c1 = (0.01 * 255) ** 2
    assert maths.ssim(a, b).item() == pytest.approx((2 * 100 * 50 + c1) / (100**2 + 50**2 + c1))
    with pytest.raises(ValueError, match="at least 11x11"):
        maths.ssim(x[..., :10, :10], x[..., :10, :10])


def test_ms_ssim():
    x, y = _images(h=176, w=181, n=2)
    assert torch.allclose(maths.ms_ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(maths.ms_ssim(x, y, weights=(1.0,)), maths.ssim(x, y))
    v = maths.ms_ssim(x, y)
    assert ((v > 0) & (v < 1)).all()
    # two scales, by hand: cs at full resolution ^ w0 times SSIM at half resolution ^ w1
    a, b = maths.quantize_uint8(x), maths.quantize_uint8(y)
    _, cs = maths._ssim_maps(a, b, 255.0)
    s2, _ = maths._ssim_maps(torch.nn.functional.avg_pool2d(a, 2),
                             torch.nn.functional.avg_pool2d(b, 2), 255.0)
    hand = cs.flatten(1).mean(1) ** 0.3 * s2.flatten(1).mean(1) ** 0.7
    assert torch.allclose(maths.ms_ssim(x, y, weights=(0.3, 0.7)), hand)
    with pytest.raises(ValueError, match="176x176"):
        maths.ms_ssim(x[..., :175, :], y[..., :175, :])


# ---- Frechet distance --------------------------------------------------------------------------

def test_feature_stats_streaming_equals_numpy():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(257, 6)) * 3 + 1
    st = maths.FeatureStats(6)
    for i in range(0, 257, 50):
        st.update(torch.from_numpy(f[i:i + 50]) if i % 100 else f[i:i + 50])
    assert st.n == 257
    assert np.allclose(st.mean(), f.mean(0), atol=1e-12)
    assert np.allclose(st.cov(), np.cov(f, rowvar=False), atol=1e-10)


def test_frechet_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with variances s^2
    assert maths.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]),
                                  np.array([[9.0]])) == pytest.approx(4 + 1)
    # diagonal covariances: ||dmu||^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    want = 1 + 4 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert maths.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want)
    rng = np.random.default_rng(1)
    m = rng.normal(size=(5, 5))
    s = m @ m.T + np.eye(5)
    assert maths.frechet_distance(mu1[:1].repeat(5), s, mu1[:1].repeat(5), s) == pytest.approx(
        0, abs=1e-8)


def test_frechet_matches_independent_eigen_formula():
    rng = np.random.default_rng(2)
    d = 7
    a, b = rng.normal(size=(d, 20)), rng.normal(size=(d, 30))
    s1, s2 = a @ a.T / 20, b @ b.T / 30
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # Tr((S1 S2)^1/2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)), all symmetric, via eigh only
    w, v = np.linalg.eigh(s1)
    r = v @ np.diag(np.sqrt(w)) @ v.T
    tr = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    want = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr
    assert maths.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-8)


def test_frechet_guards():
    # a singular product whose square root is not finite gets eps on the diagonal
    s = np.zeros((3, 3))
    real_sqrtm = linalg.sqrtm
    with pytest.warns(RuntimeWarning, match="singular product"), \
            pytest.MonkeyPatch.context() as mp:
        calls = []

        def fake_sqrtm(m):
            calls.append(m)
            return np.full_like(m, np.inf) if len(calls) == 1 else real_sqrtm(m)

        mp.setattr(maths.linalg, "sqrtm", fake_sqrtm)
        v = maths.frechet_distance(np.zeros(3), s, np.zeros(3), s, eps=1e-6)
    assert np.allclose(calls[1], np.eye(3) * 1e-12)
    assert v == pytest.approx(-2 * 3 * 1e-6, abs=1e-12)  # Tr(0) + Tr(0) - 2 Tr((eps^2 I)^1/2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(maths.linalg, "sqrtm", lambda m: np.eye(2) * (1 + 0.1j))
        with pytest.raises(ValueError, match="imaginary component"):
            maths.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))
        mp.setattr(maths.linalg, "sqrtm", lambda m: np.eye(2) * (1 + 1e-5j))
        assert maths.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2)) == (
            pytest.approx(0.0))
    with pytest.raises(ValueError, match="mismatched"):
        maths.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# ---- MMD ----------------------------------------------------------------------------------------

def test_mmd_closed_forms():
    a, b = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])  # ||a - b||^2 = 25
    want = 1000 * (2 - 2 * math.exp(-25 / 200))
    assert maths.mmd2_rbf(a, b) == pytest.approx(want, rel=1e-12)
    x = np.random.default_rng(0).normal(size=(10, 4))
    assert maths.mmd2_rbf(x, x) == pytest.approx(0.0, abs=1e-9)
    # the biased estimator includes the i = j terms: {a, b} vs {a}
    two = np.concatenate([a, b])
    k = math.exp(-25 / 200)
    assert maths.mmd2_rbf(two, a) == pytest.approx(1000 * ((2 + 2 * k) / 4 + 1 - 2 * (1 + k) / 2))


@pytest.mark.parametrize("block", [3, 1024])
def test_mmd_matches_sklearn(block):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 16)), rng.normal(size=(25, 16)) * 1.3 + 0.5
    gamma = 1 / (2 * 10.0**2)
    want = 1000 * (rbf_kernel(x, x, gamma=gamma).mean() + rbf_kernel(y, y, gamma=gamma).mean()
                   - 2 * rbf_kernel(x, y, gamma=gamma).mean())
    assert maths.mmd2_rbf(x, y, block=block) == pytest.approx(want, rel=1e-10)
    assert maths.mmd2_rbf(torch.from_numpy(x).float(), y, block=block) == pytest.approx(
        want, rel=1e-4)


def test_l2_normalize():
    f = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert torch.allclose(maths.l2_normalize(f), torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


# ---- Inception Score -----------------------------------------------------------------------------

def test_inception_score_closed_forms():
    # uniform predictions: p(y|x) = p(y) -> IS = 1
    assert maths.inception_score(np.zeros((50, 1008))) == pytest.approx((1.0, 0.0))
    # (near) one-hot predictions over k classes, balanced in each split -> IS = k
    k, n = 5, 100
    logits = np.full((n, k), -1e4)
    logits[np.arange(n), np.arange(n) % k] = 0.0
    mean, std = maths.inception_score(logits, splits=10)
    assert mean == pytest.approx(k, rel=1e-9) and std == pytest.approx(0, abs=1e-9)


def test_inception_score_matches_openai_formula():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(103, 12)) * 2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    for i in range(10):  # improved-GAN's inception_score()
        part = p[(i * 103 // 10):((i + 1) * 103 // 10), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    mean, std = maths.inception_score(torch.from_numpy(logits))
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores), rel=1e-9)
    with pytest.raises(ValueError, match="at least 10 rows"):
        maths.inception_score(logits[:9])


# ---- preprocessing helpers -----------------------------------------------------------------------

def test_resize_like_pil_matches_pil():
    from PIL import Image
    from skimage import data

    im = data.astronaut()[:300, :300]
    t = torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255
    for size in (224, 336, 64):
        ref = np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC), dtype=float)
        ours = (maths.resize_like_pil(t, (size, size))[0].permute(1, 2, 0) * 255).numpy()
        assert np.abs(ours - ref).mean() < 0.3 and np.abs(ours - ref).max() <= 5


def test_resize_shorter_and_crop():
    x = torch.rand(1, 3, 40, 60)
    out = maths.resize_shorter_and_crop(x, 20)
    assert out.shape == (1, 3, 20, 20)
    ref = maths.resize_like_pil(x, (20, 30))[..., :, 5:25]
    assert torch.equal(out, ref)
