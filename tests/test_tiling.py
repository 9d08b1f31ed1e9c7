"""Tiled encoding/decoding (swycc.autoencoders.tiling): geometry, partition of unity, exactness where the
image fits one tile or the network is local, and the seam bound on a gradient and a texture."""

import pytest
import torch
import torch.nn.functional as F

from swycc.diffusion.schedule import alpha_sigma
from swycc.diffusion.sampling import ddim_sample
from swycc.autoencoders.tiling import (TilePlan, TilingError, auto_tile, count_tiles, gradient_image,
                          ramp_weights, seam_energy_ratio, texture_image, tile_edges, tile_starts,
                          tiled_denoiser, tiled_encode, tiled_map)


def _decode(m, z, tile, overlap, seed=0, **kw):
    return m.decode(z, generator=torch.Generator().manual_seed(seed), tile=True, tile_size=tile,
                    tile_overlap=overlap, **kw)


def _blur(x, radius, sigma=None):
    """Zero-padded separable blur (box, or Gaussian with ``sigma``): a local operator with
    edge effects within ``radius`` px of the input's border."""
    k = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.ones_like(k) if sigma is None else torch.exp(-0.5 * (k / sigma) ** 2)
    k = (k / k.sum()).repeat(x.shape[1], 1, 1, 1)
    x = F.conv2d(x, k.view(x.shape[1], 1, 1, -1), padding=(0, radius), groups=x.shape[1])
    return F.conv2d(x, k.view(x.shape[1], 1, -1, 1), padding=(radius, 0), groups=x.shape[1])


def _blur_denoiser(radius, sigma=None):
    """Analytic stand-in for D_Refine: predicts x_0 = blur(cond), returns the matching
    v = (alpha_t x_t - x_0) / sigma_t."""
    def f(x_t, t, cond):
        a, s = (u.view(-1, 1, 1, 1) for u in alpha_sigma(t))
        return (a * x_t - _blur(cond, radius, sigma)) / s
    return f


# ---- geometry -----------------------------------------------------------------------------
@pytest.mark.parametrize("length,tile,overlap,align", [
    (256, 128, 32, 8), (1000, 256, 64, 16), (300, 128, 32, 8), (64, 128, 32, 8),
    (4096, 256, 32, 16), (129, 64, 0, 1)])
def test_tiles_cover_the_image_and_overlap_enough(length, tile, overlap, align):
    starts = tile_starts(length, tile, overlap, align)
    t = min(tile, length)
    assert starts[0] == 0 and starts[-1] + t == length
    assert all(s % align == 0 for s in starts[:-1])
    assert all(0 < b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("scale", [1, 8])
def test_weights_are_a_partition_of_unity_with_context_margin(scale):
    length, tile, overlap = 300, 128, 32
    total = torch.zeros(length * scale)
    rows = ramp_weights(length, tile, overlap, 8, scale)
    for i, (a, w) in enumerate(rows):
        total[a: a + len(w)] += w
        margin = overlap * scale // 4  # the outer quarter of the overlap is context only
        if i > 0:
            assert torch.all(w[:margin] == 0) and w[margin] > 0
        if i < len(rows) - 1:
            assert torch.all(w[-margin:] == 0)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    # 2-D, through tiled_map: blending a constant 1 gives 1 everywhere
    ones = tiled_map(lambda x: torch.ones(1, 2, *(s * scale for s in x.shape[-2:])),
                     torch.zeros(1, 3, 300, 190), tile, overlap, scale=scale, align=8)
    assert ones.shape == (1, 2, 300 * scale, 190 * scale)
    assert torch.allclose(ones, torch.ones_like(ones), atol=1e-6)


def test_bad_geometry_is_refused():
    with pytest.raises(TilingError, match="must exceed overlap"):
        tile_starts(300, 64, 64, 8)
    with pytest.raises(TilingError, match="multiple of the encoder stride"):
        tiled_encode(lambda x: x, torch.zeros(1, 3, 60, 64), 32, 8, 8)
    with pytest.raises(TilingError, match="multiple of the model stride"):
        TilePlan(36, 8, upscale=8, align=8)
    assert not auto_tile(512, 512, 256) and auto_tile(513, 512, 256)
    assert auto_tile(64, 64, 256, choice=True) and not auto_tile(4096, 4096, choice=False)


# ---- exactness ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["swycc", "gan"])
def test_tiled_decode_equals_untiled_when_the_image_fits_one_tile(method, random_tiny_model):
    m = random_tiny_model(**{"model.method": method, "model.unet.predict_residual": True})
    z = m.encode(torch.rand(2, 3, 32, 40) * 2 - 1)
    for samples in (None, 2):
        want = m.decode(z, steps=3, guidance=0.5, samples=samples,
                        generator=torch.Generator().manual_seed(0))
        got = _decode(m, z, tile=64, overlap=16, steps=3, guidance=0.5, samples=samples)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-6, rtol=0)


def test_progress_counts_every_tile_evaluation(random_tiny_model):
    m = random_tiny_model()
    z = m.encode(torch.rand(1, 3, 64, 48) * 2 - 1)  # 3 x 2 tiles of 32 px, overlap 16
    calls = []
    _decode(m, z, 32, 16, steps=3, guidance=0.5, on_tile=lambda: calls.append(1))
    assert len(calls) == count_tiles(8, 6, 4, 2) + 3 * count_tiles(64, 48, 32, 16, 8) == 6 + 3 * 6


def test_local_operator_is_exact_everywhere_and_hard_tiles_are_not():
    """Edge effects within the context margin (overlap / 4) never reach the output."""
    x = torch.randn(2, 3, 150, 232)
    got = tiled_map(lambda y: _blur(y, 4), x, 64, 16)
    assert torch.allclose(got, _blur(x, 4), atol=1e-6)
    hard = tiled_map(lambda y: _blur(y, 4), x, 64, 0)
    assert (hard - _blur(x, 4)).abs().max() > 0.1


def test_tiled_sampling_equals_untiled_for_a_local_denoiser():
    """The noise is drawn once for the whole image and DDIM runs globally: with a denoiser whose
    receptive field fits the margin, tiled sampling (guidance doubles the batch) is exact."""
    cond = texture_image(128).repeat(2, 1, 1, 1)
    den = _blur_denoiser(3)
    want = ddim_sample(den, cond, 4, 0.5, torch.Generator().manual_seed(3))
    got = ddim_sample(tiled_denoiser(den, 48, 16, align=8), cond, 4, 0.5,
                      torch.Generator().manual_seed(3))
    assert torch.allclose(got, want, atol=1e-5)


def test_tiled_encode_of_a_conv_encoder_equals_untiled_away_from_tile_borders():
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU()]
    for _ in range(3):  # three stride-2 levels: latents at 1/8
        layers += [torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.GELU(),
                   torch.nn.Conv2d(8, 8, 3, padding=1)]
    enc = torch.nn.Sequential(*layers, torch.nn.Conv2d(8, 2, 1)).eval()
    x = torch.rand(1, 3, 256, 320) * 2 - 1
    with torch.no_grad():
        want, got = enc(x), tiled_encode(enc, x, 128, 32, 8)
    assert got.shape == want.shape == (1, 2, 32, 40)
    # receptive field: 22 px = 3 latent px; keep latents > 3 from any tile edge
    far = torch.ones(32, 40, dtype=torch.bool)
    for e in tile_edges(256, 128, 32, 8):
        far[max(0, e // 8 - 3): e // 8 + 3] = False
    for e in tile_edges(320, 128, 32, 8):
        far[:, max(0, e // 8 - 3): e // 8 + 3] = False
    assert far.sum() > 100
    assert torch.allclose(got[..., far], want[..., far], atol=1e-5)
    assert torch.allclose(got, want, atol=0.2 * want.abs().max())  # near the edges: close


# ---- the seam ---------------------------------------------------------------------------------
def test_seam_measure_is_one_on_the_test_images_and_sees_a_step():
    edges = tile_edges(128, 64, 16, 8)
    for img in (gradient_image(128), texture_image(128)):
        assert seam_energy_ratio(img, edges, edges) == pytest.approx(1, abs=1e-5)
    stepped = gradient_image(128)
    stepped[..., edges[0]:] += 0.02  # a 0.02 step: hardly visible, 2.5x the ramp's slope
    assert seam_energy_ratio(stepped, edges, edges) > 1.5


@pytest.mark.parametrize("make_image", [gradient_image, texture_image])
def test_seam_energy_within_5_percent_for_an_analytic_denoiser(make_image):
    """A Gaussian blur whose support (radius 8) outgrows the margin (4): tiled output within 5%
    of no seam; the same denoiser on hard tiles (no overlap) is far outside."""
    size, tile, overlap = 128, 48, 16
    cond, den = make_image(size), _blur_denoiser(8, sigma=2.0)
    edges = tile_edges(size, tile, overlap, 8)

    def sample(ov):
        g = torch.Generator().manual_seed(0)
        return ddim_sample(tiled_denoiser(den, tile, ov, align=8), cond, 3, 0.5, g)

    assert abs(seam_energy_ratio(sample(overlap), edges, edges, margin=8) - 1) < 0.05
    hard_edges = tile_edges(size, tile, 0, 8)
    assert abs(seam_energy_ratio(sample(0), hard_edges, hard_edges, margin=8) - 1) > 0.2


@pytest.mark.parametrize("make_image", [gradient_image, texture_image])
def test_seam_energy_of_a_random_model_within_5_percent_of_untiled(make_image,
                                                                  random_tiny_model):
    """A random-init model's output is no image, so its own border/elsewhere ratio is not 1:
    the bound is on the tiled ratio against the untiled decode's ratio on the same borders."""
    m = random_tiny_model(**{"model.unet.predict_residual": True})
    size, tile, overlap = 192, 96, 32
    z = m.encode(make_image(size))
    edges = tile_edges(size, tile, overlap, m.stride)
    tiled = _decode(m, z, tile, overlap, steps=2, guidance=0.5)
    whole = m.decode(z, steps=2, guidance=0.5, generator=torch.Generator().manual_seed(0))
    ratio = seam_energy_ratio(tiled, edges, edges) / seam_energy_ratio(whole, edges, edges)
    assert abs(ratio - 1) < 0.05
