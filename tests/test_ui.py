"""The Text tab end to end: through the API (gradio_client) and in Debian chromium (playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory, serve):
    """The real app, serving a tiny untrained text model plus one corrupt checkpoint."""
    import app
    from studio.domains import text

    models_dir = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    codec = text.TextCodec.from_text("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,:;!?'\n")
    model = text.TextModel(text.TextModelConfig(codec.size, embed_size=8, hidden_size=16, num_layers=2))
    text.save(models_dir / "tiny", model, codec, {"data": {"source": "made by the test", "licence": "none"}})
    (models_dir / "broken.json").write_text("{not json")
    demo = app.build_demo(models_dir)
    return serve(demo)


def call_generate(client, **overrides):
    args = dict(name="tiny", prompt_text="To be", length_value=40, temp=0.8, k=0, p=1.0, seed_value=3,
                layer_value=0, quantity_value="tanh_c", unit_value=2, order_value="variance",
                window_from=0, whole=False)
    args.update(overrides)
    return client.predict(*args.values(), api_name="/generate_text")


def test_text_endpoint_answers_through_gradio_client(studio_url):
    from gradio_client import Client

    client = Client(studio_url, verbose=False)
    notes, html, heatmaps, units_md, saturation, txt_file, npz_file = call_generate(client)
    assert html.count('class="ch') == len("To be") + 40  # prompt + generated, one span each
    assert html.count('class="ch prompt"') == len("To be")
    assert "rgba(" in html
    assert Path(txt_file).read_text(encoding="utf-8").startswith("To be")
    assert len(Path(txt_file).read_text(encoding="utf-8")) == len("To be") + 40
    from studio.trace import Trace

    trace = Trace.load_npz(npz_file)
    assert trace.steps == len("To be") + 40 and trace.num_layers == 2 and trace.hidden_size == 16
    assert heatmaps is not None and saturation is not None
    assert "unit" in units_md

    # same seed, same text; bad input is adjusted and said, never a traceback
    again = call_generate(client)
    assert again[1] == html
    notes, html, *_ = call_generate(client, prompt_text="€€€", length_value=999_999, temp=0, layer_value=1, unit_value=-3)
    assert "Dropped characters" in notes and "'€'" in notes
    assert "5,000" in notes and "greedy" in notes
    assert html.count('class="ch') == 5000


def test_broken_checkpoint_is_named_and_text_tab_still_works(studio_url):
    import httpx

    page = httpx.get(studio_url, timeout=30).text
    assert "broken.json" in page  # the start-up problem is on the page, naming the file


@pytest.mark.browser
def test_browser_generates_coloured_text_and_heatmap(studio_url, chromium_page):
    page = chromium_page
    page.goto(studio_url)
    prompt = page.get_by_label("Prompt", exact=False)
    prompt.fill("Once upon")
    page.get_by_label("Seed").fill("7")
    page.click("#text-generate")
    spans = page.locator("#text-output .lstm-text span.ch")
    spans.first.wait_for(timeout=60_000)
    assert spans.count() == len("Once upon") + 400
    coloured = page.evaluate(
        "() => [...document.querySelectorAll('#text-output span.ch')]"
        ".filter(s => getComputedStyle(s).backgroundColor !== 'rgba(0, 0, 0, 0)').length"
    )
    assert coloured > 100
    heatmap = page.locator("#text-heatmaps img")
    heatmap.wait_for(timeout=60_000)
    assert page.evaluate("() => document.querySelector('#text-heatmaps img').naturalWidth") > 200
    assert prompt.input_value() == "Once upon"  # what the user typed is kept


def test_view_settings_repaint_from_the_trace_alone():
    """Layer, unit, colouring and window come from the stored trace: no new generation."""
    from studio.domains import text
    from studio.sampling import SamplingConfig
    from studio.domains.base import LoadedModel
    from studio.domains.text.tab import WINDOW, render_views

    torch.manual_seed(0)
    codec = text.TextCodec.from_text("abc d\n")
    model = text.TextModel(text.TextModelConfig(codec.size, embed_size=4, hidden_size=8, num_layers=2))
    generation = text.generate(LoadedModel("t", model, codec, {}), text.TextSettings("ab", 250, SamplingConfig(seed=1)))
    html, heatmaps, units_md = render_views(generation, 1, "f", 99, "saturation", window_from=30)
    heat_ax = heatmaps.axes[0]
    labels = [t.get_text() for t in heat_ax.texts]  # written under the columns
    assert len(labels) == WINDOW  # one column per character, each labelled
    assert html.count('class="ch') == 252
    assert "Layer 1, unit 7" in heatmaps.axes[1].get_title(loc="left")  # unit 99 clamped to the last unit
    _, whole_heatmaps, *_ = render_views(generation, 0, "tanh_c", 0, "index", whole=True)
    assert whole_heatmaps.axes[0].get_images()[0].get_array().shape[1] == 252
