"""Music primers as people bring them: any MIDI a standard library reads (pretty_midi, else mido),
the primer's time signature and tempo in bar counts and output, a band reduced to the model's
voices and range, and bad files answered with a sentence. Tiny random models and MIDI / ABC files
the tests write themselves; nothing from ../shared."""

from __future__ import annotations

import time

import mido
import pretty_midi
import pytest
import torch

from studio import reference
from studio.domains import music
from studio.domains.base import LoadedModel, View
from studio.domains.music.codec import PitchCodec, bar_start, bars_before, clean_metre, read_midi_ticks
from studio.domains.music.data import MusicInputError, Primer, read_primer
from studio.domains.music.generate import MusicSettings, clean_settings, metre_text, timing
from studio.domains.music.model import MusicModel, MusicModelConfig, make_card
from studio.domains.music.render import render, write_music
from studio.sampling import SamplingConfig

torch.set_num_threads(1)


def tiny_loaded(min_pitch=36, max_pitch=96, seed=0) -> LoadedModel:
    torch.manual_seed(seed)
    config = MusicModelConfig(min_pitch, max_pitch, 1, embed_size=4, hidden_size=8, num_layers=2, dropout=0.0)
    model = MusicModel(config).eval()
    return LoadedModel("tiny", model, model.codec, make_card(model), ["layer 0", "layer 1"], "tiny test model")


def midi_file(path, tracks, ticks_per_beat=480, metre=((0, 4, 4),), tempos=((0, 120.0),)):
    """A MIDI file written with mido. tracks: [(name, program, channel, [(pitch, start, end) in quarters])];
    metre: (quarter, numerator, denominator); tempos: (quarter, bpm). Track 0 holds the timing."""
    song = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    timing_events = [(round(q * ticks_per_beat), mido.MetaMessage("time_signature", numerator=n, denominator=d, time=0))
                     for q, n, d in metre]
    timing_events += [(round(q * ticks_per_beat), mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
                      for q, bpm in tempos]
    for events in [timing_events] + [_track_events(*track, ticks_per_beat) for track in tracks]:
        track, now = mido.MidiTrack(), 0
        for tick, message in sorted(events, key=lambda e: e[0]):
            track.append(message.copy(time=tick - now))
            now = tick
        song.tracks.append(track)
    song.save(str(path))
    return path


def _track_events(name, program, channel, notes, ticks_per_beat):
    events = [(0, mido.MetaMessage("track_name", name=name, time=0)),
              (0, mido.Message("program_change", program=program, channel=channel, time=0))]
    for pitch, start, end in notes:  # offs sort before ons at the same tick (the sort is stable, offs go first)
        events.append((round(end * ticks_per_beat), mido.Message("note_off", note=pitch, channel=channel, time=0)))
        events.append((round(start * ticks_per_beat), mido.Message("note_on", note=pitch, velocity=80, channel=channel,
                                                                   time=0)))
    return sorted(events, key=lambda e: (e[0], e[1].type == "note_on"))


def waltz(bars: int, last_beats: int = 3):
    """A 3/4 melody, one note a beat, bars of C E G; the last bar sounds only `last_beats` beats."""
    return [(60 + (0, 4, 7)[beat], 3 * bar + beat, 3 * bar + beat + 1)
            for bar in range(bars) for beat in range(3 if bar < bars - 1 else last_beats)]


# ---------------------------------------------------------------- the metre map
def test_bar_arithmetic_follows_the_time_signatures():
    assert clean_metre([]) == [(0.0, 4, 4)]
    assert clean_metre([(0, 6, 8), (0, 6, 8), (6, 6, 8), (-1, 3, 4), (3, 0, 4), (9, 1, 64)]) == [(0.0, 6, 8)]
    metre = clean_metre([(8, 3, 4), (0, 4, 4)])  # sorted: 4/4 for two bars, then 3/4
    assert metre == [(0.0, 4, 4), (8.0, 3, 4)]
    assert [bar_start(metre, bar) for bar in range(5)] == [0, 4, 8, 11, 14]
    assert bars_before(metre, 9.5) == pytest.approx(2.5) and bars_before(metre, 8) == 2
    assert bar_start([(0.0, 6, 8)], 2) == 6 and bar_start([(0.0, 7, 8)], 2) == 7  # 6/8: 3 quarters, 7/8: 3.5
    assert bars_before([(0.0, 4, 4), (6.0, 3, 4)], 6) == 2  # a bar cut short by a change counts whole
    assert metre_text(metre) == "4/4, then 3/4 from bar 3"


# ---------------------------------------------------------------- a 3/4 primer
def test_a_three_four_primer_is_cut_counted_and_written_in_three_four(tmp_path):
    path = midi_file(tmp_path / "waltz.mid", [("Melody", 0, 0, waltz(10))], metre=[(0, 3, 4)], tempos=[(0, 96.0)])
    loaded = tiny_loaded()
    primer = read_primer(path, loaded.codec, max_bars=4)
    assert len(primer) == 12 and primer[:3] == [[60], [64], [67]]  # four bars of 3/4, not of 4/4
    assert primer.time_signatures == [(0.0, 3, 4)] and primer.tempos == [(0.0, pytest.approx(96.0))]
    assert any("about 10 bars long; only its first 4 bar(s)" in note for note in primer.notes)

    # the primer ends two beats into its fourth bar: that bar is filled, then two whole bars of 3/4 follow
    short = read_primer(midi_file(tmp_path / "short.mid", [("Melody", 0, 0, waltz(4, last_beats=2))],
                                        metre=[(0, 3, 4)], tempos=[(0, 96.0)]), loaded.codec)
    assert len(short) == 11
    settings = MusicSettings(bars=2, primer=short, sampling=SamplingConfig(temperature=1.0), seed=1)
    generation = music.generate(loaded, settings)
    result = generation.result
    assert len(result.frames) == 18 and result.bars == 2  # six bars of 3/4 in all, ending on a bar line
    assert result.tempo_bpm == pytest.approx(96.0) and result.time_signatures == [(0.0, 3, 4)]
    text = " ".join(result.notes)
    assert "3/4" in text and "96" in text
    assert generation.trace.detail.bar_lines(18) == [0, 3, 6, 9, 12, 15, 18] and generation.trace.detail.steps_per_bar == 3

    write_music(result, tmp_path / "out.mid")
    out = pretty_midi.PrettyMIDI(str(tmp_path / "out.mid"))
    signature = out.time_signature_changes[0]
    assert (signature.numerator, signature.denominator, signature.time) == (3, 4, 0.0)
    assert out.get_tempo_changes()[1] == pytest.approx([96.0], abs=0.01)
    assert out.get_end_time() <= 18 * 60 / 96 + 1e-6
    starts = sorted({round(note.start / (60 / 96), 6) for note in out.instruments[0].notes})
    assert starts[:3] == [0.0, 1.0, 2.0]
    # beat positions follow the bar: 0, 1, 2, 0, ...
    beats = music.features(short)["beat position"]
    assert beats[[1, 3, 5, 7]].tolist() == [0, 1, 2, 0]  # BOS, then C4 END, E4 END...: the frames' first tokens


def test_an_abc_score_in_three_four_with_a_metronome_mark(tmp_path):
    path = tmp_path / "minuet.abc"
    path.write_text("X:1\nT:minuet\nM:3/4\nL:1/4\nQ:1/4=90\nK:C\nC E G | D F A | E G c | C3 |\n")
    primer = read_primer(path, PitchCodec(36, 96, 1), max_bars=2)
    assert primer == [[60], [64], [67], [62], [65], [69]]
    assert primer.time_signatures == [(0.0, 3, 4)] and primer.tempos == [(0.0, 90.0)]


# ---------------------------------------------------------------- a tempo change
def test_a_tempo_change_plays_as_written_and_the_continuation_keeps_the_last_tempo(tmp_path):
    scale = [(60 + k, k, k + 1) for k in range(8)]
    path = midi_file(tmp_path / "ritardando.mid", [("Piano", 0, 0, scale)], tempos=[(0, 120.0), (4, 60.0)])
    loaded = tiny_loaded()
    primer = read_primer(path, loaded.codec)
    assert primer == [[60 + k] for k in range(8)]  # quarters through the tempo map: the change moves no note
    assert [(q, round(bpm, 3)) for q, bpm in primer.tempos] == [(0.0, 120.0), (4.0, 60.0)]
    result = music.generate(loaded, MusicSettings(bars=1, primer=primer,
                                                        sampling=SamplingConfig(temperature=1.0), seed=0)).result
    assert len(result.frames) == 12 and result.tempo_bpm == pytest.approx(60.0)
    assert any("changes tempo" in note and "keeps 60" in note for note in result.notes)
    write_music(result, tmp_path / "out.mid")
    out = pretty_midi.PrettyMIDI(str(tmp_path / "out.mid"))
    times, bpms = out.get_tempo_changes()
    assert times == pytest.approx([0.0, 2.0]) and bpms == pytest.approx([120.0, 60.0], abs=0.01)
    played = {note.pitch: round(note.start, 6) for note in out.instruments[0].notes if note.start < 6}
    assert played[61] == 0.5 and played[64] == 2.0 and played[66] == 4.0  # 0.5 s a quarter, then 1 s

    # a tempo in the request overrides the file's, with a note; no primer keeps 4/4 at 80
    asked = music.generate(loaded, MusicSettings(bars=1, primer=primer, tempo_bpm=150)).result
    assert asked.tempos == [(0.0, 150.0)] and any("150 as asked" in note for note in asked.notes)
    plain = music.generate(loaded, MusicSettings(bars=2)).result
    assert plain.tempo_bpm == 80.0 and plain.time_signatures == [] and len(plain.frames) == 8
    write_music(plain, tmp_path / "plain.mid")
    again = pretty_midi.PrettyMIDI(str(tmp_path / "plain.mid"))
    assert again.get_tempo_changes()[1] == pytest.approx([80.0])
    assert [(s.numerator, s.denominator) for s in again.time_signature_changes] == [(4, 4)]
    tempos, metre, frames, notes = timing(Primer([[60]]), None, 3, 1)  # a list of frames: today's rule
    assert (tempos, metre, frames, notes) == ([(0.0, 80.0)], [], 12, [])


def test_odd_tempos_are_clamped_and_a_scored_primer_keeps_its_metre(tmp_path):
    path = midi_file(tmp_path / "fast.mid", [("Piano", 0, 0, waltz(3))], metre=[(0, 3, 4)], tempos=[(0, 900.0)])
    loaded = tiny_loaded()
    primer = read_primer(path, loaded.codec)
    generation = music.generate(loaded, MusicSettings(bars=1, primer=primer))
    assert generation.result.tempo_bpm == 300.0 and any("clamped" in note for note in generation.result.notes)
    bars, tempo, notes = clean_settings(MusicSettings(tempo_bpm=None))
    assert tempo is None and "Tempo None is not a number; used the primer's tempo" in notes[0]
    assert clean_settings(MusicSettings())[1] is None  # 0, the default: the primer's, else 80
    # read back (explain, probes, references), the piece keeps the primer's metre
    scored = music.score(loaded, music.sequence_of(generation))
    assert scored.trace.detail.time_signatures == [[0.0, 3, 4]] and scored.trace.detail.steps_per_bar == 3
    beats = music.features(music.sequence_of(generation), scored)["beat position"]
    assert sorted(set(beats.tolist())) == [0, 1, 2]
    figure = render(generation, View(layer=0, quantity="h", unit=0))  # bar lines every 3 steps
    assert [round(line.get_xdata()[0], 1) for line in figure.axes[0].lines][:3] == [-0.5, 2.5, 5.5]


# ---------------------------------------------------------------- a long multi-track file pretty_midi refuses
def long_movement(path, quarters=1100):
    """Three parts of a 3/4 movement at 9,600 ticks a quarter: past pretty_midi's 10-million-tick cap."""
    parts = [("Violin I", 40, 0, [(72 + (k % 3) * 2, k, k + 1) for k in range(quarters)]),
             ("Viola", 41, 1, [(64, k, k + 1) for k in range(quarters)]),
             ("Cello", 42, 2, [(48 - 12 * (k % 2), k, k + 1) for k in range(quarters)])]
    return midi_file(path, parts, ticks_per_beat=9600, metre=[(0, 3, 4)], tempos=[(0, 72.0), (300, 66.0)])


def test_a_long_multitrack_movement_pretty_midi_refuses_is_read_with_mido(tmp_path):
    path = long_movement(tmp_path / "movement.mid")
    with pytest.raises(ValueError, match="likely corrupt"):
        pretty_midi.PrettyMIDI(str(path))
    reading = read_midi_ticks(path)
    assert [(p.name, p.program, len(p.events)) for p in reading.parts] == [("Violin I", 40, 1100), ("Viola", 41, 1100),
                                                                           ("Cello", 42, 1100)]
    assert reading.time_signatures == [(0.0, 3, 4)] and [bpm for _, bpm in reading.tempos] == pytest.approx([72.0, 66.0])
    began = time.perf_counter()
    primer = read_primer(path, PitchCodec(36, 96, 1), max_bars=8)
    assert time.perf_counter() - began < 5
    assert len(primer) == 24 and primer[:2] == [[48, 64, 72], [36, 64, 74]]
    assert primer.time_signatures == [(0.0, 3, 4)] and primer.tempos == [(0.0, pytest.approx(72.0))]  # 66 comes later
    text = " ".join(primer.notes)
    assert "mido" in text and "about 367 bars long" in text and "'Violin I'" in text and "'Cello'" in text


def test_cli_generate_music_takes_a_long_multitrack_primer(tmp_path, run_cli):
    stem = tmp_path / "tiny-music"
    music.save(stem, tiny_loaded().model)
    primer, out = long_movement(tmp_path / "movement.mid"), tmp_path / "out.mid"
    result = run_cli("generate", "music", "--model", stem, "--primer", primer, "--bars", "2", "--seed", "1",
                     "--out", out, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mido" in result.stderr and "3/4" in result.stderr
    assert result.stdout.strip().endswith("(2 bars of 3/4) at 72 bpm")
    written = pretty_midi.PrettyMIDI(str(out))
    assert [(s.numerator, s.denominator) for s in written.time_signature_changes] == [(3, 4)]
    assert written.get_tempo_changes()[1] == pytest.approx([72.0], abs=0.01)
    assert written.get_end_time() == pytest.approx((32 * 3 + 2 * 3) * 60 / 72, abs=1e-3)  # 32 primer bars + 2


# ---------------------------------------------------------------- a band
def band_file(path, bars=4):
    lead = [(76 + (0, 2, 4, 2)[k % 4], k, k + 1) for k in range(4 * bars)]  # E5 F#5 G#5 F#5 ...
    keys = [(pitch, 4 * bar, 4 * bar + 4) for bar in range(bars) for pitch in (60, 64, 67)]  # C major triads
    bass = [(28, k, k + 1) for k in range(4 * bars)]  # E1: below the model's range
    drums = [(36 + 2 * (k % 2), k, k + 0.5) for k in range(4 * bars)]
    return midi_file(path, [("Lead", 80, 0, lead), ("Keys", 0, 1, keys), ("Bass", 33, 2, bass), ("Drums", 0, 9, drums)],
                     tempos=[(0, 110.0)])


def test_a_band_is_reduced_to_the_models_voices_with_a_note(tmp_path):
    loaded = tiny_loaded(40, 84)
    path = band_file(tmp_path / "band.mid")
    primer = read_primer(path, loaded.codec)
    assert len(primer) == 16 and all(len(frame) <= 4 for frame in primer)
    for k, frame in enumerate(primer):
        assert frame[0] == 40 and frame[-1] == 76 + (0, 2, 4, 2)[k % 4]  # E1 up two octaves as the bass; the lead on top
        assert all(40 < p < frame[-1] for p in frame[1:-1]) and len(frame) == 4
    assert primer[0] == [40, 60, 67, 76]  # C and G fill the middle (E is already the bass's and the lead's pitch class)
    text = " ".join(primer.notes)
    assert "Dropped 1 drum track(s)" in text and "'Drums' (drums, 16 notes)" in text
    assert "the melody 'Lead' (Lead 1 (square), 16 notes) as the soprano" in text
    assert "the bass 'Bass' (Electric Bass (finger), 16 notes) as the bass" in text
    assert "'Keys' (Acoustic Grand Piano, 12 notes) filling the voices between" in text
    assert "In 16 frame(s) more than 4 notes sounded together: 16 note-step(s) were left out" in text
    # the Music tab, the CLI's `trace`/`generate` and the experiments' reference uploads all read through read_input
    sources = reference.sources(music, loaded, None, "file", file=str(path))
    assert sources[0].sequence == primer and sources[0].sequence.notes == primer.notes
    from studio.domains.music import tab

    assert tab.read_primer(loaded, tab.SOURCES[1], str(path), None, 4).notes == primer.notes


def test_a_string_quartet_keeps_its_four_voices(tmp_path):
    parts = [("Violin I", 40, 0, [(76, 0, 4)]), ("Violin II", 40, 1, [(67, 0, 4)]), ("Viola", 41, 2, [(60, 0, 4)]),
             ("Cello", 42, 3, [(48, 0, 4)])]
    primer = read_primer(midi_file(tmp_path / "quartet.mid", parts), PitchCodec(36, 96, 1))
    assert primer == [[48, 60, 67, 76]] * 4
    assert not any("left out" in note for note in primer.notes) and any("'Violin I'" in note for note in primer.notes)


# ---------------------------------------------------------------- bad files
def test_bad_files_get_a_sentence_not_a_traceback(tmp_path, run_cli):
    codec = PitchCodec(36, 96, 1)
    good = band_file(tmp_path / "good.mid").read_bytes()
    long = long_movement(tmp_path / "long.mid").read_bytes()
    cases = {
        "empty.mid": b"",
        "truncated.mid": good[: len(good) // 2],
        "truncated-long.mid": long[: len(long) // 3],  # pretty_midi refuses it, and mido cannot finish it either
        "header-only.mid": b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0",
        "letter.mid": b"Dear Bach, this is not a MIDI file.",
        "noise.mid": b"MThd" + bytes(range(256)) * 4,
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError) as error:
            read_primer(tmp_path / name, codec)
        message = str(error.value)
        assert isinstance(error.value, MusicInputError), (name, message)
        assert message.startswith(name) and message.endswith(".") and "\n" not in message, message
    stem = tmp_path / "tiny-music"
    music.save(stem, tiny_loaded().model)
    result = run_cli("generate", "music", "--model", stem, "--primer", tmp_path / "truncated.mid", "--out", tmp_path / "o.mid")
    assert result.returncode != 0 and "error: truncated.mid" in result.stderr and "Traceback" not in result.stderr
