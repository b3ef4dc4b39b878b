"""The Speech tab end to end: through the API (gradio_client) and in Debian chromium (playwright).
Tiny untrained models; the page is built from speech's create_tab alone (app.py wires it in)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from studio.domains.speech.codec import HOP, N_MELS, SAMPLE_RATE, SpeechCodec
from studio.domains.speech.model import FrameModel, FrameModelConfig, SpeechModel, SpeechModelConfig


@pytest.fixture(scope="module")
def speech_url(serve, tmp_path_factory):
    import gradio as gr

    from studio.domains import speech
    from studio.domains.speech.tab import create_tab

    torch.manual_seed(0)
    tts = SpeechModel(SpeechModelConfig(hidden_size=16, embed_size=8, prenet_size=8, voice_size=4)).eval()
    with torch.no_grad():  # never stops: the length cap (12 steps a character + 20) ends it, a short, fast answer
        tts.stop.weight.zero_()
        tts.stop.bias.fill_(-20.0)
    frames = FrameModel(FrameModelConfig(hidden_size=8, num_layers=3)).eval()  # not the usual 2 layers
    folder = tmp_path_factory.mktemp("models")
    for name, model in (("tiny-tts", tts), ("tiny-frames", frames)):
        speech.save(folder / name, model, SpeechCodec())
    models = {name: speech.load(folder / name) for name in ("tiny-tts", "tiny-frames")}
    with gr.Blocks() as demo:
        create_tab(models, [])
    return serve(demo)


def test_speech_endpoints_answer_through_gradio_client(speech_url, tmp_path):
    from gradio_client import Client, handle_file

    from studio.trace import Trace

    client = Client(speech_url, verbose=False)
    notes, audio, payload, units, no_trace_yet, selection, alignment, features = client.predict(
        "tiny-tts", "hi", 0, 1, api_name="/generate_speech")
    data, rate = soundfile.read(audio)
    assert rate == SAMPLE_RATE and len(data) > 0 and no_trace_yet is None
    with np.load(features) as arrays:
        frames = arrays["log_mel"].shape[0]
        assert arrays["log_mel"].shape[1] == N_MELS and len(data) == frames * HOP
    trace = Trace.load_npz(client.predict(api_name="/speech_trace"))
    assert trace.num_layers == 2 and trace.steps * 3 == frames
    assert alignment is not None
    assert payload["steps"] == trace.steps and payload["track"]["kind"] == "spectrogram"
    assert payload["track"]["image"]["rows"] == N_MELS
    assert "length cap" in notes and "decoder LSTM 1" in units
    # blanks from the API (dropdowns are checked by gradio itself) are adjusted and said, never a traceback
    notes, *_ = client.predict("tiny-tts", None, 1, None, api_name="/generate_speech")
    assert "default sentence" in notes

    stereo = tmp_path / "stereo-8k.wav"
    t = np.arange(8000) / 8000
    soundfile.write(stereo, np.stack([np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 300 * t)], 1) * 0.3, 8000)
    notes, audio, payload, units, no_trace_yet, selection, npz = client.predict(
        handle_file(str(stereo)), "tiny-frames", 0.5, 0.3, 0, api_name="/continue_speech")
    assert "Mixed 2 channels" in notes and "Resampled" in notes and soundfile.info(audio).duration > 1.0
    trace_file = client.predict(api_name="/speech_continue_trace")
    assert Trace.load_npz(trace_file).num_layers == 3 and "layer 2" in units  # the frame LSTM's own layers

    junk = tmp_path / "junk.wav"
    junk.write_text("not audio at all")
    with pytest.raises(Exception, match="not an audio file"):
        client.predict(handle_file(str(junk)), api_name="/speech_features")
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(22050), 22050)
    with pytest.raises(Exception, match="silent"):
        client.predict(handle_file(str(silent)), "tiny-frames", 1, 0.3, 0, api_name="/continue_speech")


@pytest.mark.browser
def test_browser_gets_audio_and_the_viewer_over_the_spectrogram(speech_url, chromium_page, viewer, tmp_path):
    page = chromium_page
    page.goto(speech_url)
    page.locator("#speech-text textarea").fill("hello")
    page.click("#speech-generate")
    speech_viewer = viewer(page, "speech")
    speech_viewer.check_everything(tmp_path, 4, "speech")
    # Gradio 6's player serves the wav through its download link; wavesurfer makes the
    # <audio> element itself only once played, so either counts as "audio with a source"
    found = """() => [...document.querySelectorAll('#speech-audio audio')].some(a => (a.currentSrc || a.src || '').length > 0)
                     || [...document.querySelectorAll('#speech-audio a[download]')].some(a => a.href.endsWith('.wav'))"""
    page.wait_for_function(found, timeout=60_000)
    # a click on a frame of the spectrogram strip selects that decoder step
    speech_viewer.click_step(5)
    speech_viewer.wait_selected(5)
