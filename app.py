"""LSTM Studio: one tab per domain of studio.domains.ALL. Loads every shipped model once, then
serves the page.

python app.py  ->  http://127.0.0.1:7860  (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # never phone home; works offline
# torch backs CPU tensors of 2 MB and more with transparent huge pages: a 10,000-step trace
# allocates ~100 MB per layer, and faulting it in 4 KB pages cost ~10% of the trace's time
# (docs/benchmarks.md). torch reads this once, at its first allocation, so it is set before import.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from studio import checkpoint  # noqa: E402
from studio.domains import ALL  # noqa: E402
from studio.train import pick_device  # noqa: E402
from studio.ui import experiments_api  # noqa: E402
from studio.ui.explain_panel import explain_api  # noqa: E402

TITLE = "LSTM Studio"
INTRO = (
    "Generate sequences with LSTMs and see **why** they come out the way they do: every tab shows the "
    "input gate *i*, forget gate *f*, candidate *g*, output gate *o*, cell *c* and hidden state *h* of "
    "the model while it generated, aligned with what it produced."
)


def load_models(domain, models_dir=checkpoint.MODELS_DIR, device=None) -> tuple[dict, list[str]]:
    """({name: LoadedModel}, problems) for one domain's tab."""
    return checkpoint.load_models(domain.NAME, domain.load, models_dir, device or pick_device())


def load_all(models_dir=checkpoint.MODELS_DIR, device=None) -> dict:
    """{domain: (models, problems)}; cards that cannot be read at all (their domain is unknown)
    are reported by the first tab."""
    loaded = {domain: load_models(domain, models_dir, device) for domain in ALL}
    unreadable = checkpoint.scan(models_dir)[1]
    first = ALL[0]
    loaded[first] = (loaded[first][0], unreadable + loaded[first][1])
    return loaded


def build_demo(models_dir=checkpoint.MODELS_DIR) -> gr.Blocks:
    if pick_device().type == "cpu":
        # Every tab samples at batch 1, one small matmul per step: a second intra-op thread gains
        # nothing alone and makes each step wait for the slower core when anything else runs (the
        # browser, another tab's request). 400 characters: 0.21 s with one thread, 0.6-0.9 s with
        # two while another process kept one core busy (docs/benchmarks.md).
        torch.set_num_threads(1)
    loaded = load_all(models_dir)
    for problem in [p for _, problems in loaded.values() for p in problems]:
        print(f"warning: {problem}", file=sys.stderr)  # also on the console, for whoever started the server
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        for domain in ALL:
            with gr.Tab(domain.TITLE):
                importlib.import_module(f"{domain.__name__}.tab").create_tab(*loaded[domain])
        gr.api(explain_api(loaded), api_name="explain")  # why one step came out, for any domain (JSON)
        experiments_api.register(loaded)  # /probe, /intervene, /compare
    return demo


if __name__ == "__main__":
    torch.set_grad_enabled(False)  # the app only ever runs models forward (set here: tests build demos too)
    build_demo().launch()
