"""Music data: reading primers (MIDI, MusicXML, ABC, kern, music21's corpus) and the JSB Chorales
JSON (the per-step feature tracks live in evaluate.py, beside `score`).

Importers: MIDI through pretty_midi, or mido where pretty_midi refuses a valid file (codec.py), and
MusicXML / ABC / Humdrum kern through music21 (notes taken from the parsed score, never re-exported),
each as a codec.Reading: parts of note events (pitch, start, end) in quarter notes, with the file's
time signatures and tempo map. Onsets and ends are sampled on the grid as the JSB data was (frame k:
the pitches sounding at step k); drums are dropped; a frame with more than VOICES notes (a band, an
orchestra) keeps the melody on top, the bass below and inner voices between (`reduce_voices`);
pitches outside the model's range are moved by octaves; long pieces are cut to `MAX_PRIMER_BARS`
bars of their own metre; each change with a note. Anything unusable raises MusicInputError with a
message meant for the user. `read_pieces` reads many files (folders, .zip files) for training.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import tempfile
from pathlib import Path

import numpy as np

from studio import limits
from studio.domains.music.codec import VOICES, Part, PitchCodec, Reading, bar_start, bars_before, read_midi_ticks

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

    def __init__(self, frames=(), notes=(), source: str = "", time_signatures=(), tempos=()):
        super().__init__(frames)
        self.notes = list(notes)  # what was adjusted on the way in, in plain words
        self.source = source  # a name for the page and the trace
        self.time_signatures = list(time_signatures)  # the file's metre map (codec.clean_metre); empty: none given
        self.tempos = list(tempos)  # (quarter note, quarter notes per minute) changes; empty: none given


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


def _between(pitch: int, low: int, high: int) -> int | None:
    """`pitch` moved by as few octaves as it takes to lie strictly between low and high, or None."""
    options = [pitch + 12 * k for k in range(-10, 11) if low < pitch + 12 * k < high]
    return min(options, key=lambda p: abs(p - pitch)) if options else None


def reduce_voices(part_frames, melody: int, bass: int, codec: PitchCodec, voices: int = VOICES):
    """Per-part frames on one grid -> (frames, frames reduced, note-steps left out). A frame of at most `voices`
    notes keeps them all; a fuller one keeps the melody part's top note as the soprano and the bass part's lowest
    as the bass (moved by octaves into the model's range), and fills the voices between with the other parts'
    notes (chord parts first, new pitch classes first), moved by octaves between the two."""
    frames, reduced, left_out = [], 0, 0
    for k in range(max(map(len, part_frames))):
        sounding = [part[k] if k < len(part) else [] for part in part_frames]
        every = sorted({p for notes in sounding for p in notes})
        if len(every) > voices:
            top = _between(max(sounding[melody] or every), codec.min_pitch - 1, codec.max_pitch + 1)
            low = _between(min(sounding[bass] or every), codec.min_pitch - 1, codec.max_pitch + 1)
            chosen = {low, top}
            others = [p for i, notes in enumerate(sounding) if i not in (melody, bass) for p in notes]
            for fresh in (True, False) if top is not None and low is not None and top - low > 1 else ():
                for pitch in others + sounding[melody] + sounding[bass]:
                    placed = _between(pitch, low, top)
                    if placed is not None and len(chosen) < voices and not (fresh and placed % 12 in {c % 12 for c in chosen}):
                        chosen.add(placed)
            kept = sorted(chosen) if None not in chosen and top - low > 1 else every[:1] + every[1 - voices:]
            reduced, left_out = reduced + 1, left_out + len(every) - len(kept)
            every = kept
        frames.append(every)
    return frames, reduced, left_out


def band_notes(parts, pitched, melody: int, bass: int, reduced: int, left_out: int) -> list[str]:
    """What a band's reduction kept and dropped, in words."""
    notes = []
    if drums := [part.describe() for part in parts if part.is_drum and part.events]:
        notes.append(f"Dropped {len(drums)} drum track(s), as the model writes pitched notes only: {', '.join(drums)}.")
    if len(pitched) > 1:
        middle = [part.describe() for i, part in enumerate(pitched) if i not in (melody, bass)][:6]
        middle += [f"{len(pitched) - 8} more"] * (len(pitched) > 8)
        notes.append(f"Kept {len(pitched)} parts in the model's {VOICES} voices: the melody {pitched[melody].describe()} as the "
                     f"soprano, the bass {pitched[bass].describe()} as the bass"
                     + (f", and {', '.join(middle)} filling the voices between." if middle else "."))
    if reduced:
        notes.append(f"In {reduced} frame(s) more than {VOICES} notes sounded together: {left_out} note-step(s) were left out "
                     "and the inner voices moved by octaves between the bass and the soprano.")
    return notes


def frames_from_events(note_events, codec: PitchCodec, source: str, notes=None, max_bars: int = MAX_PRIMER_BARS,
                       longest: int = MAX_PRIMER_BARS) -> Primer:
    """The shared tail of every reader (note events, or a codec.Reading of parts, metre and tempo):
    grid, the model's voices, cap (at most `longest` bars of the file's metre), range."""
    reading = note_events if isinstance(note_events, Reading) else Reading([Part("", 0, False, list(note_events))])
    notes, metre = list(notes or []) + reading.notes, reading.time_signatures
    max_bars = max(1, min(longest, int(max_bars)))
    pitched = [part for part in reading.parts if not part.is_drum and part.events]
    if not pitched:
        raise MusicInputError(f"{source} has no pitched notes" + (" (drums only)." if any(
            part.events for part in reading.parts) else " (it is empty)."))
    max_steps = round(bar_start(metre, max_bars) * codec.steps_per_quarter)  # bars of the file's own metre
    gridded = [events_to_frames([(p, max(0.0, s), max(0.0, e)) for p, s, e in part.events], codec.steps_per_quarter,
                                max_steps) for part in pitched]
    by_height = sorted(range(len(pitched)), key=lambda i: statistics.median(p for p, _, _ in pitched[i].events))
    frames, reduced, left_out = reduce_voices([grid for grid, _, _ in gridded], by_height[-1], by_height[0], codec)
    notes += band_notes(reading.parts, pitched, by_height[-1], by_height[0], reduced, left_out)
    if between := sum(count for _, _, count in gridded):
        grid = "quarter note" if codec.steps_per_quarter == 1 else f"1/{codec.steps_per_quarter} of a quarter note"
        notes.append(f"{between} short note(s) that sound at no point of the model's grid (one step = {grid}) were left out.")
    if any(cut for _, cut, _ in gridded):
        total = bars_before(metre, max(end for part in pitched for _, _, end in part.events))
        notes.append(f"{source} is about {total:,.0f} bars long; only its first {max_bars} bar(s) were used.")
    frames, range_notes = codec.fit_to_range(frames)
    notes += range_notes
    while frames and not frames[-1]:  # trailing silence would only teach the model to rest
        frames.pop()
    if not any(frames):
        raise MusicInputError(f"{source} has no notes the model can use.")
    end = len(frames) / codec.steps_per_quarter  # the primer keeps the metre and tempo changes before its end
    return Primer(frames, notes, source, [s for s in metre if s[0] < end], [t for t in reading.tempos if t[0] < end])


# ---------------------------------------------------------------- files
def _midi_events(path: Path) -> Reading:
    """Every instrument of a MIDI file as a part, with the file's metre and tempo map."""
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
    except Exception as error:  # pretty_midi refuses some valid files (a tick past 10 million: codec.py): try mido
        try:
            return read_midi_ticks(path, "its length" if "likely corrupt" in str(error) else limits.plain_reason(error))
        except Exception:  # mido raises many kinds on corrupt files
            raise MusicInputError(limits.unreadable(path.name, "MIDI file", error)) from None

    def quarters(notes, when):  # through the file's tempo map
        return _seconds_to_quarters(midi, np.array([getattr(note, when) for note in notes], dtype=float)).tolist()
    parts = [Part(inst.name.strip(), inst.program, inst.is_drum, list(zip(
        [note.pitch for note in inst.notes], quarters(inst.notes, "start"), quarters(inst.notes, "end"), strict=True)))
        for inst in midi.instruments if inst.notes]
    signatures = [(midi.time_to_tick(ts.time) / midi.resolution, ts.numerator, ts.denominator)
                  for ts in midi.time_signature_changes]
    tempos = [(tick / midi.resolution, 60.0 / (scale * midi.resolution)) for tick, scale in midi._tick_scales]
    return Reading(parts, signatures, tempos)


def _seconds_to_quarters(midi, seconds: np.ndarray) -> np.ndarray:
    """Seconds -> quarter notes through the tempo map, all at once (time_to_tick is one by one: slow)."""
    change_ticks = np.array([tick for tick, _ in midi._tick_scales], dtype=float)
    seconds_per_tick = np.array([scale for _, scale in midi._tick_scales], dtype=float)
    change_seconds = np.concatenate([[0.0], np.cumsum(np.diff(change_ticks) * seconds_per_tick[:-1])])
    segment = np.clip(np.searchsorted(change_seconds, seconds, side="right") - 1, 0, None)
    ticks = change_ticks[segment] + (seconds - change_seconds[segment]) / seconds_per_tick[segment]
    return ticks / float(midi.resolution)


def _score_events(score) -> Reading:
    """A music21 stream's parts (ties merged), time signatures and metronome marks, in quarter notes."""
    try:
        score = score.stripTies()
    except Exception:  # stripTies is a nicety; untied notes still sound
        pass
    parts = [Part(str(getattr(part, "partName", "") or "").strip(), 0, False, [
        (int(pitch.midi), float(element.offset), float(element.offset) + float(element.quarterLength))
        for element in part.flatten().notes for pitch in getattr(element, "pitches", ())])  # unpitched: no pitches
        for part in getattr(score, "parts", None) or [score]]
    flat = score.flatten()
    signatures = [(float(ts.offset), ts.numerator, ts.denominator) for ts in flat.getElementsByClass("TimeSignature")]
    tempos = [(float(mark.offset), float(bpm)) for mark in flat.getElementsByClass("MetronomeMark")
              if (bpm := mark.getQuarterBPM())]
    return Reading(parts, signatures, sorted(tempos))


def _parse_score(path: Path):
    limits.check_if_zip(path, error=MusicInputError)  # a compressed MusicXML's unpacked size, before music21 unzips it
    try:
        from music21 import converter

        return converter.parse(str(path))
    except Exception as error:  # music21's parsers raise many kinds
        raise MusicInputError(limits.unreadable(path.name, "score", error)) from None


def _file_events(path: Path) -> Reading:
    """The parts, metre and tempo of a MIDI, MusicXML, ABC or kern file, after the checks."""
    if not path.is_file():
        raise MusicInputError(f"{path.name or path} is not a file.")
    size = path.stat().st_size
    if size == 0:
        raise MusicInputError(f"{path.name} is empty.")
    if size > MAX_FILE_BYTES:
        raise MusicInputError(f"{path.name} is {size / 1e6:.0f} MB; files up to {MAX_FILE_BYTES // 1_000_000} MB are accepted.")
    suffix = path.suffix.lower()
    if suffix in SCORE_SUFFIXES:
        return _score_events(_parse_score(path))
    if suffix not in MIDI_SUFFIXES:
        with open(path, "rb") as handle:
            if handle.read(4) != b"MThd":
                known = ", ".join(MIDI_SUFFIXES[:2] + SCORE_SUFFIXES)
                raise MusicInputError(f"{path.name} is neither a MIDI file nor a score music21 reads ({known}).")
    return _midi_events(path)


def read_primer(path, codec: PitchCodec, max_bars: int = MAX_PRIMER_BARS) -> Primer:
    """A MIDI, MusicXML, ABC or kern file -> frames on the model's grid, with notes on what changed."""
    path = Path(path)
    return frames_from_events(_file_events(path), codec, path.name, max_bars=max_bars)


def read_input(path, loaded) -> Primer:
    """The contract's reader: a MIDI / MusicXML / ABC / kern file -> its frames on the model's
    grid (at most MAX_PRIMER_BARS bars), remembering what reading them changed."""
    return read_primer(path, loaded.codec)


def corpus_primer(name: str, codec: PitchCodec, max_bars: int = MAX_PRIMER_BARS) -> Primer:
    """A chorale from music21's bundled corpus, e.g. 'bach/bwv269'."""
    return frames_from_events(_corpus_events(name), codec, name, max_bars=max_bars)


@functools.lru_cache(maxsize=32)
def _corpus_events(name: str) -> Reading:
    try:  # parsing a chorale is slow (docs/benchmarks.md, Music), so a tab that offers a few keeps them
        from music21 import corpus

        return _score_events(corpus.parse(name))
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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:  # nested too deep: RecursionError
        raise MusicInputError(f"{Path(path).name} is not valid JSON: {limits.plain_reason(error)}.") from None
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
    return Path(name).suffix.lower() in MIDI_SUFFIXES + SCORE_SUFFIXES and not limits.hidden(name)


def _unzip(path: Path, scratch: Path):
    """(extracted file, name in the archive) of each MIDI / score file of a zip, its size checked first."""
    found = limits.extract_zip(path, scratch, _is_music, MAX_UNZIPPED_BYTES, "MIDI or MusicXML files", MusicInputError)
    return [(target, target.name) for target in found]


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
                frames = frames_from_events(_file_events(path), codec, name, [], MAX_PIECE_BARS, MAX_PIECE_BARS)
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
