"""The Handwriting tab end to end with a tiny random model: gradio_client and Debian chromium."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def handwriting_url(serve, tmp_path_factory):
    import gradio as gr

    from studio.domains import handwriting as hw
    from studio.domains.handwriting.tab import create_tab

    torch.manual_seed(0)
    alphabet = hw.HandwritingAlphabet()
    model = hw.SynthesisModel(hw.SynthesisConfig(alphabet.size, hidden_size=8, num_layers=1, mixtures=3, window_gaussians=2)).eval()
    with torch.no_grad():  # a window that moves half a character per point, a pen that lifts often
        model.window.weight[4:].zero_()
        model.window.bias[4:] = math.log(0.5)
        model.head.bias[0] = 2.0
    stem = tmp_path_factory.mktemp("models") / "tiny"
    hw.save(stem, model, hw.HandwritingCodec(2.0, alphabet), {"data": {"source": "made by the test", "licence": "none"}})
    with gr.Blocks() as demo:
        create_tab({"tiny": hw.load(stem)}, [])
    return serve(demo)


def test_handwriting_endpoint_answers_through_gradio_client(handwriting_url):
    from gradio_client import Client

    client = Client(handwriting_url, verbose=False)
    notes, html, payload, units_md, selection, attention, svg_file, png_file, trace_file = client.predict(
        "tiny", "Héllo €", 1.0, 3, "style sample (assets)", None, 600, api_name="/generate_handwriting")
    assert "<svg" in html and "<set " in html  # the pen animation
    assert Path(svg_file).read_text().startswith("<svg")
    assert Path(png_file).read_bytes()[:4] == b"\x89PNG"
    assert "Dropped" in notes and "Mapped" in notes and "Finished" in notes
    assert attention is not None and "Units worth a look" in units_md
    track = payload["track"]
    assert track["kind"] == "pen" and len(track["x"]) == len(track["y"]) == len(track["pen_up"]) == payload["steps"]
    from studio.trace import Trace

    assert Trace.load_npz(trace_file).steps == payload["steps"]
    with pytest.raises(Exception, match="nothing to write"):
        client.predict("tiny", "   ", 0.5, 0, "none", None, 600, api_name="/generate_handwriting")
    # garbage from the API: adjusted or refused in words, never a traceback
    with pytest.raises(Exception, match="nothing to write"):
        client.predict("tiny", None, 1.0, None, None, None, None, api_name="/generate_handwriting")
    notes, html, *_ = client.predict("tiny", "hi", 1.0, None, None, None, None, api_name="/generate_handwriting")
    assert "<svg" in html
    with pytest.raises(Exception, match="Unknown model"):
        client.predict(None, "hi", 0.5, 0, "none", None, 600, api_name="/generate_handwriting")


@pytest.mark.browser
def test_browser_shows_drawing_animation_and_the_viewer(handwriting_url, chromium_page, viewer, tmp_path):
    page = chromium_page
    page.goto(handwriting_url)
    page.get_by_label("Text to write", exact=False).fill("abc def")
    page.click("#handwriting-generate")
    svg = page.locator("#handwriting-output svg.handwriting")
    svg.wait_for(timeout=60_000)
    assert page.locator("#handwriting-output svg path").count() > 3
    assert page.locator("#handwriting-output svg set").count() > 3  # animated
    pen_viewer = viewer(page, "handwriting")
    pen_viewer.check_everything(tmp_path, 9, "handwriting")
    # a click on the time strip selects that pen step; a click on the ink selects the nearest point's
    pen_viewer.click_step(6)
    pen_viewer.wait_selected(6)
    pen = page.locator("#handwriting-viewer .lv-pen")
    x, y = page.evaluate("""() => {
        const canvas = document.querySelector('#handwriting-viewer .lv-pen');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let p = 0; p < data.length; p += 4) if (data[p + 3] > 200) return [(p / 4) % canvas.width, Math.floor(p / 4 / canvas.width)];
        return null;
    }""")
    pen.click(position={"x": x, "y": y})
    page.wait_for_function("!document.querySelector('#handwriting-selection').innerText.includes('Step 6 ')", timeout=20_000)
    assert "Step " in page.inner_text("#handwriting-selection")
