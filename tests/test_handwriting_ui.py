"""The Handwriting tab end to end with a tiny random model: gradio_client and Debian chromium."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from studio.domains.handwriting.codec import HandwritingAlphabet, HandwritingCodec
from studio.domains.handwriting.data import load_stroke_file
from studio.domains.handwriting.model import SynthesisConfig, SynthesisModel


@pytest.fixture(scope="module")
def handwriting_url(serve, tmp_path_factory):
    import gradio as gr

    from studio.domains import handwriting as hw
    from studio.domains.handwriting.tab import create_tab

    torch.manual_seed(0)
    alphabet = HandwritingAlphabet()
    model = SynthesisModel(SynthesisConfig(alphabet.size, hidden_size=8, num_layers=1, mixtures=3, window_gaussians=2)).eval()
    with torch.no_grad():  # a window that moves half a character per point, a pen that lifts often
        model.window.weight[4:].zero_()
        model.window.bias[4:] = math.log(0.5)
        model.head.bias[0] = 2.0
    stem = tmp_path_factory.mktemp("models") / "tiny"
    hw.save(stem, model, HandwritingCodec(2.0, alphabet), {"data": {"source": "made by the test", "licence": "none"}})
    with gr.Blocks() as demo:
        create_tab({"tiny": hw.load(stem)}, [])
    return serve(demo)


def test_handwriting_endpoint_answers_through_gradio_client(handwriting_url):
    from gradio_client import Client

    client = Client(handwriting_url, verbose=False)
    notes, html, payload, units_md, no_trace_yet, selection, attention, svg_file, png_file = client.predict(
        "tiny", "Héllo €", 1.0, 3, "style sample (assets)", None, 600, api_name="/generate_handwriting")
    assert "<svg" in html and "<set " in html  # the pen animation
    assert Path(svg_file).read_text().startswith("<svg")
    assert Path(png_file).read_bytes()[:4] == b"\x89PNG"
    assert "Dropped" in notes and "Mapped" in notes and "Finished" in notes
    assert attention is not None and "Units worth a look" in units_md
    track = payload["track"]
    assert track["kind"] == "pen" and len(track["x"]) == len(track["y"]) == len(track["pen_up"]) == payload["steps"]
    from studio.trace import Trace

    assert no_trace_yet is None and Trace.load_npz(client.predict(api_name="/handwriting_trace")).steps == payload["steps"]
    with pytest.raises(Exception, match="nothing to write"):
        client.predict("tiny", "   ", 0.5, 0, "none", None, 600, api_name="/generate_handwriting")
    # garbage from the API: adjusted or refused in words, never a traceback
    with pytest.raises(Exception, match="nothing to write"):
        client.predict("tiny", None, 1.0, None, None, None, None, api_name="/generate_handwriting")
    notes, html, *_ = client.predict("tiny", "hi", 1.0, None, None, None, None, api_name="/generate_handwriting")
    assert "<svg" in html
    with pytest.raises(Exception, match="Unknown model"):
        client.predict(None, "hi", 0.5, 0, "none", None, 600, api_name="/generate_handwriting")
    # the drawing pad's value as the style, its transcript from the pad or from the style text box
    pad = {"strokes": [[[0, 0, 0], [4, 30, 16], [9, 2, 40]], [[20, 10, 300], [21, 30, 340]]], "text": ""}
    notes, html, *_ = client.predict("tiny", "hi", 1.0, 0, "drawing pad", None, 600, "ok", pad,
                                     api_name="/generate_handwriting")
    assert "<svg" in html and "Primed with the style sample of 'ok'" in notes
    with pytest.raises(Exception, match="drawing pad is empty"):
        client.predict("tiny", "hi", 1.0, 0, "drawing pad", None, 600, "", None, api_name="/generate_handwriting")
    with pytest.raises(Exception, match="not lists of"):
        client.predict("tiny", "hi", 1.0, 0, "drawing pad", None, 600, "", {"strokes": [["x"]]},
                       api_name="/generate_handwriting")


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


def draw_word(page, canvas_selector: str) -> None:
    """'hi' in print with the mouse: the h's stem, its arch, the i's stem and its dot (four strokes)."""
    box = page.locator(canvas_selector).bounding_box()
    x0, base = box["x"] + 40, box["y"] + box["height"] * 0.68

    def stroke(points):
        page.mouse.move(x0 + points[0][0], base + points[0][1])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(x0 + x, base + y, steps=4)
        page.mouse.up()

    stroke([(0, -90), (0, 0)])
    stroke([(0, -30), (12, -44), (28, -42), (32, -25), (32, 0)])
    stroke([(50, -40), (50, 0)])
    stroke([(50, -58), (51, -57)])


@pytest.mark.browser
def test_browser_drawing_pad_primes_the_writing_and_downloads_json(handwriting_url, chromium_page, tmp_path):
    """Draw a word on the pad with the mouse, type it, write a sentence: the SVG appears and the
    notes say the primer was used; undo takes back the last stroke; the strokes download as JSON
    the importer reads."""

    page = chromium_page
    page.goto(handwriting_url)
    canvas = "#handwriting-pad .dp-canvas"
    page.locator(canvas).scroll_into_view_if_needed()
    draw_word(page, canvas)
    page.wait_for_function("document.querySelector('#handwriting-pad .dp-status').innerText.startsWith('4 strokes')")
    page.fill("#handwriting-pad .dp-text", "hi")
    # writing on the pad picks it as the style
    page.get_by_label("drawing pad", exact=True).wait_for()
    page.wait_for_function("""() => [...document.querySelectorAll('input[type=radio]')]
        .some((r) => r.value === 'drawing pad' && r.checked)""", timeout=20_000)
    with page.expect_download() as download_info:
        page.click("#handwriting-pad .dp-download")
    path = tmp_path / "pad.json"
    download_info.value.save_as(path)
    data = json.loads(path.read_text())
    assert data["text"] == "hi" and len(data["strokes"]) == 4 and all(len(p) == 3 for s in data["strokes"] for p in s)
    times = [p[2] for s in data["strokes"] for p in s]
    assert times == sorted(times) and times[-1] > 0  # the pen's timing is kept
    strokes, text = load_stroke_file(path)
    assert len(strokes) == 4 and text == "hi"
    page.get_by_label("Text to write", exact=False).fill("hi there")
    page.click("#handwriting-generate")
    page.locator("#handwriting-output svg.handwriting").wait_for(timeout=60_000)
    page.wait_for_function("document.querySelector('#handwriting-notes').innerText.includes('Primed with the style')",
                           timeout=20_000)
    notes = page.inner_text("#handwriting-notes")
    assert "'hi'" in notes and "scaled by" in notes
    page.click("#handwriting-pad .dp-undo")
    page.wait_for_function("document.querySelector('#handwriting-pad .dp-status').innerText.startsWith('3 strokes')")
    page.click("#handwriting-pad .dp-clear")
    page.wait_for_function("document.querySelector('#handwriting-pad .dp-status').innerText === 'empty'")
    page.click("#handwriting-generate")  # an empty pad as the style: a sentence, not a traceback
    page.wait_for_function("document.body.innerText.includes('The drawing pad is empty')", timeout=20_000)
