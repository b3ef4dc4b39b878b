"""LSTM Studio: one tab per domain. Loads every shipped model once, then serves the page.

python app.py  ->  http://127.0.0.1:7860  (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override)
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # never phone home; works offline

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from studio import checkpoint  # noqa: E402
from studio.domains import text  # noqa: E402
from studio.train import pick_device  # noqa: E402
from studio.ui.placeholder import create_placeholder_tab  # noqa: E402
from studio.ui.text_tab import create_text_tab  # noqa: E402

TITLE = "LSTM Studio"
INTRO = (
    "Generate sequences with LSTMs and see **why** they come out the way they do: every tab shows the "
    "input gate *i*, forget gate *f*, candidate *g*, output gate *o*, cell *c* and hidden state *h* of "
    "the model while it generated, aligned with what it produced."
)


def load_text_models(models_dir=checkpoint.MODELS_DIR, device=None):
    """({name: (model, codec, card)}, problems) — a broken checkpoint is reported by name and
    skipped, so the rest of the studio still works."""
    by_domain, problems = checkpoint.scan(models_dir)
    models = {}
    for name, stem in by_domain.get(text.DOMAIN, {}).items():
        try:
            models[name] = text.load_model(stem, device=device or pick_device())
        except checkpoint.CheckpointError as error:
            problems.append(str(error))
    return models, problems


def build_demo(models_dir=checkpoint.MODELS_DIR) -> gr.Blocks:
    torch.set_grad_enabled(False)  # the app only ever runs models forward
    text_models, problems = load_text_models(models_dir)
    for problem in problems:  # also on the console, for whoever started the server
        print(f"warning: {problem}", file=sys.stderr)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Tab("Text"):
            create_text_tab(text_models, problems)
        with gr.Tab("Music (MIDI)"):
            create_placeholder_tab("Music", "A Bach-chorale LSTM that writes MIDI and plays it in the page is on its way.")
        with gr.Tab("Handwriting"):
            create_placeholder_tab("Handwriting", "A Graves-style pen-stroke LSTM that writes your text by hand is on its way.")
        with gr.Tab("Speech"):
            create_placeholder_tab("Speech", "A text-to-mel LSTM with attention, played through Griffin-Lim, is on its way.")
    return demo


if __name__ == "__main__":
    build_demo().launch()
