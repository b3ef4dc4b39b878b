"""Speech continue mode (issue 15): the noise goes only into what the frame LSTM reads next, the
output stays within the card's per-bin training range, training can read noisy inputs and its own
predictions, band-limited recordings get a note, `generate speech --continue`, the microphone.
Tiny models and signals made here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile
import torch

from studio.domains import speech
from studio.domains.base import LoadedModel
from studio.domains.speech.codec import HOP, N_MELS, SAMPLE_RATE, SpeechCodec
from studio.domains.speech.data import Corpus, band_note
from studio.domains.speech.generate import ContinueSettings
from studio.domains.speech.model import FrameModel, FrameModelConfig, layer_names, make_card
from studio.domains.speech.train import FrameTask

SR = SAMPLE_RATE


def tone(seconds=0.5, freq=220.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise_audio(seconds=0.5, seed=0):
    """White noise: energy in every band (the opposite of a telephone recording)."""
    return (0.1 * np.random.default_rng(seed).normal(size=int(seconds * SR))).astype(np.float32)


def telephone(audio):
    """The same signal through 8 kHz sampling: nothing above 4 kHz."""
    return librosa.resample(librosa.resample(audio, orig_sr=SR, target_sr=8000), orig_sr=8000, target_sr=SR)


def frames_model(drift=0.0, **config) -> LoadedModel:
    """A tiny frame LSTM; `drift` (normalised units) is added to every prediction, so an unguarded
    continuation climbs out of any range, as the shipped model did with noise fed back."""
    torch.manual_seed(0)
    model = FrameModel(FrameModelConfig(hidden_size=8, num_layers=1, **config)).eval()
    with torch.no_grad():
        model.head.bias.fill_(drift)
    codec = SpeechCodec()
    return LoadedModel("tiny", model, codec, make_card(model, codec, name="tiny"), layer_names(model), "tiny")


def continued(loaded, audio=None, **settings):
    settings = {"seconds": 0.5, "seed": 1, "griffin_lim_iters": 0, **settings}
    return speech.generate(loaded, ContinueSettings(audio=tone(0.3) if audio is None else audio, **settings))


def test_output_is_the_prediction_and_the_noise_only_goes_into_what_is_read():
    generation = continued(frames_model(), noise=0.5)
    result = generation.result
    made, fed = result.log_mel[result.primer_frames:], result.fed[result.primer_frames:]
    assert np.array_equal(result.log_mel[: result.primer_frames], result.fed[: result.primer_frames])
    assert made.shape == fed.shape and 0.3 < np.abs(made - fed).mean() < 0.5  # E|N(0, 0.5)| = 0.4 (std 1 here)
    # each generated group is what the model predicted from the group read before it
    predicted = generation.distributions["frames"].reshape(-1, N_MELS)
    start = result.primer_frames - 3  # the prediction read off the last primer group is the first group made
    np.testing.assert_allclose(made, predicted[start : start + len(made)], atol=1e-5)
    quiet = continued(frames_model(), noise=0.0).result
    np.testing.assert_allclose(quiet.log_mel, quiet.fed, atol=1e-6)


def test_the_guard_holds_predictions_to_the_cards_training_range_and_says_so():
    low, high = np.full(N_MELS, -8.0), np.full(N_MELS, -2.0)
    loaded = frames_model(drift=0.5, mel_min=low.tolist(), mel_max=high.tolist())
    free = continued(loaded, noise=0.3, seconds=1.0, keep_in_range=False).result
    assert free.log_mel[free.primer_frames:].max() > high.max() + 1  # the drift leaves the range unguarded
    held = continued(loaded, noise=0.3, seconds=1.0).result
    made = held.log_mel[held.primer_frames:]
    assert made.min() >= low.min() - 1e-4 and made.max() <= high.max() + 1e-4
    assert held.held_values > 0 and any(note.startswith("Held ") and "per-bin range" in note for note in held.notes)
    # a card without a range (checkpoints from before issue 15) is generated from unguarded, without a note
    old = continued(frames_model(drift=0.5), noise=0.3).result
    assert old.held_values == 0 and not any(note.startswith("Held ") for note in old.notes)


def test_a_continuation_is_read_again_from_what_the_model_was_fed():
    loaded = frames_model()
    generation = continued(loaded, noise=0.4)
    again = speech.score(loaded, speech.sequence_of(generation)).trace
    for a, b in zip(again.layers, generation.trace.layers, strict=True):
        for name in a:
            np.testing.assert_allclose(a[name], b[name], atol=1e-5)


def tiny_corpus(folder=None, utterances=70, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 40, utterances)
    mels = [rng.normal(-5, 1, (n, N_MELS)).astype(np.float32) for n in lengths]
    corpus = Corpus(mels, [f"line {k}" for k in range(utterances)], [k % 2 for k in range(utterances)],
                           ["test"] * 2 + ["train"] * (utterances - 2))
    if folder is not None:
        np.savez(Path(folder) / "corpus.npz", mels=np.concatenate(mels), offsets=np.concatenate([[0], np.cumsum(lengths)]),
                 texts=np.array(corpus.texts), voices=np.array(corpus.voices), split=np.array(corpus.split))
    return corpus


def test_training_reads_noisy_groups_and_its_own_predictions_but_targets_stay_clean():
    corpus = tiny_corpus()
    config = FrameModelConfig(hidden_size=8, num_layers=1)
    model = FrameModel(config)
    groups = FrameTask(corpus, config, batch_size=4, crop=30).train_batch(0, 0, 1, "cpu")
    clean = FrameTask(corpus, config, batch_size=4, crop=30)
    assert torch.equal(clean.read_groups(model, groups), groups[:, :-1])
    noisy = FrameTask(corpus, config, batch_size=4, crop=30, input_noise=1.0)
    read = noisy.read_groups(model, groups)
    assert read.shape == groups[:, :-1].shape and 0.1 < float((read - groups[:, :-1]).std()) < 1.0
    own = FrameTask(corpus, config, batch_size=4, crop=30, scheduled_sampling=1.0)
    with torch.no_grad():
        predicted, _ = model(groups[:, :-1])
    read = own.read_groups(model, groups)
    assert torch.equal(read[:, 0], groups[:, 0]) and torch.allclose(read[:, 1:], predicted[:, :-2 + 1])
    # validation draws its noise from a fixed seed: the same model scores the same
    model.eval()
    assert noisy.evaluate(model) == noisy.evaluate(model) and noisy.evaluate(model) != clean.evaluate(model)
    loss = noisy.loss(model.train(), groups)
    loss.backward()
    assert torch.isfinite(loss) and model.head.weight.grad is not None


def test_corpus_range_travels_in_the_frame_card_and_init_fine_tunes(tmp_path, capsys):
    from test_speech import _speech_cli  # the speech subcommands as __main__ wires them

    corpus = tiny_corpus(tmp_path)
    low, high = corpus.value_range()
    flags = ["--steps", "2", "--batch-size", "2", "--hidden-size", "8", "--eval-every", "2", "--device", "cpu"]
    _speech_cli(["train", "speech", "--kind", "frame", "--corpus", str(tmp_path), "--out", str(tmp_path / "a"), *flags])
    card = speech.load(tmp_path / "a").card
    np.testing.assert_allclose(card["config"]["mel_min"], low, atol=1e-6)
    np.testing.assert_allclose(card["config"]["mel_max"], high, atol=1e-6)
    _speech_cli(["train", "speech", "--kind", "frame", "--corpus", str(tmp_path), "--out", str(tmp_path / "b"),
                 "--init", str(tmp_path / "a"), "--input-noise", "0.5", "--scheduled-sampling", "0.3", *flags])
    card = speech.load(tmp_path / "b").card
    assert card["hyperparameters"]["input_noise"] == 0.5 and card["hyperparameters"]["scheduled_sampling"] == 0.3
    assert "--init" in card["reproduce"]
    speech.save(tmp_path / "tts", speech.tiny()[0], SpeechCodec())
    with pytest.raises(SystemExit, match="cannot start from .*text-to-mel"):
        _speech_cli(["train", "speech", "--kind", "frame", "--corpus", str(tmp_path), "--out", str(tmp_path / "c"),
                     "--init", str(tmp_path / "tts"), *flags])


def test_band_limited_recordings_get_a_note():
    assert band_note(noise_audio()) is None
    note = band_note(telephone(noise_audio()))
    assert note and "nothing above 4 kHz" in note and "telephone" in note
    notes = continued(frames_model(), audio=telephone(noise_audio())).result.notes
    assert any("nothing above 4 kHz" in n for n in notes)
    assert not any("4 kHz" in n for n in continued(frames_model(), audio=noise_audio()).result.notes)


def test_cli_continue_writes_audio_and_features(tmp_path, monkeypatch, capsys):
    from test_speech import _speech_cli

    speech.save(tmp_path / "frames", frames_model().model, SpeechCodec())
    monkeypatch.setattr(speech, "DEFAULT_FRAME_MODEL", tmp_path / "frames")  # --continue picks the frame LSTM itself
    wav = tmp_path / "phone.wav"
    soundfile.write(wav, telephone(noise_audio(0.5)), SR)
    out, features = tmp_path / "more.wav", tmp_path / "f.npz"
    _speech_cli(["generate", "speech", "--continue", str(wav), "--seconds", "0.4", "--out", str(out),
                 "--features-out", str(features)])
    printed = capsys.readouterr()
    assert "nothing above 4 kHz" in printed.err and f"wrote {out}" in printed.out
    with np.load(features) as arrays:
        primer = int(arrays["primer_frames"])
        assert arrays["log_mel"].shape[1] == N_MELS and len(arrays["log_mel"]) - primer >= 0.3 * SR / HOP
    assert soundfile.info(out).duration > 0.8
    speech.save(tmp_path / "tts", speech.tiny()[0], SpeechCodec())
    with pytest.raises(SystemExit, match="text-to-mel model: it speaks --text"):
        _speech_cli(["generate", "speech", "--model", str(tmp_path / "tts"), "--continue", str(wav), "--out", str(out)])
    with pytest.raises(SystemExit, match="not an audio file"):
        (tmp_path / "junk.wav").write_text("no")
        _speech_cli(["generate", "speech", "--continue", str(tmp_path / "junk.wav"), "--out", str(out)])


@pytest.fixture(scope="module")
def speech_url(serve, tmp_path_factory):
    import gradio as gr

    from studio.domains.speech.tab import create_tab

    folder = tmp_path_factory.mktemp("models")
    speech.save(folder / "tiny-frames", frames_model().model, SpeechCodec())
    with gr.Blocks() as demo:
        create_tab({"tiny-frames": speech.load(folder / "tiny-frames")}, [])
    return serve(demo)


def test_a_microphone_recording_becomes_the_recording_and_is_continued(speech_url, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(speech_url, verbose=False)
    recorded = tmp_path / "microphone.wav"  # what the browser's recorder hands over: a WAV, here a telephone-band one
    soundfile.write(recorded, telephone(noise_audio(0.6)), SR)
    upload = client.predict(handle_file(str(recorded)), api_name="/speech_microphone")
    path = upload["path"] if isinstance(upload, dict) else upload
    assert soundfile.info(path).duration == pytest.approx(0.6, abs=0.01)
    notes, *_ = client.predict(handle_file(path), api_name="/speech_features")
    assert "nothing above 4 kHz" in notes
    notes, audio, *_ = client.predict(handle_file(path), "tiny-frames", 0.5, 0.6, 0, api_name="/continue_speech")
    assert "nothing above 4 kHz" in notes and soundfile.info(audio).duration > 1.0


def test_a_direct_frame_model_cannot_carry_what_it_reads_and_old_cards_stay_residual(tmp_path):
    loaded = frames_model(residual=False)
    head = loaded.model.head
    bound = float((head.weight.abs().sum(1) + head.bias.abs()).max().detach())  # |h| < 1
    made = continued(loaded, noise=1.0, seconds=1.0, keep_in_range=False).result
    assert np.abs(made.log_mel[made.primer_frames:]).max() <= bound + 1e-4
    assert np.abs(made.fed[made.primer_frames:]).max() > bound  # what it read was noisier than what it said
    speech.save(tmp_path / "old", frames_model().model, SpeechCodec())
    saved = json.loads((tmp_path / "old.json").read_text())
    del saved["config"]["residual"], saved["config"]["mel_min"], saved["config"]["mel_max"]
    (tmp_path / "old.json").write_text(json.dumps(saved))
    assert speech.load(tmp_path / "old").model.config.residual is True


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="needs espeak-ng (apt-get install espeak-ng)")
@pytest.mark.parametrize("noise", [0.0, 0.3, 0.6, 1.0])
def test_the_shipped_frame_model_stays_in_range_on_espeak_speech_unguarded(noise):
    """The shipped model itself (the guard off) on sentences it never heard (bench/bench_speech_range.py
    does the same for the 50 held-out ones)."""
    from studio.domains.speech.data import reference_audio

    loaded = speech.load(speech.DEFAULT_FRAME_MODEL)
    low, high = (np.array(loaded.model.config.mel_min), np.array(loaded.model.config.mel_max))
    for seed, text in enumerate(["the weather report promised rain for the whole afternoon.",
                                 "seven green bottles were standing on the kitchen table."]):
        made = continued(loaded, reference_audio(text), noise=noise, seconds=2.0, seed=seed, keep_in_range=False).result
        generated = made.log_mel[made.primer_frames:]
        assert len(generated) >= 2.0 * SR / HOP - 3
        assert (generated >= low - 1).all() and (generated <= high + 1).all(), (noise, text)


@pytest.mark.browser
def test_recording_in_the_page_with_chromiums_fake_microphone_is_continued(speech_url):
    """Record (chromium's fake microphone: a beep), stop: the recording becomes the upload, and
    "Continue it" continues it."""
    from conftest import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    fake_microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + fake_microphone)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["microphone"]).new_page()
            page.goto(speech_url)
            page.get_by_role("tab", name="Your recording: features and continuation").click()  # the tab's second task
            microphone = page.locator("#speech-microphone")
            microphone.locator("button.record-button").click()
            page.wait_for_timeout(1500)
            microphone.locator("button.stop-button").click()
            page.wait_for_function("document.querySelector('#speech-upload').innerText.includes('.wav')", timeout=30_000)
            page.click("#speech-continue")
            # the continuation's trace is offered once generated, its notes beside it
            page.wait_for_selector("#speech-continue-viewer .lv-root[data-ready='yes']", timeout=60_000)
            page.click("#speech-continue-save-trace")
            page.wait_for_selector("#speech-continue-trace a[href$='trace.npz']", timeout=30_000)
            assert "Resampled from" in page.inner_text("body")  # the browser records at its own rate
        finally:
            browser.close()
