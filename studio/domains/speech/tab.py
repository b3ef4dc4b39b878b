"""The Speech tab: text -> mel frames (attention LSTM) -> Griffin-Lim audio, with the attention
alignment and the trace viewer over the spectrogram on the decoder-step axis; upload a recording
to see its features and let the frame LSTM continue it (with its own viewer)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from studio import workers
from studio.domains import speech
from studio.domains.speech.codec import SAMPLE_RATE, AudioError, encode_audio, pitch
from studio.domains.speech.data import LoadedAudio, band_note, read_audio
from studio.domains.speech.evaluate import alignment_report
from studio.domains.speech.generate import MAX_CONTINUE_SECONDS, MAX_TEXT, ContinueSettings, SpeechSettings
from studio.domains.speech.model import FRAME_KIND, TTS_KIND
from studio.domains.speech.render import alignment_html, features_npz, mel_figure
from studio.ui import blocks, inputs, keep_bar
from studio.ui.common import clamp_int, notes_markdown, number_or, output_dir

EXAMPLE_WAV = Path(__file__).resolve().parents[3] / "assets" / "speech-espeak-example.wav"
EXAMPLE_TEXTS = ["Speak the speech, I pray you.", "Good time of day unto my gracious lord!", "Is this done?"]
PITCH_SECONDS = 10.0  # pyin is slow (docs/benchmarks.md, Speech): only the start is tracked
INTRO = ("Text is turned into 80-bin log-mel frames by an LSTM decoder that reads the characters through a Graves "
         "attention window and decides itself when to stop; Griffin-Lim turns the frames into sound. Trained on "
         "espeak-ng's synthetic speech, so it can only ever sound like (a blurred) espeak-ng.")
NO_MODEL = ("No text-to-speech model is available in `models/`. Train one with "
            "`python -m studio train speech --source FILE --out models/NAME`.")
NO_FRAME_MODEL = ("No frame LSTM is available in `models/` to continue recordings. Train one with "
                  "`python -m studio train speech --kind frame --out models/NAME`.")


def create_tab(models: dict, problems: list[str]):
    """models: {name: LoadedModel} loaded once by app.py (text-to-mel and frame LSTMs together; a model
    the Train tab adds later is found in it). Returns the text-to-mel model list (None without one)."""
    gr.Markdown(INTRO)
    # two tasks, two sub-tabs: continuing a recording is found without scrolling past a synthesis
    with gr.Tabs():
        with gr.Tab("Speak a text", elem_id="speech-speak-tab"):
            model_name = _text_to_speech(models, problems)
        with gr.Tab("Your recording: features and continuation", elem_id="speech-recording-tab"):
            _recording({n: m for n, m in models.items() if m.card["kind"] == FRAME_KIND})
    return model_name


def _text_to_speech(every: dict, problems: list[str]):
    models = {n: m for n, m in every.items() if m.card["kind"] == TTS_KIND}  # listed; looked up in `every`
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            if (header := blocks.model_header(models, problems, NO_MODEL)) is None:
                return None
            model_name, model_info = header
            first = models[model_name.value]
            text_box = gr.Textbox(label=f"Text (up to {MAX_TEXT} characters)", lines=3, value=EXAMPLE_TEXTS[0],
                                  elem_id="speech-text")
            speak = gr.Button("Speak", variant="primary", elem_id="speech-generate")  # in the first screen
            gr.Examples([[t] for t in EXAMPLE_TEXTS], inputs=[text_box])
            voice = inputs.Dropdown([(v, k) for k, v in enumerate(first.codec.voices)], value=0,
                                label="Voice (espeak-ng voice it imitates)")
            seed = inputs.Number(0, label="Seed (prenet dropout)", precision=0, elem_id="speech-seed")
            # the audio's own download is the player's (a second copy would be a second file per answer)
            (download_features,) = blocks.downloads("Features (.npz: log-mel, alignment)")
        with gr.Column(scale=3):
            notes = gr.Markdown(elem_id="speech-notes")
            audio = gr.Audio(label="Generated speech (Griffin-Lim)", type="filepath", elem_id="speech-audio")
            keep = keep_bar.keep_bar("speech")
            panel = blocks.gate_panel("speech", speech, every)
            alignment = gr.HTML(label="Attention alignment", elem_id="speech-alignment")
    generation_state = gr.State()

    def on_speak(name, text, voice_id, seed_value):
        loaded = blocks.loaded_or_error(every, name)
        settings = SpeechSettings(text=text if isinstance(text, str) else "",
                                         voice=clamp_int(voice_id, -1, 10**6, 0), seed=clamp_int(seed_value, 0, 2**62, 0))
        folder = output_dir()
        try:
            generation, files = workers.generate_files(speech, loaded, settings, folder)
        except Exception as error:  # words, not a traceback; the text stays in the box
            raise gr.Error(f"Generation failed: {error}") from None
        result, trace = generation.result, generation.trace
        report = alignment_report(result.alignment)
        summary = (f"Spoke “{result.text}”: {len(result.audio) / SAMPLE_RATE:.2f} s, {len(result.log_mel)} frames; "
                   f"{'the stop token ended it' if result.stopped else 'the length cap ended it'}; attention "
                   f"{'moved monotonically' if report['monotonic'] else 'stepped back ' + str(report['backward_steps']) + ' times'}"
                   f" and {'reached' if report['reaches_end'] else 'did not reach'} the end of the text.")
        values = blocks.gate_values(trace, speech.track(generation), f"{name}:")
        return (notes_markdown(result.notes + [summary]), str(files["audio"]), *values, "",
                alignment_html(result.alignment, result.text, trace.detail.reduction),
                str(files["features"]), generation)

    blocks.follow_model(model_name, model_info, every)
    speak_inputs = [model_name, text_box, voice, seed]
    speak_outputs = [notes, audio, *panel.outputs, panel.selection, alignment, download_features, generation_state]
    spoken = speak.click(on_speak, speak_inputs, speak_outputs, api_name="generate_speech")
    blocks.example_on_load(speak, on_speak, speak_inputs, speak_outputs)
    blocks.wire_panel(panel, generation_state, speech, every)
    keep_bar.wire(keep, spoken, generation_state, speech, every)
    return model_name


def _read_upload(path) -> LoadedAudio:
    if not isinstance(path, str) or not path:
        raise gr.Error("Upload a recording first.")
    try:
        return read_audio(path)
    except AudioError as error:
        raise gr.Error(str(error)) from None


def use_recording(path):
    """The microphone's (or its upload's) file as the recording; clearing the microphone keeps the file."""
    return path if isinstance(path, str) and path else gr.update()


def on_analyse(path):
    """The recording's log-mel and pitch, as a picture and an .npz."""
    recording = _read_upload(path)
    log_mel = encode_audio(recording.audio)
    f0, voiced = pitch(recording.audio[: int(PITCH_SECONDS * SAMPLE_RATE)])
    f0 = np.concatenate([f0, np.full(max(0, len(log_mel) - len(f0)), np.nan, np.float32)])[: len(log_mel)]
    notes = list(recording.notes) + [note for note in [band_note(recording.audio)] if note]
    if len(recording.audio) > PITCH_SECONDS * SAMPLE_RATE:
        notes.append(f"Pitch is tracked over the first {PITCH_SECONDS:g} s only.")
    file = features_npz(output_dir() / "recording-features.npz", log_mel, f0=f0, voiced_prob=voiced)
    voiced_share = float(np.mean(np.isfinite(f0)))
    notes.append(f"{len(recording.audio) / SAMPLE_RATE:.2f} s, {len(log_mel)} frames, voiced {voiced_share:.0%} of "
                 "the time.")
    return notes_markdown(notes), mel_figure(log_mel, "log-mel spectrogram; cyan: pitch (pyin)", f0=f0), str(file)


def _recording(models: dict) -> None:
    names = list(models)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            # a File, not an Audio input: anything can arrive, and we answer in words, not with a decoder error
            upload = gr.File(label="Recording (WAV, FLAC or OGG; any rate, mono or stereo)", elem_id="speech-upload")
            # a recording made here becomes the upload above, so every button reads one input
            microphone = gr.Audio(sources=["microphone", "upload"], type="filepath", elem_id="speech-microphone",
                                  label="Or record one here (microphone); it replaces the file above")
            gr.Examples([[str(EXAMPLE_WAV)]], inputs=[upload], label="Or try espeak-ng saying a line")
            analyse = gr.Button("Show features", elem_id="speech-analyse")
            if names:
                model_name = inputs.Dropdown(names, value=names[0], label="Frame LSTM (continue mode)")
                model_info = gr.Markdown(blocks.describe(models[names[0]]))
                seconds = inputs.Number(2.0, label=f"Seconds to continue (up to {MAX_CONTINUE_SECONDS:g})")
                noise = inputs.Slider(0, 1, value=0.3, step=0.05, label="Noise fed back each step")
                seed = inputs.Number(0, label="Seed", precision=0)
                go_on = gr.Button("Continue it", variant="primary", elem_id="speech-continue")
            else:
                gr.Markdown(NO_FRAME_MODEL)
        with gr.Column(scale=2):
            notes = gr.Markdown()
            features_plot = gr.Plot(label="Log-mel spectrogram and pitch of the recording")
            download_features = gr.File(label="Features (.npz)")
            if names:
                continued = gr.Audio(label="Recording + continuation", type="filepath")
                keep = keep_bar.keep_bar("speech-continue")
                panel = blocks.gate_panel("speech-continue", speech, models)
    analyse.click(on_analyse, upload, [notes, features_plot, download_features], api_name="speech_features")
    microphone.change(use_recording, microphone, upload, api_name="speech_microphone")
    if not names:
        return
    generation_state = gr.State()

    def on_continue(path, name, seconds_value, noise_value, seed_value):
        loaded = blocks.loaded_or_error(models, name)
        recording = _read_upload(path)
        settings = ContinueSettings(recording.audio, seconds=number_or(seconds_value, 2.0),
                                           noise=number_or(noise_value, 0.0), seed=clamp_int(seed_value, 0, 2**62, 0))
        folder = output_dir()
        try:
            generation, files = workers.generate_files(speech, loaded, settings, folder)
        except AudioError as error:
            raise gr.Error(str(error)) from None
        values = blocks.gate_values(generation.trace, speech.track(generation), f"{name}:")
        return (notes_markdown(recording.notes + generation.result.notes), str(files["audio"]), *values, "",
                str(files["features"]), generation)

    blocks.follow_model(model_name, model_info, models)
    went_on = go_on.click(on_continue, [upload, model_name, seconds, noise, seed],
                [notes, continued, *panel.outputs, panel.selection, download_features, generation_state],
                api_name="continue_speech")
    blocks.wire_panel(panel, generation_state, speech, models)
    keep_bar.wire(keep, went_on, generation_state, speech, models)
