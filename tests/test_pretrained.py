"""The shipped model: it loads, it is the residual variant described in the README, it is
trained (not random), and the CLI and the demo use it when no --checkpoint is given."""

import json

import torch
from swycc.autoencoders import SWYCC
from swycc.cli import main
from swycc.data.embedded import EmbeddedCropDataset
from swycc.metrics.maths import psnr, quantize_uint8
from swycc.autoencoders.pretrained import default_checkpoint


def test_shipped_model_loads_and_is_trained():
    path = default_checkpoint()
    assert path.stat().st_size < 20e6
    model = SWYCC.from_pretrained(path)
    cfg = model.config
    assert cfg.model.method == "swycc" and cfg.model.image_size == 64
    assert cfg.model.unet.predict_residual
    held = EmbeddedCropDataset(64, split="heldout", held_out=4)
    x = torch.stack([held[i][0] for i in range(4)])
    init = model.reconstruct_initial(x)
    # README: 26.4 dB over the 16 held-back crops; a random decoder is near 10 dB
    assert float(psnr(quantize_uint8(init), quantize_uint8(x)).mean()) > 22


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
