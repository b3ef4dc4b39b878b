"""Shared fixtures: a tiny corpus, a tiny text model (random weights) saved to tmp_path, a
runner for the CLI in a subprocess, and for the UI tests a gradio server (`serve`) and a page in
Debian's chromium (`chromium_page`).

Everything here is deliberately small (hidden size <= 32, corpora of a few KB) so the whole
suite stays fast on a busy 2-core CPU. Helpers are handed out as fixtures because this
directory is not a package (a site-packages package named `tests` exists; never import it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # plain `pytest` from anywhere still finds `studio`
    sys.path.insert(0, str(REPO_ROOT))

from studio.domains import text  # noqa: E402
from studio.domains.text.codec import TextCodec  # noqa: E402
from studio.domains.text.model import TextModel, TextModelConfig, make_card  # noqa: E402

# Tiny models gain nothing from threads, and a background job shares the cores.
torch.set_num_threads(1)
# Set before any test imports gradio: tests must not phone home (nor wait on the network to).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# What the app keeps (the library of every generation, user models) goes to a folder of the run's own,
# never the developer's ~/.lstm-studio.
os.environ.setdefault("LSTM_STUDIO_HOME", tempfile.mkdtemp(prefix="lstm-studio-test-home-"))

# Debian's chromium, not playwright's downloaded build (nothing is downloaded on the test machines).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No sandbox (we may run as root in a container), no GPU, and none of chromium's own network
# traffic (updates, sync, QUIC) so that a page load waits only on the local gradio server.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

RHYME = (
    "Twinkle, twinkle, little star,\n"
    "How I wonder what you are!\n"
    "Up above the world so high,\n"
    "Like a diamond in the sky.\n"
)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def corpus() -> str:
    """About 2.5 KB of a repeated nursery rhyme: easy to learn, 28 distinct characters."""
    return RHYME * 24


@pytest.fixture
def corpus_file(tmp_path, corpus) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(corpus, encoding="utf-8")
    return path


@pytest.fixture
def codec(corpus) -> TextCodec:
    return TextCodec.from_text(corpus)


def make_text_model(vocab_size: int, hidden_size: int = 16, num_layers: int = 2, seed: int = 0) -> TextModel:
    torch.manual_seed(seed)
    config = TextModelConfig(vocab_size, embed_size=8, hidden_size=hidden_size, num_layers=num_layers, dropout=0.0)
    return TextModel(config).eval()


@pytest.fixture(scope="session")
def model_factory():
    """model_factory(vocab_size, hidden_size=16, num_layers=2, seed=0) -> a random TextModel in eval mode."""
    return make_text_model


@pytest.fixture
def text_model(codec) -> TextModel:
    """A random (untrained) 2-layer, 16-unit text model over the corpus' characters, in eval mode."""
    return make_text_model(codec.size)


TEST_DATA = {"file": "corpus.txt", "source": "a nursery rhyme (tests/conftest.py)", "licence": "public domain"}


@pytest.fixture
def text_loaded(text_model, codec):
    """text_model and codec as the domain contract hands them out (a LoadedModel named "tiny")."""
    from studio.domains.base import LoadedModel

    card = make_card(text_model, codec, name="tiny", data=TEST_DATA)
    return LoadedModel("tiny", text_model, codec, card, [f"layer {k}" for k in range(text_model.config.num_layers)],
                       "tiny test model")


@pytest.fixture(scope="session")
def tiny_text():
    """tiny_text(seed) -> a LoadedModel of studio.domains.text.tiny(seed) (random, 2 x 16 units)."""
    from studio.domains.base import LoadedModel

    def make(seed: int = 0):
        model, codec = text.tiny(seed=seed)
        return LoadedModel("tiny", model, codec, {}, [f"layer {k}" for k in range(model.config.num_layers)], "")

    return make


@pytest.fixture
def saved_text_model(tmp_path, text_model, codec) -> Path:
    """The text_model saved with studio.domains.text.save; returns the checkpoint stem."""
    stem = tmp_path / "models" / "tiny"
    text.save(stem, text_model, codec, {"data": TEST_DATA})
    return stem


@pytest.fixture(scope="session")
def run_cli(repo_root):
    """run_cli(*args, timeout=60) -> CompletedProcess of `python -m studio ARGS` from the repo root."""

    def run(*args, timeout: float = 60, module: tuple[str, ...] = ("-m", "studio")) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH")]))
        for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(name, None)
        return subprocess.run(
            [sys.executable, *module, *map(str, args)],
            cwd=repo_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def serve():
    """serve(demo) -> url: launch a gr.Blocks on a free local port, without blocking.

    A factory, module-scoped so that a test file's own module-scoped fixture can build its demo
    and serve it; every demo served is closed when that module's tests are done, so only one
    file's server is up at a time.
    """
    demos = []

    def launch(demo) -> str:
        port = free_port()
        demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
        demos.append(demo)
        return f"http://127.0.0.1:{port}/"

    yield launch
    for demo in demos:
        demo.close()


@pytest.fixture
def chromium_page():
    """A fresh 1400x1000 playwright page in Debian's chromium; the browser is closed afterwards."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


class Viewer:
    """The trace viewer (studio/ui/viewer.js) of one tab in a playwright page."""

    def __init__(self, page, prefix: str):
        self.page, self.prefix, self.root = page, prefix, f"#{prefix}-viewer .lv-root"
        self.selection = f"#{prefix}-selection"

    def wait_ready(self, timeout: float = 60_000) -> None:
        self.page.wait_for_function(f"document.querySelector('{self.root}').dataset.ready === 'yes'", timeout=timeout)

    def x_of(self, canvas: str, step: int) -> float:
        """The x of a step's centre on one of the viewer's time-axis canvases."""
        v0, v1, margin = map(int, self.page.get_attribute(self.root, "data-view").split(","))
        width = self.page.locator(f"{self.root} {canvas}").bounding_box()["width"]
        return margin + (step - v0 + 0.5) / (v1 - v0) * (width - margin)

    def click_step(self, step: int, canvas: str = ".lv-strip") -> None:
        self.page.locator(f"{self.root} {canvas}").click(position={"x": self.x_of(canvas, step), "y": 8})

    def wait_selected(self, step: int, timeout: float = 20_000) -> None:
        self.page.wait_for_function(
            f"document.querySelector('{self.selection}').innerText.includes('Step {step} ')", timeout=timeout)

    def ask_why(self, step: int, prefix: str) -> None:
        """Click a step on the strip and check the "ask why" panel answers for it: top guesses,
        one saliency bar per step up to it (also painted on the viewer's strip), the cell diagram."""
        self.click_step(step)
        panel = f"#{prefix}-explain .ex-root"
        self.page.wait_for_function(f"document.querySelector('{panel}').dataset.step === '{step}'", timeout=60_000)
        assert self.page.locator(f"{panel} .ex-guesses tr").count() >= 1
        assert self.page.locator(f"{panel} svg.ex-sal rect").count() == step + 1
        assert self.page.locator(f"{panel} svg.ex-cell").count() == 1
        self.page.wait_for_function(f"document.querySelector('{self.root} .lv-legend').innerText.includes('saliency')")

    def check_everything(self, folder, why_step: int, prefix: str) -> None:
        """What every tab's browser test checks of its viewer, in order: drawn, hover values against
        the downloaded trace, view changes in the browser alone, ask why for one step."""
        self.wait_ready()
        self.check_hover_values(self.downloaded_trace(folder))
        self.check_views_repaint_without_requests()
        self.ask_why(why_step, prefix)

    def downloaded_trace(self, folder):
        """The trace the page offers for download when asked (its link ends in trace.npz)."""
        import httpx

        from studio.trace import Trace

        self.page.click(f"#{self.prefix}-save-trace")
        links = f"#{self.prefix}-trace a[href$='trace.npz']"
        self.page.wait_for_selector(links, timeout=30_000)
        href = self.page.evaluate(f"() => [...document.querySelectorAll(\"{links}\")].map(a => a.href).pop()")
        path = Path(folder) / "downloaded-trace.npz"
        path.write_bytes(httpx.get(href, timeout=30).content)
        return Trace.load_npz(path)

    def check_hover_values(self, trace) -> None:
        """Hovering heatmap cells shows tanh(c) of layer 0 at that step and unit, to the payload's precision
        (half a level of [-1, 1] each way), plus the float16 of the download and the 3 decimals shown."""
        import re

        import numpy as np

        from studio.ui.payload import LEVELS

        overlay = self.page.locator(f"{self.root} .lv-overlay")
        box = overlay.bounding_box()
        for fx, fy in ((0.3, 0.2), (0.7, 0.8), (0.95, 0.5)):
            overlay.hover(position={"x": 46 + fx * (box["width"] - 46), "y": fy * (box["height"] - 20)})
            tip = self.page.inner_text(f"{self.root} .lv-tip").replace("\n", " ")
            step, unit = map(int, re.search(r"step (\d+) .* unit (\d+)", tip).groups())
            shown = float(self.page.inner_text(f"{self.root} .lv-tip .lv-value"))
            assert abs(shown - np.tanh(trace.layers[0]["c"][step, unit])) <= 1 / (LEVELS - 1) + 2e-3, tip

    def check_views_repaint_without_requests(self, layer: str = "1") -> None:
        """Layer, quantity, order and unit change in the browser alone: no request, each repaint <= 50 ms."""
        # the queue's event stream (GET .../queue/data) may reconnect after the last event's answer;
        # anything else (a new event, a file) would mean a repaint asked the server
        requests = []
        self.page.on("request", lambda request: None if request.method == "GET" and "/queue/data" in request.url
                     else requests.append(f"{request.method} {request.url}"))
        painted = int(self.page.get_attribute(self.root, "data-painted"))
        times = []
        for action in (lambda: self.page.select_option(f"{self.root} .lv-layer", layer),
                       lambda: self.page.select_option(f"{self.root} .lv-quantity", "f"),
                       lambda: self.page.select_option(f"{self.root} .lv-order", "index"),
                       lambda: (self.page.fill(f"{self.root} .lv-unit", "5"), self.page.press(f"{self.root} .lv-unit", "Enter"))):
            action()
            self.page.wait_for_timeout(100)
            times.append(float(self.page.get_attribute(self.root, "data-paint-ms")))
        assert int(self.page.get_attribute(self.root, "data-painted")) >= painted + 2
        assert max(times) <= 50, times
        assert requests == []  # every repaint happened in the browser
        assert "unit 5" in self.page.inner_text(f"{self.root} .lv-legend")


@pytest.fixture
def viewer():
    """viewer(page, prefix) -> Viewer: drive a tab's trace viewer."""
    return Viewer
