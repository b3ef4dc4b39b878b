"""The Handwriting tab: text -> pen strokes (or free scribble), drawn live, with the attention
window and the trace viewer (the pen's path painted by a unit, the point under the cursor marked)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from studio import workers
from studio.domains import handwriting as hw
from studio.domains.base import Generation
from studio.domains.handwriting.codec import MAX_TEXT
from studio.domains.handwriting.data import load_stroke_file, pad_strokes
from studio.domains.handwriting.generate import MAX_POINTS, HandwritingSettings
from studio.domains.handwriting.model import SYNTHESIS
from studio.domains.handwriting.render import animated_svg, attention_html
from studio.ui import blocks, inputs, keep_bar
from studio.ui.common import clamp_int, notes_markdown, number_or, output_dir
from studio.ui.drawing_pad import drawing_pad

STYLE_SAMPLE = Path(__file__).resolve().parents[3] / "assets" / "handwriting-style.json"
STYLES = ["none", "style sample (assets)", "uploaded file", "drawing pad"]
NO_MODEL = ("No handwriting model is available in `models/`. Train one with "
            "`python -m studio train handwriting --out models/NAME`.")


def animation(generation: Generation) -> str:
    """The handwriting drawn stroke by stroke, in ink (the viewer paints it by a unit)."""
    return ('<div id="handwriting-animation" style="overflow:auto;background:white;border:1px solid #ddd;'
            'border-radius:6px;padding:4px">' + animated_svg(generation.result) + "</div>")


def read_style(choice, uploaded, pad=None, style_text="") -> tuple[list | None, str, list[str]]:
    """(primer strokes or None, their transcript, notes) for the style the user picked; the style
    text box (what the sample says) overrides a file's own transcript, and fills in the pad's."""
    typed = style_text.strip() if isinstance(style_text, str) else ""
    if choice == STYLES[1]:
        strokes, text = load_stroke_file(STYLE_SAMPLE)
    elif choice == STYLES[2]:
        if not isinstance(uploaded, str) or not uploaded:
            return None, "", ["No style file was uploaded; wrote without priming."]
        strokes, text = load_stroke_file(uploaded)
    elif choice == STYLES[3]:
        strokes, text = pad_strokes(pad)
        return strokes, text.strip() or typed, []
    else:
        return None, "", []
    return strokes, typed or text, []


def create_tab(models: dict, problems: list[str]):
    """models: {name: LoadedModel} loaded once by app.py (a model the Train tab adds later is found in
    it). Returns the model list (None without a model)."""
    # the synthesis models (they write your text) first, the domain's default model first of them; the
    # dict is reordered in place, so that it stays the one the Train tab adds to
    for name, _ in sorted(models.items(), key=lambda item: (item[1].card["kind"] != SYNTHESIS,
                                                            item[0] != hw.DEFAULT_MODEL.name, item[0])):
        models[name] = models.pop(name)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            if (header := blocks.model_header(models, problems, NO_MODEL)) is None:
                return None  # no model: the header says how to train one
            model_name, model_info = header
            text_box = gr.Textbox(label=f"Text to write (up to {MAX_TEXT} characters)", value="hello world", lines=2)
            button = gr.Button("Write", variant="primary", elem_id="handwriting-generate")  # in the first screen
            bias = inputs.Slider(0, 4, value=0.5, step=0.1, label="Bias (0 = wild, higher = neater)")
            seed = inputs.Number(0, label="Seed", precision=0, elem_id="handwriting-seed")
            style = inputs.Radio(STYLES, value="none", label="Style (priming)")
            with gr.Accordion("Drawing pad: write a word in your hand, type it below; it becomes the style", open=True,
                              elem_id="handwriting-pad-box"):
                pad = drawing_pad("handwriting-pad")
            # a style's own inputs show only when it is chosen, under the pad (which stays: writing on it picks it,
            # and nothing above it may move while one writes)
            style_file = gr.File(label="Style stroke file (.json {strokes, text}, .xml, .ndjson, .npz)",
                                 type="filepath",
                                 visible=False, elem_id="handwriting-style-file")
            style_text = gr.Textbox(label="What the style sample says (overrides the file's transcript)",
                                    elem_id="handwriting-style-text", visible=False)
            points = inputs.Number(600, label="Free-scribble points (prediction models)", precision=0)
            svg_file, png_file = blocks.downloads("SVG", "PNG")
        with gr.Column(scale=3):
            notes = gr.Markdown(elem_id="handwriting-notes")
            written = gr.HTML(elem_id="handwriting-output")
            keep = keep_bar.keep_bar("handwriting")
            panel = blocks.gate_panel("handwriting", hw, models)
            attention = gr.HTML(label="Attention window (characters × pen steps)", elem_id="handwriting-attention")
    generation_state = gr.State()

    def on_generate(name, text, bias_value, seed_value, style_choice, style_path, points_value, style_words=None,
                    pad_value=None):
        loaded = blocks.loaded_or_error(models, name)
        settings = HandwritingSettings(
            text=text if isinstance(text, str) else "", bias=number_or(bias_value, 0.5),
            seed=clamp_int(seed_value, 0, 2**62, 0), max_points=clamp_int(points_value, 10, MAX_POINTS, 600))
        try:
            settings.primer_strokes, settings.primer_text, extra = read_style(style_choice, style_path, pad_value,
                                                                             style_words)
            folder = output_dir()
            generation, files = workers.generate_files(hw, loaded, settings, folder)
        except ValueError as error:  # words, not a traceback (StrokeFileError too); inputs stay as typed
            raise gr.Error(str(error)) from None
        result = generation.result
        status = ([f"Finished: the window passed the last character after {len(result.offsets)} pen points."]
                  if result.phi is not None and result.finished else [])
        values = blocks.gate_values(generation.trace, hw.track(generation), f"{name}:")
        return (notes_markdown(extra + result.notes + status), animation(generation), *values, "",
                attention_html(result), str(files["svg"]), str(files["png"]), generation)

    blocks.follow_model(model_name, model_info, models)
    # writing on the pad picks it as the style (an emptied pad leaves the choice alone)
    pad.change(lambda value: STYLES[3] if isinstance(value, dict) and value.get("strokes") else gr.update(),
               pad, style, api_visibility="private", queue=False, show_progress="hidden")
    style.change(lambda chosen: (gr.update(visible=chosen == STYLES[2]),
                                 gr.update(visible=chosen in (STYLES[2], STYLES[3]))),
                 style, [style_file, style_text], api_visibility="private", queue=False, show_progress="hidden")
    style_file.upload(lambda: STYLES[2], None, style, api_visibility="private", queue=False, show_progress="hidden")
    generate_inputs = [model_name, text_box, bias, seed, style, style_file, points, style_text, pad]
    generate_outputs = [notes, written, *panel.outputs, panel.selection, attention, svg_file, png_file,
                        generation_state]
    generated = button.click(on_generate, generate_inputs, generate_outputs, api_name="generate_handwriting")
    blocks.example_on_load(button, on_generate, generate_inputs, generate_outputs)
    blocks.wire_panel(panel, generation_state, hw, models)
    keep_bar.wire(keep, generated, generation_state, hw, models)
    return model_name
