"""The Music tab: compose or continue a chorale, hear it, and see the gates on its piano roll."""

from __future__ import annotations

import gradio as gr

from studio import analysis, viz
from studio.domains import music
from studio.sampling import SamplingConfig
from studio.trace import QUANTITY_TITLES, Trace
from studio.ui.common import clamp_int, notes_markdown, number_or, output_dir

HEATMAP_UNITS = 48  # rows per heatmap: enough to see structure, small enough to read
SAMPLE_RATE = 22050  # audio: FluidSynth renders a minute of chorale in well under a second
SOURCES = ["Compose from scratch", "Continue an uploaded file", "Continue a chorale from music21's corpus"]
PRIMER_TYPES = [*music.MIDI_SUFFIXES, *music.SCORE_SUFFIXES]


def render_views(trace: Trace, layer, quantity: str, unit):
    """Everything that depends only on the trace and the view settings, so changing the layer,
    unit or colouring repaints without generating again."""
    layer = clamp_int(layer, 0, trace.num_layers - 1, 0)
    unit = clamp_int(unit, 0, trace.hidden_size - 1, 0)
    quantity = quantity if quantity in QUANTITY_TITLES else "tanh_c"
    frames = music.frame_trace(trace)
    units = analysis.order_units(frames, layer, by="variance")[:HEATMAP_UNITS]
    notes = analysis.interesting_units(trace, layer, k=6)
    units_md = f"**Units worth a look (layer {layer})**, over every token read: type one into *Unit*.\n\n" + "\n".join(
        f"- {note.reason}" for note in notes
    )
    heatmaps = viz.gate_heatmaps(frames, layer, units=units, unit=unit)
    return music.render_piano_roll(trace, layer, quantity, unit), heatmaps, units_md


def create_music_tab(models: dict, problems: list[str]) -> None:
    """models: {name: (MusicModel, card)} loaded once by app.py."""
    names = list(models)
    if problems:
        gr.Markdown("**Some checkpoints could not be loaded:**\n\n" + notes_markdown(problems))
    if not names:
        gr.Markdown("No music model is available in `models/`. Train one with `python -m studio train music "
                    "--data ../shared/data/jsb-chorales-quarter.json --out models/NAME`.")
        return

    def describe(name):
        card = models[name][1]
        config, metrics = card["config"], card.get("metrics", {})
        test = metrics.get("test_nll_per_frame")
        return (f"**{name}**: {config['num_layers']} layers × {config['hidden_size']} units, pitches "
                f"{music.note_name(config['min_pitch'])}–{music.note_name(config['max_pitch'])}"
                + (f", JSB test NLL {test:.2f} nats per frame" if test else "")
                + f". Data: {card.get('data', {}).get('source', 'unknown')}.")

    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model_name = gr.Dropdown(names, value=names[0], label="Model")
            model_info = gr.Markdown(describe(names[0]))
            source = gr.Radio(SOURCES, value=SOURCES[0], label="Start from")
            upload = gr.File(label="Primer file (MIDI, MusicXML, ABC, kern)", file_types=PRIMER_TYPES, type="filepath")
            chorale = gr.Dropdown(music.CORPUS_CHORALES, value=music.CORPUS_CHORALES[0],
                                  label="Chorale (music21 corpus; none of these is a JSB test piece)")
            primer_bars = gr.Number(4, label=f"Primer bars to keep (1 to {music.MAX_PRIMER_BARS})", precision=0)
            # Numbers, not Sliders: any value typed or sent to the API is clamped with a note
            bars = gr.Number(8, label=f"Bars to generate (1 to {music.MAX_BARS})", precision=0)
            temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature (0 = greedy)")
            with gr.Row():
                top_k = gr.Number(0, label="Top-k (0 = off)", precision=0)
                seed = gr.Number(0, label="Seed", precision=0, elem_id="music-seed")
                tempo = gr.Number(80, label="Tempo (quarter notes per minute)")
            generate_button = gr.Button("Compose", variant="primary", elem_id="music-generate")
        with gr.Column(scale=2):
            notes = gr.Markdown(elem_id="music-notes")
            audio = gr.Audio(label="Listen", type="filepath", elem_id="music-audio", interactive=False)
            with gr.Row():
                layer = gr.Dropdown(_layer_choices(models[names[0]][0]), value=0, label="Layer")
                quantity = gr.Dropdown([(title, key) for key, title in QUANTITY_TITLES.items()],
                                       value="tanh_c", label="Colour notes by")
                unit = gr.Number(0, label="Unit", precision=0)
            with gr.Row():
                download_midi = gr.File(label="MIDI (.mid)")
                download_trace = gr.File(label="Trace (.npz)")
            units_md = gr.Markdown()
    # png: for these pictures it encodes a little faster than Gradio's default webp
    roll = gr.Plot(label="Piano roll, notes coloured by the chosen unit", elem_id="music-roll", format="png")
    heatmaps = gr.Plot(label="The chosen unit, then every gate and the cell after each frame (most varying units × steps)",
                       elem_id="music-heatmaps", format="png")
    trace_state = gr.State()

    def on_model_change(name):
        return describe(name), gr.update(choices=_layer_choices(models[name][0]), value=0)

    def on_generate(name, source_value, upload_path, chorale_name, primer_bars_value, bars_value, temp, k,
                    seed_value, tempo_value, layer_value, quantity_value, unit_value):
        if name not in models:
            raise gr.Error(f"Unknown model {name!r}; pick one from the list.")
        model, _ = models[name]
        keep = clamp_int(primer_bars_value, 1, music.MAX_PRIMER_BARS, 4)
        try:
            primer = None
            if source_value == SOURCES[1]:
                if not upload_path:
                    raise gr.Error("Upload a primer file first (MIDI, MusicXML, ABC or kern), or compose from scratch.")
                primer = music.read_primer(upload_path, model.codec, max_bars=keep)
            elif source_value == SOURCES[2]:
                primer = music.corpus_primer(chorale_name or music.CORPUS_CHORALES[0], model.codec, max_bars=keep)
        except music.MusicInputError as error:
            raise gr.Error(str(error)) from None
        settings = music.MusicSettings(
            bars=clamp_int(bars_value, -10**9, 10**9, 8),
            primer=primer,
            tempo_bpm=tempo_value,  # blank or silly tempos are fixed, with a note, by music.clean_settings
            sampling=SamplingConfig(
                temperature=number_or(temp, 1.0),
                top_k=clamp_int(k, 0, model.codec.size, 0),
                seed=clamp_int(seed_value, 0, 2**62, 0),
            ),
        )
        try:
            result, trace = music.generate(model, settings)
            folder = output_dir()
            midi = music.frames_to_midi(result.frames, result.steps_per_quarter, result.tempo_bpm)
            midi.write(str(folder / "chorale.mid"))
            sound, audio_note = music.synthesize(midi, SAMPLE_RATE)
            music.write_wav(folder / "chorale.wav", sound, SAMPLE_RATE)
            trace.meta["model"] = name
            trace.save_npz(folder / "trace.npz")
            views = render_views(trace, layer_value, quantity_value, unit_value)
        except Exception as error:  # the user keeps their settings; they get words, not a traceback
            raise gr.Error(f"Composing failed: {error}") from None
        generated = len(result.frames) - result.primer_steps
        summary = (f"Continued {result.primer_steps} frames of *{primer.source}* with {generated} new ones."
                   if primer else f"Composed {generated} frames ({generated // model.codec.steps_per_bar} bars) from scratch.")
        shown = [summary, *result.notes] + ([audio_note] if audio_note else [])
        return (notes_markdown(shown), str(folder / "chorale.wav"), *views,
                str(folder / "chorale.mid"), str(folder / "trace.npz"), trace)

    def on_view_change(trace, layer_value, quantity_value, unit_value):
        if trace is None:  # nothing composed yet: keep the page as it is
            return gr.skip(), gr.skip(), gr.skip()
        return render_views(trace, layer_value, quantity_value, unit_value)

    model_name.change(on_model_change, model_name, [model_info, layer])
    view_inputs = [trace_state, layer, quantity, unit]
    view_outputs = [roll, heatmaps, units_md]
    generate_button.click(
        on_generate,
        [model_name, source, upload, chorale, primer_bars, bars, temperature, top_k, seed, tempo, layer, quantity, unit],
        [notes, audio, *view_outputs, download_midi, download_trace, trace_state],
        api_name="generate_music",
    )
    for control in (layer, quantity):
        control.change(on_view_change, view_inputs, view_outputs, api_visibility="private")
    unit.submit(on_view_change, view_inputs, view_outputs, api_visibility="private")


def _layer_choices(model) -> list[tuple[str, int]]:
    return [(f"layer {k}", k) for k in range(model.config.num_layers)]
