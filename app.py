"""LSTM Studio: one tab per domain. Loads every shipped model once, then serves the page.

python app.py  ->  http://127.0.0.1:7860  (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
"""

from __future__ import annotations

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
from studio.domains import handwriting, music, speech, text  # noqa: E402
from studio.train import pick_device  # noqa: E402
from studio.ui.handwriting_tab import create_handwriting_tab  # noqa: E402
from studio.ui.music_tab import create_music_tab  # noqa: E402
from studio.ui.speech_tab import create_speech_tab  # noqa: E402
from studio.ui.text_tab import create_text_tab  # noqa: E402

TITLE = "LSTM Studio"
INTRO = (
    "Generate sequences with LSTMs and see **why** they come out the way they do: every tab shows the "
    "input gate *i*, forget gate *f*, candidate *g*, output gate *o*, cell *c* and hidden state *h* of "
    "the model while it generated, aligned with what it produced."
)


def load_models(domain_module, models_dir=checkpoint.MODELS_DIR, device=None) -> tuple[dict, list[str]]:
    """({name: whatever domain.load_model returns}, problems) for one domain's tab."""
    return checkpoint.load_models(domain_module.DOMAIN, domain_module.load_model, models_dir, device or pick_device())


def load_text_models(models_dir=checkpoint.MODELS_DIR, device=None):
    """Text models, plus every card in models_dir that cannot be read at all (its domain is
    unknown, so the first tab reports it)."""
    models, problems = load_models(text, models_dir, device)
    return models, checkpoint.scan(models_dir)[1] + problems


def build_demo(models_dir=checkpoint.MODELS_DIR) -> gr.Blocks:
    if pick_device().type == "cpu":
        # Every tab samples at batch 1, one small matmul per step: a second intra-op thread gains
        # nothing alone and makes each step wait for the slower core when anything else runs (the
        # browser, another tab's request). 400 characters: 0.21 s with one thread, 0.6-0.9 s with
        # two while another process kept one core busy (docs/benchmarks.md).
        torch.set_num_threads(1)
    text_models, text_problems = load_text_models(models_dir)
    loaded = {domain: load_models(domain, models_dir) for domain in (music, handwriting, speech)}
    for problem in text_problems + [p for _, problems in loaded.values() for p in problems]:
        print(f"warning: {problem}", file=sys.stderr)  # also on the console, for whoever started the server
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Tab("Text"):
            create_text_tab(text_models, text_problems)
        with gr.Tab("Music (MIDI)"):
            create_music_tab(*loaded[music])
        with gr.Tab("Handwriting"):
            create_handwriting_tab(*loaded[handwriting])
        with gr.Tab("Speech"):
            create_speech_tab(*loaded[speech])
    return demo


if __name__ == "__main__":
    torch.set_grad_enabled(False)  # the app only ever runs models forward (set here: tests build demos too)
    build_demo().launch()
