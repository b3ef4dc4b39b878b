"""The Handwriting tab end to end with a tiny random model: gradio_client and Debian chromium."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def handwriting_url(serve):
    import gradio as gr

    from studio.domains import handwriting as hw
    from studio.ui.handwriting_tab import create_handwriting_tab

    torch.manual_seed(0)
    codec = hw.CharCodec()
    model = hw.SynthesisModel(hw.SynthesisConfig(codec.size, hidden_size=8, num_layers=1, mixtures=3, window_gaussians=2)).eval()
    with torch.no_grad():  # a window that moves half a character per point, a pen that lifts often
        model.window.weight[4:].zero_()
        model.window.bias[4:] = math.log(0.5)
        model.head.bias[0] = 2.0
    card = {"kind_of_model": "synthesis", "codec": {"offset_scale": 2.0}, "metrics": {}}
    with gr.Blocks() as demo:
        create_handwriting_tab({"tiny": (model, codec, card)}, [])
    return serve(demo)


def test_handwriting_endpoint_answers_through_gradio_client(handwriting_url):
    from gradio_client import Client

    client = Client(handwriting_url, verbose=False)
    notes, html, strokes_plot, heatmaps, attention, svg_file, png_file = client.predict(
        "tiny", "Héllo €", 1.0, 3, "style sample (assets)", None, 600, 1, "i", 2, api_name="/generate_handwriting")
    assert "<svg" in html and "<set " in html  # the pen animation
    assert Path(svg_file).read_text().startswith("<svg")
    assert Path(png_file).read_bytes()[:4] == b"\x89PNG"
    assert "Dropped" in notes and "Mapped" in notes and "Finished" in notes
    assert strokes_plot is not None and heatmaps is not None and attention is not None
    with pytest.raises(Exception, match="nothing to write"):
        client.predict("tiny", "   ", 0.5, 0, "none", None, 600, 0, "tanh_c", 0, api_name="/generate_handwriting")


@pytest.mark.browser
def test_browser_shows_drawing_and_animation(handwriting_url, chromium_page):
    page = chromium_page
    page.goto(handwriting_url)
    page.get_by_label("Text to write", exact=False).fill("abc def")
    page.click("#handwriting-generate")
    svg = page.locator("#handwriting-output svg.handwriting")
    svg.wait_for(timeout=60_000)
    assert page.locator("#handwriting-output svg path").count() > 3
    assert page.locator("#handwriting-output svg set").count() > 3  # animated
    page.locator("#handwriting-strokes img").wait_for(timeout=60_000)
