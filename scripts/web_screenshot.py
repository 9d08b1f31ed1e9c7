"""docs/web.png: `swycc web` with the shipped model, a held-back test photo, 20 steps, w = 0.5,
four samples, seed 0, captured in headless Chromium (scripts/browser_deps.sh installs it).

    python scripts/web_screenshot.py [--photo china] [--out docs/web.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import web_page as W  # noqa: E402 (tests/web_page.py)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", default="china")
    ap.add_argument("--out", default=str(ROOT / "docs" / "web.png"))
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds for the run")
    args = ap.parse_args()
    if W.browser_paths() is None:
        print("no chromium/chromedriver: run scripts/browser_deps.sh as root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        port = W.free_port()
        log = Path(tmp) / "server.log"
        proc = W.start_server(None, port, log)  # the shipped model
        driver = None
        try:
            url = W.wait_for_server(proc, port, log, 120)
            driver = W.chromium_driver(1500, 1180)
            page = W.WebPage(driver, url, args.timeout)
            page.pick_test_photo(args.photo)
            start = time.monotonic()
            page.run(samples=4)
            print(f"reconstructed in {time.monotonic() - start:.1f} s (page defaults)")
            time.sleep(1.0)  # let the panels finish drawing
            driver.save_screenshot(args.out)
            print(f"wrote {args.out}")
        finally:
            if driver is not None:
                driver.quit()
            W.stop_server(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
