"""The Music tab: compose or continue a chorale, hear it, and see the gates in the trace viewer
over its notes (one step per pitch read, and one per end of frame)."""

from __future__ import annotations

import gradio as gr

from studio import workers
from studio.domains import music
from studio.domains.music.data import (
    CORPUS_CHORALES,
    MAX_PRIMER_BARS,
    MIDI_SUFFIXES,
    SCORE_SUFFIXES,
    MusicInputError,
    corpus_primer,
)
from studio.domains.music.data import read_primer as read_primer_file
from studio.domains.music.generate import MAX_BARS, MusicSettings
from studio.sampling import SamplingConfig
from studio.ui import blocks, byom, inputs, keep_bar
from studio.ui.common import clamp_int, notes_markdown, number_or, output_dir

SOURCES = ["Compose from scratch", "Continue an uploaded file", "Continue a chorale from music21's corpus"]
PRIMER_TYPES = [*MIDI_SUFFIXES, *SCORE_SUFFIXES]
NO_MODEL = ("No music model is available in `models/`. Train one with `python -m studio train music "
            "--data ../shared/data/jsb-chorales-quarter.json --out models/NAME`.")


def read_primer(loaded, source_value, upload_path, chorale_name, primer_bars_value):
    """The primer the request asks for (None: compose from scratch); gr.Error with the reason."""
    keep = clamp_int(primer_bars_value, 1, MAX_PRIMER_BARS, 4)
    try:
        if source_value == SOURCES[1]:
            if not isinstance(upload_path, str) or not upload_path:
                raise gr.Error("Upload a primer file first (MIDI, MusicXML, ABC or kern), or compose from scratch.")
            return read_primer_file(upload_path, loaded.codec, max_bars=keep)
        if source_value == SOURCES[2]:
            name = chorale_name if isinstance(chorale_name, str) and chorale_name else CORPUS_CHORALES[0]
            return corpus_primer(name, loaded.codec, max_bars=keep)
    except MusicInputError as error:
        raise gr.Error(str(error)) from None
    return None


def create_tab(models: dict, problems: list[str]):
    """models: {name: LoadedModel} loaded once by app.py (a training adds to it). Returns the model
    list (the Train tab refreshes it), None when there is no model."""
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            if (header := blocks.model_header(models, problems, NO_MODEL, "music")) is None:
                return  # no model: the header says how to train one
            model_name, model_info = header
            source = inputs.Radio(SOURCES, value=SOURCES[0], label="Start from")
            # only the inputs of the chosen source show (an upload picks "an uploaded file" itself)
            upload = gr.File(label="Primer file (MIDI, MusicXML, ABC, kern)", file_types=PRIMER_TYPES, type="filepath",
                             visible=False, elem_id="music-upload")
            chorale = inputs.Dropdown(CORPUS_CHORALES, value=CORPUS_CHORALES[0], visible=False, elem_id="music-chorale",
                                  label="Chorale (music21 corpus; none of these is a JSB test piece)")
            primer_bars = inputs.Number(4, label=f"Primer bars to keep (1 to {MAX_PRIMER_BARS})", precision=0,
                                        visible=False, elem_id="music-primer-bars")
            generate_button = gr.Button("Compose", variant="primary", elem_id="music-generate")
            # Numbers, not Sliders: any value typed or sent to the API is clamped with a note
            bars = inputs.Number(8, label=f"Bars to generate (1 to {MAX_BARS})", precision=0)
            temperature = inputs.Slider(0, 2, value=1.0, step=0.05, label="Temperature (0 = greedy)")
            with gr.Row():
                top_k = inputs.Number(0, label="Top-k (0 = off)", precision=0)
                seed = inputs.Number(0, label="Seed", precision=0, elem_id="music-seed")
                tempo = inputs.Number(0, label="Tempo (quarter notes per minute; 0 = the primer's, else 80)")
            (download_midi,) = blocks.downloads("MIDI (.mid)")
            byom.onnx_button(models, model_name, "music")
        with gr.Column(scale=3):
            notes = gr.Markdown(elem_id="music-notes")
            audio = gr.Audio(label="Listen", type="filepath", elem_id="music-audio", interactive=False)
            keep = keep_bar.keep_bar("music")
            panel = blocks.gate_panel("music", music, models)
    generation_state = gr.State()

    def on_generate(name, source_value, upload_path, chorale_name, primer_bars_value, bars_value, temp, k,
                    seed_value, tempo_value):
        loaded = blocks.loaded_or_error(models, name)
        primer = read_primer(loaded, source_value, upload_path, chorale_name, primer_bars_value)
        settings = MusicSettings(
            bars=clamp_int(bars_value, -10**9, 10**9, 8),
            primer=primer,
            tempo_bpm=tempo_value,  # blank or silly tempos are fixed, with a note, by music.clean_settings
            sampling=SamplingConfig(
                temperature=number_or(temp, 1.0),
                top_k=clamp_int(k, 0, loaded.codec.size, 0),
            ),
            seed=clamp_int(seed_value, 0, 2**62, 0),
        )
        try:
            folder = output_dir()
            generation, files = workers.generate_files(music, loaded, settings, folder)
            values = blocks.gate_values(generation.trace, music.track(generation), f"{name}:")
        except Exception as error:  # the user keeps their settings; they get words, not a traceback
            raise gr.Error(f"Composing failed: {error}") from None
        result = generation.result
        generated = len(result.frames) - result.primer_frames
        summary = (f"Continued {result.primer_frames} frames of *{primer.source}* with {generated} new ones "
                   f"({result.bars} bars) at {result.tempo_bpm:g} bpm."
                   if primer else f"Composed {generated} frames ({result.bars} bars) from scratch.")
        return (notes_markdown([summary, *result.notes]), str(files["audio"]), *values, "",
                str(files["midi"]), generation)

    blocks.follow_model(model_name, model_info, models)
    def on_source(chosen):
        return (gr.update(visible=chosen == SOURCES[1]), gr.update(visible=chosen == SOURCES[2]),
                gr.update(visible=chosen != SOURCES[0]))

    private = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
    source.change(on_source, source, [upload, chorale, primer_bars], **private)
    upload.upload(lambda: SOURCES[1], None, source, **private)
    generate_inputs = [model_name, source, upload, chorale, primer_bars, bars, temperature, top_k, seed, tempo]
    generate_outputs = [notes, audio, *panel.outputs, panel.selection, download_midi, generation_state]
    generated = generate_button.click(on_generate, generate_inputs, generate_outputs, api_name="generate_music")
    blocks.example_on_load(generate_button, on_generate, generate_inputs, generate_outputs)
    blocks.wire_panel(panel, generation_state, music, models)
    keep_bar.wire(keep, generated, generation_state, music, models)
    return model_name
