"""Any swycc export as a diffusers VAE, in the manner of diffusers' ``ConsistencyDecoderVAE``.

    from swycc.integrations.diffusers import AutoencoderSWYCC

    vae = AutoencoderSWYCC.from_swycc("runs/a/export")          # a swycc export, or "org/name"
    vae.save_pretrained("vae/")                                  # diffusers' folder layout
    vae = AutoencoderSWYCC.from_pretrained("vae/", torch_dtype=torch.bfloat16)

    posterior = vae.encode(x).latent_dist                        # x: (N, 3, H, W) in [-1, 1]
    latents = (posterior.sample(generator) - vae.config.shift_factor) * vae.config.scaling_factor
    x_hat = vae.decode(latents / vae.config.scaling_factor + vae.config.shift_factor,
                       generator=generator, num_inference_steps=20, guidance_scale=0.5).sample

``latent_dist`` is a ``DiagonalGaussianDistribution``: a point mass at z for the deterministic
encoders (SWYCC, GAN: ``sample() == mode()``, KL 0), q(z|x) = N(mu, diag exp(logvar)) for DGAE.
``decode`` samples x ~ p(x|z) with the swycc decoder (DDIM, ``num_inference_steps`` and
classifier-free guidance ``guidance_scale``; defaults: the export's) and returns (N, 3, H, W) in
[-1, 1] in the model's dtype. ``config.scaling_factor`` / ``shift_factor`` (whole tensor) and
``latents_mean`` / ``latents_std`` (per channel) come from the export's latent statistics
(``swycc.autoencoders.latent_stats``); without them they are 1 / 0 / None and a warning says so.
``enable_tiling()`` decodes in overlapping tiles with one global sampler
(``swycc.autoencoders.tiling``);
``enable_slicing()`` runs one image of the batch at a time. Weights are the swycc model's under
``model.``; ``config.swycc_config`` is its swycc config.
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import (AutoencoderMixin, DecoderOutput,
                                               DiagonalGaussianDistribution)
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin

from swycc.autoencoders.base import Autoencoder
from swycc.config import Config
from swycc.autoencoders.latent_stats import LatentStats
from swycc.autoencoders.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, tiled_encode


class AutoencoderSWYCC(ModelMixin, AutoencoderMixin, ConfigMixin):
    """A swycc autoencoder (any kind) behind diffusers' VAE interface."""

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(self, swycc_config: dict | None = None, scaling_factor: float = 1.0,
                 shift_factor: float = 0.0, latents_mean: list[float] | None = None,
                 latents_std: list[float] | None = None, latent_stats_images: int = 0,
                 latent_stats_data: str = "", latent_channels: int = 4, sample_size: int = 64,
                 block_out_channels: tuple[int, ...] = (1, 1, 1, 1),
                 force_upcast: bool = False):
        super().__init__()
        cfg = Config.from_dict(swycc_config) if swycc_config is not None else None
        if cfg is None:
            raise ValueError("AutoencoderSWYCC needs swycc_config: build it with "
                             "AutoencoderSWYCC.from_swycc(export) or from_pretrained(folder)")
        self.model = Autoencoder.from_config(cfg).eval()
        if latents_mean is not None and latents_std is not None:
            self.model.latent_stats = LatentStats(tuple(latents_mean), tuple(latents_std),
                                                  latent_stats_images, latent_stats_data)
        self.use_tiling = False
        self.use_slicing = False
        self.tile_sample_min_size = DEFAULT_TILE  # pixels per tile (swycc.autoencoders.tiling)
        self.tile_overlap = DEFAULT_OVERLAP

    # ---- construction --------------------------------------------------------------------------
    @staticmethod
    def config_for(model: Autoencoder) -> dict:
        """The diffusers config of a swycc model: its swycc config, its latent statistics as
        diffusers' scaling and shift factors and per-channel mean / std, and a
        ``block_out_channels`` whose length gives pipelines the right ``vae_scale_factor``
        (2 ** (len - 1) = the encoder's downsampling)."""
        m = model.config.model
        stats = model.latent_stats
        levels = int(math.log2(m.encoder.downsample))
        cfg = {"swycc_config": model.config.to_dict(), "latent_channels": m.latent_channels,
               "sample_size": m.image_size,
               "block_out_channels": tuple([m.encoder.base_channels] * (levels + 1))}
        if stats is not None:
            cfg.update(scaling_factor=stats.scaling_factor, shift_factor=stats.shift_factor,
                       latents_mean=list(stats.mean), latents_std=list(stats.std),
                       latent_stats_images=stats.images, latent_stats_data=stats.data)
        return cfg

    @classmethod
    def from_autoencoder(cls, model: Autoencoder) -> AutoencoderSWYCC:
        """Wrap a loaded swycc ``Autoencoder``: the VAE holds that very model (its parameters,
        dtype and device)."""
        if model.latent_stats is None:
            warnings.warn("this swycc export records no latent statistics: scaling_factor=1.0, "
                          "shift_factor=0.0; add them with `swycc latent-stats EXPORT`",
                          stacklevel=3)
        vae = cls(**cls.config_for(model))
        vae.model = model.eval()  # shared, not copied: its dtype and device are kept
        return vae

    @classmethod
    def from_swycc(cls, path: str | os.PathLike, revision: str | None = None,
                   torch_dtype: torch.dtype | None = None, **hub_kwargs) -> AutoencoderSWYCC:
        """A swycc export (directory, .safetensors file or Hub id ``org/name``) as a VAE."""
        return cls.from_autoencoder(Autoencoder.from_pretrained(
            path, revision=revision, torch_dtype=torch_dtype, **hub_kwargs))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' ``from_pretrained`` (a folder from ``save_pretrained`` or a Hub repo in
        that layout); a local swycc export (``model.safetensors`` without ``config.json``)
        is read by ``from_swycc``."""
        from pathlib import Path

        p = Path(os.fspath(pretrained_model_name_or_path))
        if p.suffix == ".safetensors" or ((p / "model.safetensors").is_file()
                                          and not (p / "config.json").is_file()):
            return cls.from_swycc(p, torch_dtype=kwargs.get("torch_dtype"))
        if importlib.util.find_spec("accelerate") is None:
            kwargs.setdefault("low_cpu_mem_usage", False)  # what diffusers falls back to
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ---- encode --------------------------------------------------------------------------------
    def _tile(self) -> bool:
        return self.use_tiling  # an explicit choice: never switched on by image size here

    def _moments(self, x: torch.Tensor) -> torch.Tensor:
        """(mean, logvar) stacked on channels for one batch; logvar = 0 stands for a point
        mass (the distribution is built deterministic)."""
        model = self.model
        xp, _ = model._pad(x.float())
        if model.kind != "dgae":
            z = model.encode(xp, tile=self._tile(), tile_size=self.tile_sample_min_size,
                             tile_overlap=self.tile_overlap)
            return torch.cat([z, torch.zeros_like(z)], dim=1)
        with model.precision():
            if self._tile():
                h = tiled_encode(model.encoder, xp, self.tile_sample_min_size, self.tile_overlap,
                                 model.config.model.encoder.downsample)
            else:
                h = model.encoder(xp)
        return h.float()

    def encode(self, x: torch.Tensor, return_dict: bool = True
               ) -> AutoencoderKLOutput | tuple[DiagonalGaussianDistribution]:
        """Images (N, 3, H, W) in [-1, 1] -> ``latent_dist`` over (N, C, ceil(H/s)*s/8, ...)."""
        parts = x.split(1) if self.use_slicing and x.shape[0] > 1 else [x]
        moments = torch.cat([self._moments(p) for p in parts]).to(self.dtype)
        posterior = DiagonalGaussianDistribution(moments, deterministic=self.model.kind != "dgae")
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    # ---- decode --------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, generator: torch.Generator | list | None = None,
               return_dict: bool = True, num_inference_steps: int | None = None,
               guidance_scale: float | None = None) -> DecoderOutput | tuple[torch.Tensor]:
        """Latents (N, C, h, w) (unscaled: divide by ``scaling_factor`` and add
        ``shift_factor`` first) -> images (N, 3, 8h, 8w) in [-1, 1]. A list of N generators
        draws each image's noise from its own."""
        if isinstance(generator, list):
            if len(generator) != z.shape[0]:
                raise ValueError(f"{len(generator)} generators for a batch of {z.shape[0]}")
            rows = [self._decode(z[i:i + 1], g, num_inference_steps, guidance_scale)
                    for i, g in enumerate(generator)]
        elif self.use_slicing and z.shape[0] > 1:
            rows = [self._decode(r, generator, num_inference_steps, guidance_scale)
                    for r in z.split(1)]
        else:
            rows = [self._decode(z, generator, num_inference_steps, guidance_scale)]
        x = torch.cat(rows).to(self.dtype)
        return DecoderOutput(sample=x) if return_dict else (x,)

    def _decode(self, z, generator, steps, guidance) -> torch.Tensor:
        return self.model.decode(z.float(), steps=steps, guidance=guidance, generator=generator,
                                 tile=self._tile(), tile_size=self.tile_sample_min_size,
                                 tile_overlap=self.tile_overlap)

    def forward(self, sample: torch.Tensor, sample_posterior: bool = False,
                return_dict: bool = True, generator: torch.Generator | None = None,
                num_inference_steps: int | None = None,
                guidance_scale: float | None = None) -> DecoderOutput | tuple[torch.Tensor]:
        """Encode and decode: a reconstruction of ``sample`` (cropped back to its size)."""
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        x = self.decode(z, generator, True, num_inference_steps, guidance_scale).sample
        x = x[..., : sample.shape[-2], : sample.shape[-1]]
        return DecoderOutput(sample=x) if return_dict else (x,)

    def to_swycc(self) -> Autoencoder:
        """The swycc model inside (same parameters, latent statistics attached)."""
        return self.model
