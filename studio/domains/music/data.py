"""Music data: reading primers (MIDI, MusicXML, ABC, kern, music21's corpus) and the JSB Chorales
JSON, and the per-step feature tracks the probes compare units against.

Importers: MIDI through pretty_midi (tempo-aware: note times become quarter notes through the
file's tick grid), MusicXML / ABC / Humdrum kern through music21 (note events taken from the parsed
score directly, never written out and re-read). A note event is (pitch, start, end) in quarter
notes. Onsets and ends are sampled on the grid as the JSB data was (frame k: the pitches sounding
at step k), so a note that sounds at no grid point is left out, with a note for the user. Drum
tracks are ignored, pitches outside the model's range are moved by octaves into it (or dropped
when the range cannot take them), and long pieces are cut to `MAX_PRIMER_BARS`, each with a note.
Anything unusable raises MusicInputError with a message meant for the user. `read_pieces` reads
many such files (folders and .zip files of them too) as whole pieces, for training.
"""

from __future__ import annotations

import functools
import json
import math
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from studio.domains.music.codec import QUARTERS_PER_BAR, PitchCodec, note_events

MAX_PRIMER_BARS = 32  # a longer primer keeps only its first bars
MAX_FILE_BYTES = 20_000_000  # larger uploads are refused before parsing
MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")
SCORE_SUFFIXES = (".xml", ".musicxml", ".mxl", ".abc", ".krn", ".mei")
JSB_SPLITS = ("train", "valid", "test")
JSB_SOURCE = {
    "source": "JSB Chorales (czhuang/JSB-Chorales-dataset), split of Boulanger-Lewandowski et al. (2012): "
    "229 train / 76 valid / 77 test chorales",
    "licence": "the chorales are public domain",
}
# Chorales of music21's corpus offered as primers. music21 holds the same chorales as JSB, so
# these were matched to the JSB pieces (transposition-invariant frame 3-grams; each matched one
# train or valid piece clearly and no test piece): continuing one never shows a test chorale.
CORPUS_CHORALES = [
    "bach/bwv2.6", "bach/bwv4.8", "bach/bwv20.11", "bach/bwv28.6", "bach/bwv40.6", "bach/bwv48.3",
    "bach/bwv64.8", "bach/bwv65.2", "bach/bwv77.6", "bach/bwv86.6", "bach/bwv101.7", "bach/bwv145.5",
    "bach/bwv153.1", "bach/bwv180.7", "bach/bwv244.10", "bach/bwv244.37",
]


class MusicInputError(ValueError):
    """A primer file or request that cannot be used; the message is meant for the user."""


class Primer(list):
    """Frames on the model's grid and in its range (each a list of MIDI pitches): a plain list of
    frames, the domain's sequence format, that also keeps where it came from and what reading it
    changed, so `score` and `generate` can pass those notes on to the user."""

    def __init__(self, frames=(), notes=(), source: str = ""):
        super().__init__(frames)
        self.notes = list(notes)  # what was adjusted on the way in, in plain words
        self.source = source  # a name for the page and the trace


# ---------------------------------------------------------------- note events -> frames
def events_to_frames(note_events, steps_per_quarter: int, max_steps: int) -> tuple[list[list[int]], bool, int]:
    """(pitch, start, end) in quarter notes -> grid frames, whether the piece was cut at
    max_steps, and how many note events sound at no grid point.

    Frame k holds the pitches sounding at time k (in steps), as the JSB data was sampled: a
    note from s to e sounds in frames ceil(s) .. ceil(e) - 1. Times are first snapped to 1/24
    of a step so a hair-late onset of a played MIDI still lands on its grid point; notes that
    sound at no grid point (passing eighths at a quarter-note grid) are left out."""
    frames: list[set[int]] = []
    cut, between = False, 0
    for pitch, start, end in note_events:
        first = math.ceil(round(start * steps_per_quarter * 24) / 24)
        last = math.ceil(round(end * steps_per_quarter * 24) / 24)
        if last <= first:
            between += 1
            continue
        if first >= max_steps:
            cut = True
            continue
        if last > max_steps:
            cut, last = True, max_steps
        if len(frames) < last:
            frames.extend(set() for _ in range(last - len(frames)))
        for k in range(max(0, first), last):
            frames[k].add(int(pitch))
    return [sorted(f) for f in frames], cut, between


def frames_from_events(note_events, codec: PitchCodec, source: str, notes=None, max_bars: int = MAX_PRIMER_BARS,
                       longest: int = MAX_PRIMER_BARS) -> Primer:
    """The shared tail of every reader: grid, cap (at most `longest` bars), range."""
    notes = list(notes or [])
    max_bars = max(1, min(longest, int(max_bars)))
    if not note_events:
        raise MusicInputError(f"{source} has no notes.")
    if min(start for _, start, _ in note_events) < 0:
        note_events = [(p, max(0.0, s), max(0.0, e)) for p, s, e in note_events]
    frames, cut, between = events_to_frames(note_events, codec.steps_per_quarter, max_bars * codec.steps_per_bar)
    if between:
        grid = "quarter note" if codec.steps_per_quarter == 1 else f"1/{codec.steps_per_quarter} of a quarter note"
        notes.append(f"{between} short note(s) that sound at no point of the model's grid (one step = {grid}) were left out.")
    if cut:
        total = max(end for _, _, end in note_events) / QUARTERS_PER_BAR
        notes.append(f"{source} is about {total:,.0f} bars long; only its first {max_bars} bar(s) were used.")
    frames, range_notes = codec.fit_to_range(frames)
    notes += range_notes
    while frames and not frames[-1]:  # trailing silence would only teach the model to rest
        frames.pop()
    if not any(frames):
        raise MusicInputError(f"{source} has no notes the model can use.")
    return Primer(frames, notes, source)


# ---------------------------------------------------------------- files
def _midi_events(path: Path) -> tuple[list[tuple[int, float, float]], list[str]]:
    """(note events of every pitched track, notes for the user)."""
    import pretty_midi

    try:
        with open(path, "rb") as handle:
            header = handle.read(4)
    except OSError as error:
        raise MusicInputError(f"cannot read {path.name}: {error.strerror or error}") from None
    if header != b"MThd":
        raise MusicInputError(f"{path.name} is not a MIDI file (it does not start with a MIDI header).")
    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as error:
        if "likely corrupt" in str(error):  # pretty_midi's tick cap: often a valid long file (music/codec.py)
            return note_events(path)  # mido/pretty_midi raise many kinds on corrupt files
        raise MusicInputError(f"{path.name} is a corrupt or unsupported MIDI file ({type(error).__name__}: {error}).") from None
    notes = []
    drums = [inst for inst in midi.instruments if inst.is_drum and inst.notes]
    pitched = [inst for inst in midi.instruments if not inst.is_drum and inst.notes]
    if drums:
        notes.append(f"Ignored {len(drums)} drum track(s): the model writes pitched notes only.")
    if not pitched:
        raise MusicInputError(f"{path.name} has no pitched notes" + (" (drums only)." if drums else " (it is empty)."))
    pitches = np.array([event.pitch for inst in pitched for event in inst.notes])
    starts = _seconds_to_quarters(midi, np.array([event.start for inst in pitched for event in inst.notes]))
    ends = _seconds_to_quarters(midi, np.array([event.end for inst in pitched for event in inst.notes]))
    return list(zip(pitches.tolist(), starts.tolist(), ends.tolist(), strict=True)), notes


def _seconds_to_quarters(midi, seconds: np.ndarray) -> np.ndarray:
    """Note times -> quarter notes through the file's tempo map, all at once (pretty_midi's
    time_to_tick goes one time at a time: minutes for a long file)."""
    change_ticks = np.array([tick for tick, _ in midi._tick_scales], dtype=float)
    seconds_per_tick = np.array([scale for _, scale in midi._tick_scales], dtype=float)
    change_seconds = np.concatenate([[0.0], np.cumsum(np.diff(change_ticks) * seconds_per_tick[:-1])])
    segment = np.clip(np.searchsorted(change_seconds, seconds, side="right") - 1, 0, None)
    ticks = change_ticks[segment] + (seconds - change_seconds[segment]) / seconds_per_tick[segment]
    return ticks / float(midi.resolution)


def _score_events(score) -> list[tuple[int, float, float]]:
    """(pitch, start, end) in quarter notes from a music21 stream, ties merged."""
    try:
        score = score.stripTies()
    except Exception:  # stripTies is a nicety; untied notes still sound
        pass
    note_events = []
    for element in score.flatten().notes:
        start = float(element.offset)
        end = start + float(element.quarterLength)
        for pitch in getattr(element, "pitches", ()):  # a Note has one, a Chord several; unpitched none
            note_events.append((int(pitch.midi), start, end))
    return note_events


def _parse_score(path: Path):
    try:
        from music21 import converter

        return converter.parse(str(path))
    except Exception as error:  # music21's parsers raise many kinds
        raise MusicInputError(f"{path.name} could not be read as a score ({type(error).__name__}: {error}).") from None


def _file_events(path: Path) -> tuple[list[tuple[int, float, float]], list[str]]:
    """(note events, notes for the user) of a MIDI, MusicXML, ABC or kern file, after the checks."""
    if not path.is_file():
        raise MusicInputError(f"{path.name or path} is not a file.")
    size = path.stat().st_size
    if size == 0:
        raise MusicInputError(f"{path.name} is empty.")
    if size > MAX_FILE_BYTES:
        raise MusicInputError(f"{path.name} is {size / 1e6:.0f} MB; files up to {MAX_FILE_BYTES // 1_000_000} MB are accepted.")
    suffix = path.suffix.lower()
    if suffix in SCORE_SUFFIXES:
        return _score_events(_parse_score(path)), []
    if suffix not in MIDI_SUFFIXES:
        with open(path, "rb") as handle:
            if handle.read(4) != b"MThd":
                known = ", ".join(MIDI_SUFFIXES[:2] + SCORE_SUFFIXES)
                raise MusicInputError(f"{path.name} is neither a MIDI file nor a score music21 reads ({known}).")
    return _midi_events(path)


def read_primer(path, codec: PitchCodec, max_bars: int = MAX_PRIMER_BARS) -> Primer:
    """A MIDI, MusicXML, ABC or kern file -> frames on the model's grid, with notes on what changed."""
    path = Path(path)
    note_events, notes = _file_events(path)
    return frames_from_events(note_events, codec, path.name, notes, max_bars)


def read_input(path, loaded) -> Primer:
    """The contract's reader: a MIDI / MusicXML / ABC / kern file -> its frames on the model's
    grid (at most MAX_PRIMER_BARS bars), remembering what reading them changed."""
    return read_primer(path, loaded.codec)


def corpus_primer(name: str, codec: PitchCodec, max_bars: int = MAX_PRIMER_BARS) -> Primer:
    """A chorale from music21's bundled corpus, e.g. 'bach/bwv269'."""
    return frames_from_events(list(_corpus_events(name)), codec, name, max_bars=max_bars)


@functools.lru_cache(maxsize=32)
def _corpus_events(name: str) -> tuple:
    try:  # parsing costs ~0.2 s a chorale, so a tab that offers a few keeps them
        from music21 import corpus

        return tuple(_score_events(corpus.parse(name)))
    except Exception as error:
        raise MusicInputError(f"music21's corpus has no readable piece {name!r} ({type(error).__name__}).") from None


# ---------------------------------------------------------------- the JSB Chorales JSON
def check_jsb(data) -> dict[str, list[list[list[int]]]]:
    """The JSB json's splits, after checking their shape (pieces of frames of MIDI pitches)."""
    if not isinstance(data, dict) or not any(split in data for split in JSB_SPLITS):
        raise MusicInputError(f"expected a JSON object with splits {JSB_SPLITS}, each a list of pieces")
    for name, pieces in data.items():
        ok = isinstance(pieces, list) and all(
            isinstance(piece, list) and all(isinstance(f, list) and all(isinstance(p, int) for p in f) for f in piece)
            for piece in pieces
        )
        if not ok:
            raise MusicInputError(f"split {name!r} is not a list of pieces, each a list of frames of MIDI pitches")
    return data


def read_jsb(path) -> dict[str, list[list[list[int]]]]:
    """A JSB Chorales JSON file (train/valid/test lists of pieces); MusicInputError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise MusicInputError(f"cannot read {path}: {error.strerror or error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MusicInputError(f"{path} is not valid JSON: {error}") from None
    try:
        return check_jsb(data)
    except MusicInputError as error:
        raise MusicInputError(f"{path}: {error}") from None


def provenance(path, data: dict, source: str | None = None, licence: str | None = None) -> dict:
    """The card's data section: the JSB files are recognised; any other file is described by the
    given source and licence (or says they were not given)."""
    name = Path(path).name
    known = JSB_SOURCE if name.startswith("jsb-chorales") else {}
    return {
        "file": name,
        "source": source or known.get("source", f"{name} (no --source given)"),
        "licence": licence or known.get("licence", "unknown (no --licence given)"),
        "pieces": {split: len(data.get(split, [])) for split in JSB_SPLITS},
        "use": "train: training (randomly transposed); valid: early stopping; test: reported once, never tuned on",
    }


# ---------------------------------------------------------------- a training corpus of MIDI / score files
MAX_UNZIPPED_BYTES = 50_000_000  # the music files of a .zip must unpack to less than this
MAX_PIECE_BARS = 2_000  # a longer file trains on its first bars only


def _is_music(name: str) -> bool:
    parts = Path(name).parts
    return Path(name).suffix.lower() in MIDI_SUFFIXES + SCORE_SUFFIXES and not any(
        part.startswith(".") or part == "__MACOSX" for part in parts)


def _unzip(path: Path, scratch: Path):
    """(extracted file, name in the archive) of each MIDI / score file of a zip, its size checked first."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and _is_music(m.filename)]
            if not members:
                raise MusicInputError(f"{path.name} holds no MIDI or MusicXML files.")
            if sum(m.file_size for m in members) >= MAX_UNZIPPED_BYTES:
                raise MusicInputError(f"{path.name} unpacks to more than {MAX_UNZIPPED_BYTES // 1_000_000} MB of music files.")
            found = []
            for k, member in enumerate(members):  # a name of our own: the archive's paths never reach the disk
                target = scratch / f"{path.stem}-{k}{Path(member.filename).suffix.lower()}"
                target.write_bytes(archive.read(member))
                found.append((target, Path(member.filename).name))
            return found
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError, OSError) as error:
        raise MusicInputError(f"{path.name} is not a readable zip file ({error}).") from None


def _music_files(paths, scratch: Path):
    """(file, name to show) of every file given, of the music files in every folder, and in every .zip."""
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and _is_music(str(p.relative_to(path))))
            if not inside:
                raise MusicInputError(f"the folder {path.name} holds no MIDI or MusicXML files.")
            yield from ((p, p.name) for p in inside)
        elif path.suffix.lower() == ".zip" and path.is_file():
            yield from _unzip(path, Path(tempfile.mkdtemp(dir=scratch)))  # a folder each: names never collide
        else:
            yield path, path.name


def read_pieces(paths, codec: PitchCodec) -> tuple[list[tuple[str, list[list[int]]]], list[str]]:
    """([(name, frames)], notes): every MIDI / score file among `paths` (files; folders and .zip files
    of them) as frames on the codec's grid and in its range, from the first note to the last (at most
    MAX_PIECE_BARS bars). A file that cannot be used is skipped with a note; MusicInputError if none can."""
    pieces, notes, problems = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        for path, name in _music_files(paths, Path(scratch)):
            try:
                events, read_notes = _file_events(path)
                frames = frames_from_events(events, codec, name, read_notes, MAX_PIECE_BARS, MAX_PIECE_BARS)
            except MusicInputError as error:
                problems.append(str(error).replace(path.name, name))
                continue
            first = next(k for k, frame in enumerate(frames) if frame)  # frames_from_events left a note
            pieces.append((name, list(frames[first:])))
            notes += [note if note.startswith(name) else f"{name}: {note}" for note in frames.notes]
    if not pieces:
        raise MusicInputError(problems[0] if len(problems) == 1 else
                              f"none of the {len(problems)} files could be used; the first: {problems[0]}")
    return pieces, notes + [f"skipped {problem}" for problem in problems]


# ---------------------------------------------------------------- features
def frame_of_each_step(frames) -> np.ndarray:
    """(T,) the frame each token step of `frames` belongs to: BOS to the first frame, every pitch
    and END to their own frame (T = 1 + pitches + frames, as codec.encode writes them)."""
    sizes = [len(set(frame)) + 1 for frame in frames]  # a frame's tokens: its distinct pitches, then END
    return np.concatenate([[0], np.repeat(np.arange(len(frames)), sizes)]).astype(int)


def features(frames, scored=None) -> dict[str, np.ndarray]:
    """Per token step (one value per step of score's trace; a step shows the frame it belongs to):
    voices sounding, soprano and bass pitch (0 in a rest), beat position in the bar (quarter notes
    from its start), whether the chord changed from the previous frame, and end of frame. With
    `scored`, the frames are the ones the model read (moved into range) and the grid is its own;
    without, a quarter-note grid is assumed (the shipped model's)."""
    steps_per_quarter = 1
    if scored is not None:
        frames, steps_per_quarter = scored.sequence, scored.trace.detail.steps_per_quarter
    frames = [sorted(set(int(p) for p in frame)) for frame in frames]
    frame_index = frame_of_each_step(frames)
    padded = frames or [[]]  # no frames: BOS alone stands for an empty one
    voices = np.array([len(f) for f in padded], dtype=np.float32)
    soprano = np.array([f[-1] if f else 0 for f in padded], dtype=np.float32)
    bass = np.array([f[0] if f else 0 for f in padded], dtype=np.float32)
    grid = np.arange(len(padded))
    beat = (grid % (QUARTERS_PER_BAR * steps_per_quarter)) / steps_per_quarter
    change = np.array([f != (padded[k - 1] if k else []) for k, f in enumerate(padded)], dtype=np.float32)
    is_end = np.zeros(len(frame_index), dtype=np.float32)
    is_end[np.cumsum([len(f) + 1 for f in frames]).astype(int)] = 1  # END of frame k sits after its pitches
    return {
        "voices": voices[frame_index],
        "soprano pitch": soprano[frame_index],
        "bass pitch": bass[frame_index],
        "beat position": beat[frame_index].astype(np.float32),
        "chord change": change[frame_index],
        "end of frame": is_end,
    }


# ---------------------------------------------------------------- tests and docs
def example():
    """(frames, settings): a short input for `score` and settings for `generate` that continue a
    two-chord primer by one bar (tests, docs, benches)."""
    from studio.domains.music.generate import MusicSettings
    from studio.sampling import SamplingConfig

    frames = [[60, 64, 67], [62, 65, 69], [], [59, 62, 67, 74], [60, 64, 67, 72]]
    primer = Primer([[60, 64, 67], [62, 65, 71]], [], "example")
    return frames, MusicSettings(bars=1, primer=primer, sampling=SamplingConfig(temperature=1.0, seed=0))


def tiny(seed: int = 0):
    """(model, codec): a small random music model for tests (pitches 48..76, 16 units; no files)."""
    import torch

    from studio.domains.music.model import MusicModel, MusicModelConfig

    torch.manual_seed(seed)
    model = MusicModel(MusicModelConfig(48, 76, 1, embed_size=4, hidden_size=16, num_layers=2, dropout=0.0)).eval()
    return model, model.codec
