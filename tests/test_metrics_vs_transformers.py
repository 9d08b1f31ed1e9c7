"""swycc's metric networks against an independent implementation: Hugging Face transformers'
``CLIPVisionModelWithProjection`` (CMMD's CLIP ViT-L/14@336 image tower) and ``Dinov2Model``
(FD-DINOv2's ViT-L/14), loaded with the same random weights through a key mapping.

The forward passes are compared on small configurations of the same architectures (seconds on a
CPU); the mappings are checked at full size on the meta device (every key and shape of
ViT-L/14). DINOv2 at a resolution other than the stored grid differs by design: swycc resizes
the position embeddings as facebookresearch/dinov2 does (bicubic, ``scale_factor=(h0 + 0.1) /
M``), transformers to the target ``size``; the tests show that this is the only difference.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")  # the `dev` extra installs it

from swycc.metrics.clip import CLIPVisionTower  # noqa: E402
from swycc.metrics.dinov2 import DinoV2ViT  # noqa: E402

# ---- CLIP ----------------------------------------------------------------------------------------


def _clip_config(width, layers, heads, image_size, output_dim):
    return transformers.CLIPVisionConfig(
        hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
        num_attention_heads=heads, image_size=image_size, patch_size=14,
        projection_dim=output_dim, hidden_act="quick_gelu", layer_norm_eps=1e-5)


def clip_to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI's CLIP image-tower keys (swycc's) -> CLIPVisionModelWithProjection's."""
    v = "vision_model."
    out = {v + "embeddings.patch_embedding.weight": state["conv1.weight"],
           v + "embeddings.class_embedding": state["class_embedding"],
           v + "embeddings.position_embedding.weight": state["positional_embedding"],
           "visual_projection.weight": state["proj"].t()}
    for ours, theirs in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for p in ("weight", "bias"):
            out[f"{v}{theirs}.{p}"] = state[f"{ours}.{p}"]
    layers = {int(k.split(".")[2]) for k in state if k.startswith("transformer.resblocks.")}
    for i in layers:
        src, dst = f"transformer.resblocks.{i}.", f"{v}encoder.layers.{i}."
        for p in ("weight", "bias"):
            q, k, val = state[f"{src}attn.in_proj_{p}"].chunk(3, dim=0)
            out.update({f"{dst}self_attn.q_proj.{p}": q, f"{dst}self_attn.k_proj.{p}": k,
                        f"{dst}self_attn.v_proj.{p}": val})
            for ours, theirs in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                                 ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                                 ("mlp.c_proj", "mlp.fc2")):
                out[f"{dst}{theirs}.{p}"] = state[f"{src}{ours}.{p}"]
    return out


def _shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


def test_clip_mapping_covers_vit_l14_336():
    with torch.device("meta"):
        ours = CLIPVisionTower()
        theirs = transformers.CLIPVisionModelWithProjection(_clip_config(1024, 24, 16, 336, 768))
    want = {k: v for k, v in _shapes(theirs.state_dict()).items()
            if not k.endswith("position_ids")}  # a buffer, not a weight
    assert _shapes(clip_to_transformers(ours.state_dict())) == want


def test_clip_matches_transformers():
    torch.manual_seed(0)
    # head dimension 64 as in ViT-L/14; 5x5 patches + CLS
    ours = CLIPVisionTower(image_size=70, patch_size=14, width=128, layers=3, heads=2,
                           output_dim=48).eval()
    theirs = transformers.CLIPVisionModelWithProjection(_clip_config(128, 3, 2, 70, 48)).eval()
    missing, unexpected = theirs.load_state_dict(clip_to_transformers(ours.state_dict()),
                                                 strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing)
    x = torch.rand(3, 3, 90, 120) * 2 - 1
    with torch.no_grad():
        got = ours(x)
        ref = F.normalize(theirs(pixel_values=ours.preprocess(x)).image_embeds, dim=-1)
    err = (got - ref).abs().max().item()
    assert err < 1e-6, err
    assert (got - got.roll(1, dims=0)).abs().max() > 1e3 * err  # the images' embeddings differ


def test_clip_preprocessing_matches_clip_image_processor():
    """CLIP's own transform (shorter side 336 bicubic, centre crop, mean/std) from 8-bit pixels,
    as transformers' CLIPImageProcessor does it with PIL. The crop margins are even here: for an
    odd margin swycc rounds the offset as torchvision's CenterCrop (CLIP's own transform) does,
    transformers truncates it, one pixel apart."""
    from skimage import data

    im = data.astronaut()[60:300, 20:384]  # 240 x 364 -> 70 x 106, margin 36
    x = torch.from_numpy(im).permute(2, 0, 1)[None].float() / 127.5 - 1
    ours = CLIPVisionTower(image_size=70, patch_size=14, width=16, layers=1, heads=1,
                           output_dim=8)
    processor = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    proc = processor(size={"shortest_edge": 70},
                                           crop_size={"height": 70, "width": 70})
    ref = proc(images=im, return_tensors="pt")["pixel_values"]
    got = ours.preprocess(x)
    assert got.shape == ref.shape == (1, 3, 70, 70)
    std = torch.tensor(proc.image_std).view(1, 3, 1, 1)
    assert ((got - ref) * std).abs().mean() < 1.5 / 255  # PIL rounds to 8 bits; swycc does not


# ---- DINOv2 --------------------------------------------------------------------------------------


def _dino_config(dim, depth, heads, img_size):
    return transformers.Dinov2Config(
        hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads, mlp_ratio=4,
        image_size=img_size, patch_size=14, layerscale_value=1e-5, layer_norm_eps=1e-6,
        hidden_act="gelu", use_swiglu_ffn=False, qkv_bias=True)


# Dinov2Model's attention projections: transformers 5 names, and the 4.x names
ATTENTION_NAMES = {5: ("attention.q_proj", "attention.k_proj", "attention.v_proj",
                       "attention.o_proj"),
                   4: ("attention.attention.query", "attention.attention.key",
                       "attention.attention.value", "attention.output.dense")}


def dinov2_to_transformers(state: dict[str, torch.Tensor],
                           theirs: torch.nn.Module) -> dict[str, torch.Tensor]:
    """facebookresearch/dinov2's keys (swycc's) -> the keys of ``theirs``, a Dinov2Model."""
    version = 5 if any(".attention.q_proj." in k for k in theirs.state_dict()) else 4
    q_name, k_name, v_name, o_name = ATTENTION_NAMES[version]
    out = {"embeddings.cls_token": state["cls_token"],
           "embeddings.mask_token": state["mask_token"],
           "embeddings.position_embeddings": state["pos_embed"],
           "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
           "layernorm.weight": state["norm.weight"], "layernorm.bias": state["norm.bias"]}
    depth = {int(k.split(".")[1]) for k in state if k.startswith("blocks.")}
    for i in depth:
        src, dst = f"blocks.{i}.", f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            q, k, v = state[f"{src}attn.qkv.{p}"].chunk(3, dim=0)
            out.update({f"{dst}{q_name}.{p}": q, f"{dst}{k_name}.{p}": k,
                        f"{dst}{v_name}.{p}": v})
            for ours, their in (("attn.proj", o_name), ("norm1", "norm1"),
                                ("norm2", "norm2"), ("mlp.fc1", "mlp.fc1"),
                                ("mlp.fc2", "mlp.fc2")):
                out[f"{dst}{their}.{p}"] = state[f"{src}{ours}.{p}"]
        out[f"{dst}layer_scale1.lambda1"] = state[f"{src}ls1.gamma"]
        out[f"{dst}layer_scale2.lambda1"] = state[f"{src}ls2.gamma"]
    return out


def test_dinov2_mapping_covers_vit_l14():
    with torch.device("meta"):
        ours = DinoV2ViT()
        theirs = transformers.Dinov2Model(_dino_config(1024, 24, 16, 518))
    assert _shapes(dinov2_to_transformers(ours.state_dict(), theirs)) == _shapes(theirs.state_dict())


def _dino_pair(input_size: int):
    """swycc's ViT (stored grid 5x5, like ViT-L/14's 37x37 at 518 px) and transformers' with
    the same random weights; LayerScale and tokens made O(1) so every part matters."""
    torch.manual_seed(1)
    ours = DinoV2ViT(img_size=70, patch_size=14, embed_dim=128, depth=3, num_heads=2,
                     input_size=input_size).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name.endswith("gamma") or name in ("cls_token", "pos_embed"):
                p.normal_(0, 0.5)
    theirs = transformers.Dinov2Model(_dino_config(128, 3, 2, 70)).eval()
    theirs.load_state_dict(dinov2_to_transformers(ours.state_dict(), theirs), strict=True)
    return ours, theirs


def _features(ours, theirs, x):
    with torch.no_grad():
        got = ours(x)
        out = theirs(pixel_values=ours.preprocess(x))
    assert torch.equal(out.pooler_output, out.last_hidden_state[:, 0])
    return got, out.pooler_output


def test_dinov2_matches_transformers_at_the_stored_grid():
    ours, theirs = _dino_pair(input_size=70)  # 5x5 patches: no interpolation
    got, ref = _features(ours, theirs, torch.rand(3, 3, 80, 100) * 2 - 1)
    err = (got - ref).abs().max().item()
    assert err < 1e-5, err


def dinov2_interpolation(embeddings, pixel_values, offset: float = 0.1):
    """facebookresearch/dinov2's ``interpolate_pos_encoding`` (vision_transformer.py), written
    for transformers' ``Dinov2Embeddings``: bicubic with scale_factor (h0 + offset) / M."""
    pos = embeddings.position_embeddings.float()
    m = int((pos.shape[1] - 1) ** 0.5)
    h0, w0 = (s // embeddings.patch_size for s in pixel_values.shape[-2:])
    patch = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, scale_factor=((h0 + offset) / m, (w0 + offset) / m),
                          mode="bicubic", antialias=False)
    assert patch.shape[-2:] == (h0, w0)
    return torch.cat([pos[:, :1], patch.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)], dim=1)


def test_dinov2_at_another_grid_differs_only_by_the_position_embedding_resize(monkeypatch):
    """At 42 px (3x3 patches from the stored 5x5, as 224 px gives 16x16 from 37x37) the two
    differ; with dinov2's resize on transformers' side, or transformers' (``size=``, i.e.
    swycc's ``interpolate_offset=0``) on swycc's, they agree."""
    ours, theirs = _dino_pair(input_size=42)
    x = torch.rand(3, 3, 80, 100) * 2 - 1
    got, ref = _features(ours, theirs, x)
    assert (got - ref).abs().max() > 1e-2  # different by design

    ours.interpolate_offset = 0.0  # resize to the target size, as transformers does
    same, _ = _features(ours, theirs, x)
    assert (same - ref).abs().max() < 1e-5
    ours.interpolate_offset = 0.1

    emb = theirs.embeddings
    monkeypatch.setattr(emb, "interpolate_pos_encoding",
                        lambda e, h, w: dinov2_interpolation(emb, torch.empty(0, 0, h, w)))
    _, ref_dinov2 = _features(ours, theirs, x)
    err = (got - ref_dinov2).abs().max().item()
    assert err < 1e-5, err
