"""The Text tab: prompt -> generated characters, painted by a chosen unit, with gate plots."""

from __future__ import annotations

import threading

import gradio as gr

from studio import analysis, viz
from studio.domains import text
from studio.sampling import SamplingConfig
from studio.trace import QUANTITY_TITLES, Trace
from studio.ui.common import clamp_int, notes_markdown, number_or, output_dir, png_plot

ORDERINGS = ["index", "variance", "saturation"]
HEATMAP_UNITS = 48  # rows per heatmap: enough to see structure, small enough to read
WINDOW = 100  # characters per heatmap window: few enough to label each column with its character
EXAMPLE_PROMPTS = ["ROMEO:\n", "First Citizen:\nWe are accounted poor citizens", "KING HENRY VI:\nO God! methinks"]


def render_views(trace: Trace, layer, quantity: str, unit, order: str, window_from=0, whole=False):
    """Everything that depends only on the trace and the view settings, so changing the
    layer, unit, colouring or window repaints without generating again."""
    layer = clamp_int(layer, 0, trace.num_layers - 1, 0)
    unit = clamp_int(unit, 0, trace.hidden_size - 1, 0)
    quantity = quantity if quantity in QUANTITY_TITLES else "tanh_c"
    start = trace.meta.get("shown_from", 0)
    if whole:
        window_start, window_end = start, trace.steps
    else:
        window_start = start + clamp_int(window_from, 0, max(0, trace.steps - start - 1), 0)
        window_end = min(trace.steps, window_start + WINDOW)
    units = analysis.order_units(trace, layer, by=order if order in ORDERINGS else "index")[:HEATMAP_UNITS]
    notes = analysis.interesting_units(trace, layer, k=6, start=start)
    units_md = f"**Units worth a look (layer {layer})**: type one into *Unit*.\n\n" + "\n".join(
        f"- {note.reason}" for note in notes
    )
    return (
        text.render_html(trace, layer, quantity, unit),
        viz.gate_heatmaps(trace, layer, units=units, start=window_start, end=window_end, unit=unit),
        units_md,
    )


def create_text_tab(models: dict, problems: list[str]) -> None:
    """models: {name: (TextModel, CharCodec, card)} loaded once by app.py."""
    names = list(models)
    if problems:
        gr.Markdown("**Some checkpoints could not be loaded:**\n\n" + notes_markdown(problems))
    if not names:
        gr.Markdown("No text model is available in `models/`. Train one with "
                    "`python -m studio train text --data FILE --out models/NAME`.")
        return

    def describe(name):
        card = models[name][2]
        config, metrics = card["config"], card.get("metrics", {})
        val = metrics.get("val_nats_per_char", metrics.get("best_val_loss"))
        return (f"**{name}**: {config['num_layers']} layers × {config['hidden_size']} units, "
                f"{len(card['codec']['chars'])} characters" + (f", val loss {val:.3f} nats/char" if val else "")
                + f". Data: {card.get('data', {}).get('source', 'unknown')}.")

    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model_name = gr.Dropdown(names, value=names[0], label="Model")
            model_info = gr.Markdown(describe(names[0]))
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
            with gr.Row():
                layer = gr.Dropdown(_layer_choices(models[names[0]][0]), value=0, label="Layer")
                quantity = gr.Dropdown([(title, key) for key, title in QUANTITY_TITLES.items()],
                                       value="tanh_c", label="Colour characters by")
                unit = gr.Number(0, label="Unit", precision=0)
                order = gr.Radio(ORDERINGS, value="variance", label="Order heatmap rows by")
            with gr.Row():
                window_from = gr.Number(0, label=f"Plots show {WINDOW} characters from character", precision=0)
                whole = gr.Checkbox(False, label="Plots show the whole sequence (no character labels)")
            coloured = gr.HTML(elem_id="text-output")
            units_md = gr.Markdown()
            with gr.Row():
                download_text = gr.File(label="Text (.txt)")
                download_trace = gr.File(label="Trace (.npz)")
    # png: for these pictures it encodes a little faster than Gradio's default webp
    heatmaps = gr.Plot(label="The chosen unit, then every gate and the cell over time (units × characters)",
                       elem_id="text-heatmaps", format="png")
    saturation = gr.Plot(label="Gate saturation (Karpathy et al. 2015, Fig. 3)", format="png")
    trace_state = gr.State()
    painters: dict[int, viz.SaturationPainter] = {}  # the saturation picture, fast (see viz.SaturationPainter)
    painter_lock = threading.Lock()

    def on_model_change(name):
        return describe(name), gr.update(choices=_layer_choices(models[name][0]), value=0)

    def on_generate(name, prompt_text, length_value, temp, k, p, seed_value, *view):
        if name not in models:
            raise gr.Error(f"Unknown model {name!r}; pick one from the list.")
        model, codec, _ = models[name]
        settings = text.TextSettings(
            prompt=prompt_text or "",
            length=clamp_int(length_value, -10**9, 10**9, 400),
            sampling=SamplingConfig(
                temperature=number_or(temp, 0.8),
                top_k=clamp_int(k, 0, codec.size, 0),
                top_p=number_or(p, 1.0),
                seed=clamp_int(seed_value, 0, 2**62, 0),
            ),
        )
        try:
            result, trace = text.generate(model, codec, settings)
        except Exception as error:  # the user keeps their prompt; they get words, not a traceback
            raise gr.Error(f"Generation failed: {error}") from None
        folder = output_dir()
        (folder / "generated.txt").write_text(result.prompt + result.text, encoding="utf-8")
        trace.meta["model"] = name
        trace.save_npz(folder / "trace.npz")
        views = render_views(trace, *view)
        with painter_lock:  # one painter per layer count, shared by every request
            if trace.num_layers not in painters:
                painters[trace.num_layers] = viz.SaturationPainter(trace.num_layers)
            saturation_picture = png_plot(painters[trace.num_layers].paint(trace))
        return (notes_markdown(result.notes), *views, saturation_picture,
                str(folder / "generated.txt"), str(folder / "trace.npz"), trace)

    def on_view_change(trace, *view):
        if trace is None:  # nothing generated yet: keep the page as it is
            return gr.skip(), gr.skip(), gr.skip()
        return render_views(trace, *view)

    model_name.change(on_model_change, model_name, [model_info, layer])
    view_controls = [layer, quantity, unit, order, window_from, whole]
    view_inputs = [trace_state, *view_controls]
    view_outputs = [coloured, heatmaps, units_md]
    generate_button.click(
        on_generate,
        [model_name, prompt, length, temperature, top_k, top_p, seed, *view_controls],
        [notes, *view_outputs, saturation, download_text, download_trace, trace_state],
        api_name="generate_text",
    )
    for control in (layer, quantity, order, whole):
        control.change(on_view_change, view_inputs, view_outputs, api_visibility="private")
    for field in (unit, window_from):  # numbers repaint on Enter, not on every keystroke
        field.submit(on_view_change, view_inputs, view_outputs, api_visibility="private")


def _layer_choices(model) -> list[tuple[str, int]]:
    return [(f"layer {k}", k) for k in range(model.config.num_layers)]
