import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from swycc.data.images import center_crop_square, load_image
from swycc.generation.latents import (INDEX, LatentDataset, LatentDatasetError, encode_dataset,
                                  finalize, shard_name)

IDENTITY = {"config": '{"preset": "test"}', "weights_sha256": "ab" * 32}
SIZE = 16


class PoolEncoder:
    """A tiny deterministic 'autoencoder': 4x average pooling + a fixed channel mix, C = 2."""

    def __init__(self):
        self.images = 0
        self.mix = torch.tensor([[1.0, -0.5, 0.25], [0.3, 0.6, -0.9]])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        z = F.avg_pool2d(x, 4)  # (B, 3, 4, 4)
        return torch.einsum("oc,bchw->bohw", self.mix, z) + 0.5


@pytest.fixture
def folder(tmp_path):
    """3 classes x 3 images of assorted sizes (non-square included)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c, name in enumerate(["cat", "ant", "bee"]):
        (root / name).mkdir(parents=True)
        for i in range(3):
            h, w = 16 + 4 * i, 16 + 8 * c
            a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(a).save(root / name / f"{name}{i}.png")
    return root


def expected_latent(root, rel: str, flipped: bool) -> torch.Tensor:
    x = center_crop_square(load_image(root / rel), SIZE)
    return PoolEncoder()((x.flip(-1) if flipped else x)[None])[0]


def all_raw(ds: LatentDataset) -> torch.Tensor:
    return torch.stack([ds[i][0] for i in range(len(ds))])


def test_round_trip_labels_stats_and_normalisation(folder, tmp_path):
    enc, out = PoolEncoder(), tmp_path / "latents"
    summary = encode_dataset(enc, IDENTITY, folder, out, SIZE, flip=True, shard_size=4,
                             batch_size=3, progress=False)
    assert summary.shards_written == 5 and summary.index["num_latents"] == 18
    raw = LatentDataset(out, raw=True)
    assert len(raw) == 18 and enc.images == 18
    assert raw.class_names == ["ant", "bee", "cat"] and raw.num_classes == 3
    assert raw.latent_shape == (2, 4, 4) and raw.identity == IDENTITY
    seen = set()
    for i in range(len(raw)):
        z, label = raw[i]
        rel, flipped = raw.source(i)
        seen.add((rel, flipped))
        assert label == raw.class_names.index(rel.split("/")[0])
        assert torch.allclose(z, expected_latent(folder, rel, flipped), atol=1e-6)
    assert len(seen) == 18
    z = all_raw(raw)
    assert torch.allclose(raw.mean, z.transpose(0, 1).flatten(1).mean(1), atol=1e-6)
    assert torch.allclose(raw.std, z.transpose(0, 1).flatten(1).std(1), atol=1e-6)
    norm = all_raw(LatentDataset(out))
    assert torch.allclose(norm.transpose(0, 1).flatten(1).mean(1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(norm.transpose(0, 1).flatten(1).std(1), torch.ones(2), atol=1e-5)
    assert torch.allclose(raw.denormalize(norm), z, atol=1e-5)
    # (epoch, index) keys as the resumable sampler yields them; picklable for workers
    clone = pickle.loads(pickle.dumps(LatentDataset(out)))
    assert torch.equal(clone[(3, 5)][0], norm[5])


def test_resume_skips_finished_shards_and_redoes_broken_ones(folder, tmp_path):
    out = tmp_path / "latents"
    encode_dataset(PoolEncoder(), IDENTITY, folder, out, SIZE, shard_size=4, progress=False)
    before = all_raw(LatentDataset(out, raw=True))
    again = PoolEncoder()
    s = encode_dataset(again, IDENTITY, folder, out, SIZE, shard_size=4, progress=False)
    assert again.images == 0 and (s.shards_written, s.shards_resumed) == (0, 3)
    # a crash mid-shard leaves a temporary file; a truncated shard is unreadable: both redone
    (out / shard_name(1, 0, 1)).rename(out / f".{shard_name(1, 0, 1)}.tmp")
    data = (out / shard_name(1, 0, 2)).read_bytes()
    (out / shard_name(1, 0, 2)).write_bytes(data[: len(data) // 2])
    (out / INDEX).unlink()
    with pytest.raises(LatentDatasetError, match="missing or unfinished"):
        finalize(out)
    third = PoolEncoder()
    s = encode_dataset(third, IDENTITY, folder, out, SIZE, shard_size=4, progress=False)
    assert third.images == 4 + 1 and (s.shards_written, s.shards_resumed) == (2, 1)
    assert torch.equal(all_raw(LatentDataset(out, raw=True)), before)


def test_corrupt_image_is_skipped_and_counted(folder, tmp_path):
    (folder / "bee" / "bee1.png").write_bytes(b"not a png at all")
    out = tmp_path / "latents"
    with pytest.warns(UserWarning, match="bee1.png"):
        s = encode_dataset(PoolEncoder(), IDENTITY, folder, out, SIZE, shard_size=2,
                           batch_size=2, progress=False)
    assert s.images_skipped == 1
    ds = LatentDataset(out)
    assert len(ds) == 8 and ds.index["num_skipped"] == 1
    assert ds.index["skipped_files"] == ["bee/bee1.png"]
    assert "bee/bee1.png" not in {ds.source(i)[0] for i in range(len(ds))}


def test_two_ranks_cover_every_image_once(folder, tmp_path):
    out, encs = tmp_path / "latents", [PoolEncoder(), PoolEncoder()]
    s0 = encode_dataset(encs[0], IDENTITY, folder, out, SIZE, shard_size=2, rank=0,
                        world_size=2, progress=False)
    assert s0.index is None
    with pytest.raises(LatentDatasetError, match="missing or unfinished"):
        finalize(out)  # rank 1 has not run yet
    encode_dataset(encs[1], IDENTITY, folder, out, SIZE, shard_size=2, rank=1, world_size=2,
                   progress=False)
    assert [e.images for e in encs] == [5, 4]
    index = finalize(out)
    ds = LatentDataset(out, raw=True)
    sources = sorted(ds.source(i)[0] for i in range(len(ds)))
    assert index["num_latents"] == 9 and len(set(sources)) == 9
    single = tmp_path / "single"
    encode_dataset(PoolEncoder(), IDENTITY, folder, single, SIZE, progress=False)
    one = LatentDataset(single, raw=True)
    assert sources == sorted(one.source(i)[0] for i in range(len(one)))
    assert torch.allclose(ds.mean, one.mean, atol=1e-6)
    assert torch.allclose(ds.std, one.std, atol=1e-6)


def test_bad_input_names_the_problem_and_writes_nothing(folder, tmp_path):
    out = tmp_path / "latents"
    args = dict(out_dir=out, image_size=SIZE, progress=False)
    with pytest.raises(LatentDatasetError, match="no such image folder"):
        encode_dataset(PoolEncoder(), IDENTITY, tmp_path / "nope", **args)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    with pytest.raises(LatentDatasetError, match="no class sub-folders"):
        encode_dataset(PoolEncoder(), IDENTITY, flat, **args)
    (flat / "empty").mkdir()
    with pytest.raises(LatentDatasetError, match="outside the class sub-folders"):
        encode_dataset(PoolEncoder(), IDENTITY, flat, **args)
    (flat / "a.png").unlink()
    with pytest.raises(LatentDatasetError, match="no images in class folder"):
        encode_dataset(PoolEncoder(), IDENTITY, flat, **args)
    assert not out.exists()
    with pytest.raises(LatentDatasetError, match="no index.json"):
        LatentDataset(out)
    encode_dataset(PoolEncoder(), IDENTITY, folder, **args)
    listing = sorted(p.name for p in out.iterdir())
    other = {**IDENTITY, "weights_sha256": "cd" * 32}
    with pytest.raises(LatentDatasetError, match="weights_sha256"):
        encode_dataset(PoolEncoder(), other, folder, **args)
    with pytest.raises(LatentDatasetError, match="world_size"):
        encode_dataset(PoolEncoder(), IDENTITY, folder, **{**args, "world_size": 2})
    assert sorted(p.name for p in out.iterdir()) == listing
