"""Retake the README's screenshots: python docs/screenshots.py (needs Debian's chromium)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_demo()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_label("Seed").fill("3")
            page.click("#text-generate")
            page.locator("#text-heatmaps img").wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            out = ROOT / "docs" / "screenshots" / "text-tab.png"
            page.screenshot(path=str(out), full_page=True)
            print(f"wrote {out}")
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()
