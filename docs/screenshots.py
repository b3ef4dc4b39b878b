"""Retake the README's screenshots, one per tab: python docs/screenshots.py (needs Debian's chromium
and the shipped models)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import CHROMIUM, CHROMIUM_ARGS, serve  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def shoot(page, name: str, tab: str | None, seed_input: str, button: str, wait_for: str, prepare=None) -> None:
    if tab:
        page.get_by_role("tab", name=tab).click()
    page.locator(button).wait_for()
    if prepare:
        prepare(page)
    page.locator(seed_input).fill("3")
    page.click(button)
    page.locator(wait_for).wait_for(timeout=120_000)
    page.wait_for_timeout(1500)  # images decode, the pen animation draws
    page.evaluate("() => window.scrollTo(0, 0)")
    out = OUT / f"{name}.png"
    page.screenshot(path=str(out), full_page=name == "text-tab")
    print(f"wrote {out}")


def main() -> None:
    from playwright.sync_api import sync_playwright

    with serve(ROOT / "models") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1100})
        page.goto(url)
        shoot(page, "text-tab", None, "#text-seed input", "#text-generate", "#text-heatmaps img")
        shoot(page, "music-tab", "Music (MIDI)", "#music-seed input", "#music-generate", "#music-roll img")
        shoot(page, "handwriting-tab", "Handwriting", "#handwriting-seed input", "#handwriting-generate",
              "#handwriting-strokes img",
              prepare=lambda page: page.get_by_label("Text to write", exact=False).fill("Speak the speech, I pray you"))
        shoot(page, "speech-tab", "Speech", "#speech-seed input", "#speech-generate", "#speech-spectrogram img")
        browser.close()


if __name__ == "__main__":
    main()
