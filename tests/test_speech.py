"""Speech domain: feature codec, bad audio, text codec, attention/stop-token model, generation,
continue mode, MCD, checkpoint round trip, render, score/features/read_input, CLI. Tiny models,
signals made here; espeak-ng only where installed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile
import torch

from studio import checkpoint, explain
from studio.domains import speech
from studio.domains.base import LoadedModel, View
from studio.domains.speech import codec as speech_codec
from studio.domains.speech.codec import (
    END,
    HOP,
    LOG_FLOOR,
    N_MELS,
    SAMPLE_RATE,
    VOICES,
    AudioError,
    SpeechAlphabet,
    SpeechCodec,
    SpeechDetail,
    decode_audio,
    encode_audio,
)
from studio.domains.speech.data import Utterance, prepare_audio, read_audio
from studio.domains.speech.evaluate import MCD_BANDS, MCD_NOISE_FLOOR, alignment_report, mcd_bands, mcd_db
from studio.domains.speech.generate import ContinueSettings, SpeechSettings, clean_text
from studio.domains.speech.model import (
    FrameModel,
    FrameModelConfig,
    SpeechModel,
    SpeechModelConfig,
    layer_names,
    make_card,
)
from studio.domains.speech.render import alignment_html, mel_figure, render
from studio.domains.speech.train import make_speech_batch, speech_loss
from studio.lstm import set_units

SR = SAMPLE_RATE
ALPHABET = SpeechAlphabet()


def tone(seconds=0.5, rate=SR, freq=220.0, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def as_loaded(model) -> LoadedModel:
    """A model as load() hands it out (its card, layer names and the default codec)."""
    codec = SpeechCodec()
    return LoadedModel("tiny", model, codec, make_card(model, codec, name="tiny"), layer_names(model), "tiny")


def tiny_tts(seed=0, stop_bias=None, **config):
    torch.manual_seed(seed)
    config = SpeechModelConfig(**{"hidden_size": 16, "embed_size": 8, "prenet_size": 8, "voice_size": 4,
                                         "mixtures": 2, **config})
    model = SpeechModel(config).eval()
    if stop_bias is not None:
        with torch.no_grad():
            model.stop.weight.zero_()
            model.stop.bias.fill_(stop_bias)
    return as_loaded(model)


def tiny_frames(hidden_size=8, num_layers=2):
    return as_loaded(FrameModel(FrameModelConfig(hidden_size=hidden_size, num_layers=num_layers)).eval())


def speak(loaded, settings):
    """(result, trace) of speech.generate."""
    generation = speech.generate(loaded, settings)
    return generation.result, generation.trace


def continue_audio(loaded, audio, settings):
    settings.audio = audio
    generation = speech.generate(loaded, settings)
    return generation.result, generation.trace


def test_mel_shape_and_inversion_length():
    audio = tone(0.5)
    log_mel = encode_audio(audio)
    assert log_mel.shape == (1 + len(audio) // HOP, N_MELS)
    assert log_mel.dtype == np.float32 and log_mel.min() >= np.log(LOG_FLOOR) - 1e-4
    back = decode_audio(log_mel, n_iter=4)
    assert back.shape == (len(log_mel) * HOP,)
    assert np.abs(back).max() <= 0.99 + 1e-6 and np.abs(back).max() > 0.01
    # the 220 Hz tone survives the round trip: its spectrum peaks near 220 Hz
    spectrum = np.abs(np.fft.rfft(back[2048:-2048]))
    peak_hz = np.argmax(spectrum) * SR / len(back[2048:-2048])
    assert abs(peak_hz - 220) < 30


def test_griffin_lim_matches_librosas_algorithm():
    """The torch Griffin-Lim (it releases the GIL) converges like librosa.griffinlim on the same
    magnitude: the same length and a spectral convergence within 5% of librosa's."""
    import librosa

    rng = np.random.default_rng(0)
    audio = (tone(0.6) + 0.05 * rng.standard_normal(int(0.6 * SR))).astype(np.float32)
    magnitude = np.abs(librosa.stft(audio, n_fft=speech_codec.N_FFT, hop_length=HOP))

    def convergence(signal):
        again = np.abs(librosa.stft(signal, n_fft=speech_codec.N_FFT, hop_length=HOP))[:, : magnitude.shape[1]]
        return np.linalg.norm(again - magnitude) / np.linalg.norm(magnitude)

    ours = speech_codec.griffin_lim(magnitude, n_iter=16, seed=3)
    theirs = librosa.griffinlim(magnitude, n_iter=16, hop_length=HOP, win_length=speech_codec.N_FFT,
                                n_fft=speech_codec.N_FFT, random_state=3)
    assert ours.shape == theirs.shape and np.isfinite(ours).all()
    assert convergence(ours) < 1.05 * convergence(theirs) + 1e-3
    assert np.array_equal(ours, speech_codec.griffin_lim(magnitude, n_iter=16, seed=3))  # seeded


def test_griffin_lim_is_torch_stft_and_istft_written_out():
    """The written-out STFT pair (rows of frames, overlap-add by slices, the envelope once) gives what
    the same iterations on torch.stft / torch.istft give, to float32 rounding, at every length."""
    import torch

    n_fft, hop = speech_codec.N_FFT, HOP
    window = torch.hann_window(n_fft)

    def reference(magnitude, n_iter, seed):
        rng = np.random.default_rng(seed)
        angles = torch.from_numpy(np.exp(2j * np.pi * rng.random(magnitude.shape)).astype(np.complex64))
        target = torch.from_numpy(magnitude)
        rebuilt = torch.zeros_like(angles)
        for _ in range(n_iter):
            previous = rebuilt
            signal = torch.istft(target * angles, n_fft, hop, n_fft, window, center=True)
            rebuilt = torch.stft(signal, n_fft, hop, n_fft, window, center=True, pad_mode="constant", return_complex=True)
            angles = rebuilt - (0.99 / 1.99) * previous
            angles = angles / (angles.abs() + 1e-16)
        return torch.istft(target * angles, n_fft, hop, n_fft, window, center=True).numpy()

    rng = np.random.default_rng(1)
    for frames in (2, 3, 7, 120):
        magnitude = np.abs(rng.standard_normal((n_fft // 2 + 1, frames))).astype(np.float32)
        ours, theirs = speech_codec.griffin_lim(magnitude, n_iter=8, seed=5), reference(magnitude, 8, 5)
        assert ours.shape == theirs.shape == ((frames - 1) * hop,)
        # 8 iterations renormalise the phases, which amplifies float32 rounding where a bin's magnitude
        # is near 0; which FFT kernels run depends on the CPU (3.1e-6 of a 0.28 peak on one machine)
        np.testing.assert_allclose(ours, theirs, atol=3e-5 * np.abs(theirs).max())


def test_prepare_audio_resamples_mixes_down_and_caps():
    stereo = np.stack([tone(1.0, 16_000), tone(1.0, 16_000, freq=330)], axis=1)  # (samples, 2)
    loaded = prepare_audio(stereo, 16_000, max_seconds=0.5)
    assert loaded.audio.ndim == 1 and abs(len(loaded.audio) - SR // 2) <= 2
    text = " ".join(loaded.notes)
    assert "Mixed 2 channels" in text and "Resampled from 16,000" in text and "first 0.5 s" in text
    ints = (tone(0.2) * 32767).astype(np.int16)[None]  # gradio's (channels, samples) int16
    assert prepare_audio(np.repeat(ints, 2, 0), SR).audio.shape == (ints.shape[1],)


@pytest.mark.parametrize("signal, rate, words", [
    (np.zeros(SR, np.float32), SR, "silent"),
    (np.zeros(0, np.float32), SR, "empty"),
    (tone(0.01), SR, "too short"),
    (np.full(SR, np.nan, np.float32), SR, "invalid"),
    (tone(0.5), 10, "not plausible"),
])
def test_bad_audio_gives_plain_errors(signal, rate, words):
    with pytest.raises(AudioError, match=words):
        prepare_audio(signal, rate)


def test_read_audio_files(tmp_path):
    path = tmp_path / "long.wav"
    soundfile.write(path, np.tile(tone(1.0, 8000), 3), 8000)  # 3 s at 8 kHz
    loaded = read_audio(path, max_seconds=1.0)
    assert abs(len(loaded.audio) - SR) <= 2 and any("3.0 s long" in n for n in loaded.notes)
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio")
    with pytest.raises(AudioError, match="not an audio file"):
        read_audio(fake)
    with pytest.raises(AudioError, match="not an audio file"):
        read_audio(tmp_path / "missing.wav")


def test_text_codec_round_trip_and_notes():
    ids, dropped = ALPHABET.encode("Hello,  World! 42")
    assert ids[-1] == END and ALPHABET.decode(ids) == "hello, world! "
    assert dropped == "42"
    codec = SpeechCodec()
    _, _, notes = clean_text(SpeechSettings(text="x" * 1000), codec, 2)
    assert any("cap 300" in n for n in notes)
    ids, voice, notes = clean_text(SpeechSettings(text="", voice=7), codec, 2)
    assert len(ids) > 1 and voice == 0 and any("default sentence" in n for n in notes) and any("Voice 7" in n for n in notes)


def test_teacher_forced_shapes_and_monotonic_window():
    model = tiny_tts().model
    rng = np.random.default_rng(0)
    mels = [rng.normal(-5, 1, (n, N_MELS)).astype(np.float32) for n in (20, 31)]
    batch = make_speech_batch(model.config, mels, ["hi", "a longer one"], [0, 1])
    r = model.config.reduction
    assert batch.targets.shape == (2, 11, r * N_MELS) and batch.mel_in.shape == (2, 11, N_MELS)
    assert batch.mask.sum(1).tolist() == [7, 11] and batch.stop[0, 6:].eq(1).all() and batch.stop[0, :6].eq(0).all()
    frames, stop, alignment = model(batch.tokens, batch.voices, batch.mel_in)
    assert frames.shape == batch.targets.shape and stop.shape == (2, 11)
    assert alignment.shape == (2, 11, batch.tokens.shape[1])
    assert alignment[0, :, 3:].abs().max() == 0  # padding characters get no attention
    loss = speech_loss(model.train(), batch)
    loss.backward()
    assert torch.isfinite(loss) and model.window.weight.grad.abs().sum() > 0
    _, _, kappa = model.attention_window(torch.randn(1, 9, 16), None)
    assert (kappa.diff(dim=1) > 0).all()  # the window only moves forward


def test_generation_steps_the_same_model_as_teacher_forced_training():
    """Generating step by step and re-reading the generated frames teacher-forced give the same
    frames, stops and alignment: the attention layer reads its previous context in both paths."""
    loaded = tiny_tts(seed=1, stop_bias=-20.0, prenet_dropout=0.0, decoder_layers=2)  # never stops: fixed steps
    model = loaded.model
    result, trace = speak(loaded, SpeechSettings(text="hi there", voice=1, griffin_lim_iters=0))
    frames = model.normalize(torch.from_numpy(result.log_mel))[None]  # (1, steps*R, 80)
    r = model.config.reduction
    grouped = frames.reshape(1, -1, r * N_MELS)
    mel_in = torch.cat([torch.zeros(1, 1, N_MELS), grouped[:, :-1, -N_MELS:]], 1)
    tokens = torch.tensor([ALPHABET.encode("hi there")[0]])
    with torch.no_grad():
        forced, stop_logits, alignment = model(tokens, torch.tensor([1]), mel_in)
    torch.testing.assert_close(forced, grouped, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(alignment[0], torch.from_numpy(result.alignment), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.sigmoid(stop_logits[0]), torch.from_numpy(result.stop_probs), atol=1e-6, rtol=1e-4)


def test_stop_token_ends_generation_and_trace_matches():
    settings = SpeechSettings(text="hi", griffin_lim_iters=0)
    result, trace = speak(tiny_tts(stop_bias=20.0), settings)
    assert result.stopped and len(result.stop_probs) == 1 and result.log_mel.shape == (3, N_MELS)
    assert len(result.audio) == 0  # griffin_lim_iters=0: frames only
    result, trace = speak(tiny_tts(stop_bias=-20.0), settings)
    steps = 12 * len(ALPHABET.encode("hi")[0]) + 20
    assert not result.stopped and len(result.stop_probs) == steps and any("never fired" in n for n in result.notes)
    assert result.alignment.shape == (steps, 3) and result.log_mel.shape == (3 * steps, N_MELS)
    assert trace.steps == steps and trace.num_layers == 2 and trace.hidden_size == 16
    assert set(trace.labels) <= {"h", "i", "■"}
    assert trace.layer_names == ["attention LSTM", "decoder LSTM 1"] and trace.detail.reduction == 3
    assert trace.detail.mode == "text-to-speech" and trace.detail.text == "hi■" and len(trace.detail.position) == steps
    capped = speak(tiny_tts(stop_bias=-20.0), SpeechSettings(text="hi", griffin_lim_iters=0, max_steps=5))[0]
    assert len(capped.stop_probs) == 5 and any("cap of 15 frames" in n for n in capped.notes)


def test_generation_is_seeded_and_makes_audio():
    model = tiny_tts(stop_bias=-20.0)
    settings = SpeechSettings(text="ok", seed=5, griffin_lim_iters=2)
    a, _ = speak(model, settings)
    b, _ = speak(model, settings)
    assert np.array_equal(a.log_mel, b.log_mel) and len(a.audio) == len(a.log_mel) * HOP


def test_continue_mode_primes_and_extends():
    torch.manual_seed(0)
    loaded = tiny_frames()
    result, trace = continue_audio(loaded, tone(0.3), ContinueSettings(seconds=0.2, seed=1))
    r = loaded.model.config.reduction
    groups_in = (1 + len(tone(0.3)) // HOP) // r
    added = int(0.2 * SR / HOP / r)
    assert result.primer_frames == groups_in * r and len(result.log_mel) == (groups_in + added) * r
    assert trace.steps == groups_in + added and trace.prompt_length == groups_in
    assert len(result.audio) == len(result.log_mel) * HOP


@pytest.mark.parametrize("seconds, noise, clamped", [(0.0, 0.3, "Continuation length clamped to 0.1 s"),
                                                     (0.2, -2.0, "Noise clamped to 0 "), (0.2, 50.0, "Noise clamped to 1 ")])
def test_continue_mode_clamps_silly_settings_with_a_note(seconds, noise, clamped):
    result, _ = continue_audio(tiny_frames(num_layers=1), tone(0.3), ContinueSettings(seconds=seconds, noise=noise))
    assert any(note.startswith(clamped) for note in result.notes), result.notes
    assert np.isfinite(result.log_mel).all()


def test_mcd_is_zero_for_identical_and_grows_with_error():
    audio = tone(0.4, freq=300) + tone(0.4, freq=900, amplitude=0.2)
    assert mcd_db(audio, audio) == pytest.approx(0.0, abs=1e-9)
    exact = audio.astype(np.float64)  # (float32 rounding noise would show in the near-empty bands)
    assert mcd_db(0.3 * exact, exact) == pytest.approx(0.0, abs=1e-6)  # loudness is normalised away
    low, high = tone(0.2, freq=300), tone(0.2, freq=900)
    slower = np.concatenate([low, low[: SR // 10], high])  # the first sound held longer
    assert mcd_db(slower, np.concatenate([low, high])) < 0.2 * mcd_db(slower, np.concatenate([high, low]))
    noise = np.random.default_rng(0).normal(0, 1, audio.shape).astype(np.float32)
    assert 0 < mcd_db(audio + 0.05 * noise, audio) < mcd_db(audio + 0.3 * noise, audio)
    assert mcd_db(tone(0.4, freq=2000), audio) > mcd_db(audio + 0.3 * noise, audio)


def test_mcd_matches_a_hand_computation():
    """One frame each (32 ms at 8 kHz = 256 samples, plus a little so exactly one frame fits): the
    distance is the norm of the cosine transform of the difference of the log10 band energies."""
    rate = 8000
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 256 + 10), rng.normal(0, 1, 256 + 10)
    bands_a, bands_b = mcd_bands(a, rate), mcd_bands(b, rate)
    assert bands_a.shape == (1, MCD_BANDS)
    m = MCD_BANDS
    expected = np.sqrt(sum(
        sum((bands_a[0, n - 1] - bands_b[0, n - 1]) * np.cos(i * (n - 0.5) * np.pi / m) for n in range(1, m + 1)) ** 2
        for i in range(2, 17)))
    assert mcd_db(a, b, rate) == pytest.approx(expected, rel=1e-9)
    # the band energies themselves: log10 of the Hann-windowed power spectrum through the first band
    floor = MCD_NOISE_FLOOR * np.random.default_rng(0).standard_normal(len(a))
    frame = (a / np.abs(a).max() + floor)[:256] * np.hanning(256)
    power = np.abs(np.fft.rfft(frame)) ** 2
    mel_top = 2595 * np.log10(1 + 4000 / 700)
    edges = np.floor(257 * 700 * (10 ** (np.linspace(0, mel_top, m + 2) / 2595) - 1) / rate).astype(int)
    rising = (np.arange(edges[0], edges[1]) - edges[0]) / (edges[1] - edges[0])
    falling = (edges[2] - np.arange(edges[1], edges[2])) / (edges[2] - edges[1])
    first = power[edges[0] : edges[1]] @ rising + power[edges[1] : edges[2]] @ falling
    assert bands_a[0, 0] == pytest.approx(np.log10(first + np.finfo(float).eps), rel=1e-9)


def test_checkpoint_round_trip(tmp_path):
    model = tiny_tts().model
    data = {"data": {"source": "test", "licence": "none"}}
    speech.save(tmp_path / "tts", model, SpeechCodec(), data)
    frame_model = FrameModel(FrameModelConfig(hidden_size=8))
    speech.save(tmp_path / "frames", frame_model, SpeechCodec(), data)
    models, problems = checkpoint.load_models(speech.NAME, speech.load, tmp_path)
    assert not problems and isinstance(models["tts"].model, SpeechModel) and isinstance(models["frames"].model, FrameModel)
    assert torch.equal(models["tts"].model.frames.weight, model.frames.weight)
    assert models["tts"].layer_names == ["attention LSTM", "decoder LSTM 1"] and models["frames"].layer_names == ["layer 0", "layer 1"]
    assert models["tts"].codec.voices == list(VOICES)
    card = checkpoint.read_card(tmp_path / "frames")
    card["codec"]["hop"] = 512  # features this code does not compute: refused by name
    checkpoint.write_card(tmp_path / "frames", card)
    with pytest.raises(checkpoint.CheckpointError, match="hop"):
        speech.load(tmp_path / "frames")


def test_render_figures():
    from matplotlib.figure import Figure

    result, trace = speak(tiny_tts(stop_bias=-20.0), SpeechSettings(text="yo", griffin_lim_iters=0))
    fig = mel_figure(result.log_mel, unit_values=trace.quantity(0, "h")[:, 0], reduction=3, boundary=4,
                            f0=np.full(len(result.log_mel), 200.0, np.float32))
    assert isinstance(fig, Figure)
    assert "data:image/png;base64," in alignment_html(result.alignment, result.text, 3)
    report = alignment_report(np.eye(5))
    assert report["monotonic"] and report["reaches_end"]
    assert not alignment_report(np.eye(5)[::-1])["monotonic"]


def _speech_cli(argv):
    """The speech subcommands exactly as studio/__main__.py wires them (in-process)."""
    import argparse
    import shlex

    from studio import cli_common
    from studio.domains.speech import cli

    parser = argparse.ArgumentParser(prog="python -m studio")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("train", "generate", "eval", "trace"):
        domains = commands.add_parser(command).add_subparsers(dest="domain", required=True)
        if command == "trace":
            cli_common.add_trace_command(domains.add_parser("speech"), speech)
        else:
            cli.add_commands(command, domains.add_parser("speech"))
    args = parser.parse_args(argv)
    args.command_line = "python -m studio " + shlex.join(argv)
    return args.run(args)


def test_cli_train_generate_eval_trace(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 25, 70)
    np.savez(tmp_path / "corpus.npz", mels=rng.normal(-5, 1, (lengths.sum(), N_MELS)).astype(np.float32),
             offsets=np.concatenate([[0], np.cumsum(lengths)]), texts=np.array([f"line {k}" for k in range(70)]),
             voices=np.arange(70) % 2, split=np.array(["test"] * 2 + ["train"] * 68))
    stem = tmp_path / "tts"
    _speech_cli(["train", "speech", "--corpus", str(tmp_path), "--out", str(stem), "--steps", "2", "--batch-size", "2",
                 "--hidden-size", "8", "--eval-every", "2", "--device", "cpu"])
    _speech_cli(["train", "speech", "--kind", "frame", "--corpus", str(tmp_path), "--out", str(tmp_path / "frames"),
                 "--steps", "2", "--batch-size", "2", "--hidden-size", "8", "--eval-every", "2", "--device", "cpu"])
    card = speech.load(stem).card
    assert card["reproduce"].startswith("python -m studio train speech") and card["kind"] == "text-to-mel"
    if shutil.which("espeak-ng"):  # eval scores against espeak-ng's own rendering (.ci/run installs it)
        _speech_cli(["eval", "speech", "--model", str(stem), "--corpus", str(tmp_path), "--limit", "1", "--record"])
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[-1].startswith("mcd_db: ") and float(lines[-1].split()[1]) > 0
        assert any(line.startswith("griffin_lim_floor_mcd_db: ") for line in lines)
        metrics = speech.load(stem).card["metrics"]
        assert metrics["mcd_db"] == pytest.approx(float(lines[-1].split()[1]), abs=1e-3) and metrics["held_out_sentences"] == 1
    else:
        with pytest.raises(SystemExit, match="espeak-ng"):
            _speech_cli(["eval", "speech", "--model", str(stem), "--corpus", str(tmp_path), "--limit", "1"])
    with pytest.raises(SystemExit, match="text-to-mel"):
        _speech_cli(["generate", "speech", "--model", str(tmp_path / "frames"), "--out", str(tmp_path / "x.wav")])
    wav = tmp_path / "clip.wav"
    soundfile.write(wav, tone(0.3), SR)
    _speech_cli(["trace", "speech", "--model", str(tmp_path / "frames"), "--input", str(wav), "--out", str(tmp_path / "t.npz")])
    assert "wrote" in capsys.readouterr().out


# ---------------------------------------------------------------- the contract's speech specifics
def test_read_input_needs_a_transcript_for_text_to_mel(tmp_path):
    wav = tmp_path / "clip.wav"
    soundfile.write(wav, tone(0.3, 16_000), 16_000)
    frames = speech.read_input(wav, tiny_frames())
    assert frames.text == "" and frames.log_mel.shape[1] == N_MELS and any("Resampled" in n for n in frames.notes)
    with pytest.raises(ValueError, match="clip.txt"):
        speech.read_input(wav, tiny_tts())
    (tmp_path / "clip.txt").write_text("Hello there!\n", encoding="utf-8")
    utterance = speech.read_input(wav, tiny_tts())
    assert utterance.text == "Hello there!\n" and np.array_equal(utterance.log_mel, frames.log_mel)


def test_score_both_kinds_and_features():
    sequence, _ = speech.example()
    loaded = tiny_tts()
    scored = speech.score(loaded, sequence)
    steps = len(sequence.log_mel) // 3
    assert scored.trace.steps == steps == scored.trace.prompt_length and scored.trace.detail.text == "hi there.■"
    assert scored.distributions["frames"].shape == (steps, 3, N_MELS) and scored.distributions["stop"].shape == (steps,)
    assert any("left out" in n for n in scored.notes) == (len(sequence.log_mel) % 3 > 0)
    tracks = speech.features(sequence, scored)
    assert set(tracks) == {"energy", "voiced", "attention position"}
    assert tracks["voiced"].max() > 0.5  # the 150 Hz vowel is voiced in the middle
    assert set(speech.features(sequence)) == {"energy", "voiced"}  # the window position needs the model
    frames = tiny_frames()
    scored = speech.score(frames, sequence.log_mel)  # a bare log-mel for the frame LSTM
    assert scored.trace.steps == steps and "stop" not in scored.distributions and scored.trace.labels[1] == "3"
    np.testing.assert_allclose(scored.distributions["frames"], speech.fused(frames, sequence.log_mel)["frames"], atol=1e-5)
    with pytest.raises(ValueError, match="no character"):
        speech.score(loaded, Utterance("42", sequence.log_mel))


def test_generate_goes_by_the_model_kind():
    with pytest.raises(ValueError, match="frame LSTM"):
        speech.generate(tiny_frames(), SpeechSettings(text="hi"))
    with pytest.raises(ValueError, match="text-to-mel"):
        speech.generate(tiny_tts(), ContinueSettings(audio=tone(0.3)))
    with pytest.raises(AudioError, match="recording"):
        speech.generate(tiny_frames(), ContinueSettings())


def test_continue_with_hooks_steps_the_primer_and_numbers_layers_as_the_trace():
    loaded = tiny_frames()
    settings = ContinueSettings(audio=tone(0.3), seconds=0.1, seed=2, griffin_lim_iters=0)
    plain = speech.generate(loaded, settings)
    seen = []
    stepped = speech.generate(loaded, settings, hooks=[lambda step, layer, name, value: seen.append((step, layer))])
    assert stepped.trace.labels == plain.trace.labels and stepped.trace.prompt_length == plain.trace.prompt_length
    for a, b in zip(plain.trace.layers, stepped.trace.layers, strict=True):
        for name in a:
            np.testing.assert_allclose(a[name], b[name], atol=1e-5)
    np.testing.assert_allclose(stepped.distributions["frames"], plain.distributions["frames"], atol=1e-5)
    assert {step for step, _ in seen} == set(range(plain.trace.steps)) and {layer for _, layer in seen} == {0, 1}
    at = plain.trace.steps - 3
    hooked = speech.generate(loaded, settings, hooks=[set_units(1, [0, 1], "h", 0.0, from_step=at)])
    np.testing.assert_allclose(hooked.distributions["frames"][:at], plain.distributions["frames"][:at], atol=1e-5)
    assert not np.allclose(hooked.distributions["frames"][at], plain.distributions["frames"][at])


def test_tts_hooks_see_attention_as_layer_0_and_decoder_after_it():
    loaded = tiny_tts(stop_bias=-20.0, decoder_layers=2)
    settings = SpeechSettings(text="hi", max_steps=6, griffin_lim_iters=0)
    seen = set()
    generation = speech.generate(loaded, settings, hooks=[lambda step, layer, name, value: seen.add((step, layer))])
    assert seen == {(t, k) for t in range(6) for k in range(3)} and generation.trace.num_layers == 3
    hooked = speech.generate(loaded, settings, hooks=[set_units(0, [0], "h", 0.0, from_step=2)])
    assert np.allclose(hooked.trace.layers[0]["h"][2:, 0], 0.0)
    np.testing.assert_allclose(hooked.distributions["frames"][:2], generation.distributions["frames"][:2], atol=1e-6)
    assert not np.allclose(hooked.distributions["frames"][2], generation.distributions["frames"][2])


def test_render_and_write_files_for_both_kinds(tmp_path):
    from matplotlib.figure import Figure

    tts = speech.generate(tiny_tts(stop_bias=20.0), SpeechSettings(text="hi", griffin_lim_iters=2))
    files = speech.write_files(tts, tmp_path)
    assert set(files) == {"audio", "features"} and soundfile.info(files["audio"]).samplerate == SR
    with np.load(files["features"]) as arrays:
        assert str(arrays["text"]) == "hi" and arrays["alignment"].shape == (1, 3)
    frames = speech.generate(tiny_frames(num_layers=1), ContinueSettings(audio=tone(0.3), seconds=0.1,
                                                                              griffin_lim_iters=0))
    files = speech.write_files(frames, tmp_path)
    assert set(files) == {"features"}  # no audio asked for, none written
    with np.load(files["features"]) as arrays:
        assert int(arrays["primer_frames"]) == frames.result.primer_frames
    assert isinstance(render(frames, View(layer=0, unit=7, quantity="c")), Figure)


def test_cli_generate_continues_with_a_frame_model_and_traces_text_to_mel(tmp_path, capsys):
    speech.save(tmp_path / "frames", FrameModel(FrameModelConfig(hidden_size=8)), SpeechCodec())
    speech.save(tmp_path / "tts", tiny_tts().model, SpeechCodec())
    wav = tmp_path / "clip.wav"
    soundfile.write(wav, tone(0.3), SR)
    out = tmp_path / "more.wav"
    _speech_cli(["generate", "speech", "--model", str(tmp_path / "frames"), "--input", str(wav), "--seconds", "0.2",
                 "--out", str(out), "--features-out", str(tmp_path / "f.npz"), "--trace-out", str(tmp_path / "t.npz")])
    assert soundfile.info(out).duration > 0.3 and (tmp_path / "f.npz").exists() and (tmp_path / "t.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".wav") == ["clip.wav", "more.wav"]
    with pytest.raises(SystemExit, match="clip.txt"):
        _speech_cli(["trace", "speech", "--model", str(tmp_path / "tts"), "--input", str(wav), "--out", str(tmp_path / "x.npz")])
    (tmp_path / "clip.txt").write_text("a tone", encoding="utf-8")
    _speech_cli(["trace", "speech", "--model", str(tmp_path / "tts"), "--input", str(wav), "--out", str(tmp_path / "x.npz")])
    from studio.trace import Trace

    trace = Trace.load_npz(tmp_path / "x.npz", SpeechDetail)
    assert trace.num_layers == 2 and trace.detail.text == "a tone■" and trace.layer_names[0] == "attention LSTM"


# ---------------------------------------------------------------- asking the model why
def explained(loaded, double=False):
    utterance, _ = speech.example()
    if double:  # float64 for the finite differences
        loaded.model.double()
    return speech.explainable(loaded, utterance if isinstance(loaded.model, SpeechModel) else utterance.log_mel)


@pytest.mark.parametrize("make", [lambda: as_loaded(speech.tiny()[0]), lambda: tiny_tts(decoder_layers=2), tiny_frames])
def test_anatomy_rebuilds_every_layer_and_saliency_is_the_finite_difference(make):
    scored, ex = explained(make())
    trace = scored.trace
    assert len(ex.layer_inputs) == len(ex.weights) == trace.num_layers and ex.labels == trace.labels
    for layer in range(trace.num_layers):
        for unit, step in [(0, 0), (3, 1), (7, 5), (15 % trace.hidden_size, trace.steps - 1)]:
            a = explain.anatomy(trace, ex, layer, unit, step)
            pre = [a["pre"][gate] for gate in explain.GATES]  # i, f, g, o
            totals = np.array([part["total"] for part in pre])
            np.testing.assert_allclose([part["input"] + part["recurrent"] + part["bias"] for part in pre], totals, atol=1e-9)
            squashed = 1 / (1 + np.exp(-totals))
            squashed[2] = np.tanh(totals[2])  # g
            np.testing.assert_allclose(squashed, [a[gate] for gate in explain.GATES], atol=1e-5, err_msg=f"{layer} {unit} {step}")
    scored, ex = explained(make(), double=True)
    step, eps = trace.steps - 2, 1e-3
    attributions = explain.saliency(ex, step)
    assert attributions.shape == (step + 1,) and np.abs(attributions).max() > 0
    chosen = [0, 2, step // 2, step]  # input s scaled by 1 + eps (row 2k) and 1 - eps (row 2k + 1), one batch
    scaled = ex.inputs.repeat(2 * len(chosen), 1, 1)
    for k, s in enumerate(chosen):
        scaled[2 * k : 2 * k + 2, s] *= torch.tensor([[1 + eps], [1 - eps]], dtype=scaled.dtype)
    with torch.no_grad():
        rows = ex.log_likelihood(scaled)[:, step]
    estimates = ((rows[0::2] - rows[1::2]) / (2 * eps)).numpy()  # d/d(scale) at 1 = input s . gradient
    np.testing.assert_allclose(attributions[chosen], estimates, rtol=1e-3, atol=1e-8)


@pytest.mark.parametrize("make", [lambda: as_loaded(speech.tiny()[0]), tiny_frames])
def test_log_likelihood_is_causal_and_guesses_are_the_model_probabilities(make):
    loaded = make()
    scored, ex = explained(loaded)
    steps, t = scored.trace.steps, 4
    with torch.no_grad():
        base = ex.log_likelihood(ex.inputs)
        changed = ex.inputs.clone()
        changed[:, t + 1 :] += torch.randn(changed[:, t + 1 :].shape, generator=torch.Generator().manual_seed(0))
        after = ex.log_likelihood(torch.cat([ex.inputs, changed]))
    assert base.shape == (1, steps)  # a batch of two: the first unchanged, the second changed after t
    torch.testing.assert_close(after[:, : t + 1], base[:, : t + 1].expand(2, -1), rtol=1e-6, atol=1e-5)
    assert not torch.allclose(after[1, t + 1 :], base[0, t + 1 :])
    if isinstance(loaded.model, FrameModel):
        assert float(base[0, -1]) == 0.0  # nothing follows the last group
        energy = np.exp(speech.fused(loaded, scored.sequence)["frames"].astype(np.float64)).mean(1)
        shares = energy / energy.sum(1, keepdims=True)
        guess = ex.guesses(t)
        assert [g["p"] for g in guess["topk"]] == pytest.approx(np.sort(shares[t])[::-1][:5].tolist(), rel=1e-4)
        assert guess["topk"][0]["token"].startswith(f"band {int(np.argmax(shares[t]))} ")
        return
    p_stop = speech.fused(loaded, scored.sequence)["stop"].astype(np.float64)
    for step in (0, t, steps - 1):
        guess = ex.guesses(step)
        assert {g["token"]: g["p"] for g in guess["topk"]} == pytest.approx({"stop": p_stop[step], "go on": 1 - p_stop[step]}, abs=1e-6)
        assert guess["entropy"] == pytest.approx(-p_stop[step] * np.log(p_stop[step]) - (1 - p_stop[step]) * np.log(1 - p_stop[step]), abs=1e-6)
        assert guess["attention_peak"]["index"] == scored.trace.detail.position[step]
    with torch.no_grad():  # "why did it stop here?": the stop decision alone, read up to the step
        assert float(ex.target_log_prob(ex.inputs, t, "go on")[0]) == pytest.approx(np.log1p(-p_stop[t]), abs=1e-5)
    with pytest.raises(ValueError, match="stop token's decisions"):
        explain.saliency(ex, t, target="loud")


def test_sequence_of_gives_the_generation_trace_again():
    tts = tiny_tts(decoder_layers=2)
    generation = speech.generate(tts, SpeechSettings(text="hi there", seed=3, max_steps=12, stop_threshold=1.0,
                                                            griffin_lim_iters=0))
    frames = tiny_frames()
    continued = speech.generate(frames, ContinueSettings(audio=tone(0.3), seconds=0.2, griffin_lim_iters=0))
    for loaded, made in ((tts, generation), (frames, continued)):
        again = speech.score(loaded, speech.sequence_of(made)).trace
        assert again.steps == made.trace.steps
        for a, b in zip(again.layers, made.trace.layers, strict=True):
            for name in a:
                np.testing.assert_allclose(a[name], b[name], atol=1e-5)
    assert again.labels != continued.trace.labels  # a continuation's read is labelled by frame
    assert speech.score(tts, speech.sequence_of(generation)).trace.labels == generation.trace.labels
