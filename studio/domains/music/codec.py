"""Music codec: piano-roll frames <-> pitch tokens.

Format
------
A piece is a piano roll on a grid of ``steps_per_quarter`` frames per quarter note (1 for the
shipped JSB model, as in the JSB Chorales benchmark). Frame k is the list of MIDI pitches
sounding during grid step k; an empty frame is a rest. A list of frames is the domain's sequence
format (what `score`, `read_input` and `features` take). Like the JSB data, the grid does not
tell a held note from a repeated one.

Tokens (vocabulary of P + 2, where P = max_pitch - min_pitch + 1, both stored in the card):

    0 .. P-1    pitch min_pitch + k sounds in this frame
    P   (END)   the frame is complete
    P+1 (BOS)   start of a piece; read once, never predicted

A piece is BOS, then per frame its pitches in ascending order followed by END:

    frames [[60, 64, 67], [], [62]]  ->  BOS 60 64 67 END END 62 END   (pitches shown as MIDI)

Valid next tokens: after BOS or END, any pitch or END; after pitch p, only pitches above p or
END. The model's head gives raw logits over all P + 2 tokens; sampling and scoring both restrict
the softmax to the valid tokens (`masked_log_probs`), so

    P(frame | earlier frames) = product over the frame's tokens (pitches, then END)

is an exact distribution over every finite set of pitches (it sums to 1 over all frames), and
the NLL per frame, -(sum of log P over all frames' tokens) / (number of frames), is the figure
of Boulanger-Lewandowski et al. (2012) for JSB Chorales. Each piece starts from a fresh state.

Model input per token read: an embedding of the token plus two multi-hot pitch vectors, the
last complete frame and the pitches of the current frame so far. Both are functions of the
tokens already read (`frame_context`), so the model is still an ordinary token LSTM; they only
save it from having to memorise the previous chord before it can repeat or move from it.

Trace alignment: step t is the token the model read at t (BOS, primer tokens, then the
generated ones, the last generated END included), labelled with the note name, 'end' or
'start'; `MusicTraceDetail` (the trace's `detail`) keeps the tokens, so a saved trace can be
drawn as a piano roll without the model. The state after a frame's END stands for that frame.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

QUARTERS_PER_BAR = 4  # without a primer's metre, bars are of 4/4, like most chorales
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """MIDI pitch -> 'C4', 'F#5' (middle C is C4)."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass
class PitchCodec:
    min_pitch: int = 36  # lowest MIDI pitch the model knows (C2)
    max_pitch: int = 102  # highest (F#7): JSB's 43..96 with room to transpose by ±6
    steps_per_quarter: int = 1  # grid frames per quarter note

    def __post_init__(self):
        if not 0 <= self.min_pitch <= self.max_pitch <= 127:
            raise ValueError(f"need 0 <= min_pitch <= max_pitch <= 127, got {self.min_pitch}..{self.max_pitch}")
        if self.steps_per_quarter < 1:
            raise ValueError(f"steps_per_quarter must be >= 1, got {self.steps_per_quarter}")

    @property
    def num_pitches(self) -> int:
        return self.max_pitch - self.min_pitch + 1

    @property
    def end(self) -> int:
        return self.num_pitches

    @property
    def bos(self) -> int:
        return self.num_pitches + 1

    @property
    def size(self) -> int:
        return self.num_pitches + 2

    @property
    def steps_per_bar(self) -> int:
        return QUARTERS_PER_BAR * self.steps_per_quarter

    def in_range(self, pitch: int) -> bool:
        return self.min_pitch <= pitch <= self.max_pitch

    def encode(self, frames) -> list[int]:
        """Frames (lists of MIDI pitches, all in range) -> BOS + tokens. Duplicates are merged."""
        tokens = [self.bos]
        for frame in frames:
            for pitch in sorted(set(int(p) for p in frame)):
                if not self.in_range(pitch):
                    raise ValueError(f"pitch {pitch} is outside the codec's range {self.min_pitch}..{self.max_pitch}")
                tokens.append(pitch - self.min_pitch)
            tokens.append(self.end)
        return tokens

    def decode(self, tokens) -> list[list[int]]:
        """Tokens -> frames. BOS is skipped; pitches after the last END form a final partial frame."""
        frames, current = [], []
        for token in tokens:
            token = int(token)
            if token == self.end:
                frames.append(current)
                current = []
            elif 0 <= token < self.num_pitches:
                current.append(token + self.min_pitch)
        if current:
            frames.append(current)
        return frames

    def token_of(self, name) -> int:
        """The token a step label names: a note name as the labels write it ('C4', 'F#5'; flats
        such as 'Bb3' too), a MIDI pitch number, or 'end' / 'end of frame'. ValueError otherwise."""
        text = str(name).strip()
        if text.lower() in ("end", "end of frame"):
            return self.end
        found = re.fullmatch(r"([A-Ga-g])([#b]?)(-?\d+)", text)
        if found:
            letter, accidental, octave = found.groups()
            pitch = (NOTE_NAMES.index(letter.upper()) + {"#": 1, "b": -1}.get(accidental, 0) + 12 * (int(octave) + 1))
        elif re.fullmatch(r"\d+", text):
            pitch = int(text)
        else:
            raise ValueError(f"{name!r} is not a note: give a note name such as 'C4' or 'F#5', or 'end' (end of frame)")
        if not self.in_range(pitch):
            raise ValueError(f"{text} (MIDI {pitch}) is outside the model's range "
                             f"{note_name(self.min_pitch)}–{note_name(self.max_pitch)}")
        return pitch - self.min_pitch

    def label(self, token: int) -> str:
        """The step label of a token read: a note name such as 'C4' or 'F#5', 'end' or 'start'."""
        if token == self.end:
            return "end"
        if token == self.bos:
            return "start"
        return note_name(int(token) + self.min_pitch)

    def fit_to_range(self, frames) -> tuple[list[list[int]], list[str]]:
        """(frames with out-of-range pitches moved by octaves into range or dropped if they can't
        be, notes for the user on what was changed)."""
        moved = dropped = 0
        fitted = []
        for frame in frames:
            out = set()
            for pitch in frame:
                pitch = int(pitch)
                shifted = pitch
                while shifted < self.min_pitch:
                    shifted += 12
                while shifted > self.max_pitch:
                    shifted -= 12
                if not self.in_range(shifted):
                    dropped += 1
                    continue
                moved += shifted != pitch
                out.add(shifted)
            fitted.append(sorted(out))
        notes = []
        span = f"{note_name(self.min_pitch)}–{note_name(self.max_pitch)} (MIDI {self.min_pitch}–{self.max_pitch})"
        if moved:
            notes.append(f"{moved} note-step(s) outside the model's range {span} were moved by octaves into it.")
        if dropped:
            notes.append(f"{dropped} note-step(s) outside the model's range {span} could not be moved into it and were dropped.")
        return fitted, notes

    def card(self) -> dict:
        return {
            "min_pitch": self.min_pitch,
            "max_pitch": self.max_pitch,
            "steps_per_quarter": self.steps_per_quarter,
            "tokens": f"0..{self.num_pitches - 1}: MIDI pitch min_pitch + k; {self.end}: end of frame; {self.bos}: start",
            "order": "per frame: pitches ascending, then end of frame; after pitch p only higher pitches or end",
        }


@dataclass
class MusicTraceDetail:
    """A music trace's `detail`: enough to read its steps back as music without the model."""

    tokens: list[int]  # the token read at each trace step (BOS, the input's tokens, generated ones)
    min_pitch: int  # token k < num_pitches is MIDI pitch min_pitch + k
    num_pitches: int  # the END token's id (BOS is num_pitches + 1)
    steps_per_quarter: int  # grid frames per quarter note
    primer_frames: int = 0  # frames read from the input (teacher-forced) before the generated ones
    primer_source: str = ""  # where those frames came from (a file name, a corpus chorale), when known
    time_signatures: list = field(default_factory=list)  # the primer's metre map (see clean_metre); empty: 4/4

    @property
    def steps_per_bar(self) -> int:
        return round(bar_length(*(self.time_signatures or [(0, 4, 4)])[0][1:]) * self.steps_per_quarter)

    def bar_lines(self, steps: int) -> list[float]:
        """Where the bars start, in grid steps, up to `steps`."""
        lines = []
        while (at := bar_start(self.time_signatures, len(lines)) * self.steps_per_quarter) <= steps:
            lines.append(at)
        return lines

    @classmethod
    def of(cls, codec: PitchCodec, tokens: list[int], primer_frames: int, primer_source: str = "",
           time_signatures=()) -> MusicTraceDetail:
        return cls(list(tokens), codec.min_pitch, codec.num_pitches, codec.steps_per_quarter, primer_frames, primer_source,
                   [list(signature) for signature in time_signatures])


def valid_next(tokens: torch.Tensor, codec: PitchCodec) -> torch.Tensor:
    """(B, T) tokens read -> (B, T, V) bool: which tokens may come next (the codec's rule)."""
    vocab = torch.arange(codec.size, device=tokens.device)
    floor = torch.where(tokens < codec.num_pitches, tokens, torch.full_like(tokens, -1))  # last pitch, or -1
    pitch_ok = (vocab[None, None, :] > floor[..., None]) & (vocab < codec.num_pitches)
    return pitch_ok | (vocab == codec.end)


def masked_log_probs(logits: torch.Tensor, tokens: torch.Tensor, codec: PitchCodec) -> torch.Tensor:
    """log P(next token) restricted to the valid ones; invalid tokens get -inf. (B, T, V). Half
    precision logits are computed in float32, float64 ones (the explanation checks) stay float64."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return torch.log_softmax(logits.masked_fill(~valid_next(tokens, codec), float("-inf")), dim=-1)


def frame_context(tokens: torch.Tensor, num_pitches: int) -> torch.Tensor:
    """(B, T) tokens -> (B, T, 2P) float: after reading token t, [the last complete frame as a
    multi-hot, the current frame's pitches so far]. Vectorised with cumulative sums: a frame's
    pitches are the difference of the running pitch count at its two boundaries (END or BOS)."""
    batch, steps = tokens.shape
    is_pitch = tokens < num_pitches
    hot = torch.zeros(batch, steps, num_pitches + 1, device=tokens.device)
    hot.scatter_(2, torch.where(is_pitch, tokens, num_pitches)[..., None], 1.0)
    running = torch.cat([hot.new_zeros(batch, 1, num_pitches), hot[..., :num_pitches].cumsum(1)], dim=1)  # row t+1 = up to t
    positions = torch.arange(steps, device=tokens.device).expand(batch, steps)
    last = torch.where(~is_pitch, positions, -1).cummax(dim=1).values  # last boundary <= t (-1: none)
    before = torch.where(last >= 1, last.gather(1, (last - 1).clamp(min=0)), -1)  # the boundary before it

    def running_at(index):  # running count up to position `index` (-1 gives zeros)
        return running.gather(1, (index + 1)[..., None].expand(-1, -1, num_pitches))

    previous = running_at(last) - running_at(before)
    current = running[:, 1:] - running_at(last)
    return torch.cat([previous, current], dim=-1)


class FrameContextTracker:
    """`frame_context` one token at a time, for sampling (tested equal to the batched form)."""

    def __init__(self, num_pitches: int, device="cpu"):
        self.num_pitches = num_pitches
        self.previous = torch.zeros(num_pitches, device=device)
        self.current = torch.zeros(num_pitches, device=device)

    def read(self, token: int) -> torch.Tensor:
        if token < self.num_pitches:
            self.current[token] = 1.0
        else:  # END closes the frame; BOS starts afresh (its 'previous frame' is empty too)
            self.previous = self.current if token == self.num_pitches else torch.zeros_like(self.current)
            self.current = torch.zeros_like(self.current)
        return torch.cat([self.previous, self.current])[None]  # (1, 2P)


# ---------------------------------------------------------------- metre
# A time-signature map is a list of (quarter note where it starts, numerator, denominator), sorted,
# the first at 0; a change starts a new bar, as in a score. An empty map is 4/4 throughout.
def bar_length(numerator: int, denominator: int) -> float:
    """Quarter notes in a bar: 4 for 4/4 and 2/2, 3 for 3/4 and 6/8, 3.5 for 7/8."""
    return 4.0 * numerator / denominator


def clean_metre(signatures) -> list[tuple[float, int, int]]:
    """A file's time signatures as a map: sorted, senseless ones (bars under a sixteenth or over 16
    whole notes) and repeats dropped, the last one at a time kept, 4/4 until the first."""
    found = {}
    for start, numerator, denominator in sorted(signatures, key=lambda s: s[0]):
        if numerator > 0 and denominator > 0 and 0.25 <= bar_length(numerator, denominator) <= 64 and start >= 0:
            found[round(float(start), 6)] = (int(numerator), int(denominator))
    cleaned = [] if 0.0 in found else [(0.0, 4, 4)]
    for start, (numerator, denominator) in found.items():
        if not cleaned or cleaned[-1][1:] != (numerator, denominator):
            cleaned.append((start, numerator, denominator))
    return cleaned


def _segments(signatures):
    """(start, bar length, end) of each stretch of one time signature (the last runs for ever)."""
    signatures = list(signatures) or [(0.0, 4, 4)]
    ends = [start for start, _, _ in signatures[1:]] + [math.inf]
    return [(start, bar_length(num, den), end) for (start, num, den), end in zip(signatures, ends, strict=True)]


def bars_before(signatures, quarter: float) -> float:
    """Bars before `quarter` under the map (a fraction for a bar under way)."""
    bars = 0.0
    for start, length, end in _segments(signatures):
        if quarter <= start:
            break
        span = min(quarter, end) - start
        bars += span / length if quarter < end else math.ceil(span / length - 1e-9)  # a cut-short bar counts whole
    return bars


def bar_start(signatures, bar: float) -> float:
    """The quarter note where bar `bar` (0: the first) starts under the map."""
    for start, length, end in _segments(signatures):
        whole = math.ceil((end - start) / length - 1e-9) if end < math.inf else math.inf  # bars starting here
        if bar < whole:
            return start + bar * length
        bar -= whole
    raise AssertionError("the last stretch never ends")


# ---------------------------------------------------------------- what a file gives: parts, metre, tempo
DRUM_CHANNEL = 9  # General MIDI's percussion channel (10, counted from 1)
VOICES = 4  # the most notes a frame keeps: the chorales the model learnt are in four voices


@dataclass
class Part:
    """One instrument of a file (a MIDI track's notes on one channel, a score's part)."""

    name: str
    program: int  # General MIDI program, 0-127
    is_drum: bool
    events: list  # (pitch, start, end) in quarter notes

    def describe(self) -> str:
        import pretty_midi

        kind = "drums" if self.is_drum else pretty_midi.program_to_instrument_name(self.program)
        return f"{self.name!r} ({kind}, {len(self.events)} notes)" if self.name else f"{kind} ({len(self.events)} notes)"


@dataclass
class Reading:
    """A file read: its parts and, in quarter notes, its metre and tempo; notes for the user."""

    parts: list[Part]
    time_signatures: list = field(default_factory=list)  # a clean_metre map; empty: the file gives none
    tempos: list = field(default_factory=list)  # (quarter, quarter notes per minute); empty: none given
    notes: list = field(default_factory=list)

    def __post_init__(self):  # one tempo per moment (the last given), repeats of the tempo before dropped
        self.time_signatures = clean_metre(self.time_signatures) if self.time_signatures else []
        tempos = sorted(dict((round(float(q), 6), round(float(bpm), 3)) for q, bpm in self.tempos if bpm > 0).items())
        self.tempos = [change for k, change in enumerate(tempos) if not k or change[1] != tempos[k - 1][1]]


# pretty_midi builds a table with one entry per tick and so refuses a file whose last tick is past
# 10 million ("it is likely corrupt"), which a full movement at a fine resolution reaches while being
# perfectly valid. The model needs quarter notes, not seconds, so such a file is read with mido
# alone, straight from the ticks (tick / ticks per beat): no table.
def read_midi_ticks(path: Path, why: str = "its length") -> Reading:
    """A MIDI file read with mido: one part per track and channel, its time signatures and tempos.
    mido's own errors (a truncated or corrupt file) pass to the caller."""
    import mido

    midi = mido.MidiFile(str(path), clip=True)
    per_beat = float(midi.ticks_per_beat or 480)
    parts, signatures, tempos = [], [], []
    for track in midi.tracks:
        tick, name, programs, events, sounding = 0, "", {}, {}, {}  # sounding: (channel, pitch) -> start tick
        for message in track:
            tick += message.time
            if message.type == "track_name":
                name = message.name.strip()
            elif message.type == "time_signature":
                signatures.append((tick / per_beat, message.numerator, message.denominator))
            elif message.type == "set_tempo":
                tempos.append((tick / per_beat, mido.tempo2bpm(message.tempo)))
            elif message.type == "program_change":
                programs.setdefault(message.channel, message.program)
            elif message.type in ("note_on", "note_off"):
                key, on = (message.channel, message.note), message.type == "note_on" and message.velocity > 0
                if key in sounding:  # a note-off, or a repeated note-on, ends the note
                    start = sounding.pop(key)
                    events.setdefault(message.channel, []).append((message.note, start / per_beat, tick / per_beat))
                if on:
                    sounding[key] = tick
        for (channel, note), start in sounding.items():
            events.setdefault(channel, []).append((note, start / per_beat, tick / per_beat))
        parts += [Part(name, programs.get(channel, 0), channel == DRUM_CHANNEL,
                       sorted((e for e in found if e[2] > e[1]), key=lambda e: (e[1], e[0])))
                  for channel, found in sorted(events.items())]
    if all(quarter > 0 for quarter, _ in tempos):
        tempos.append((0.0, 120.0))  # MIDI's default tempo until the first change (Reading sorts them)
    return Reading(parts, signatures, tempos,
                   [f"{path.name} was read note by note with mido (pretty_midi refused it: {why})."])
