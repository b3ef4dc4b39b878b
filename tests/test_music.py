"""The music domain: codec, exact frame probabilities, MIDI in and out, generation, bad input,
scoring and features, the piano roll, and the CLI. Tiny random models and data the tests make;
nothing from ../shared."""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pretty_midi
import pytest
import torch

from studio import checkpoint
from studio.audio import write_wav
from studio.domains import music
from studio.domains.base import LoadedModel
from studio.domains.music.codec import FrameContextTracker, MusicTraceDetail, PitchCodec, frame_context
from studio.domains.music.data import MusicInputError, Primer, read_primer
from studio.domains.music.evaluate import nll_per_frame
from studio.domains.music.generate import MAX_BARS, MusicSettings, clean_settings
from studio.domains.music.model import MusicModel, MusicModelConfig, make_card
from studio.domains.music.render import (
    frame_trace,
    frames_to_midi,
    piano_roll,
    piano_roll_arrays,
    render_piano_roll,
    synthesize,
)
from studio.domains.music.train import MusicTask
from studio.sampling import SamplingConfig
from studio.trace import Trace

FLOAT = r"[0-9]+\.[0-9]+"
SMALL = PitchCodec(60, 63, 1)  # four pitches: every frame can be listed by hand


def tiny_model(min_pitch=60, max_pitch=63, hidden_size=8, seed=0) -> MusicModel:
    torch.manual_seed(seed)
    config = MusicModelConfig(min_pitch, max_pitch, 1, embed_size=4, hidden_size=hidden_size, num_layers=2, dropout=0.0)
    return MusicModel(config).eval()


def as_loaded(model: MusicModel, name: str = "tiny") -> LoadedModel:
    """A model as the contract hands it out (what music.load returns for a saved one)."""
    return LoadedModel(name, model, model.codec, make_card(model), ["layer 0", "layer 1"], "tiny test model")


def write_midi(path, notes, tempo=100.0, drums=(), program=0):
    """notes: (pitch, start_quarter, end_quarter); returns the path of a real MIDI file."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    seconds = 60.0 / tempo
    if notes:
        piano = pretty_midi.Instrument(program=program)
        piano.notes = [pretty_midi.Note(90, p, s * seconds, e * seconds) for p, s, e in notes]
        midi.instruments.append(piano)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        kit.notes = [pretty_midi.Note(90, p, s * seconds, e * seconds) for p, s, e in drums]
        midi.instruments.append(kit)
    midi.write(str(path))
    return path


# ---------------------------------------------------------------- codec
def test_codec_format_is_the_documented_one():
    codec = PitchCodec(60, 72, 1)
    tokens = codec.encode([[67, 60, 64, 64], [], [62]])
    end, bos = codec.end, codec.bos
    assert tokens == [bos, 0, 4, 7, end, end, 2, end]  # ascending, duplicates merged, rest = bare END
    assert codec.decode(tokens) == [[60, 64, 67], [], [62]]
    assert [codec.label(t) for t in tokens[:3]] == ["start", "C4", "E4"] and codec.label(end) == "end"
    with pytest.raises(ValueError, match="outside"):
        codec.encode([[59]])


def test_frame_context_batched_equals_step_by_step():
    tokens = SMALL.encode([[60, 62], [], [63], [60, 61, 62, 63], [61]])
    batched = frame_context(torch.tensor([tokens]), SMALL.num_pitches)[0]
    tracker = FrameContextTracker(SMALL.num_pitches)
    assert torch.equal(batched, torch.cat([tracker.read(t) for t in tokens]))
    # after the END of [60, 62] the previous frame is {60, 62} and the current one empty
    assert batched[3].tolist() == [1, 0, 1, 0, 0, 0, 0, 0]


def test_frame_probabilities_sum_to_one():
    model = tiny_model()
    context = [[60, 62], [61]]
    base_nll, _ = nll_per_frame(model, [context])
    total = 0.0
    for size in range(SMALL.num_pitches + 1):
        for frame in itertools.combinations(range(60, 64), size):
            nll, frames = nll_per_frame(model, [[*context, list(frame)]])
            total += math.exp(-(nll * frames - base_nll * len(context)))
    assert total == pytest.approx(1.0, abs=1e-5)


def test_frame_nll_equals_a_hand_computation():
    model = tiny_model(seed=3)
    frames = [[60, 62], [], [61, 63]]
    # by hand: read BOS, then each token; the next token's probability is a softmax over the
    # tokens the rule allows (after pitch p: pitches above p or END; otherwise any pitch or END)
    tokens = [SMALL.bos, 0, 2, SMALL.end, SMALL.end, 1, 3, SMALL.end]
    state = model.core.initial_state(1)
    tracker = FrameContextTracker(SMALL.num_pitches)
    frame_nll, current = [], 0.0
    for read, nxt in zip(tokens[:-1], tokens[1:], strict=True):
        logits, state, _ = model.step(read, tracker, state)
        allowed = [v for v in range(SMALL.num_pitches) if read >= SMALL.num_pitches or v > read] + [SMALL.end]
        log_z = math.log(sum(math.exp(float(logits[v])) for v in allowed))
        current += log_z - float(logits[nxt])
        if nxt == SMALL.end:
            frame_nll.append(current)
            current = 0.0
    nll, count = nll_per_frame(model, [frames])
    assert count == 3
    assert nll == pytest.approx(sum(frame_nll) / 3, abs=1e-5)
    # pieces are independent: scoring two together averages over all their frames
    other = [[63], [60]]
    nll_other, _ = nll_per_frame(model, [other])
    nll_both, count_both = nll_per_frame(model, [frames, other])
    assert count_both == 5 and nll_both == pytest.approx((nll * 3 + nll_other * 2) / 5, abs=1e-5)


def test_training_loss_is_the_scored_nll(tmp_path):
    model = tiny_model(seed=1)
    pieces = [[[60, 62], [61]], [[63], [], [60, 61]]]
    task = MusicTask(pieces, pieces, SMALL, batch_size=2, transpose=0)
    batch = task.train_batch(0, 0, 1, "cpu")
    tokens_scored = int((batch.lengths - 1).sum())
    nll, frames = nll_per_frame(model, pieces)
    assert float(task.loss(model, batch)) * tokens_scored == pytest.approx(nll * frames, abs=1e-4)
    # transposition keeps every piece inside the codec's range
    wide = MusicTask(pieces, pieces, SMALL, batch_size=2, transpose=6, seed=5)
    for step in range(20):
        tokens = wide.train_batch(step, 0, 1, "cpu").tokens
        assert int(tokens[tokens < SMALL.num_pitches].max()) < SMALL.num_pitches


# ---------------------------------------------------------------- MIDI and scores
def test_midi_round_trip_keeps_pitches_and_grid_onsets(tmp_path):
    notes = [(60, 0, 2), (64, 0, 1), (67, 1, 3), (72, 2, 3), (48, 3, 4), (62, 5, 6)]  # a rest at step 4
    path = write_midi(tmp_path / "in.mid", notes, tempo=100)
    codec = PitchCodec(36, 96, 1)
    primer = read_primer(path, codec)
    assert primer.notes == [] and primer.source == "in.mid"
    assert primer == [[60, 64], [60, 67], [67, 72], [48], [], [62]]
    tokens = codec.encode(primer)
    midi = frames_to_midi(codec.decode(tokens), 1, tempo_bpm=100)
    out = tmp_path / "out.mid"
    midi.write(str(out))
    again = pretty_midi.PrettyMIDI(str(out))
    seconds = 60.0 / 100
    got = sorted((n.pitch, round(n.start / seconds, 6), round(n.end / seconds, 6)) for n in again.instruments[0].notes)
    assert got == sorted((p, float(s), float(e)) for p, s, e in notes)


def test_midi_in_quantizes_sampled_on_the_grid(tmp_path):
    # a slightly late onset lands on its grid point; a passing eighth note sounds at no grid point
    path = write_midi(tmp_path / "played.mid", [(60, 0.01, 1.0), (62, 1.0, 2.0), (64, 1.5, 2.0)], tempo=90)
    primer = read_primer(path, PitchCodec(36, 96, 1))
    assert primer == [[60], [62]]
    assert any("short note" in note for note in primer.notes)


def test_abc_score_in_through_music21(tmp_path):
    path = tmp_path / "tune.abc"
    path.write_text("X:1\nT:scale\nM:4/4\nL:1/4\nK:C\nC D E F | [CEG]2 z2 |\n")
    primer = read_primer(path, PitchCodec(36, 96, 1))
    assert primer == [[60], [62], [64], [65], [60, 64, 67], [60, 64, 67]]  # the trailing rest is trimmed


# ---------------------------------------------------------------- bad input, each with a clear message
def test_bad_primer_files_raise_clear_errors(tmp_path):
    codec = PitchCodec(36, 96, 1)
    cases = {
        "text.mid": (b"hello, not music", "not a MIDI file"),
        "corrupt.mid": (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02garbage", "corrupt"),
        "empty.mid": (b"", "empty"),
        "letter.txt": (b"Dear Bach", "neither a MIDI file nor a score"),
        "broken.xml": (b"<score-partwise><part", "not a score this studio can read"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(MusicInputError, match=message):
            read_primer(tmp_path / name, codec)
    with pytest.raises(MusicInputError, match="no pitched notes.*empty"):
        read_primer(write_midi(tmp_path / "silent.mid", []), codec)
    with pytest.raises(MusicInputError, match="drums only"):
        read_primer(write_midi(tmp_path / "drums.mid", [], drums=[(36, 0, 1), (38, 1, 2)]), codec)
    with pytest.raises(MusicInputError, match="not a file"):
        read_primer(tmp_path / "missing.mid", codec)


def test_primer_adjustments_are_reported(tmp_path):
    codec = PitchCodec(48, 84, 1)
    two_hours = [(60 + k % 12, 4 * k, 4 * k + 4) for k in range(120 * 120 // 4)]  # 120 bpm, a whole note a bar
    path = write_midi(tmp_path / "long.mid", two_hours + [(24, 0, 1), (100, 1, 2)], tempo=120, drums=[(36, 0, 1)])
    primer = read_primer(path, codec, max_bars=8)
    assert len(primer) == 8 * codec.steps_per_bar
    text = " ".join(primer.notes)
    assert "first 8 bar(s)" in text and "3,600 bars" in text
    assert "drum track" in text
    assert "moved by octaves" in text
    assert primer[:2] == [[48, 60], [60, 76]]  # 24 moved up two octaves, 100 down two
    assert all(codec.in_range(p) for f in primer for p in f)


def test_bars_and_tempo_are_clamped_with_notes():
    model = tiny_model()
    result = music.generate(as_loaded(model), MusicSettings(bars=0, tempo_bpm=1000)).result
    assert len(result.frames) == model.codec.steps_per_bar
    assert any("below 1" in n for n in result.notes) and any("300" in n for n in result.notes)
    bars, _, notes = clean_settings(MusicSettings(bars=10**9))
    assert bars == MAX_BARS and "cap" in notes[0]


# ---------------------------------------------------------------- generation
def test_generation_writes_a_midi_pretty_midi_loads(tmp_path):
    model = tiny_model(36, 96, hidden_size=16)
    primer = Primer([[60, 64, 67], [62, 65, 69]], [], "test primer")
    settings = MusicSettings(bars=2, primer=primer, tempo_bpm=120, sampling=SamplingConfig(temperature=1.0), seed=7)
    generation = music.generate(as_loaded(model), settings)
    result, trace = generation.result, generation.trace
    assert result.frames[:2] == primer and result.primer_frames == 2
    assert len(result.frames) == 2 + 2 * model.codec.steps_per_bar
    midi = frames_to_midi(result.frames, 1, result.tempo_bpm)
    midi.write(str(tmp_path / "out.mid"))
    loaded = pretty_midi.PrettyMIDI(str(tmp_path / "out.mid"))
    assert loaded.get_end_time() <= len(result.frames) * 0.5 + 1e-6  # 120 bpm: half a second a quarter
    assert {n.pitch for n in loaded.instruments[0].notes} >= {60, 64, 67}
    # the trace has one step per token read, labelled, and one frame step per frame
    tokens = trace.detail.tokens
    assert trace.detail.primer_source == "test primer" and trace.prompt_length == 1 + 3 + 1 + 3 + 1
    assert trace.steps == len(tokens) and trace.labels[0] == "start" and trace.labels[1] == "C4"
    assert frame_trace(trace).steps == len(result.frames)
    assert trace.labels.count("end") == len(result.frames)
    # the step-by-step gates are the exact teacher-forced ones
    logits, _, gates = model.trace(torch.tensor([tokens]))
    exact = Trace.from_sequence(gates, trace.labels)
    np.testing.assert_allclose(trace.layers[1]["c"], exact.layers[1]["c"], atol=1e-5)
    # one row of raw logits per step: the prediction after reading that step's token
    np.testing.assert_allclose(generation.distributions["logits"], logits[0].detach().numpy(), atol=1e-5)
    # same seed, same music
    assert music.generate(as_loaded(model), settings).result.frames == result.frames
    trace.save_npz(tmp_path / "trace.npz")
    again = Trace.load_npz(tmp_path / "trace.npz", detail_type=MusicTraceDetail)
    assert again.detail.tokens == tokens and again.detail == trace.detail


def test_render_piano_roll_and_audio(tmp_path):
    model = tiny_model(36, 96, hidden_size=16)
    generation = music.generate(as_loaded(model), MusicSettings(bars=1, seed=1))
    result, trace = generation.result, generation.trace
    roll, note_values, frame_values = piano_roll_arrays(trace, 0, "tanh_c", 3)
    assert roll.shape == (len(result.frames), model.codec.num_pitches)
    assert [sorted(np.flatnonzero(r) + 36) for r in roll] == result.frames
    assert np.isfinite(note_values[roll]).all() and np.isnan(note_values[~roll]).all()
    figure = render_piano_roll(trace, 1, "f", 2)
    assert figure.axes
    audio, note = synthesize(frames_to_midi(result.frames or [[60]], 1, 120), 16000)
    assert audio.ndim == 1 and len(audio) > 0 and np.abs(audio).max() <= 1.0
    assert note is None or "sine" in note
    path = write_wav(tmp_path / "a.wav", audio, 16000)
    assert path.stat().st_size > 44
    # the downloads: MIDI and audio, the audio's fallback named in the result's notes if used
    files = music.write_files(generation, tmp_path)
    assert set(files) == {"midi", "audio"} and all(p.stat().st_size > 44 for p in files.values())
    assert pretty_midi.PrettyMIDI(str(files["midi"])).instruments[0].notes


def test_piano_roll_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="non-empty"):
        piano_roll(np.zeros((0, 5), dtype=bool), 60)
    with pytest.raises(ValueError, match="vmin < vmax"):
        piano_roll(np.ones((2, 5), dtype=bool), 60, vmin=1.0, vmax=1.0)
    figure = piano_roll(np.eye(4, 6, dtype=bool), 60, primer_steps=2)  # no values: plain grey notes
    assert len(figure.axes) == 1


# ---------------------------------------------------------------- score, read_input, features
def test_score_reads_frames_teacher_forced_and_says_what_it_changed(tmp_path):
    loaded = as_loaded(tiny_model(48, 84, hidden_size=16))
    frames = [[64, 60, 60, 67], [], [30, 62]]  # duplicates merged; 30 is below C3 and moves up by octaves
    scored = music.score(loaded, frames)
    assert scored.sequence == [[60, 64, 67], [], [54, 62]]
    assert any("moved by octaves" in note for note in scored.notes)
    trace = scored.trace
    assert trace.labels == ["start", "C4", "E4", "G4", "end", "end", "F#3", "D4", "end"]
    assert trace.shown_from == 1 and trace.prompt_length == trace.steps and trace.detail.primer_frames == 3
    assert scored.distributions["logits"].shape == (trace.steps, loaded.codec.size)
    np.testing.assert_allclose(scored.distributions["logits"], music.fused(loaded, frames)["logits"], atol=1e-5)
    for bad in ("C4 E4 G4", [[60.5]], [60, 64], None):
        with pytest.raises(MusicInputError, match="list of frames"):
            music.score(loaded, bad)
    # a file: read_input keeps what reading it changed, and score passes that on
    path = write_midi(tmp_path / "in.mid", [(60, 0, 1), (64, 1, 2)], drums=[(36, 0, 1)])
    read = music.read_input(path, loaded)
    assert read == [[60], [64]] and read.source == "in.mid"
    scored = music.score(loaded, read)
    assert any("drum track" in note for note in scored.notes) and scored.trace.detail.primer_source == "in.mid"


def test_features_follow_the_frames_token_by_token():
    frames = [[60, 64, 67], [60, 64, 67], [], [55, 62, 71]]
    tracks = music.features(frames)
    # steps: start, C4 E4 G4 end, C4 E4 G4 end, end, G3 D4 B4 end (the start belongs to frame 0)
    frame = [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 3, 3, 3, 3]
    assert tracks["voices"].tolist() == [[3, 3, 0, 3][k] for k in frame]
    assert tracks["soprano pitch"].tolist() == [[67, 67, 0, 71][k] for k in frame]
    assert tracks["bass pitch"].tolist() == [[60, 60, 0, 55][k] for k in frame]
    assert tracks["beat position"].tolist() == frame  # a quarter-note grid: frame k is beat k of the bar
    assert tracks["chord change"].tolist() == [[1, 0, 1, 1][k] for k in frame]
    assert np.flatnonzero(tracks["end of frame"]).tolist() == [4, 8, 9, 13]
    loaded = as_loaded(tiny_model(36, 96, hidden_size=16))
    scored = music.score(loaded, frames)
    assert all(len(track) == scored.trace.steps for track in tracks.values())
    long = music.features([[60]] * 6, music.score(loaded, [[60]] * 6))  # the bar starts again on frame 4
    assert long["beat position"][np.flatnonzero(long["end of frame"])].tolist() == [0, 1, 2, 3, 0, 1]


def test_audio_falls_back_to_a_sine_synth_with_a_note(monkeypatch):
    midi = frames_to_midi([[60, 64], [67]], 1, 120)

    def no_fluidsynth(*args, **kwargs):
        raise ImportError("fluidsynth() was called but pyfluidsynth is not installed.")

    monkeypatch.setattr(midi, "fluidsynth", no_fluidsynth)
    audio, note = synthesize(midi, 8000)
    assert len(audio) >= 8000 and np.abs(audio).max() > 0.1
    assert "FluidSynth is not available" in note and "sine" in note


# ---------------------------------------------------------------- checkpoint and CLI
def tiny_jsb() -> dict:
    rng = np.random.default_rng(0)

    def piece(length):
        root = int(rng.integers(55, 65))
        return [sorted({root + int(rng.integers(0, 3)) * 4 - 12, root, root + 4, root + 7}) for _ in range(length)]

    return {"train": [piece(12) for _ in range(4)], "valid": [piece(8) for _ in range(2)], "test": [piece(8) for _ in range(2)]}


def test_checkpoint_round_trip_and_broken_card(tmp_path):
    model = tiny_model(36, 96)
    music.save(tmp_path / "m", model, model.codec, {"data": {"source": "test", "licence": "none"}})
    loaded = music.load(tmp_path / "m")
    card = loaded.card
    assert card["codec"]["min_pitch"] == 36 and loaded.codec == model.codec and card["kind"] == "pitch-lstm"
    with pytest.raises(ValueError, match="not the model's own"):  # the codec lives in the model's config
        music.save(tmp_path / "x", model, PitchCodec(40, 90, 1))
    card["config"]["hidden_size"] = 99
    (tmp_path / "m.json").write_text(json.dumps(card))

    with pytest.raises(checkpoint.CheckpointError, match="m.safetensors"):
        music.load(tmp_path / "m")


def test_cli_train_eval_generate(tmp_path, run_cli):
    data = tmp_path / "chorales.json"
    data.write_text(json.dumps(tiny_jsb()))
    stem = tmp_path / "models" / "tiny-music"
    result = run_cli("train", "music", "--data", data, "--out", stem, "--steps", "4", "--batch-size", "2",
                     "--hidden-size", "8", "--embed-size", "4", "--eval-every", "2", "--warmup-steps", "1",
                     "--min-pitch", "36", "--max-pitch", "84", "--device", "cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    # the trainer's summary, then the test split scored once on the best weights
    assert any(re.fullmatch(rf"best_valid_nll_per_frame: {FLOAT}", line) for line in lines)
    assert re.fullmatch(rf"test_nll_per_frame: {FLOAT} over 16 frames", lines[-1])
    card = json.loads(stem.with_suffix(".json").read_text())
    assert card["metrics"]["valid_nll_per_frame"] == pytest.approx(float(lines[-2].split()[-1]), abs=1e-4)
    assert card["reproduce"].startswith("python -m studio train music --data")
    assert card["metrics"]["test_frames"] == 16

    result = run_cli("eval", "music", "--model", stem, "--data", data, "--split", "test")
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"test_nll_per_frame: {FLOAT}", last)
    assert float(last.split()[-1]) == pytest.approx(card["metrics"]["test_nll_per_frame"], abs=1e-4)

    primer = write_midi(tmp_path / "primer.mid", [(60, 0, 1), (64, 1, 2), (67, 2, 4)])
    out = tmp_path / "out.mid"
    result = run_cli("generate", "music", "--model", stem, "--bars", "2", "--primer", primer, "--out", out,
                     "--seed", "3", "--trace-out", tmp_path / "t.npz")
    assert result.returncode == 0, result.stderr[-3000:]
    assert pretty_midi.PrettyMIDI(str(out)).instruments[0].notes
    trace = Trace.load_npz(tmp_path / "t.npz", detail_type=MusicTraceDetail)
    assert trace.domain == "music" and trace.detail.primer_frames == 4 and trace.detail.primer_source == "primer.mid"

    # the generic trace command reads the file through music.read_input and scores it
    result = run_cli("trace", "music", "--model", stem, "--input", primer, "--out", tmp_path / "read.npz")
    assert result.returncode == 0, result.stderr[-3000:]
    read = Trace.load_npz(tmp_path / "read.npz", detail_type=MusicTraceDetail)
    assert read.labels == ["start", "C4", "end", "E4", "end", "G4", "end", "G4", "end"]

    (tmp_path / "bad.mid").write_text("not midi")
    result = run_cli("generate", "music", "--model", stem, "--primer", tmp_path / "bad.mid", "--out", out)
    assert result.returncode != 0 and "not a MIDI file" in result.stderr and "Traceback" not in result.stderr


def test_a_long_valid_midi_pretty_midi_refuses_is_read_with_mido(tmp_path):
    """pretty_midi refuses a file whose last tick is past 10 million ("likely corrupt"); a long
    movement at a fine resolution is such a file, and is read note by note from its ticks."""
    import mido
    import pretty_midi

    song = mido.MidiFile(ticks_per_beat=9600)
    track = mido.MidiTrack()
    song.tracks.append(track)
    chords = [(60, 64, 67), (62, 65, 69), (59, 62, 67), (60, 64, 67)]
    for quarter in range(1100):  # 1,100 quarters x 9,600 ticks: past pretty_midi's cap
        for pitch in chords[quarter % 4]:
            track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        for k, pitch in enumerate(chords[quarter % 4]):
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=9600 if k == 0 else 0))
    track.append(mido.Message("note_on", channel=9, note=36, velocity=90, time=0))  # a drum, ignored
    track.append(mido.Message("note_off", channel=9, note=36, velocity=0, time=100))
    path = tmp_path / "movement.mid"
    song.save(path)
    with pytest.raises(ValueError, match="likely corrupt"):
        pretty_midi.PrettyMIDI(str(path))
    from studio.domains.music.codec import read_midi_ticks

    reading = read_midi_ticks(path)
    pitched, drums = reading.parts
    events = pitched.events
    assert len(events) == 1100 * 3 and events[:3] == [(60, 0.0, 1.0), (64, 0.0, 1.0), (67, 0.0, 1.0)]
    assert events[-1][2] == 1100.0 and "mido" in reading.notes[0] and drums.is_drum and len(drums.events) == 1
    loaded = music.load(music.DEFAULT_MODEL)
    primer = music.read_input(path, loaded)
    assert primer[0] == [60, 64, 67] and primer[1] == [62, 65, 69] and any("mido" in note for note in primer.notes)
    assert any("drum" in note for note in primer.notes)
