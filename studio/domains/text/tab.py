"""The Text tab: prompt -> generated characters, in the trace viewer (characters painted by the
chosen unit under the gates' heatmap), with the saturation plot and the units worth a look."""

from __future__ import annotations

import gradio as gr

from studio import limits, workers
from studio.batching import MAX_BATCH, MicroBatcher
from studio.domains import text
from studio.domains.text.generate import MAX_LENGTH, TextSettings
from studio.sampling import SamplingConfig
from studio.ui import blocks, byom, inputs, keep_bar
from studio.ui.common import clamp_int, notes_markdown, number_or, output_dir

EXAMPLE_PROMPTS = ["ROMEO:\n", "First Citizen:\nWe are accounted poor citizens", "KING HENRY VI:\nO God! methinks"]
NO_MODEL = ("No text model is available in `models/`. Train one with "
            "`python -m studio train text --data FILE --out models/NAME`.")


def create_tab(models: dict, problems: list[str]):
    """models: {name: LoadedModel} loaded once by app.py (a training adds to it). Returns the model
    list (the Train tab refreshes it), None when there is no model."""
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            header = blocks.model_header(models, problems, NO_MODEL, "text")
            if header is None:
                return
            model_name, model_info = header
            prompt = gr.Textbox(label="Prompt (primes the state; empty starts fresh)", lines=4, value=EXAMPLE_PROMPTS[0])
            # the main button first, in the first screen; the settings after it
            generate_button = gr.Button("Generate", variant="primary", elem_id="text-generate")
            gr.Examples([[p] for p in EXAMPLE_PROMPTS], inputs=[prompt])
            # a Number, not a Slider: any value typed or sent to the API is clamped with a note
            length = inputs.Number(400, label=f"Length (characters, 1 to {MAX_LENGTH:,})", precision=0)
            temperature = inputs.Slider(0, 2, value=0.8, step=0.05, label="Temperature (0 = greedy)")
            with gr.Row():
                top_k = inputs.Number(0, label="Top-k (0 = off)", precision=0)
                top_p = inputs.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p")
                seed = inputs.Number(0, label="Seed", precision=0, elem_id="text-seed")
            # a model trained on fixed windows from a zero state (an opened Keras tutorial model) samples as it
            # was trained with its window; 0 carries the state on (docs/byom.md)
            window = inputs.Number(0, label="Window (0 = carry the state on; N = re-read the last N tokens from zero)",
                                   precision=0, elem_id="text-window")
            byom.open_model_box(text, models, model_name, model_info, "text")  # below the first screen's task
            (download_text,) = blocks.downloads("Text (.txt)")
            byom.onnx_button(models, model_name, "text")
        with gr.Column(scale=3):
            notes = gr.Markdown(elem_id="text-notes")
            keep = keep_bar.keep_bar("text")
            panel = blocks.gate_panel("text", text, models)
    generation_state = gr.State()
    batchers: dict[str, MicroBatcher] = {}  # per loaded model: concurrent requests sampled as one batch

    def generate_batched(loaded, settings):
        key = workers.model_key(loaded)  # never id(): a user model let go leaves its id to the next object
        batcher = batchers.get(key)
        if batcher is None:
            batcher = batchers.setdefault(key, MicroBatcher(lambda items: workers.call(
                text, loaded, "generate_batch", [s for s, _ in items], [stop for _, stop in items], lane=text.NAME)))
            while len(batchers) > 32:  # a batcher holds its model: the oldest go (a waiting request keeps its own)
                batchers.pop(next(iter(batchers)))
        return batcher((settings, limits.stop_time()))  # each request keeps its own deadline

    def on_generate(name, prompt_text, length_value, temp, k, p, seed_value, window_value=0):
        loaded = blocks.loaded_or_error(models, name)
        settings = TextSettings(
            prompt=prompt_text if isinstance(prompt_text, str) else "",
            length=clamp_int(length_value, -10**9, 10**9, 400),
            sampling=SamplingConfig(
                temperature=number_or(temp, 0.8),
                top_k=clamp_int(k, 0, loaded.codec.size, 0),
                top_p=number_or(p, 1.0),
            ),
            seed=clamp_int(seed_value, 0, 2**62, 0),
            window=clamp_int(window_value, 0, 10_000, 0),
        )
        try:
            generation = generate_batched(loaded, settings)
        except Exception as error:  # the user keeps their prompt; they get words, not a traceback
            raise gr.Error(f"Generation failed: {error}") from None
        folder = output_dir()
        files = text.write_files(generation, folder)
        values = blocks.gate_values(generation.trace, text.track(generation), f"{name}:")
        return notes_markdown(generation.result.notes), *values, "", str(files["text"]), generation

    on_generate.batch_size = MAX_BATCH  # its own queue, a batch's worth at once (ui.common.apply_request_limits)
    blocks.follow_model(model_name, model_info, models)
    # an opened model's card may give its training window: offered as the window when it is picked
    model_name.change(lambda name: (models[name].card.get("training", {}).get("window") or 0) if name in models
                      else gr.skip(),
                      model_name, window, api_visibility="private")
    generate_inputs = [model_name, prompt, length, temperature, top_k, top_p, seed, window]
    generate_outputs = [notes, *panel.outputs, panel.selection, download_text, generation_state]
    generated = generate_button.click(on_generate, generate_inputs, generate_outputs, api_name="generate_text")
    blocks.example_on_load(generate_button, on_generate, generate_inputs, generate_outputs)
    blocks.wire_panel(panel, generation_state, text, models)
    keep_bar.wire(keep, generated, generation_state, text, models)
    return model_name
