"""Deepening a trained autoencoder: fine-tune (``swycc train --init``) into more ResNet blocks.

A run may start from an export whose encoder E or decoder D_Initial has fewer ResNet blocks per
level (``num_res_blocks``) or at the lowest resolution (``num_mid_blocks``) than the run's config;
everything else must match. Each network's ``blocks`` is a chain of ResNet blocks cut by the
stride-2 / depth-to-space resamplers; in each segment the source's blocks keep their order and
the extra blocks come last, as the identity (their last convolution zero, as in Fixup / the
zero-initialised residual branches of DiT's adaLN-Zero). The deepened model therefore computes
exactly what the export computed on its first step, and the new blocks learn from there.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from swycc.config import ModelConfig
from swycc.nn.autoencoder_nets import Decoder, Encoder
from swycc.nn.blocks import ResBlock

DEPTH_FIELDS = ("num_res_blocks", "num_mid_blocks")


def deepening_of(source: ModelConfig, target: ModelConfig) -> list[str]:
    """The depth options in which ``target`` deepens ``source`` (e.g. ``encoder.num_res_blocks
    1 -> 2``); [] when equal. ValueError when they differ in anything else, or are shallower."""
    changes, shallower = [], []
    for net in ("encoder", "decoder"):
        for name in DEPTH_FIELDS:
            old, new = getattr(getattr(source, net), name), getattr(getattr(target, net), name)
            if new > old:
                changes.append(f"{net}.{name} {old} -> {new}")
            elif new < old:
                shallower.append(f"model.{net}.{name} {old} -> {new}")
    if shallower:
        raise ValueError(f"can only add blocks to the --init model, not remove them: "
                         f"{', '.join(shallower)}")
    same_depth = dataclasses.replace(target, **{
        net: dataclasses.replace(getattr(target, net), **{
            name: getattr(getattr(source, net), name) for name in DEPTH_FIELDS})
        for net in ("encoder", "decoder")})
    if same_depth != source:
        raise ValueError("the --init model has other networks than this run's besides their "
                         "depth (model.encoder/decoder num_res_blocks, num_mid_blocks); "
                         "fine-tuning keeps the rest of the model config of --init")
    return changes


def _segments(blocks: nn.Module) -> list[list[int]]:
    """Indices of ``blocks`` grouped into runs of ResBlocks; a resampler closes each run and
    forms its own one-element segment."""
    segments: list[list[int]] = [[]]
    for i, block in enumerate(blocks):
        if isinstance(block, ResBlock):
            segments[-1].append(i)
        else:
            segments += [[i], []]
    return segments


def _identity_(block: ResBlock) -> None:
    """A ResBlock whose residual branch outputs zero (needs equal widths: the skip is identity)."""
    if not isinstance(block.skip, nn.Identity):
        raise ValueError("a new block changes width: it cannot start as the identity")
    nn.init.zeros_(block.conv2.weight)
    nn.init.zeros_(block.conv2.bias)


def deepened_state_dict(source: nn.Module, target: nn.Module) -> dict[str, torch.Tensor]:
    """``target``'s state dict carrying ``source``'s weights: equal keys copied; in every
    Encoder/Decoder, each segment's blocks mapped in order, the extra blocks set to the identity
    (in ``target`` itself). Shapes are checked; a mismatch raises ValueError."""
    src_state = source.state_dict()
    renamed: dict[str, str] = {}  # source key -> target key, for moved blocks
    for name, net in target.named_modules():
        if not isinstance(net, (Encoder, Decoder)):
            continue
        src_net = source.get_submodule(name)
        new_segs, old_segs = _segments(net.blocks), _segments(src_net.blocks)
        if len(new_segs) != len(old_segs):
            raise ValueError(f"{name}: the --init network has another number of levels")
        for new, old in zip(new_segs, old_segs):
            if len(new) < len(old):
                raise ValueError(f"{name}: the --init network has more blocks at one level")
            for k, i in enumerate(new):
                if k >= len(old):
                    _identity_(net.blocks[i])
                    continue
                prefix_old, prefix_new = f"{name}.blocks.{old[k]}.", f"{name}.blocks.{i}."
                for key in src_state:
                    if key.startswith(prefix_old):
                        renamed[key] = prefix_new + key[len(prefix_old):]
    state = target.state_dict()  # with the identity blocks' zeros
    moved = {}
    for key, value in src_state.items():
        dest = renamed.get(key, key)
        if dest not in state or state[dest].shape != value.shape:
            raise ValueError(f"--init tensor {key} has no place of its shape in this model")
        moved[dest] = value
    state.update(moved)
    return state
