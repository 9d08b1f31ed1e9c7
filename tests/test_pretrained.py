"""The shipped models: the f8c4 candidate and the 2-channel default load, by path and by
name; they are the variants the README describes (x-prediction and residual), trained (not
random), and the CLI and the demo use the default when no --checkpoint is given."""

import json

import torch
from swycc.autoencoders import SWYCC
from swycc.cli import main
from swycc.data.embedded import EmbeddedCropDataset
from swycc.metrics.maths import psnr, quantize_uint8
import pytest
from swycc.autoencoders.base import Autoencoder
from swycc.autoencoders.pretrained import (DEFAULT_NAME, PRETRAINED_DIR, SHIPPED_NAMES,
                                           default_checkpoint)


@pytest.mark.parametrize("name, channels, residual", [("small-swycc-f8c4", 4, False),
                                                      ("small-swycc-f8c2", 2, True)])
def test_shipped_models_load_and_are_trained(name, channels, residual):
    path = PRETRAINED_DIR / name / "model.safetensors"
    assert path.stat().st_size < 20e6
    model = SWYCC.from_pretrained(path)
    cfg = model.config
    assert cfg.model.method == "swycc" and cfg.model.image_size == 64
    assert cfg.model.latent_channels == channels and cfg.model.encoder.downsample == 8
    assert cfg.model.unet.predict_residual == residual  # the README's description of each
    assert model.latent_stats is not None and len(model.latent_stats.mean) == channels
    held = EmbeddedCropDataset(64, split="heldout", held_out=4)
    x = torch.stack([held[i][0] for i in range(4)])
    init = model.reconstruct_initial(x)
    # README: 26.4 dB (f8c2) over the 16 held-back crops; a random decoder is near 10 dB
    assert float(psnr(quantize_uint8(init), quantize_uint8(x)).mean()) > 22


def test_default_and_shipped_names_resolve(tmp_path, monkeypatch):
    assert DEFAULT_NAME in SHIPPED_NAMES
    assert default_checkpoint() == PRETRAINED_DIR / DEFAULT_NAME / "model.safetensors"
    monkeypatch.chdir(tmp_path)
    assert Autoencoder.from_pretrained("small-swycc-f8c2").config.model.latent_channels == 2
    # a local directory of the same name wins over the shipped model
    from swycc.config import get_preset, shrink

    tiny = Autoencoder.from_config(shrink(get_preset("tiny")))
    tiny.save_pretrained(tmp_path / "small-swycc-f8c2")
    local = Autoencoder.from_pretrained("small-swycc-f8c2")
    assert local.config.model.latent_channels == shrink(get_preset("tiny")).model.latent_channels
    assert sum(p.numel() for p in local.parameters()) < 1e6


def test_reconstruct_defaults_to_shipped_model(tmp_path, capsys):
    from PIL import Image

    img = tmp_path / "in.png"
    Image.fromarray((torch.rand(20, 28, 3) * 255).byte().numpy()).save(img)
    out = tmp_path / "rec"
    code = main(["reconstruct", str(img), "--out", str(out), "--steps", "2", "--samples", "2"])
    assert code == 0, capsys.readouterr().err
    assert len(list(out.iterdir())) >= 2
    with Image.open(next(out.glob("*.png"))) as im:
        assert im.size == (28, 20)


def test_demo_uses_shipped_model(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "2", "--samples", "2",
                 "--photo-size", "64", "--no-progress"]) == 0
    stats = json.loads((out / "metrics.json").read_text())
    assert stats["checkpoint"].endswith("model.safetensors") and stats["images"] == 16
    assert (out / "grid.png").exists() and (out / "variance.png").exists()
    assert (out / "photos.png").exists() and stats["whole_photos"]["size"] == 64
