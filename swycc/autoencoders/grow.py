"""Growing a trained autoencoder: fine-tune (``swycc train --init``) into deeper or wider networks.

A run may start from an export whose encoder E or decoder D_Initial is smaller than the run's
config in two ways; everything else must match.

- **Depth**: fewer ResNet blocks per level (``num_res_blocks``) or at the lowest resolution
  (``num_mid_blocks``). Each network's ``blocks`` is a chain of ResNet blocks cut by the stride-2 /
  depth-to-space resamplers; in each segment the source's blocks keep their order and the extra
  blocks come last, as the identity (their last convolution zero, as in Fixup / the
  zero-initialised residual branches of DiT's adaLN-Zero).
- **Width**: more channels at some levels (``base_channels`` x ``channel_mults``), each level at
  least as wide as the source's, with the same GroupNorm group size at every level (so
  ``num_groups`` grows with the width: 32 -> 48 channels at 4 per group is 8 -> 12 groups). Each
  layer's source channels come first; a weight from a new input channel to a source output
  channel is zero, weights into new output channels keep their fresh initialisation (Net2Net's
  function-preserving widening, Chen et al. 2016, with zeros in place of its copies). The new
  channels then fill whole GroupNorm groups of their own, so the source channels' statistics are
  unchanged.

The grown model therefore computes exactly what the export computed on its first step, and the
new blocks and channels learn from there.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from swycc.config import ModelConfig
from swycc.nn.autoencoder_nets import Decoder, Encoder
from swycc.nn.blocks import ResBlock, groups_for

DEPTH_FIELDS = ("num_res_blocks", "num_mid_blocks")
WIDTH_FIELDS = ("base_channels", "channel_mults", "num_groups")
NETS = ("encoder", "decoder")


def _widths(net_cfg) -> list[int]:
    return [net_cfg.base_channels * m for m in net_cfg.channel_mults]


def _width_changes(net: str, old, new) -> list[str]:
    """The widening of one network's levels, e.g. ``decoder widths [32, 64] -> [48, 64]``;
    ValueError when a level narrows, the level count differs or a group size changes."""
    w_old, w_new = _widths(old), _widths(new)
    if w_old == w_new and old.num_groups == new.num_groups:
        return []
    if len(w_old) != len(w_new):
        raise ValueError(f"model.{net}.channel_mults: {len(w_new)} levels against the --init "
                         f"model's {len(w_old)}; growing keeps the number of levels")
    for level in range(len(w_old) - 1):  # a block between levels: 1x1 skip iff widths differ
        if (w_old[level] == w_old[level + 1]) != (w_new[level] == w_new[level + 1]):
            raise ValueError(f"{net} levels {level} and {level + 1}: {w_old[level:level + 2]} -> "
                             f"{w_new[level:level + 2]} changes whether the ResNet block between "
                             f"them has a 1x1 skip; widen equal neighbouring levels together")
    for level, (a, b) in enumerate(zip(w_old, w_new)):
        if b < a:
            raise ValueError(f"can only widen the --init model, not narrow it: {net} level "
                             f"{level} {a} -> {b} channels")
        size_old, size_new = a // groups_for(a, old.num_groups), b // groups_for(b, new.num_groups)
        if size_old != size_new:
            raise ValueError(
                f"{net} level {level} ({a} -> {b} channels): GroupNorm groups of {size_new} "
                f"channels against the --init model's {size_old}; set model.{net}.num_groups so "
                f"that the group size stays (e.g. {b // size_old if b % size_old == 0 else '?'})")
    return [f"{net} widths {w_old} -> {w_new}"]


def growth_of(source: ModelConfig, target: ModelConfig) -> list[str]:
    """How ``target`` deepens or widens ``source`` (e.g. ``encoder.num_res_blocks 1 -> 2``,
    ``decoder widths [32, 64] -> [48, 64]``); [] when equal. ValueError when they differ in
    anything else, or are smaller."""
    changes, shallower = [], []
    for net in NETS:
        for name in DEPTH_FIELDS:
            old, new = getattr(getattr(source, net), name), getattr(getattr(target, net), name)
            if new > old:
                changes.append(f"{net}.{name} {old} -> {new}")
            elif new < old:
                shallower.append(f"model.{net}.{name} {old} -> {new}")
    if shallower:
        raise ValueError(f"can only add blocks to the --init model, not remove them: "
                         f"{', '.join(shallower)}")
    for net in NETS:
        changes += _width_changes(net, getattr(source, net), getattr(target, net))
    same_size = dataclasses.replace(target, **{
        net: dataclasses.replace(getattr(target, net), **{
            name: getattr(getattr(source, net), name) for name in DEPTH_FIELDS + WIDTH_FIELDS})
        for net in NETS})
    if same_size != source:
        raise ValueError("the --init model has other networks than this run's besides their "
                         "depth and width (model.encoder/decoder num_res_blocks, num_mid_blocks, "
                         "base_channels, channel_mults, num_groups); fine-tuning keeps the rest "
                         "of the model config of --init")
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


def _block_renames(source: nn.Module, target: nn.Module) -> dict[str, str]:
    """Source key -> target key for the ResBlocks that deepening moves; sets the extra blocks
    to the identity (in ``target`` itself)."""
    src_keys = list(source.state_dict())
    renamed: dict[str, str] = {}
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
                for key in src_keys:
                    if key.startswith(prefix_old):
                        renamed[key] = prefix_new + key[len(prefix_old):]
    return renamed


def _embed(key: str, value: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """``value`` in the leading corner of a copy of ``fresh`` (the target's initialisation);
    a weight (output, input, ...) gets zeros from the new inputs into the source outputs."""
    if value.dim() != fresh.dim() or any(a > b for a, b in zip(value.shape, fresh.shape)):
        raise ValueError(f"--init tensor {key} {tuple(value.shape)} has no place in this model's "
                         f"{tuple(fresh.shape)}")
    out = fresh.clone()
    if value.dim() >= 2:
        out[: value.shape[0]] = 0  # the source outputs: nothing from the new inputs
    out[tuple(slice(0, n) for n in value.shape)] = value
    return out


def grown_state_dict(source: nn.Module, target: nn.Module) -> dict[str, torch.Tensor]:
    """``target``'s state dict carrying ``source``'s weights: equal keys copied (or embedded when
    widened); in every Encoder/Decoder, each segment's blocks mapped in order, the extra blocks
    set to the identity (in ``target`` itself). A tensor with no place raises ValueError."""
    renamed = _block_renames(source, target)
    state = target.state_dict()  # with the identity blocks' zeros and the fresh new channels
    moved = {}
    for key, value in source.state_dict().items():
        dest = renamed.get(key, key)
        if dest not in state:
            raise ValueError(f"--init tensor {key} has no place in this model")
        moved[dest] = value if state[dest].shape == value.shape else _embed(key, value, state[dest])
    state.update(moved)
    return state
