"""The Handwriting tab: text -> pen strokes (or free scribble), drawn live, coloured by a unit."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from studio import analysis, viz
from studio.domains import handwriting as hw
from studio.trace import QUANTITY_TITLES, Trace
from studio.ui.common import clamp_int, notes_markdown, number_or, output_dir

HEATMAP_UNITS = 48
STYLE_SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "handwriting-style.json"
STYLES = ["none", "style sample (assets)", "uploaded file"]


def render_views(result: hw.HandwritingResult, trace: Trace, layer, quantity: str, unit):
    """Views that depend only on the result, trace and view settings (no new generation)."""
    layer = clamp_int(layer, 0, trace.num_layers - 1, 0)
    unit = clamp_int(unit, 0, trace.hidden_size - 1, 0)
    quantity = quantity if quantity in QUANTITY_TITLES else "tanh_c"
    colors = hw.unit_colors(result, trace, layer, quantity, unit)
    start = trace.meta.get("shown_from", 0)
    units = analysis.order_units(trace, layer, by="variance")[:HEATMAP_UNITS]
    html = ('<div id="handwriting-animation" style="overflow:auto;background:white;border:1px solid #ddd;'
            'border-radius:6px;padding:4px">' + hw.animated_svg(result, colors) + "</div>")
    return (html, hw.strokes_figure(result, trace, layer, quantity, unit),
            viz.gate_heatmaps(trace, layer, units=units, start=start))


def create_handwriting_tab(models: dict, problems: list[str]) -> None:
    """models: {name: (model, codec or None, card)} loaded once by app.py (hw.load_model)."""
    # the synthesis models (they write your text) first: the tab's main use is the default
    names = sorted(models, key=lambda name: (models[name][2].get("kind_of_model") != "synthesis", name))
    if problems:
        gr.Markdown("**Some checkpoints could not be loaded:**\n\n" + notes_markdown(problems))
    if not names:
        gr.Markdown("No handwriting model is available in `models/`. Train one with "
                    "`python -m studio train handwriting --out models/NAME`.")
        return

    def describe(name):
        card = models[name][2]
        kind = "writes your text (synthesis)" if card.get("kind_of_model") == "synthesis" else "free scribble (prediction)"
        metrics = card.get("metrics", {})
        nll = metrics.get("held_out_nll_per_point")
        done = metrics.get("finished_fraction")
        return (f"**{name}**: {kind}" + (f", held-out NLL {nll:.3f} nats/point" if nll is not None else "")
                + (f", finishes {done:.0%} of held-out phrases" if done is not None else "")
                + ". Trained on **synthetic** handwriting drawn from Hershey cursive fonts.")

    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model_name = gr.Dropdown(names, value=names[0], label="Model")
            model_info = gr.Markdown(describe(names[0]))
            text_box = gr.Textbox(label=f"Text to write (up to {hw.MAX_TEXT} characters)", value="hello world", lines=2)
            bias = gr.Slider(0, 4, value=0.5, step=0.1, label="Bias (0 = wild, higher = neater)")
            seed = gr.Number(0, label="Seed", precision=0, elem_id="handwriting-seed")
            style = gr.Radio(STYLES, value="none", label="Style (priming)")
            style_file = gr.File(label="Style stroke file (.json {strokes, text}, .xml, .ndjson, .npz)", type="filepath")
            points = gr.Number(600, label="Free-scribble points (prediction models)", precision=0)
            button = gr.Button("Write", variant="primary", elem_id="handwriting-generate")
        with gr.Column(scale=2):
            notes = gr.Markdown(elem_id="handwriting-notes")
            with gr.Row():
                layer = gr.Number(0, label="Layer", precision=0)
                quantity = gr.Dropdown([(title, key) for key, title in QUANTITY_TITLES.items()], value="tanh_c",
                                       label="Colour strokes by")
                unit = gr.Number(0, label="Unit", precision=0)
            animation = gr.HTML(elem_id="handwriting-output")
            strokes_plot = gr.Plot(label="Strokes coloured by the unit", elem_id="handwriting-strokes")
            with gr.Row():
                svg_file = gr.File(label="SVG")
                png_file = gr.File(label="PNG")
    attention = gr.Plot(label="Attention window (characters × pen steps)", elem_id="handwriting-attention")
    heatmaps = gr.Plot(label="Gates and cell over pen steps (units × steps)", elem_id="handwriting-heatmaps")
    held = gr.State()

    def on_generate(name, text, bias_value, seed_value, style_choice, style_path, points_value, *view):
        if name not in models:
            raise gr.Error(f"Unknown model {name!r}; pick one from the list.")
        model, codec, card = models[name]
        settings = hw.HandwritingSettings(
            text=text or "", bias=number_or(bias_value, 0.5),
            seed=clamp_int(seed_value, 0, 2**62, 0), max_points=clamp_int(points_value, 10, 3000, 600))
        extra = []
        try:
            if style_choice == STYLES[1]:
                settings.primer_strokes, settings.primer_text = hw.load_stroke_file(STYLE_SAMPLE)
            elif style_choice == STYLES[2]:
                if not style_path:
                    extra.append("No style file was uploaded; wrote without priming.")
                else:
                    settings.primer_strokes, settings.primer_text = hw.load_stroke_file(style_path)
            result, trace = hw.generate(model, codec, card, settings)
        except (ValueError, hw.StrokeFileError) as error:  # words, not a traceback; inputs stay as typed
            raise gr.Error(str(error)) from None
        folder = output_dir()
        (folder / "handwriting.svg").write_text(hw.strokes_to_svg(result.strokes), encoding="utf-8")
        hw.write_png(result.strokes, folder / "handwriting.png")
        status = ([f"Finished: the window passed the last character after {len(result.offsets)} pen points."]
                  if result.phi is not None and result.finished else [])
        views = render_views(result, trace, *view)
        return (notes_markdown(extra + result.notes + status), *views, hw.attention_figure(result),
                str(folder / "handwriting.svg"), str(folder / "handwriting.png"), (result, trace))

    def on_view_change(kept, *view):
        if kept is None:
            return gr.skip(), gr.skip(), gr.skip()
        return render_views(*kept, *view)

    model_name.change(describe, model_name, model_info)
    view_controls = [layer, quantity, unit]
    button.click(
        on_generate,
        [model_name, text_box, bias, seed, style, style_file, points, *view_controls],
        [notes, animation, strokes_plot, heatmaps, attention, svg_file, png_file, held],
        api_name="generate_handwriting",
    )
    quantity.change(on_view_change, [held, *view_controls], [animation, strokes_plot, heatmaps], api_visibility="private")
    for field in (layer, unit):
        field.submit(on_view_change, [held, *view_controls], [animation, strokes_plot, heatmaps], api_visibility="private")
