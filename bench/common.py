"""What every tab benchmark shares: the real app on a free port, and click-to-result timing in
Debian chromium driven by playwright.

Click-to-result = from the click on a tab's button until the page shows every output, loaded: the
first watched element's marker (an image's src, a file link's href, else its markup) differs from
what it was before the click, every watched element is there, and every watched image has decoded.
Gradio delivers all outputs of one event in one update, so the first one changing means all have
arrived (another may legitimately look the same as before: the same text's attention plot, say).
A new seed per click guarantees a new first output; the first click warms caches and is not counted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as app.py does; import this module before torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def serve(models_dir="models"):
    """The real app (app.build_demo) on a free local port, closed afterwards."""
    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_demo(models_dir)
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


# Markers of what a selector shows now: <img> src, a download link's href, else the element's markup.
_SNAPSHOT_JS = """(selectors) => selectors.map((sel) => {
    const e = document.querySelector(sel);
    if (!e) return null;
    if (e.tagName === 'IMG') return e.getAttribute('src');
    if (e.tagName === 'A') return e.getAttribute('href');
    return e.innerHTML;
})"""

_READY_JS = """([selectors, before]) => {
    const now = (""" + _SNAPSHOT_JS + """)(selectors);
    const loaded = selectors.map((sel) => document.querySelector(sel)).every(
        (e) => e && (e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0)));
    return loaded && now.every((v) => v) && now[0] !== before[0];
}"""


def click_to_result(url: str, tab: str | None, button: str, seed_input: str, watched: list[str], repeats: int,
                    prepare=None, extra_ready_js: str | None = None) -> list[float]:
    """Seconds from clicking `button` until `watched[0]` shows something new and every selector in
    `watched` is there (images loaded), for `repeats` clicks after one warm-up. `prepare(page)` fills the form once;
    `extra_ready_js` is one more condition the page must meet (a JS expression)."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            if tab:
                page.get_by_role("tab", name=tab).click()
            page.locator(button).wait_for()
            if prepare:
                prepare(page)
            for k in range(repeats + 1):
                page.locator(seed_input).fill(str(100 + k))
                before = page.evaluate(_SNAPSHOT_JS, watched)
                start = time.perf_counter()
                page.click(button)
                page.wait_for_function(_READY_JS, arg=[watched, before], timeout=120_000)
                if extra_ready_js:
                    page.wait_for_function(extra_ready_js, timeout=120_000)
                if k:
                    times.append(time.perf_counter() - start)
        finally:
            browser.close()
    return times


def audio_decoded_js(elem_id: str) -> str:
    """JS condition: the gr.Audio with this elem_id shows a duration, i.e. its waveform player has
    loaded and decoded the file (Gradio 6 plays audio through that player; its <audio> stays empty,
    and its download link carries the file's URL: watch `#ID a[download]`)."""
    return f"""() => {{
        const d = document.querySelector('#{elem_id} #duration');
        return d && !['', '0:00'].includes(d.textContent.trim());
    }}"""


def time_api(call, repeats: int) -> float:
    """Median seconds of `call(seed)` over `repeats` calls after one warm-up."""
    times = []
    for seed in range(repeats + 1):
        start = time.perf_counter()
        call(seed)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def report_click_to_result(what: str, goal_s: float, *args, **kwargs) -> None:
    """click_to_result(*args, **kwargs), printed as a median against the goal (or why it was skipped)."""
    try:
        times = click_to_result(*args, **kwargs)
    except Exception as error:  # no chromium here: the API figure still stands
        print(f"browser timing skipped: {error}")
    else:
        print(f"{what} click-to-result in chromium: median {statistics.median(times):.3f} s over {len(times)} clicks "
              f"(goal <= {goal_s:g} s)")


# ---------------------------------------------------------------- timing side by side
def synchronize() -> None:
    """On a GPU, wait for queued kernels, so a timing covers the work and not just its launch."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def side_by_side(a, b, repeats: int) -> tuple[float, float]:
    """Best time of a and of b, interleaved a, b, a, b, ... so drift hits both."""
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(best_of(a, 1))
        tb.append(best_of(b, 1))
    return min(ta), min(tb)
