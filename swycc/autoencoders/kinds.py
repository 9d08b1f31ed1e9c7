"""The registry of autoencoder kinds: the one place a new kind's recipe and defaults are added.

A kind's model class (networks, encode/decode, a one-line summary, whether it samples, the label of
its deterministic reconstruction) registers itself by subclassing ``Autoencoder``. Here a kind
adds its training objective (a ``module:Class`` path under ``swycc.train``, imported when a
run starts, so this module never imports the training package) and its config defaults. The
CLI's choices, ``info``, ``eval``, the demo, the training loop's reports and the places where a
config enters (``check_method``) ask this registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from swycc.autoencoders.base import Autoencoder
from swycc.autoencoders.dgae import DGAE
from swycc.autoencoders.distilled import DistilledSWYCC
from swycc.autoencoders.gan import GANAutoencoder
from swycc.autoencoders.swycc import SWYCC
from swycc.config import Config
from swycc.config_types import ConfigError


@dataclass(frozen=True)
class AutoencoderKind:
    name: str
    model_class: type[Autoencoder]
    # "module:Class" of the objective for swycc.train.loop, built as Class(config, model, device);
    # None: the kind is not trained from scratch (``not_trainable`` says how it is made)
    objective: str | None
    configure: Callable[[Config], Config]  # this kind's defaults, applied by --method
    not_trainable: str = ""

    @property
    def summary(self) -> str:  # one line for --help, `swycc info` and model cards
        return self.model_class.summary

    @property
    def samples(self) -> bool:
        return self.model_class.samples

    @property
    def initial_label(self) -> str | None:
        return self.model_class.initial_label

    def build_objective(self, cfg: Config, model: Any, device: torch.device) -> Any:
        if self.objective is None:
            raise ValueError(self.not_trainable)
        module, _, name = self.objective.partition(":")
        return getattr(importlib.import_module(module), name)(cfg, model, device)


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


def check_method(cfg: Config) -> Config:
    """``cfg`` when its model.method names a registered kind; ConfigError naming it otherwise."""
    if cfg.model.method not in KINDS:
        raise ConfigError("model.method", f"must be one of {', '.join(KINDS)}; "
                                          f"got {cfg.model.method!r}")
    return cfg


def with_method(cfg: Config, method: str) -> Config:
    """Switch to another autoencoder kind with that kind's own defaults (e.g. the GAN decoder's
    adaptive GroupNorm, DGAE's feature guide)."""
    return get_kind(method).configure(replace(cfg, model=replace(cfg.model, method=method)))


def _decoder(cfg: Config, **changes) -> Config:
    return replace(cfg, model=replace(cfg.model, decoder=replace(cfg.model.decoder, **changes)))


DGAE_GUIDE_CHANNELS = 8  # features the latent guide hands to the diffusion decoder


def _dgae_defaults(cfg: Config) -> Config:
    cfg = _decoder(cfg, adaptive_norm=False, out_channels=DGAE_GUIDE_CHANNELS)
    return replace(cfg, model=replace(cfg.model, unet=replace(cfg.model.unet,
                                                              predict_residual=False)))


register_kind(AutoencoderKind(
    "swycc", SWYCC, "swycc.train.objectives:SWYCCObjective",
    configure=lambda c: _decoder(c, adaptive_norm=False, out_channels=3)))
register_kind(AutoencoderKind(
    "gan", GANAutoencoder, "swycc.train.gan_objective:GANObjective",
    configure=lambda c: _decoder(c, adaptive_norm=True, out_channels=3)))
register_kind(AutoencoderKind(
    "dgae", DGAE, "swycc.train.dgae_objective:DGAEObjective", configure=_dgae_defaults))
register_kind(AutoencoderKind(
    "swycc-distilled", DistilledSWYCC, None,
    configure=lambda c: _decoder(c, adaptive_norm=False, out_channels=3),
    not_trainable="a swycc-distilled decoder is trained from a SWYCC teacher, not from "
                  "scratch: train a distilled decoder with `swycc distill --teacher EXPORT "
                  "--out RUN`"))
