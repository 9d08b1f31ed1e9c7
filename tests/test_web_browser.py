"""`swycc web` in a real browser: the verb serves a tiny random-weight export on 127.0.0.1; headless
Chromium (Debian's chromium + chromium-driver, installed by scripts/browser_deps.sh where
missing) uploads a photo, sets the sliders, clicks Reconstruct and the page's images and
downloads are checked against the same reconstruction computed here."""

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("selenium")  # the `dev` extra installs it
pytest.importorskip("gradio")

import web_page as W  # noqa: E402 (tests/web_page.py)

from swycc.data.images import array_to_tensor  # noqa: E402
from swycc.io.latents import load_latents  # noqa: E402
from swycc.io.visual import to_uint8  # noqa: E402
from swycc.web.reconstruction import held_back_photo, reconstruct  # noqa: E402

TIMEOUT_S = 120  # server start, and each page action


@pytest.fixture(scope="module")
def browser():
    if W.browser_paths() is None:
        res = subprocess.run(["bash", str(W.ROOT / "scripts" / "browser_deps.sh")],
                             capture_output=True, text=True)
        if res.returncode != 0 or W.browser_paths() is None:
            pytest.skip(f"no headless Chromium: scripts/browser_deps.sh exited {res.returncode}: "
                        f"{res.stderr.strip()[-300:]}")
    driver = W.chromium_driver()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(tmp_path_factory, random_model_module):
    root = tmp_path_factory.mktemp("web")
    model = random_model_module
    model.save_pretrained(root / "model")
    port = W.free_port()
    log = root / "server.log"
    proc = W.start_server(str(root / "model"), port, log, "--steps", "3")
    try:
        yield model, W.wait_for_server(proc, port, log, TIMEOUT_S), root
    finally:
        W.stop_server(proc)


@pytest.fixture(scope="module")
def random_model_module():
    from swycc.autoencoders.base import Autoencoder
    from swycc.config import get_preset, shrink

    torch.manual_seed(0)
    model = Autoencoder.from_config(shrink(get_preset("tiny")))
    for p in model.parameters():
        if p.ndim > 1:
            torch.nn.init.normal_(p, std=0.05)
    return model.eval()


def test_page_in_headless_chromium(browser, served):
    model, url, root = served
    start = time.monotonic()
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (36, 52, 3), dtype=np.uint8)  # not a multiple of the stride
    Image.fromarray(photo).save(root / "upload.png")

    page = W.WebPage(browser, url, TIMEOUT_S)
    page.upload(root / "upload.png")
    page.set_number("steps", 2)
    page.set_number("samples", 3)
    page.set_number("seed", 5)
    page.run(samples=3)

    shown = {e: [W.fetch_image(u) for u in page.image_urls(e)]
             for e in ("original", "initial", "samples-gallery", "variance")}
    assert np.array_equal(shown["original"][0], photo)
    for name, images in shown.items():
        for im in images:
            assert im.shape == (36, 52, 3) and not W.blank(im), name
    # the sliders reached the model: the same reconstruction computed here (threads may
    # change the last float bit, so one 8-bit level)
    want = reconstruct(model, array_to_tensor(photo), steps=2, guidance=0.5, samples=3, seed=5)
    for im, sample in zip(shown["samples-gallery"], want.samples):
        assert np.abs(im.astype(int) - to_uint8(sample)).max() <= 1
    assert np.abs(shown["initial"][0].astype(int) - to_uint8(want.initial)).max() <= 1

    downloads = {u.rsplit("/", 1)[1]: u for u in page.download_urls()}
    assert sorted(downloads) == ["photo_initial.png", "photo_latents.safetensors",
                                 "photo_s1.png", "photo_s2.png", "photo_s3.png"]
    (root / "z.safetensors").write_bytes(W.fetch(downloads["photo_latents.safetensors"]))
    (entry,) = load_latents(root / "z.safetensors", 2, 8)
    assert entry.size == (36, 52) and torch.allclose(entry.z, want.z, atol=1e-5)

    # a held-back test photo from the list, two samples
    page.pick_test_photo("chelsea")
    page.set_number("samples", 2)
    page.run(samples=2)
    original = W.fetch_image(page.image_urls("original")[0])
    assert np.array_equal(original, held_back_photo("chelsea"))
    assert len(page.image_urls("samples-gallery")) == 2
    elapsed = time.monotonic() - start
    print(f"browser session: {elapsed:.1f} s")
    assert elapsed < 4 * TIMEOUT_S


def test_browser_deps_script_is_a_no_op_when_installed():
    if W.browser_paths() is None:
        pytest.skip("Chromium not installed here")
    res = subprocess.run(["bash", str(W.ROOT / "scripts" / "browser_deps.sh")],
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""


def test_bad_port_in_use_is_one_error_line(served):
    _, url, root = served
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    log = root / "second.log"
    proc = W.start_server(str(root / "model"), port, log)
    assert proc.wait(timeout=TIMEOUT_S) == 2
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    assert lines[-1].startswith("swycc: error:"), lines
    assert Path(root / "model" / "model.safetensors").exists()
