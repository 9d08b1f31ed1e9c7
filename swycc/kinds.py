"""The registry of autoencoder kinds: the one place a new kind is added.

A kind declares its model class (networks, encode/decode), how to build its training objective,
whether its decoder samples (steps, guidance and seeds matter), the label of its deterministic
reconstruction if it has one, and its config defaults. The CLI's choices, ``info``, ``eval``,
the demo, the training loop's reports and ``Autoencoder.from_pretrained`` ask this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from swycc.autoencoder import Autoencoder
from swycc.autoencoders import DGAE, SWYCC, DistilledSWYCC, GANAutoencoder
from swycc.config import Config


@dataclass(frozen=True)
class AutoencoderKind:
    name: str
    summary: str  # one line for --help and `swycc info`
    model_class: type[Autoencoder]
    # (config, model, device) -> an objective for swycc.train.loop (built lazily: imports train/)
    build_objective: Callable[[Config, Any, torch.device], Any]
    samples: bool  # the decoder samples: steps, guidance, samples and seeds apply
    initial_label: str | None  # grid/table label of decode_initial(); None: the kind has none
    configure: Callable[[Config], Config]  # this kind's defaults, applied by --method


KINDS: dict[str, AutoencoderKind] = {}


def register_kind(kind: AutoencoderKind) -> AutoencoderKind:
    if kind.name in KINDS:
        raise ValueError(f"autoencoder kind {kind.name!r} is already registered")
    if kind.model_class.kind != kind.name:
        raise ValueError(f"{kind.model_class.__name__}.kind is {kind.model_class.kind!r}, "
                         f"not {kind.name!r}")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> AutoencoderKind:
    if name not in KINDS:
        raise ValueError(f"unknown autoencoder kind (model.method) {name!r}; choose one of "
                         f"{', '.join(KINDS)}")
    return KINDS[name]


def kind_of(model: Autoencoder) -> AutoencoderKind:
    return get_kind(model.kind)


def _decoder(cfg: Config, **changes) -> Config:
    return replace(cfg, model=replace(cfg.model, decoder=replace(cfg.model.decoder, **changes)))


def _swycc_objective(cfg, model, device):
    from swycc.train.objectives import SWYCCObjective

    return SWYCCObjective(cfg, model, device)


def _gan_objective(cfg, model, device):
    from swycc.train.gan_objective import GANObjective

    return GANObjective(cfg, model, device)


def _dgae_objective(cfg, model, device):
    from swycc.train.dgae_objective import DGAEObjective

    return DGAEObjective(cfg, model, device)


DGAE_GUIDE_CHANNELS = 8  # features the latent guide hands to the diffusion decoder

register_kind(AutoencoderKind(
    "swycc", "diffusion decoder D_Refine conditioned on D_Initial(z) (the paper)", SWYCC,
    _swycc_objective, samples=True, initial_label="D_Initial",
    configure=lambda c: _decoder(c, adaptive_norm=False, out_channels=3)))
register_kind(AutoencoderKind(
    "gan", "deterministic decoder trained with adversarial + perceptual + MSE losses "
    "(the paper's baseline)", GANAutoencoder, _gan_objective, samples=False,
    initial_label="GAN decoder",
    configure=lambda c: _decoder(c, adaptive_norm=True, out_channels=3)))
def _dgae_defaults(cfg: Config) -> Config:
    cfg = _decoder(cfg, adaptive_norm=False, out_channels=DGAE_GUIDE_CHANNELS)
    return replace(cfg, model=replace(cfg.model, unet=replace(cfg.model.unet,
                                                              predict_residual=False)))


register_kind(AutoencoderKind(
    "dgae", "KL-regularised latent, diffusion decoder guided by the latent's features (DGAE)",
    DGAE, _dgae_objective, samples=True, initial_label=None, configure=_dgae_defaults))


def _distilled_objective(cfg, model, device):
    raise ValueError("a swycc-distilled decoder is trained from a SWYCC teacher, not from "
                     "scratch: train a distilled decoder with `swycc distill --teacher EXPORT "
                     "--out RUN`")


register_kind(AutoencoderKind(
    "swycc-distilled", "SWYCC with D_Refine distilled to few steps, guidance folded in "
    "(`swycc distill`)", DistilledSWYCC, _distilled_objective, samples=True,
    initial_label="D_Initial", configure=lambda c: _decoder(c, adaptive_norm=False,
                                                             out_channels=3)))
