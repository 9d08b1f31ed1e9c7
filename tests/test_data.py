import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from swycc.config import DataConfig
from swycc.data import (ImageError, ImageFolderDataset, build_dataset, center_crop_square,
                        load_image, save_image)
from swycc.data.order import ResumableSampler, make_loader
from swycc.data.embedded import HELD_OUT_FRACTION, EmbeddedCropDataset, embedded_photos, train_width


def test_modes_convert_to_rgb(tmp_path):
    a16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(a16).save(tmp_path / "g16.png")  # 16-bit greyscale PNG
    x = load_image(tmp_path / "g16.png")
    assert x.shape == (3, 3, 4)
    want = np.clip(np.round(a16 / 257.0), 0, 255)
    assert np.allclose((x[0].numpy() + 1) * 127.5, want, atol=1e-3)
    Image.fromarray(np.full((2, 2), 200, np.uint8)).save(tmp_path / "g.png")
    assert torch.allclose(load_image(tmp_path / "g.png"), torch.full((3, 2, 2), 200 / 127.5 - 1))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0  # fully transparent red -> white background
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert torch.allclose(load_image(tmp_path / "a.png"), torch.ones(3, 2, 2))
    pal = Image.new("P", (2, 2))
    pal.putpalette([0, 0, 255] + [0] * 765)
    pal.save(tmp_path / "p.png")
    assert torch.allclose(load_image(tmp_path / "p.png")[:, 0, 0], torch.tensor([-1.0, -1.0, 1.0]))


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="nope.png: file not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "x.jpg").write_bytes(b"\x00garbage")
    with pytest.raises(ImageError, match="x.jpg: not a readable image"):
        load_image(tmp_path / "x.jpg")


def test_save_round_trip(tmp_path):
    x = torch.rand(3, 5, 7) * 2 - 1
    save_image(x, tmp_path / "o" / "x.png")
    y = load_image(tmp_path / "o" / "x.png")
    assert (x - y).abs().max() <= 1 / 127.5 + 1e-6
    assert not list((tmp_path / "o").glob(".*tmp"))


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(
                tmp_path / cls / f"{i}.png")
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not an image")
    return tmp_path


def test_folder_labels_skips_corrupt_and_deterministic_crops(tmp_path):
    ds = ImageFolderDataset(_folder(tmp_path), 16, train=True, labels=True, seed=3)
    assert ds.classes == ["cats", "dogs"] and len(ds) == 5
    labels = []
    with pytest.warns(UserWarning, match="broken.jpg"):
        for i in range(len(ds)):
            x, y = ds[(0, i)]
            assert x.shape == (3, 16, 16)
            labels.append(y)
    assert ds.skipped == 1 and sorted(set(labels)) == [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(ds[(2, 1)][0], ds[(2, 1)][0])
        assert not torch.equal(ds[(2, 1)][0], ds[(3, 1)][0])


def test_eval_centre_crop_is_exact():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6).expand(3, 2, 4, 6)[:, 0]
    assert torch.equal(center_crop_square(x, 4), x[:, :, 1:5])
    # a close-up: half the shorter side (2 of 4), centred
    assert torch.equal(center_crop_square(x, 2, 0.5), x[:, 1:3, 2:4])
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="share must lie in"):
            center_crop_square(x, 2, bad)


def test_square_photos_as_close_ups(tmp_path):
    from PIL import Image

    from swycc.metrics.photo import load_square_photos

    framed = torch.zeros(40, 60, 3, dtype=torch.uint8)
    framed[10:30, 20:40] = torch.tensor([200, 50, 100], dtype=torch.uint8)  # centre 20 x 20
    Image.fromarray(framed.numpy()).save(tmp_path / "framed.png")
    # share 0.5 of the 40-pixel shorter side: the 20 x 20 block alone, one colour
    _, block = load_square_photos(tmp_path, 16, 0.5)
    want = torch.tensor([200, 50, 100]) / 127.5 - 1
    torch.testing.assert_close(block[0], want[:, None, None].expand(3, 16, 16), rtol=0, atol=1e-6)
    _, whole = load_square_photos(tmp_path, 16)  # share 1: the largest square, frame included
    assert float(whole[0].amin()) == -1.0


def test_embedded_set_offline_and_heldout_disjoint():
    names = [n for n, _ in embedded_photos()]
    assert len(names) >= 8 and "astronaut" in names
    held = EmbeddedCropDataset(32, "heldout", held_out=16)
    assert len(held) == 16
    a = torch.stack([held[i][0] for i in range(16)])
    b = torch.stack([EmbeddedCropDataset(32, "heldout", held_out=16)[i][0] for i in range(16)])
    assert torch.equal(a, b)
    for k, top, left, side in held.boxes:
        w = held.photos[k].shape[-1]
        assert left >= train_width(w)  # inside the reserved right-most strip
        assert left + side <= w
    assert abs(1 - train_width(1000) / 1000 - HELD_OUT_FRACTION) < 0.01
    train = EmbeddedCropDataset(32, "train", train_crops=10)
    assert len(train) == 10 and train[(0, 3)][0].shape == (3, 32, 32)
    assert torch.equal(train[(1, 3)][0], train[(1, 3)][0])


def test_sampler_resume_and_ranks():
    s = ResumableSampler(10, seed=1)
    full = [k for _, k in zip(range(25), iter(s))]
    s2 = ResumableSampler(10, seed=1)
    s2.advance(7)
    state = s2.state_dict()
    s3 = ResumableSampler(10, seed=1)
    s3.load_state_dict(state)
    assert [k for _, k in zip(range(18), iter(s3))] == full[7:]
    r0 = ResumableSampler(10, seed=1, rank=0, world_size=2)
    r1 = ResumableSampler(10, seed=1, rank=1, world_size=2)
    epoch0 = [i for _, i in full[:10]]
    assert r0.epoch_indices(0) == epoch0[0::2] and r1.epoch_indices(0) == epoch0[1::2]


def test_loader_batches_and_build_dataset(tmp_path):
    ds = build_dataset(DataConfig(path=None, held_out=4, train_crops=8), 16, train=True)
    it = make_loader(ds, 3, ResumableSampler(len(ds), 0))
    x, y = next(it)
    assert x.shape == (3, 3, 16, 16) and y.tolist() == [-1, -1, -1]
    with pytest.raises(ImageError, match="no such image folder"):
        build_dataset(DataConfig(path=str(tmp_path / "missing")), 16, train=True)


def test_crop_sizes_one_side_per_batch_and_resume(tmp_path):
    """data.crop_sizes: every batch has one of the sides, drawn from (seed, epoch, position)
    alone: a resumed run's batches match the uninterrupted run's, sizes and pixels."""
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(
            tmp_path / f"p{i}.png")
    cfg = DataConfig(path=str(tmp_path), crop_scale_min=0.5, crop_sizes=(8, 16, 24))
    ds = build_dataset(cfg, 24, train=True)
    full = make_loader(ds, 2, ResumableSampler(len(ds), 3))
    batches = [next(full)[0] for _ in range(12)]
    assert {b.shape[-1] for b in batches} == {8, 16, 24}  # all three drawn in 12 batches
    assert all(b.shape[-2] == b.shape[-1] and b.shape[0] == 2 for b in batches)
    s = ResumableSampler(len(ds), 3)
    s.advance(2 * 7)  # the loop consumed 7 batches (across an epoch boundary: 5 per epoch)
    resumed = make_loader(ds, 2, s)
    for b in batches[7:]:
        assert torch.equal(next(resumed)[0], b)
    # the held-out dataset keeps one size; the embedded set refuses several
    assert build_dataset(cfg, 24, train=False)[0][0].shape[-1] == 24
    with pytest.raises(ValueError, match="crop_sizes needs an image folder"):
        build_dataset(DataConfig(crop_sizes=(8, 16)), 16, train=True)


def test_crop_sizes_checked():
    from swycc.config import ConfigError

    with pytest.raises(ConfigError, match="crop_sizes"):
        DataConfig(path="x", crop_sizes=(8, 12))
    with pytest.raises(ConfigError, match="not both"):
        DataConfig(path="x", crop_sizes=(8, 16), crop_size=16)


def test_quarter_turns_turn_the_same_crop(tmp_path):
    """data.quarter_turns: a turned crop is the unturned run's crop turned by 1, 2 or 3 quarter
    turns (all three drawn), at the share asked for; off, the crops are the old ones."""
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 52 + i, 3), dtype=np.uint8)).save(
            tmp_path / f"p{i}.png")
    plain = build_dataset(DataConfig(path=str(tmp_path), crop_scale_min=0.5), 16, train=True)
    turned = build_dataset(DataConfig(path=str(tmp_path), crop_scale_min=0.5, quarter_turns=1.0),
                           16, train=True)
    half = build_dataset(DataConfig(path=str(tmp_path), crop_scale_min=0.5, quarter_turns=0.5),
                         16, train=True)
    seen, kept = set(), 0
    for epoch in range(20):
        for i in range(3):
            x0, x1 = plain[(epoch, i)][0], turned[(epoch, i)][0]
            turns = [k for k in (1, 2, 3) if torch.equal(x1, torch.rot90(x0, k, dims=(-2, -1)))]
            assert len(turns) == 1
            seen.add(turns[0])
            kept += torch.equal(half[(epoch, i)][0], x0)
    assert seen == {1, 2, 3}
    assert 15 <= kept <= 45  # about half of 60 crops left as they were
    from swycc.config import ConfigError

    with pytest.raises(ConfigError, match="quarter_turns"):
        DataConfig(path="x", quarter_turns=1.5)
    with pytest.raises(ValueError, match="quarter_turns needs an image folder"):
        build_dataset(DataConfig(quarter_turns=0.5), 16, train=True)


def test_hue_rotation_turns_colours_about_the_grey_axis(tmp_path):
    """Rodrigues' rotation about (1, 1, 1): greys stay, a third of a turn cycles R -> G -> B, the
    channel mean of every pixel is kept (no clamping inside the gamut); data.hue_rotation=1 gives
    every folder crop such a rotation of the plain crop."""
    from swycc.data.images import hue_rotation

    g = torch.Generator().manual_seed(0)
    grey = torch.rand(1, 4, 4, generator=g).expand(3, 4, 4) * 2 - 1
    assert torch.allclose(hue_rotation(grey, 1.234), grey, atol=1e-6)
    x = torch.rand(3, 4, 4, generator=g) * 2 - 1
    assert torch.allclose(hue_rotation(x, 2 * math.pi / 3), x[[2, 0, 1]], atol=1e-6)
    soft = x * 0.3  # well inside the gamut: nothing clamps
    y = hue_rotation(soft, 0.7)
    assert torch.allclose(y.mean(0), soft.mean(0), atol=1e-6)
    assert not torch.allclose(y, soft, atol=1e-3)
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(60, 190, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    plain = build_dataset(DataConfig(path=str(tmp_path), crop_scale_min=0.5), 16, train=True)
    hued = build_dataset(DataConfig(path=str(tmp_path), crop_scale_min=0.5, hue_rotation=1.0),
                         16, train=True)
    for epoch in range(4):
        x0, x1 = plain[(epoch, 0)][0], hued[(epoch, 0)][0]
        assert not torch.allclose(x0, x1, atol=1e-3)
        assert torch.allclose(x0.mean(0), x1.mean(0), atol=1e-5)  # same crop, colours turned
