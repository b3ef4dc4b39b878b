"""The Text tab end to end: through the API (gradio_client) and in Debian chromium (playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studio.domains.text.codec import TextCodec
from studio.domains.text.generate import TextSettings
from studio.domains.text.model import TextModel, TextModelConfig


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory, serve):
    """The real app, serving a tiny untrained text model plus one corrupt checkpoint."""
    import app
    from studio.domains import text

    models_dir = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    codec = TextCodec.from_text("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,:;!?'\n")
    model = TextModel(TextModelConfig(codec.size, embed_size=8, hidden_size=16, num_layers=2))
    text.save(models_dir / "tiny", model, codec, {"data": {"source": "made by the test", "licence": "none"}})
    (models_dir / "broken.json").write_text("{not json")
    demo = app.build_demo(models_dir)
    return serve(demo)


def call_generate(client, **overrides):
    args = dict(name="tiny", prompt_text="To be", length_value=40, temp=0.8, k=0, p=1.0, seed_value=3)
    args.update(overrides)
    return client.predict(*args.values(), api_name="/generate_text")


def test_text_endpoint_answers_through_gradio_client(studio_url):
    from gradio_client import Client

    client = Client(studio_url, verbose=False)
    notes, payload, units_md, no_trace_yet, selection, txt_file = call_generate(client)
    assert no_trace_yet is None  # the trace's file is written when asked for, below
    assert payload["steps"] == len("To be") + 40 and payload["prompt_length"] == len("To be")
    assert "".join(payload["labels"]) == Path(txt_file).read_text(encoding="utf-8")
    assert len(payload["layers"]) == 2 and payload["units"] == 16
    assert Path(txt_file).read_text(encoding="utf-8").startswith("To be")
    from studio.trace import Trace

    trace = Trace.load_npz(client.predict(api_name="/text_trace"))  # the session's last generation
    assert trace.steps == len("To be") + 40 and trace.num_layers == 2 and trace.hidden_size == 16
    assert "layer 0" in units_md and "layer 1" in units_md

    # same seed, same text; bad input is adjusted and said, never a traceback
    again = call_generate(client)
    assert again[1]["labels"] == payload["labels"]
    notes, payload, *_ = call_generate(client, prompt_text="€€€", length_value=999_999, temp=0)
    assert "Dropped characters" in notes and "'€'" in notes
    assert "5,000" in notes and "greedy" in notes
    assert payload["steps"] == 5001  # the implicit line break, then the capped length
    notes, payload, *_ = call_generate(client, prompt_text=None, length_value=None, seed_value=None)
    assert payload["steps"] == 401  # blank fields: an empty prompt's line break, then the default length


def test_broken_checkpoint_is_named_and_text_tab_still_works(studio_url):
    import httpx

    page = httpx.get(studio_url, timeout=30).text
    assert "broken.json" in page  # the start-up problem is on the page, naming the file


def generate_in_browser(page, url, prompt="Once upon", seed="7"):
    page.goto(url)
    page.get_by_label("Prompt", exact=False).fill(prompt)
    page.get_by_label("Seed").fill(seed)
    page.click("#text-generate")
    # the tab opens with its example drawn: wait for this prompt's own trace
    page.wait_for_function("""(prompt) => { const v = document.querySelector('#text-viewer .lv-root');
        return v.dataset.ready === 'yes' && v.querySelector('.lv-text').innerText.startsWith(prompt); }""",
                           arg=prompt, timeout=60_000)
    return page


@pytest.mark.browser
def test_viewer_shows_the_generation_and_hover_values(studio_url, chromium_page, tmp_path, viewer):
    page = generate_in_browser(chromium_page, studio_url)
    spans = page.locator("#text-viewer .lv-text span.lv-ch")
    assert spans.count() == len("Once upon") + 400
    # the characters in view are painted at once, the others when the browser is idle
    page.wait_for_function("() => [...document.querySelectorAll('#text-viewer .lv-ch')]"
                           ".every(s => s.style.background !== '')", timeout=10_000)
    assert page.get_by_label("Prompt", exact=False).input_value() == "Once upon"  # what the user typed is kept

    # hovering a heatmap cell shows the trace's value there, to the payload's precision
    text_viewer = viewer(chromium_page, "text")
    text_viewer.check_hover_values(text_viewer.downloaded_trace(tmp_path))


@pytest.mark.browser
def test_viewer_clicks_reach_python_and_views_repaint_without_requests(studio_url, chromium_page, viewer):
    page = generate_in_browser(chromium_page, studio_url, prompt="To be", seed="3")
    # a click on a character selects its step
    page.locator("#text-viewer .lv-ch[data-step='12']").click()
    page.wait_for_function("document.querySelector('#text-selection').innerText.includes('Step 12')", timeout=20_000)
    # the keyboard moves the cursor
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('#text-selection').innerText.includes('Step 13')", timeout=20_000)

    viewer(page, "text").check_views_repaint_without_requests()
    # the gate-saturation scatter is drawn in the browser too: one panel per layer
    assert page.evaluate("() => document.querySelector('#text-viewer .lv-sat').width") > 2 * 210


@pytest.mark.browser
def test_viewer_exports_its_view_as_png_and_svg(studio_url, chromium_page):
    page = generate_in_browser(chromium_page, studio_url, prompt="To be", seed="5")
    page.select_option("#text-viewer .lv-layer", "1")
    for fmt in ("png", "svg"):
        page.click(f"#text-viewer .lv-export[data-format='{fmt}']")
        page.wait_for_function(
            f"[...document.querySelectorAll('#text-export a')].some(a => a.href.endsWith('.{fmt}'))", timeout=30_000)
    href = page.evaluate("() => [...document.querySelectorAll('#text-export a')].map(a => a.href).find(h => h.endsWith('.svg'))")
    assert "layer1" in href  # the view as the browser showed it: layer 1


def test_export_view_draws_the_requested_steps_and_unit(tmp_path, text_loaded):
    from studio.domains import text
    from studio.ui.blocks import export_view

    trace = text.generate(text_loaded, TextSettings("Tw", 60, seed=1)).trace
    path = export_view(trace, {"format": "svg", "layer": 1, "unit": 3, "order": "index", "start": 10, "end": 40}, tmp_path)
    assert path.endswith("layer1-unit3-steps10-39.svg")
    assert "<svg" in Path(path).read_text()[:500]
    png = export_view(trace, {"format": "png", "layer": 9, "unit": -4, "start": "x", "end": None}, tmp_path)
    assert png.endswith(".png") and Path(png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.browser
def test_ask_why_a_character_came_out(studio_url, chromium_page, viewer):
    """Click a character: its top guesses, the saliency painted on the text, the cell diagram; a
    named target ("why not 'e'?") is explained too; a trajectory point moves the cursor."""
    page = generate_in_browser(chromium_page, studio_url, prompt="To be", seed="4")
    page.locator("#text-viewer .lv-ch[data-step='20']").click()
    panel = "#text-explain .ex-root"
    page.wait_for_function(f"document.querySelector('{panel}').dataset.step === '20'", timeout=30_000)
    assert page.locator(f"{panel} .ex-guesses tr").count() == 5
    assert page.locator(f"{panel} svg.ex-sal rect").count() == 21  # one bar per step 0..20
    assert page.locator(f"{panel} svg.ex-cell").count() == 1 and "c<sub>t</sub>" in page.inner_html(panel)
    # the saliency is painted onto the text, nothing after the explained step
    page.wait_for_function("document.querySelector('#text-viewer .lv-legend').innerText.includes('saliency')")
    assert page.locator("#text-viewer .lv-ch[data-step='30']").evaluate("s => s.style.background") == "rgb(238, 238, 238)"
    page.locator("#text-why-not textarea").fill("e")
    page.locator("#text-why-not textarea").press("Enter")
    page.wait_for_function(f"document.querySelector('{panel}').innerText.includes('target \"e\"')", timeout=30_000)
    assert page.locator(f"{panel} svg.ex-surprise rect").count() == len("To be") + 400 + 1 - 1  # every shown step
    page.click(f"{panel} .ex-paint-surprise")
    page.wait_for_function("document.querySelector('#text-viewer .lv-legend').innerText.includes('surprise')")
    page.locator(f"{panel} circle.ex-point[data-step='7']").click()
    page.wait_for_function(f"document.querySelector('{panel}').dataset.step === '7'", timeout=30_000)


def test_explain_endpoint(studio_url):
    import math

    from gradio_client import Client

    client = Client(studio_url, verbose=False)
    answer = client.predict("text", "tiny", "To be, or not to be", None, 10, 1, 3, "", "gradient_x_input",
                            api_name="/explain")
    assert answer["step"] == 10 and len(answer["saliency"]) == 11 and len(answer["topk"]) == 5
    a = answer["anatomy"]
    assert a["layer"] == 1 and a["unit"] == 3
    assert math.isclose(a["f"] * a["c_prev"] + a["i"] * a["g"], a["c"], abs_tol=1e-5)
    assert math.isclose(a["o"] * math.tanh(a["c"]), a["h"], abs_tol=1e-5)
    for gate in ("i", "f", "g", "o"):
        pre = a["pre"][gate]
        assert math.isclose(pre["input"] + pre["recurrent"] + pre["bias"], pre["total"], abs_tol=1e-6)
    with pytest.raises(Exception, match="one character"):
        client.predict("text", "tiny", "To be", None, 2, 0, 0, "€", "gradient_x_input", api_name="/explain")
    with pytest.raises(Exception, match="Unknown domain"):
        client.predict("poetry", "", "x", None, 0, 0, 0, "", "", api_name="/explain")


def test_experiment_endpoints(studio_url):
    from gradio_client import Client

    client = Client(studio_url, verbose=False)
    sample = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind to suffer\n"
    answer = client.predict("text", "tiny", sample, None, "newline", 3, api_name="/probe")
    assert answer["measure"] == "auc" and len(answer["hits"]) == 3 and answer["steps"] == len(sample)
    assert 0 <= answer["hits"][0]["score"] <= 1
    answer = client.predict("text", "tiny", 4, "1:0,1:1", "0:2:f=1", 10, api_name="/intervene")
    assert answer["original"] and answer["changed"] and all(v == 0 for v in answer["kl"][:10])
    answer = client.predict("text", "tiny", "", sample, None, api_name="/compare")
    assert {(p["layer_a"], p["layer_b"]) for p in answer["cka"]} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert abs(next(p["cka"] for p in answer["cka"] if p["layer_a"] == p["layer_b"] == 1) - 1) < 1e-6
    with pytest.raises(Exception, match="is not one of"):
        client.predict("text", "tiny", 4, "", "0:2:q=1", 0, api_name="/intervene")


def open_experiment(page, tab: str) -> None:
    """Open the Text tab's experiments accordion and one of its tabs."""
    if not page.locator("#text-xp-probe-tab, #text-xp-pattern-tab, #text-xp-intervene-tab").first.is_visible():
        page.locator("#text-experiments").get_by_text("Experiment on units").click()
    page.locator("#text-experiments").get_by_role("tab", name=tab).click()


def brush(page, prefix: str, first: float, last: float) -> None:
    """Drag across the viewer's heatmap from `first` to `last` (fractions of its width)."""
    overlay = page.locator(f"#{prefix}-viewer .lv-overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    x = lambda f: box["x"] + 46 + f * (box["width"] - 46)  # noqa: E731 (46 px: the unit-label gutter)
    page.mouse.move(x(first), box["y"] + 30)
    page.mouse.down()
    page.mouse.move(x(last), box["y"] + 30, steps=5)
    page.mouse.up()


@pytest.mark.browser
def test_brush_a_range_and_find_where_its_units_are_on_together(studio_url, chromium_page):
    """LSTMVis' pattern match: the brushed steps fill the form; the units above the threshold
    throughout are listed with every place they are on together; a match moves the viewer's cursor."""
    page = generate_in_browser(chromium_page, studio_url, prompt="To be", seed="5")
    open_experiment(page, "Pattern match")
    brush(page, "text", 0.40, 0.41)
    page.wait_for_function("document.querySelector('#text-xp-steps textarea').value.includes('-')", timeout=20_000)
    start, end = map(int, page.input_value("#text-xp-steps textarea").split("-"))
    assert 0 < end - start <= 10
    assert page.input_value("#text-xp-threshold textarea") == ""  # the default: set from the selection
    page.click("#text-xp-match")
    results = "#text-xp-results .xp-root"
    page.wait_for_function(f"document.querySelector('{results}').dataset.kind === 'pattern'", timeout=60_000)
    matches = page.locator(f"{results} li.xp-match")
    assert matches.count() >= 1
    assert f"step {start}–{end}" in page.inner_text(f"{results} h4")
    assert "(set from your selection)" in page.inner_text(f"{results} h4")
    assert page.locator(f"{results} li.xp-selected").count() == 1  # the selection itself is among them
    other = page.locator(f"{results} li.xp-onscreen:not(.xp-selected)")
    target = other.first if other.count() else matches.first
    step = int(target.get_attribute("data-start"))
    target.click()
    page.wait_for_function(f"document.querySelector('#text-selection').innerText.includes('Step {step} ')", timeout=20_000)


@pytest.mark.browser
def test_ablate_units_and_see_both_outputs_side_by_side(studio_url, chromium_page):
    """Switch units off from a step on: the original and the changed output side by side, where
    they part marked, the KL per step zero before the intervention."""
    page = generate_in_browser(chromium_page, studio_url, prompt="To be", seed="6")
    open_experiment(page, "Intervene")
    # a click on a row's label only picks the unit; a shift-click adds it to the units, and says so
    overlay = page.locator("#text-viewer .lv-overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    page.mouse.click(box["x"] + 20, box["y"] + 5)
    page.wait_for_timeout(1500)
    assert page.input_value("#text-xp-units textarea") == ""
    page.keyboard.down("Shift")
    page.mouse.click(box["x"] + 20, box["y"] + 5)
    page.keyboard.up("Shift")
    page.wait_for_function("document.querySelector('#text-xp-units textarea').value.includes(':')", timeout=20_000)
    added = page.input_value("#text-xp-units textarea")
    assert f"Added unit {added}" in page.inner_text("#text-xp-units-note")
    page.fill("#text-xp-units textarea", "1:3, 1:7, 0:2, 0:9")
    page.fill("#text-xp-from input", "20")
    page.click("#text-xp-intervene")
    results = "#text-xp-results .xp-root"
    page.wait_for_function(f"document.querySelector('{results}').dataset.kind === 'intervene'", timeout=60_000)
    outputs = page.locator(f"{results} .xp-output")
    assert outputs.count() == 2
    original, changed = (outputs.nth(k).locator("pre").inner_text() for k in range(2))
    assert original.startswith("To be") and changed.startswith("To be") and original != changed
    divergence = int(page.get_attribute(f"{results} .xp-summary", "data-divergence"))
    # the state changes at step 20, so the first character it can change is the one read at step 21
    assert divergence > 20 and original[:divergence] == changed[:divergence] != original[: divergence + 1]
    assert page.locator(f"{results} .xp-diverged").count() == 2
    kl = page.eval_on_selector_all(f"{results} svg.xp-kl rect title", "ts => ts.map(t => t.textContent)")
    kl = [float(t.split(": ")[1]) for t in kl]
    assert len(kl) > 20 and max(kl[:20]) == 0 and kl[20] > 0


@pytest.mark.browser
def test_probe_opens_a_unit_and_compare_links_the_cursors(studio_url, chromium_page):
    """A probe's row opens its unit in the viewer; the comparison's second viewer follows the
    first one's cursor (and the first follows it back)."""
    page = generate_in_browser(chromium_page, studio_url, prompt="To be", seed="8")
    open_experiment(page, "Probe")
    page.click("#text-xp-probe")
    results = "#text-xp-results .xp-root"
    page.wait_for_function(f"document.querySelector('{results}').dataset.kind === 'probe'", timeout=60_000)
    row = page.locator(f"{results} tr.xp-hit").nth(1)
    layer, unit, quantity = (row.get_attribute(f"data-{k}") for k in ("layer", "unit", "quantity"))
    row.click()
    root = "#text-viewer .lv-root"
    page.wait_for_function(f"document.querySelector('{root} .lv-unit').value === '{unit}'")
    assert page.input_value(f"{root} .lv-layer") == layer and page.input_value(f"{root} .lv-quantity") == quantity
    open_experiment(page, "Compare")
    page.click("#text-xp-compare")
    page.wait_for_function(f"document.querySelector('{results}').dataset.kind === 'compare'", timeout=60_000)
    page.wait_for_function("document.querySelector('#text-compare-viewer .lv-root').dataset.ready === 'yes'", timeout=60_000)
    assert page.locator(f"{results} td.xp-cka").count() == 4
    page.locator("#text-viewer .lv-ch[data-step='30']").click()
    page.wait_for_function("document.querySelector('#text-compare-viewer .lv-root').dataset.cursor === '30'")
    page.locator("#text-compare-viewer .lv-ch[data-step='12']").click()
    page.wait_for_function("document.querySelector('#text-viewer .lv-root').dataset.cursor === '12'")
