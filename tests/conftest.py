import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)  # tiny tests gain nothing from threads; shared cores lose a lot


@pytest.fixture
def tiny_cfg():
    """The tiny preset at test width, no perceptual net, small batch: seconds per step."""
    from swycc.config import get_preset, override, shrink

    cfg = shrink(get_preset("tiny"))
    for key, value in [("loss.perceptual_weight", 0.0), ("train.batch_size", 4),
                       ("train.warmup_steps", 2), ("train.total_steps", 1000),
                       ("train.log_every", 1), ("train.checkpoint_every", 1000),
                       ("train.sample_every", 0), ("data.train_crops", 64),
                       ("data.held_out", 4)]:
        cfg = override(cfg, key, value)
    return cfg


@pytest.fixture
def random_tiny_model():
    """Factory: SWYCC on the tiny preset at test width, config overrides as keyword arguments
    ({"model.method": "gan"}), every weight matrix ~ N(0, 0.05) (so the U-Net's zero-initialised
    output layers give non-zero output), in eval mode."""
    from swycc.autoencoders.base import Autoencoder
    from swycc.config import get_preset, override, shrink

    def make(seed: int = 0, **overrides):
        cfg = shrink(get_preset("tiny"))
        for key, value in overrides.items():
            cfg = override(cfg, key, value)
        torch.manual_seed(seed)
        model = Autoencoder.from_config(cfg)
        for p in model.parameters():
            if p.ndim > 1:
                torch.nn.init.normal_(p, std=0.05)
        return model.eval()

    return make


def random_images_and_tiny_export(root, sizes=((24, 36), (33, 20))):
    """Random 8-bit PNGs of ``sizes`` (H, W) in ``root`` and a tiny random-weight export at
    ``root/model``: the paths of the images."""
    import numpy as np
    from PIL import Image

    from swycc.autoencoders.base import Autoencoder
    from swycc.config import get_preset, shrink

    rng = np.random.default_rng(0)
    imgs = []
    for i, (h, w) in enumerate(sizes):
        p = root / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
        imgs.append(p)
    torch.manual_seed(0)
    Autoencoder.from_config(shrink(get_preset("tiny"))).save_pretrained(root / "model")
    return imgs
