"""Driving the ``swycc web`` page in headless Chromium with selenium (the browser test and
``scripts/web_screenshot.py``). Chromium and chromedriver are Debian's packages;
``scripts/browser_deps.sh`` installs them where missing."""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) when both are installed, else None."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoint: str | None, port: int, log: Path, *extra: str) -> subprocess.Popen:
    """``python -m swycc web`` from this checkout, on 127.0.0.1:port, output to ``log``."""
    cmd = [sys.executable, "-m", "swycc", "web", "--host", "127.0.0.1", "--port", str(port),
           *(["--checkpoint", checkpoint] if checkpoint else []), *extra]
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def wait_for_server(proc: subprocess.Popen, port: int, log: Path, timeout: float) -> str:
    url = f"http://127.0.0.1:{port}/"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"swycc web exited ({proc.returncode}): {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return url
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"swycc web did not answer within {timeout:.0f} s: {log.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def chromium_driver(width: int = 1500, height: int = 1100):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = browser_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


class WebPage:
    """The page's controls by their ``elem_id`` (``swycc.web.app``)."""

    def __init__(self, driver, url: str, timeout: float):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.url = driver, url
        self.wait = WebDriverWait(driver, timeout, poll_frequency=0.25)
        driver.get(url)
        self.wait.until(lambda d: d.find_elements("css selector", "#run"))

    def _changed(self, elem_id: str, before: list[str]):
        """A wait condition: the panel shows an image other than ``before``."""
        return lambda d: (self.image_urls(elem_id) or before) != before

    def upload(self, path: Path) -> None:
        before = self.image_urls("input-image")
        box = self.driver.find_element("css selector", "#input-image input[type=file]")
        box.send_keys(str(path))
        self.wait.until(self._changed("input-image", before))

    def pick_test_photo(self, name: str) -> None:
        from selenium.webdriver.common.keys import Keys

        before = self.image_urls("input-image")
        field = self.driver.find_element("css selector", "#test-photo input")
        field.click()
        field.send_keys(name)
        field.send_keys(Keys.ENTER)
        self.wait.until(self._changed("input-image", before))

    def set_number(self, elem_id: str, value) -> None:
        """A slider's or number's text box (Gradio sliders have one beside the range)."""
        field = self.driver.find_element("css selector", f"#{elem_id} input[type=number]")
        field.clear()
        field.send_keys(str(value))
        self.driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", field)

    def run(self, samples: int) -> None:
        """Click *Reconstruct*; wait until every result panel shows this run's images."""
        before = self.image_urls("original")
        self.driver.find_element("css selector", "#run").click()
        new_original = self._changed("original", before)

        def done(d):
            if not new_original(d):
                return False
            ready = [d.find_elements("css selector", f"#{i} img") for i in
                     ("original", "initial", "variance")]
            gallery = d.find_elements("css selector", "#samples-gallery img")
            links = d.find_elements("css selector", "#downloads a")
            return all(ready) and len(gallery) >= samples and len(links) >= 2 + samples

        self.wait.until(done)

    def image_urls(self, elem_id: str) -> list[str]:
        return [img.get_attribute("src")
                for img in self.driver.find_elements("css selector", f"#{elem_id} img")]

    def download_urls(self) -> list[str]:
        return [a.get_attribute("href")
                for a in self.driver.find_elements("css selector", "#downloads a")]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def fetch_image(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(fetch(url))).convert("RGB"))


def blank(image: np.ndarray | None, tolerance: float = 0.5) -> bool:
    """True for a missing or constant image (did anything come back?)."""
    return image is None or float(np.asarray(image, dtype=np.float64).std()) < tolerance
