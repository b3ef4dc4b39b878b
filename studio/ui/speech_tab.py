"""The Speech tab: text -> mel frames (attention LSTM) -> Griffin-Lim audio, with the attention
alignment and the LSTM's gates on the frame axis; upload a recording to see its features and
let the frame LSTM continue it."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from studio import analysis, viz
from studio.domains import speech
from studio.trace import QUANTITY_TITLES, Trace
from studio.ui.common import clamp_int, notes_markdown, number_or, output_dir

HEATMAP_UNITS = 48
EXAMPLE_WAV = Path(__file__).resolve().parents[2] / "assets" / "speech-espeak-example.wav"
EXAMPLE_TEXTS = ["Speak the speech, I pray you.", "Good time of day unto my gracious lord!", "Is this done?"]


def render_views(trace: Trace, log_mel, layer, quantity: str, unit, boundary=None):
    """The spectrogram with one unit painted over it, and the gate heatmaps of one layer: they
    depend only on the trace and the view settings, so changing them repaints without generating."""
    layer = clamp_int(layer, 0, trace.num_layers - 1, 0)
    unit = clamp_int(unit, 0, trace.hidden_size - 1, 0)
    quantity = quantity if quantity in QUANTITY_TITLES else "tanh_c"
    values = trace.quantity(layer, quantity)[:, unit]
    if quantity == "c":
        values = values / (float(np.abs(values).max()) or 1.0)
    names = trace.meta.get("layer_names") or [f"layer {k}" for k in range(trace.num_layers)]
    title = f"log-mel spectrogram; line: {QUANTITY_TITLES[quantity]} of unit {unit} in {names[layer]}"
    mel_plot = speech.mel_figure(np.asarray(log_mel), title, unit_values=values, unit_label=f"unit {unit}",
                                 reduction=int(trace.meta.get("reduction", 1)), boundary=boundary)
    units = analysis.order_units(trace, layer, by="variance")[:HEATMAP_UNITS]
    return mel_plot, viz.gate_heatmaps(trace, layer, units=units)


def layer_choices(trace_or_count) -> list[tuple[str, int]]:
    names = trace_or_count.meta.get("layer_names") if isinstance(trace_or_count, Trace) else None
    count = trace_or_count.num_layers if isinstance(trace_or_count, Trace) else int(trace_or_count)
    return [(names[k] if names else f"layer {k}", k) for k in range(count)]


def create_speech_tab(models: dict, problems: list[str]) -> None:
    """models: {name: (SpeechModel | FrameModel, card)} loaded once by app.py."""
    tts = {name: entry for name, entry in models.items() if isinstance(entry[0], speech.SpeechModel)}
    frames = {name: entry for name, entry in models.items() if isinstance(entry[0], speech.FrameModel)}
    if problems:
        gr.Markdown("**Some checkpoints could not be loaded:**\n\n" + notes_markdown(problems))
    gr.Markdown("Text is turned into 80-bin log-mel frames by an LSTM decoder that reads the characters through a "
                "Graves attention window and decides itself when to stop; Griffin-Lim turns the frames into sound. "
                "Trained on espeak-ng's synthetic speech, so it can only ever sound like (a blurred) espeak-ng.")
    if not tts:
        gr.Markdown("No text-to-speech model is available in `models/`. Train one with "
                    "`python -m studio train speech --source FILE --out models/NAME`.")
    else:
        _text_to_speech(tts)
    gr.Markdown("### Your recording: its features, and the frame LSTM's continuation")
    _continue_section(frames)


def _describe(card: dict) -> str:
    config, metrics = card["config"], card.get("metrics", {})
    mcd = metrics.get("mcd_db")
    return (f"{config['hidden_size']}-unit attention LSTM + {config['decoder_layers']} decoder layer(s), "
            f"{config['reduction']} frames a step" + (f", MCD {mcd:.2f} dB on held-out sentences" if mcd else "")
            + f". Data: {card.get('data', {}).get('source', 'unknown')}.")


def _text_to_speech(models: dict) -> None:
    names = list(models)
    first_card = models[names[0]][1]
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model_name = gr.Dropdown(names, value=names[0], label="Model")
            model_info = gr.Markdown(_describe(first_card))
            text_box = gr.Textbox(label=f"Text (up to {speech.MAX_TEXT} characters)", lines=3, value=EXAMPLE_TEXTS[0],
                                  elem_id="speech-text")
            gr.Examples([[t] for t in EXAMPLE_TEXTS], inputs=[text_box])
            voices = first_card.get("codec", {}).get("voices", list(speech.VOICES))
            voice = gr.Dropdown([(v, k) for k, v in enumerate(voices)], value=0, label="Voice (espeak-ng voice it imitates)")
            seed = gr.Number(0, label="Seed (prenet dropout)", precision=0, elem_id="speech-seed")
            speak = gr.Button("Speak", variant="primary", elem_id="speech-generate")
        with gr.Column(scale=2):
            notes = gr.Markdown(elem_id="speech-notes")
            audio = gr.Audio(label="Generated speech (Griffin-Lim)", type="filepath", elem_id="speech-audio")
            with gr.Row():
                layer = gr.Dropdown(layer_choices(1 + first_card["config"]["decoder_layers"]), value=0, label="Layer")
                quantity = gr.Dropdown([(title, key) for key, title in QUANTITY_TITLES.items()], value="tanh_c",
                                       label="Draw over the spectrogram")
                unit = gr.Number(0, label="Unit", precision=0)
            with gr.Row():
                download_wav = gr.File(label="Audio (.wav)")
                download_features = gr.File(label="Features (.npz: log-mel, alignment)")
                download_trace = gr.File(label="Trace (.npz)")
    spectrogram = gr.Plot(label="Spectrogram with one unit", elem_id="speech-spectrogram")
    alignment = gr.Plot(label="Attention alignment", elem_id="speech-alignment")
    heatmaps = gr.Plot(label="Gates and cell over decoder steps (units × steps)", elem_id="speech-heatmaps")
    state = gr.State()

    def on_speak(name, text, voice_id, seed_value, layer_value, quantity_value, unit_value):
        if name not in models:
            raise gr.Error(f"Unknown model {name!r}; pick one from the list.")
        model, _ = models[name]
        settings = speech.SpeechSettings(text=text or "", voice=clamp_int(voice_id, -1, 10**6, 0),
                                         seed=clamp_int(seed_value, 0, 2**62, 0))
        try:
            result, trace = speech.generate(model, settings)
        except Exception as error:  # words, not a traceback; the text stays in the box
            raise gr.Error(f"Generation failed: {error}") from None
        folder = output_dir()
        wav = speech.write_wav(folder / "speech.wav", result.audio)
        features = speech.features_npz(folder / "speech-features.npz", result.log_mel, alignment=result.alignment,
                                       stop_probs=result.stop_probs, text=np.array(result.text))
        trace.meta["model"] = name
        trace_path = trace.save_npz(folder / "speech-trace.npz")
        report = speech.alignment_report(result.alignment)
        summary = (f"Spoke “{result.text}”: {len(result.audio) / speech.SAMPLE_RATE:.2f} s, {len(result.log_mel)} frames; "
                   f"{'the stop token ended it' if result.stopped else 'the length cap ended it'}; attention "
                   f"{'moved monotonically' if report['monotonic'] else 'stepped back ' + str(report['backward_steps']) + ' times'}"
                   f" and {'reached' if report['reaches_end'] else 'did not reach'} the end of the text.")
        mel_plot, heat = render_views(trace, result.log_mel, layer_value, quantity_value, unit_value)
        return (notes_markdown(result.notes + [summary]), str(wav), mel_plot,
                speech.alignment_figure(result.alignment, result.text, trace.meta["reduction"]), heat,
                str(wav), str(features), str(trace_path), (trace, result.log_mel))

    def on_view(saved, layer_value, quantity_value, unit_value):
        if saved is None:
            return gr.skip(), gr.skip()
        return render_views(saved[0], saved[1], layer_value, quantity_value, unit_value)

    speak.click(on_speak, [model_name, text_box, voice, seed, layer, quantity, unit],
                [notes, audio, spectrogram, alignment, heatmaps, download_wav, download_features, download_trace, state],
                api_name="generate_speech")
    model_name.change(lambda name: _describe(models[name][1]), model_name, model_info)
    for control in (layer, quantity):
        control.change(on_view, [state, layer, quantity, unit], [spectrogram, heatmaps], api_visibility="private")
    unit.submit(on_view, [state, layer, quantity, unit], [spectrogram, heatmaps], api_visibility="private")


def _continue_section(models: dict) -> None:
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            # a File, not an Audio input: anything can arrive, and we answer in words, not with a decoder error
            upload = gr.File(label="Recording (WAV, FLAC or OGG; any rate, mono or stereo)", elem_id="speech-upload")
            gr.Examples([[str(EXAMPLE_WAV)]], inputs=[upload], label="Or try espeak-ng saying a line")
            names = list(models)
            model_name = gr.Dropdown(names, value=names[0] if names else None, label="Frame LSTM (continue mode)")
            seconds = gr.Number(2.0, label=f"Seconds to continue (up to {speech.MAX_CONTINUE_SECONDS:g})")
            noise = gr.Slider(0, 1, value=0.3, step=0.05, label="Noise fed back each step")
            seed = gr.Number(0, label="Seed", precision=0)
            analyse = gr.Button("Show features", elem_id="speech-analyse")
            go_on = gr.Button("Continue it", variant="primary", elem_id="speech-continue", interactive=bool(names))
        with gr.Column(scale=2):
            notes = gr.Markdown()
            features_plot = gr.Plot(label="Log-mel spectrogram and pitch of the recording")
            continued = gr.Audio(label="Recording + continuation", type="filepath")
            continued_plot = gr.Plot(label="Primer | continuation, with one unit of the frame LSTM")
            with gr.Row():
                layer = gr.Dropdown([("layer 0", 0), ("layer 1", 1)], value=0, label="Layer")
                unit = gr.Number(0, label="Unit", precision=0)
            heatmaps = gr.Plot(label="Frame LSTM gates over steps")
            download = gr.File(label="Features (.npz)")

    def load(path):
        if not path:
            raise gr.Error("Upload a recording first.")
        try:
            return speech.read_audio(path)
        except speech.AudioError as error:
            raise gr.Error(str(error)) from None

    def on_analyse(path):
        loaded = load(path)
        log_mel = speech.encode_audio(loaded.audio)
        pitch_seconds = 10.0  # pyin is slow (~1 s per 2 s of audio on one core): only the start is tracked
        f0, voiced = speech.pitch(loaded.audio[: int(pitch_seconds * speech.SAMPLE_RATE)])
        f0 = np.concatenate([f0, np.full(max(0, len(log_mel) - len(f0)), np.nan, np.float32)])[: len(log_mel)]
        notes_list = list(loaded.notes)
        if len(loaded.audio) > pitch_seconds * speech.SAMPLE_RATE:
            notes_list.append(f"Pitch is tracked over the first {pitch_seconds:g} s only.")
        file = speech.features_npz(output_dir() / "recording-features.npz", log_mel, f0=f0, voiced_prob=voiced)
        voiced_share = float(np.mean(np.isfinite(f0)))
        notes_list.append(f"{len(loaded.audio) / speech.SAMPLE_RATE:.2f} s, {len(log_mel)} frames, voiced {voiced_share:.0%} of the time.")
        return notes_markdown(notes_list), speech.mel_figure(log_mel, "log-mel spectrogram; cyan: pitch (pyin)", f0=f0), str(file)

    def on_continue(path, name, seconds_value, noise_value, seed_value, layer_value, unit_value):
        if name not in models:
            raise gr.Error("No frame LSTM is available to continue recordings.")
        loaded = load(path)
        model, _ = models[name]
        settings = speech.ContinueSettings(seconds=number_or(seconds_value, 2.0), noise=number_or(noise_value, 0.0),
                                           seed=clamp_int(seed_value, 0, 2**62, 0))
        try:
            result, trace = speech.continue_audio(model, loaded.audio, settings)
        except speech.AudioError as error:
            raise gr.Error(str(error)) from None
        folder = output_dir()
        wav = speech.write_wav(folder / "continued.wav", result.audio)
        file = speech.features_npz(folder / "continued-features.npz", result.log_mel, primer_frames=result.primer_frames)
        mel_plot, heat = render_views(trace, result.log_mel, layer_value, "tanh_c", unit_value, boundary=result.primer_frames)
        return notes_markdown(loaded.notes + result.notes), str(wav), mel_plot, heat, str(file)

    analyse.click(on_analyse, upload, [notes, features_plot, download], api_name="speech_features")
    go_on.click(on_continue, [upload, model_name, seconds, noise, seed, layer, unit],
                [notes, continued, continued_plot, heatmaps, download], api_name="continue_speech")
