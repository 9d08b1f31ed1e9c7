"""Feature extractors with random weights: architecture (full size on the meta device, reduced
size for real), key layout of the reference checkpoints, preprocessing, weight lookup/errors."""

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from swycc.metrics import weights as W
from swycc.metrics.clip import CLIP_MEAN, CLIP_STD, CLIPVisionTower, load_clip
from swycc.metrics.dinov2 import IMAGENET_MEAN, IMAGENET_STD, DinoV2ViT, load_dinov2
from swycc.metrics.inception import FIDInceptionV3, _avg3, load_inception
from swycc.metrics.maths import quantize_uint8


def _count(m):
    return sum(p.numel() for p in m.parameters())


def _shapes(m):
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """No weight file anywhere: caches point into an empty tmp dir."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SWYCC_WEIGHTS_DIR", raising=False)
    return tmp_path


# ---- Inception (FID, IS) ------------------------------------------------------------------------

def test_inception_layout_matches_pytorch_fid():
    with torch.device("meta"):
        net = FIDInceptionV3()
    # torchvision inception_v3(aux_logits=False, num_classes=1008): 94 BasicConv2d x 6 + fc
    assert len(net.state_dict()) == 566 == 94 * 6 + 2
    assert _count(net) == 23_850_960  # torchvision's 27,161,264 - aux 3,326,696 + 8 fc rows
    s = _shapes(net)
    assert s["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert s["Conv2d_4a_3x3.bn.running_var"] == (192,)
    assert s["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert s["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert s["Mixed_7a.branch3x3_2.conv.weight"] == (320, 192, 3, 3)
    assert s["Mixed_7c.branch3x3dbl_3b.conv.weight"] == (384, 384, 3, 1)
    assert s["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
    assert s["fc.weight"] == (1008, 2048) and s["fc.bias"] == (1008,)
    assert net.Mixed_7c.max_pool and not net.Mixed_7b.max_pool
    assert net.Conv2d_1a_3x3.bn.eps == 0.001


def test_fid_average_pool_ignores_padding():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert _avg3(x)[0, 0, 0, 0].item() == pytest.approx((0 + 1 + 4 + 5) / 4)


def test_inception_preprocessing_and_forward():
    torch.manual_seed(0)
    net = FIDInceptionV3().eval()
    x = torch.rand(2, 3, 64, 48) * 2 - 1
    p = net.preprocess(x)
    ref = F.interpolate(quantize_uint8(x).float() / 255, size=(299, 299), mode="bilinear",
                        align_corners=False) * 2 - 1
    assert p.shape == (2, 3, 299, 299) and torch.allclose(p, ref, atol=1e-6)
    grey = torch.full((1, 3, 20, 20), -1 + 100 / 127.5)
    assert torch.allclose(net.preprocess(grey), torch.tensor(2 * 100 / 255 - 1), atol=1e-6)
    with torch.no_grad():
        f = net(x)
    assert f.shape == (2, 2048) and torch.isfinite(f).all()
    assert torch.allclose(net.logits(f), f @ net.fc.weight.T)  # no bias (TF's MatMul)


def test_inception_loads_reference_file_and_checks_hash(tmp_path):
    torch.manual_seed(1)
    src = FIDInceptionV3()
    state = {k: v for k, v in src.state_dict().items() if "num_batches_tracked" not in k}
    path = tmp_path / W.INCEPTION_WEIGHTS.filename
    torch.save(state, path)
    with pytest.raises(W.WeightsHashError, match="6726825d0af5"):
        load_inception(tmp_path)  # random weights are not the published file
    net = load_inception(tmp_path, expected_sha256=W.sha256_of(path))
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    got = net.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())
    bad = dict(state)
    bad.pop("Mixed_6a.branch3x3.conv.weight")
    torch.save(bad, path)
    with pytest.raises(ValueError, match="missing.*Mixed_6a.branch3x3.conv.weight"):
        load_inception(path, expected_sha256=W.sha256_of(path))


# ---- CLIP ViT-L/14@336 (CMMD) --------------------------------------------------------------------

def _openai_visual_keys(layers):
    keys = {"conv1.weight", "class_embedding", "positional_embedding", "ln_pre.weight",
            "ln_pre.bias", "ln_post.weight", "ln_post.bias", "proj"}
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        keys |= {p + k for k in ("attn.in_proj_weight", "attn.in_proj_bias",
                                 "attn.out_proj.weight", "attn.out_proj.bias", "ln_1.weight",
                                 "ln_1.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                                 "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_2.weight",
                                 "ln_2.bias")}
    return keys


def test_clip_full_size_layout():
    with torch.device("meta"):
        net = CLIPVisionTower()
    assert set(net.state_dict()) == _openai_visual_keys(24)
    assert _count(net) == 304_293_888  # ViT-L/14@336 image tower
    s = _shapes(net)
    assert s["conv1.weight"] == (1024, 3, 14, 14)
    assert s["positional_embedding"] == (577, 1024) and s["class_embedding"] == (1024,)
    assert s["transformer.resblocks.23.attn.in_proj_weight"] == (3072, 1024)
    assert s["transformer.resblocks.0.mlp.c_fc.weight"] == (4096, 1024)
    assert s["proj"] == (1024, 768)


def _small_clip():
    return CLIPVisionTower(image_size=28, patch_size=14, width=32, layers=2, heads=4,
                           output_dim=16)


def test_clip_preprocessing_and_forward():
    from PIL import Image
    from skimage import data

    net = _small_clip().eval()
    grey = torch.full((1, 3, 30, 50), -1 + 100 / 127.5)
    want = (torch.tensor(100 / 255) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(net.preprocess(grey), want.view(1, 3, 1, 1).expand(1, 3, 28, 28),
                          atol=1e-6)
    im = data.astronaut()[100:300, 50:350]  # 200x300: resize shorter side, centre crop
    x = torch.from_numpy(im).permute(2, 0, 1)[None].float() / 127.5 - 1
    got = net.preprocess(x) * torch.tensor(CLIP_STD).view(1, 3, 1, 1) + torch.tensor(
        CLIP_MEAN).view(1, 3, 1, 1)
    pil = Image.fromarray(im).resize((42, 28), Image.BICUBIC).crop((7, 0, 35, 28))
    ref = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255
    assert (got[0] - ref).abs().mean() < 2 / 255
    with torch.no_grad():
        e = net(torch.rand(3, 3, 40, 40) * 2 - 1)
    assert e.shape == (3, 16) and torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)


class _OpenAIClip(nn.Module):
    """Stand-in for OpenAI's full CLIP: ``visual`` plus text-tower entries, traced to a
    TorchScript archive in fp16 like ViT-L-14-336px.pt."""

    def __init__(self, visual):
        super().__init__()
        self.visual = visual
        self.positional_embedding = nn.Parameter(torch.zeros(7, 8))  # the text tower's
        self.token_embedding = nn.Embedding(10, 8)
        self.logit_scale = nn.Parameter(torch.ones([]))

    def forward(self, t):
        return t * self.logit_scale


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace
def test_clip_loads_openai_torchscript_archive(tmp_path):
    torch.manual_seed(2)
    src = _small_clip()
    path = tmp_path / W.CLIP_WEIGHTS.filename
    traced = torch.jit.trace(_OpenAIClip(src).half().eval(), torch.ones(1, dtype=torch.half))
    traced.save(str(path))
    with pytest.raises(W.WeightsHashError, match="3035c92b"):
        load_clip(path, net=_small_clip())
    net = load_clip(path, expected_sha256=W.sha256_of(path), net=_small_clip())
    got = net.state_dict()
    for k, v in src.state_dict().items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v.half().float()), k


# ---- DINOv2 ViT-L/14 (FD-DINOv2) -----------------------------------------------------------------

def test_dinov2_full_size_layout():
    with torch.device("meta"):
        net = DinoV2ViT()
    keys = {"cls_token", "pos_embed", "mask_token", "patch_embed.proj.weight",
            "patch_embed.proj.bias", "norm.weight", "norm.bias"}
    for i in range(24):
        keys |= {f"blocks.{i}.{k}" for k in (
            "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
            "attn.proj.bias", "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight",
            "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias", "ls2.gamma")}
    assert set(net.state_dict()) == keys
    assert _count(net) == 304_368_640  # dinov2_vitl14
    s = _shapes(net)
    assert s["pos_embed"] == (1, 1 + 37 * 37, 1024) and s["cls_token"] == (1, 1, 1024)
    assert s["patch_embed.proj.weight"] == (1024, 3, 14, 14)
    assert s["blocks.0.attn.qkv.weight"] == (3072, 1024) and s["blocks.23.ls2.gamma"] == (1024,)


def _small_dino(**kw):
    return DinoV2ViT(img_size=56, patch_size=14, embed_dim=32, depth=2, num_heads=4,
                     input_size=28, **kw)


def test_dinov2_position_embedding_interpolation():
    net = _small_dino()
    assert net.interpolate_pos_encoding(56, 56) is net.pos_embed  # stored 4x4 grid
    pe = net.interpolate_pos_encoding(28, 28)
    assert pe.shape == (1, 1 + 2 * 2, 32) and torch.equal(pe[:, 0], net.pos_embed[:, 0])
    with torch.no_grad():
        net.pos_embed[:, 1:] = torch.linspace(-1, 1, 32)  # constant over the grid
    for offset in (0.1, 0.0):
        net.interpolate_offset = offset
        assert torch.allclose(net.interpolate_pos_encoding(42, 42)[:, 1:],
                              torch.linspace(-1, 1, 32).expand(1, 9, 32), atol=1e-6)
    with torch.device("meta"):
        full = DinoV2ViT()
    assert full.interpolate_pos_encoding(224, 224).shape == (1, 1 + 16 * 16, 1024)


def test_dinov2_preprocessing_forward_and_loading(tmp_path):
    from PIL import Image
    from skimage import data

    torch.manual_seed(3)
    net = _small_dino().eval()
    im = data.chelsea()[:200, :200]
    x = torch.from_numpy(im).permute(2, 0, 1)[None].float() / 127.5 - 1
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    got = net.preprocess(x)[0] * std + mean
    ref = torch.from_numpy(np.array(Image.fromarray(im).resize((28, 28), Image.BICUBIC)))
    assert (got - ref.permute(2, 0, 1).float() / 255).abs().mean() < 2 / 255
    with torch.no_grad():
        f = net(torch.rand(2, 3, 40, 40) * 2 - 1)
    assert f.shape == (2, 32) and torch.isfinite(f).all()
    path = tmp_path / W.DINOV2_WEIGHTS.filename  # safetensors only (tests/test_hardening.py)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    with pytest.warns(UserWarning, match="no published SHA-256"):
        loaded = load_dinov2(tmp_path, net=_small_dino())
    assert loaded.weights_sha256 == W.sha256_of(path)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)


# ---- weight lookup and the missing-file error ----------------------------------------------------

@pytest.mark.parametrize("loader,spec,where", [
    (load_inception, W.INCEPTION_WEIGHTS, "hub/checkpoints"),
    (load_clip, W.CLIP_WEIGHTS, ".cache/clip"),
    (load_dinov2, W.DINOV2_WEIGHTS, "hub/checkpoints"),
])
def test_missing_weight_file_is_a_clear_error(no_weights, loader, spec, where):
    with pytest.raises(W.MissingWeightsError) as e:
        loader()
    msg = str(e.value)
    assert spec.filename in msg and spec.url in msg and where in msg and "--weights-dir" in msg
    assert isinstance(e.value, OSError)  # the CLI prints it as one error line, exit status 2
    with pytest.raises(W.MissingWeightsError, match=str(no_weights / "nowhere")):
        loader(no_weights / "nowhere")


def test_weight_lookup_order(no_weights, monkeypatch):
    spec = W.DINOV2_WEIGHTS
    hub = no_weights / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / spec.filename).write_bytes(b"hub")
    assert W.find_weights(spec) == hub / spec.filename
    env = no_weights / "env"
    env.mkdir()
    (env / spec.filename).write_bytes(b"env")
    monkeypatch.setenv("SWYCC_WEIGHTS_DIR", str(env))
    assert W.find_weights(spec) == env / spec.filename
    explicit = no_weights / "mine.pth"
    explicit.write_bytes(b"explicit")
    assert W.find_weights(spec, explicit) == explicit
    assert W.sha256_of(explicit) == hashlib.sha256(b"explicit").hexdigest()


# ---- offline proxies (EfficientNet-Lite0) --------------------------------------------------------

def test_proxy_features_and_names():
    from swycc.metrics.evaluate import METRICS
    from swycc.metrics.proxies import PROXY_METRICS, EffNetLite0Global, load_effnetlite0_proxies

    for name, text in PROXY_METRICS.items():
        label = METRICS[name][0]
        assert name.endswith("_effnetlite0") and "EffNet-Lite0" in label
        for s in (name, label, text):
            assert "fid" not in s.lower() and "cmmd" not in s.lower()
    torch.manual_seed(4)
    rand = EffNetLite0Global(None, input_size=64)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert rand(x).shape == (2, 1280)
    glob, perceptual = load_effnetlite0_proxies()  # packaged ImageNet weights, hash-checked
    assert not glob.training and glob.preprocess_id.startswith("effnetlite0:")
    with torch.no_grad():
        f = glob(x)
        assert f.shape == (2, 1280) and (f >= -0.3).all()  # after swish (min -0.278)
        from swycc.metrics.proxies import perceptual_pairs

        d = perceptual_pairs(perceptual, x, x.flip(0))
    assert d.shape == (2,) and torch.allclose(d[0], d[1]) and (d > 0).all()
