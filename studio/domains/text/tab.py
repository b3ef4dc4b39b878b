"""The Text tab: prompt -> generated characters, painted by a chosen unit, with the gate views."""

from __future__ import annotations

import gradio as gr

from studio.domains import text
from studio.sampling import SamplingConfig
from studio.ui import blocks
from studio.ui.common import clamp_int, notes_markdown, number_or, output_dir

WINDOW = 100  # characters per heatmap window: few enough to label each column with its character
EXAMPLE_PROMPTS = ["ROMEO:\n", "First Citizen:\nWe are accounted poor citizens", "KING HENRY VI:\nO God! methinks"]
NO_MODEL = ("No text model is available in `models/`. Train one with "
            "`python -m studio train text --data FILE --out models/NAME`.")


def render_views(generation, layer, quantity, unit, order, window_from=0, whole=False):
    """Everything that depends only on the generation and the view settings, so changing the
    layer, unit, colouring or window repaints without generating again."""
    trace = generation.trace
    view = blocks.read_view(trace, layer, quantity, unit, order)
    if whole:
        start, end = trace.shown_from, trace.steps
    else:
        start = trace.shown_from + clamp_int(window_from, 0, max(0, trace.steps - trace.shown_from - 1), 0)
        end = min(trace.steps, start + WINDOW)
    return (text.render(generation, view), blocks.paint_heatmaps(trace, view, start, end),
            blocks.units_markdown(trace, view.layer))


def create_tab(models: dict, problems: list[str]) -> None:
    """models: {name: LoadedModel} loaded once by app.py."""
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            header = blocks.model_header(models, problems, NO_MODEL)
            if header is None:
                return
            model_name, model_info = header
            prompt = gr.Textbox(label="Prompt (primes the state; empty starts fresh)", lines=4, value=EXAMPLE_PROMPTS[0])
            gr.Examples([[p] for p in EXAMPLE_PROMPTS], inputs=[prompt])
            # a Number, not a Slider: any value typed or sent to the API is clamped with a note
            length = gr.Number(400, label=f"Length (characters, 1 to {text.MAX_LENGTH:,})", precision=0)
            temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature (0 = greedy)")
            with gr.Row():
                top_k = gr.Number(0, label="Top-k (0 = off)", precision=0)
                top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p")
                seed = gr.Number(0, label="Seed", precision=0, elem_id="text-seed")
            generate_button = gr.Button("Generate", variant="primary", elem_id="text-generate")
        with gr.Column(scale=2):
            notes = gr.Markdown(elem_id="text-notes")
            controls = blocks.view_controls(models[model_name.value], "Colour characters by")
            with gr.Row():
                window_from = gr.Number(0, label=f"Plots show {WINDOW} characters from character", precision=0)
                whole = gr.Checkbox(False, label="Plots show the whole sequence (no character labels)")
            coloured = gr.HTML(elem_id="text-output")
            with gr.Row():
                download_text = gr.File(label="Text (.txt)")
                download_trace = gr.File(label="Trace (.npz)")
    views = blocks.gate_views("text", "The chosen unit, then every gate and the cell over time (units × characters)")
    generation_state = gr.State()

    def on_model_change(name):
        loaded = blocks.loaded_or_error(models, name)
        return blocks.describe(loaded), gr.update(choices=blocks.layer_choices(loaded), value=0)

    def on_generate(name, prompt_text, length_value, temp, k, p, seed_value, *view):
        loaded = blocks.loaded_or_error(models, name)
        settings = text.TextSettings(
            prompt=prompt_text if isinstance(prompt_text, str) else "",
            length=clamp_int(length_value, -10**9, 10**9, 400),
            sampling=SamplingConfig(
                temperature=number_or(temp, 0.8),
                top_k=clamp_int(k, 0, loaded.codec.size, 0),
                top_p=number_or(p, 1.0),
                seed=clamp_int(seed_value, 0, 2**62, 0),
            ),
        )
        try:
            generation = text.generate(loaded, settings)
        except Exception as error:  # the user keeps their prompt; they get words, not a traceback
            raise gr.Error(f"Generation failed: {error}") from None
        folder = output_dir()
        files = text.write_files(generation, folder)
        generation.trace.save_npz(folder / "trace.npz")
        return (notes_markdown(generation.result.notes), *render_views(generation, *view),
                blocks.saturation_picture(generation.trace), str(files["text"]), str(folder / "trace.npz"), generation)

    def on_view_change(generation, *view):
        if generation is None:  # nothing generated yet: keep the page as it is
            return gr.skip(), gr.skip(), gr.skip()
        return render_views(generation, *view)

    model_name.change(on_model_change, model_name, [model_info, controls.layer])
    view_controls = [*controls.inputs, window_from, whole]
    view_inputs = [generation_state, *view_controls]
    view_outputs = [coloured, views.heatmaps, views.units]
    generate_button.click(
        on_generate,
        [model_name, prompt, length, temperature, top_k, top_p, seed, *view_controls],
        [notes, *view_outputs, views.saturation, download_text, download_trace, generation_state],
        api_name="generate_text",
    )
    controls.on_change(on_view_change, view_inputs, view_outputs)
    whole.change(on_view_change, view_inputs, view_outputs, api_visibility="private")
    window_from.submit(on_view_change, view_inputs, view_outputs, api_visibility="private")
