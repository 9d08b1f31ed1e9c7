"""Storing the per-channel latent statistics into an export (``swycc latent-stats`` and the end of
``swycc train``): measured over the training data (``swycc.autoencoders.latent_stats``), written into
the safetensors metadata (weights unchanged), and the model card rewritten to show them."""

from __future__ import annotations

import os

from swycc.autoencoders.base import Autoencoder, weights_file
from swycc.autoencoders.latent_stats import (DEFAULT_IMAGES, LatentStats, training_data_stats,
                                             write_stats)
from swycc.autoencoders.model_card import card_text, write_model_card


def store_latent_stats(export: str | os.PathLike, max_images: int = DEFAULT_IMAGES,
                       data_dir: str | None = None, device: str = "cpu",
                       progress: bool = False) -> LatentStats:
    """Measure an export's statistics (``training_data_stats``) and store them in it; its
    model card (README.md beside a ``model.safetensors``) is rewritten to show them."""
    file = weights_file(export)
    model = Autoencoder.from_pretrained(file).to(device)
    model.latent_stats = training_data_stats(model, max_images, data_dir, progress)
    card = card_text(model) if file.name == "model.safetensors" else None
    write_stats(file, model.latent_stats)
    if card is not None:
        write_model_card(file.parent, card)
    return model.latent_stats
