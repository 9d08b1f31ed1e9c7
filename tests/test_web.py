"""`swycc web` without a browser: the page's work (swycc.web.reconstruction), its handler and
the verb's bad input. The page in headless Chromium: tests/test_web_browser.py."""

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image

from swycc.cli import main
from swycc.data.images import array_to_tensor
from swycc.data.embedded import embedded_photos, train_width
from swycc.io.latents import load_latents
from swycc.io.visual import to_uint8
from swycc.web.app import PageSettings, run_page
from swycc.web.reconstruction import (RunFolders, Tiling, WebInputError, check_settings,
                                      held_back_photo, held_back_photo_names, image_tensor,
                                      reconstruct, variance_image, write_downloads)


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (36, 52, 3), dtype=np.uint8)  # not a multiple of the stride


def test_held_back_photos_are_squares_of_the_reserved_strip():
    photos = dict(embedded_photos())
    assert held_back_photo_names() == list(photos)
    a = photos["astronaut"]  # 512 x 512: the held-back strip is the right-most 128 columns
    left = train_width(a.shape[1])
    assert left == 384
    assert np.array_equal(held_back_photo("astronaut"), a[192:320, left:])  # centred, full size
    big = held_back_photo("retina")  # a 353-px strip: downscaled to 128
    assert big.shape == (128, 128, 3) and big.dtype == np.uint8 and big.std() > 1
    with pytest.raises(WebInputError, match="no test photo named 'lena'"):
        held_back_photo("lena")


def test_image_tensor_checks_the_upload(photo):
    x = image_tensor(photo, max_pixels=36 * 52)
    assert torch.equal(x, array_to_tensor(photo))
    grey = image_tensor(photo[..., 0], 10_000)
    assert grey.shape == (3, 36, 52) and torch.equal(grey[0], grey[2])
    rgba = np.concatenate([photo, np.zeros_like(photo[..., :1])], axis=2)
    assert torch.equal(image_tensor(rgba, 10_000), x)
    for bad, match in [(None, "upload a photo"), (photo.astype(np.float32), "8-bit"),
                       (photo[..., :2], "RGB image"), (photo[:0], "RGB image")]:
        with pytest.raises(WebInputError, match=match):
            image_tensor(bad, 10_000)
    with pytest.raises(WebInputError, match="52x36 = 1,872 pixels, over this page's limit"):
        image_tensor(photo, 36 * 52 - 1)


def test_check_settings():
    assert check_settings(20.0, 0.5, 4.0, 7.0) == (20, 0.5, 4, 7)
    assert check_settings(1, 0, 1, -3) == (1, 0.0, 1, -3)
    for args, match in [((2.5, 0.5, 1, 0), "steps must be a whole number"),
                        ((2, 0.5, 1, None), "seed must be a whole number"),
                        ((0, 0.5, 1, 0), ">= 1"), ((2, 0.5, 0, 0), ">= 1"),
                        ((2, float("nan"), 1, 0), "guidance must be a finite number")]:
        with pytest.raises(WebInputError, match=match):
            check_settings(*args)


def test_reconstruct_matches_the_model_api(random_tiny_model, photo):
    model = random_tiny_model()
    x = array_to_tensor(photo)
    rec = reconstruct(model, x, steps=3, guidance=0.5, samples=3, seed=5)
    g = torch.Generator().manual_seed(5)
    want = model.reconstruct(x[None], steps=3, guidance=0.5, samples=3, generator=g)[0]
    assert rec.samples.shape == (3, 3, 36, 52) and torch.equal(rec.samples, want)
    assert torch.equal(rec.initial, model.reconstruct_initial(x[None])[0])
    assert rec.size == (36, 52) and rec.samples_drawn and torch.equal(rec.original, x)
    assert torch.equal(rec.z, model.encode(x[None])[0])
    assert (rec.samples[0] - rec.samples[1]).abs().max() > 0.01  # samples differ


def test_reconstruct_tiles_as_the_model_api_does(random_tiny_model):
    model = random_tiny_model()
    x = torch.rand(3, 72, 56) * 2 - 1
    tiling = Tiling(tile=True, tile_size=32, tile_overlap=16)
    rec = reconstruct(model, x, steps=2, guidance=0.5, samples=2, seed=1, tiling=tiling)
    g = torch.Generator().manual_seed(1)
    want = model.reconstruct(x[None], steps=2, guidance=0.5, samples=2, generator=g,
                             **tiling.kwargs())[0]
    assert torch.equal(rec.samples, want)
    whole = reconstruct(model, x, steps=2, guidance=0.5, samples=2, seed=1,
                        tiling=Tiling(tile=False))
    assert (whole.samples - rec.samples).abs().max() > 0  # tiles really ran
    z = model.encode(x[None], **tiling.kwargs())
    plan = model.tile_plan(z, True, 32, 16)
    assert torch.equal(rec.initial, plan.latent_map(model.decode_initial, z)[0, :, :72, :56])


def test_deterministic_kind_gives_one_reconstruction(random_tiny_model, photo):
    model = random_tiny_model(**{"model.method": "gan"})
    rec = reconstruct(model, array_to_tensor(photo), steps=3, guidance=0.5, samples=4, seed=0)
    assert not rec.samples_drawn and rec.samples.shape == (1, 3, 36, 52)
    folder = RunFolders()
    try:
        out = run_page(model, folder, PageSettings(), photo, "", 3, 0.5, 4, 0)
        _, initial, gallery, variance, caption, files = out
        assert variance is None and "deterministic" in caption and len(gallery) == 1
        assert [f.rsplit("/", 1)[1] for f in files] == [
            "photo_latents.safetensors", "photo_initial.png", "photo.png"]
    finally:
        folder.cleanup()


def test_variance_image():
    samples = torch.zeros(2, 3, 4, 5)
    samples[1, :, 2, 3] = 1.0  # one pixel differs: variance (0 - 0.5)^2 = 0.25 there
    rgb, top = variance_image(samples)
    assert top == 0.25 and rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    magma = (np.array(colormaps["magma"]([0.0, 1.0]))[:, :3] * 255).round().astype(np.uint8)
    assert np.array_equal(rgb[2, 3], magma[1])
    assert (rgb[np.arange(4) != 2] == magma[0]).all()
    flat, top = variance_image(torch.ones(3, 3, 4, 5))
    assert top == 0 and (flat == magma[0]).all()


def test_downloads_decode_back(random_tiny_model, photo, tmp_path, capsys):
    model = random_tiny_model()
    export = model.save_pretrained(tmp_path / "model")
    rec = reconstruct(model, array_to_tensor(photo), steps=2, guidance=0.5, samples=2, seed=0)
    files = write_downloads(rec, model, tmp_path / "dl", name="../my photo")
    assert [f.name for f in files] == ["my photo_latents.safetensors", "my photo_initial.png",
                                       "my photo_s1.png", "my photo_s2.png"]
    (entry,) = load_latents(files[0], 2, model.config.model.encoder.downsample)
    assert entry.name == "my photo" and entry.size == (36, 52) and torch.equal(entry.z, rec.z)
    for f, t in zip(files[1:], [rec.initial, *rec.samples]):
        assert np.array_equal(np.asarray(Image.open(f)), to_uint8(t))
    # the downloaded latents are what `swycc decode` reads: the same samples come back
    assert main(["decode", str(files[0]), "--checkpoint", str(export), "--steps", "2",
                 "--samples", "2", "--seed", "0", "--out", str(tmp_path / "dec")]) == 0
    decoded = np.asarray(Image.open(tmp_path / "dec" / "my photo_s2.png"))
    assert np.abs(decoded.astype(int) - to_uint8(rec.samples[1])).max() <= 1


def test_run_page_outputs_and_errors(random_tiny_model, photo):
    model = random_tiny_model()
    folders = RunFolders(keep=2)
    try:
        settings = PageSettings(max_pixels=10_000)
        original, initial, gallery, variance, caption, files = run_page(
            model, folders, settings, photo, "cat", 2, 0.5, 3, 0)
        assert np.array_equal(original, photo)
        assert initial.shape == variance.shape == (36, 52, 3)
        assert [label for _, label in gallery] == ["sample 1", "sample 2", "sample 3"]
        assert "variance over 3 samples" in caption and len(files) == 5
        for _ in range(3):
            run_page(model, folders, settings, photo, "cat", 1, 0.5, 1, 0)
        assert len(list(folders.root.iterdir())) == 2  # the oldest runs' files are gone
        with pytest.raises(WebInputError, match="upload a photo"):
            run_page(model, folders, settings, None, "", 2, 0.5, 1, 0)
        with pytest.raises(WebInputError, match="at most 200 steps"):
            run_page(model, folders, settings, photo, "", 201, 0.5, 1, 0)
    finally:
        folders.cleanup()
    assert not folders.root.exists()


@pytest.mark.parametrize("args, match", [
    (["--checkpoint", "/nonexistent/model"], "no such checkpoint"),
    (["--port", "70000"], "at most 65535"),
    (["--samples", "9"], "--samples at most 8"),
])
def test_web_verb_refuses_bad_input(args, match, capsys):
    assert main(["web", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("swycc: error:") and match in err[0]
