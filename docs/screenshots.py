"""Retake the README's screenshots, one per tab: python docs/screenshots.py (needs Debian's chromium
and the shipped models)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import CHROMIUM, CHROMIUM_ARGS, serve  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def shoot(page, name: str, tab: str | None, prefix: str, prepare=None) -> None:
    """Generate in one tab, wait for its trace viewer to draw, pick a cursor step, and take the page."""
    seed_input, button = f"#{prefix}-seed input", f"#{prefix}-generate"
    viewer = f"#{prefix}-viewer .lv-root"
    if tab:
        page.locator("[role=tablist]").first.get_by_role("tab", name=tab, exact=True).click()
    page.locator(button).wait_for()
    # the tab opens with its example drawn: wait for it, then for the viewer to decode this click's trace
    page.wait_for_function(f"document.querySelector('{viewer}')?.dataset.ready === 'yes'", timeout=120_000)
    before = page.get_attribute(viewer, "data-decode-ms")
    if prepare:
        prepare(page)
    page.locator(seed_input).fill("3")
    page.click(button)
    page.wait_for_function(f"""() => {{ const v = document.querySelector('{viewer}');
        return v.dataset.ready === 'yes' && v.dataset.decodeMs !== {before!r}; }}""", timeout=120_000)
    overlay = page.locator(f"{viewer} .lv-overlay")
    box = overlay.bounding_box()
    overlay.click(position={"x": 46 + 0.4 * (box["width"] - 46), "y": 0.3 * box["height"]})  # a step and a unit
    page.wait_for_timeout(1500)  # the selection arrives, the pen animation draws
    page.evaluate("() => window.scrollTo(0, 0)")
    out = OUT / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out}")


def main() -> None:
    from playwright.sync_api import sync_playwright

    with serve(ROOT / "models") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1100})
        page.goto(url)
        shoot(page, "text-tab", None, "text")
        shoot(page, "music-tab", "Music (MIDI)", "music")
        shoot(page, "handwriting-tab", "Handwriting", "handwriting",
              prepare=lambda page: page.get_by_label("Text to write", exact=False).fill("Speak the speech, I pray you"))
        shoot(page, "speech-tab", "Speech", "speech")
        browser.close()


if __name__ == "__main__":
    main()
