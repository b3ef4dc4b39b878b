"""Music domain: an LSTM over piano-roll frames, written as pitch tokens (Bach chorales).

Codec format
------------
A piece is a piano roll on a grid of ``steps_per_quarter`` frames per quarter note (1 for the
shipped JSB model, as in the JSB Chorales benchmark). Frame k is the set of MIDI pitches
sounding during grid step k; an empty frame is a rest. Like the JSB data, the grid does not
tell a held note from a repeated one.

Tokens (vocabulary of P + 2, where P = max_pitch - min_pitch + 1, both stored in the card):

    0 .. P-1    pitch min_pitch + k sounds in this frame
    P   (END)   the frame is complete
    P+1 (BOS)   start of a piece; read once, never predicted

A piece is BOS, then per frame its pitches in ascending order followed by END:

    frames [[60, 64, 67], [], [62]]  ->  BOS 60 64 67 END END 62 END   (pitches shown as MIDI)

Valid next tokens: after BOS or END, any pitch or END; after pitch p, only pitches above p or
END. The model's softmax is restricted to the valid tokens, the same mask for sampling and
for scoring, so

    P(frame | earlier frames) = product over the frame's tokens (pitches, then END)

is an exact distribution over every finite set of pitches (it sums to 1 over all frames), and
the NLL per frame, -(sum of log P over all frames' tokens) / (number of frames), is the figure
of Boulanger-Lewandowski et al. (2012) for JSB Chorales. Each piece starts from a fresh state.

Model input per token read: an embedding of the token plus two multi-hot pitch vectors, the
last complete frame and the pitches of the current frame so far. Both are functions of the
tokens already read (`frame_context`), so the model is still an ordinary token LSTM; they only
save it from having to memorise the previous chord before it can repeat or move from it.

MIDI / score in (`read_primer`): MIDI through pretty_midi (tempo-aware: note times become
quarter notes through the file's tick grid), MusicXML / ABC / Humdrum kern through music21
(notes taken from the parsed score directly, never written out and re-read). Onsets and ends
are sampled on the grid as the JSB data was (frame k: the pitches sounding at step k), so a note
that sounds at no grid point is left out, with a note. Drum tracks are
ignored, pitches outside the model's range are moved by octaves into it (or dropped when the
range cannot take them), and long pieces are cut to `MAX_PRIMER_BARS`, each with a note.
Anything unusable raises MusicInputError with a message meant for the user.

MIDI out (`frames_to_midi`): consecutive frames sounding the same pitch become one held note
(what a chorale means by them), at the requested tempo, 4 quarter notes to a bar.

Trace alignment: step t is the token the model read at t (BOS, primer tokens, then the
generated ones, the last generated END included), labelled with the note name, 'end' or
'start'. The state after a frame's END is the state for that frame (`frame_trace`), so gate
heatmaps share the piano roll's time grid.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from studio import checkpoint
from studio.lstm import LSTMConfig, LSTMCore
from studio.sampling import SamplingConfig, make_generator, sample_next
from studio.trace import Trace

DOMAIN = "music"
QUARTERS_PER_BAR = 4  # generation counts bars of 4/4, like most chorales
MAX_BARS = 64  # generated bars per request; more are clamped
MAX_PRIMER_BARS = 32  # a longer primer keeps only its first bars
MAX_FILE_BYTES = 20_000_000  # larger uploads are refused before parsing
MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")
SCORE_SUFFIXES = (".xml", ".musicxml", ".mxl", ".abc", ".krn", ".mei")
JSB_SPLITS = ("train", "valid", "test")
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


# ---------------------------------------------------------------- codec
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

    def label(self, token: int) -> str:
        """The step label of a token read: a note name such as 'C4' or 'F#5', 'end' or 'start'."""
        if token == self.end:
            return "end"
        if token == self.bos:
            return "start"
        return note_name(int(token) + self.min_pitch)

    def fit_to_range(self, frames) -> tuple[list[list[int]], list[str]]:
        """Frames with out-of-range pitches moved by octaves into range (dropped if they can't be)."""
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


def note_name(pitch: int) -> str:
    names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


def valid_next(tokens: torch.Tensor, codec: PitchCodec) -> torch.Tensor:
    """(B, T) tokens read -> (B, T, V) bool: which tokens may come next (the codec's rule)."""
    vocab = torch.arange(codec.size, device=tokens.device)
    floor = torch.where(tokens < codec.num_pitches, tokens, torch.full_like(tokens, -1))  # last pitch, or -1
    pitch_ok = (vocab[None, None, :] > floor[..., None]) & (vocab < codec.num_pitches)
    return pitch_ok | (vocab == codec.end)


def masked_log_probs(logits: torch.Tensor, tokens: torch.Tensor, codec: PitchCodec) -> torch.Tensor:
    """log P(next token) restricted to the valid ones; invalid tokens get -inf. (B, T, V)."""
    return torch.log_softmax(logits.float().masked_fill(~valid_next(tokens, codec), float("-inf")), dim=-1)


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


# ---------------------------------------------------------------- model
@dataclass
class MusicModelConfig:
    min_pitch: int = 36  # codec range, so a checkpoint carries its vocabulary
    max_pitch: int = 102
    steps_per_quarter: int = 1  # grid frames per quarter note
    embed_size: int = 32  # token embedding width
    hidden_size: int = 256  # LSTM units per layer
    num_layers: int = 2
    dropout: float = 0.3  # on the LSTM input, between layers and before the head; training only

    @property
    def codec(self) -> PitchCodec:
        return PitchCodec(self.min_pitch, self.max_pitch, self.steps_per_quarter)


class MusicModel(nn.Module):
    def __init__(self, config: MusicModelConfig):
        super().__init__()
        self.config = config
        self.codec = config.codec
        num_pitches = self.codec.num_pitches
        self.embed = nn.Embedding(self.codec.size, config.embed_size)
        self.core = LSTMCore(LSTMConfig(config.embed_size + 2 * num_pitches, config.hidden_size, config.num_layers, config.dropout))
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, self.codec.size)

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, E + 2P): what the LSTM reads at each step."""
        return torch.cat([self.embed(tokens), frame_context(tokens, self.codec.num_pitches)], dim=-1)

    def forward(self, tokens: torch.Tensor, state=None):
        """tokens (B, T) -> raw logits (B, T, V), state. Mask them with `masked_log_probs`."""
        out, state = self.core(self.drop(self.inputs(tokens)), state)
        return self.head(self.drop(out)), state

    def trace(self, tokens: torch.Tensor, state=None):
        """Teacher-forced: logits (B, T, V), state, per-layer gates (B, T, H)."""
        out, state, gates = self.core.trace(self.inputs(tokens), state)
        return self.head(out), state, gates

    @torch.no_grad()
    def step(self, token: int, tracker: FrameContextTracker, state):
        """Read one token -> logits (V,), state, this step's gates. `tracker` follows the frames."""
        device = self.head.weight.device
        x = torch.cat([self.embed(torch.tensor([token], device=device)), tracker.read(token)], dim=-1)
        out, state, gates = self.core.step(x, state)
        return self.head(out)[0], state, gates


def load_model(stem, device="cpu") -> tuple[MusicModel, dict]:
    tensors, card = checkpoint.load(stem, domain=DOMAIN)
    try:
        model = MusicModel(MusicModelConfig(**card["config"]))
        model.load_state_dict(tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise checkpoint.CheckpointError(f"{checkpoint.paths(stem)[0]} does not match its card: {error}") from None
    return model.to(device).eval(), card


def make_card(model: MusicModel, extra: dict) -> dict:
    codec = model.codec
    return {
        "domain": DOMAIN,
        "config": asdict(model.config),
        "codec": {
            "min_pitch": codec.min_pitch,
            "max_pitch": codec.max_pitch,
            "steps_per_quarter": codec.steps_per_quarter,
            "tokens": f"0..{codec.num_pitches - 1}: MIDI pitch min_pitch + k; {codec.end}: end of frame; {codec.bos}: start",
            "order": "per frame: pitches ascending, then end of frame; after pitch p only higher pitches or end",
        },
        **extra,
    }


def save_model(stem, model: MusicModel, card: dict) -> None:
    checkpoint.save(stem, model.state_dict(), make_card(model, card))


# ---------------------------------------------------------------- data, scoring, training
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


def pad_batch(sequences: list[list[int]], pad: int, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) tokens padded with `pad`, and (B,) lengths."""
    lengths = torch.tensor([len(s) for s in sequences])
    tokens = torch.full((len(sequences), int(lengths.max())), pad, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor(sequence)
    return tokens.to(device), lengths.to(device)


def token_nll(model, tokens: torch.Tensor, lengths: torch.Tensor, codec: PitchCodec) -> torch.Tensor:
    """(B, T-1) -log P(token t+1 | tokens <= t) under the validity mask; 0 on padding."""
    logits, _ = model(tokens[:, :-1])
    log_probs = masked_log_probs(logits, tokens[:, :-1], codec)
    nll = -log_probs.gather(2, tokens[:, 1:, None])[..., 0]
    real = torch.arange(tokens.shape[1] - 1, device=tokens.device)[None, :] < (lengths[:, None] - 1)
    return torch.where(real, nll, torch.zeros_like(nll))


@torch.no_grad()
def nll_per_frame(model: MusicModel, pieces: list[list[list[int]]], batch_size: int = 32) -> tuple[float, int]:
    """(mean -log P(frame | earlier frames) in nats over all frames, number of frames).

    Every piece starts from a fresh state after BOS; a frame's log-probability is the sum over
    its tokens (pitches and END), so the total is the sum over all real tokens."""
    codec = model.codec
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sequences = sorted((codec.encode(piece) for piece in pieces), key=len)  # similar lengths batch well
    total, frames = 0.0, 0
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        tokens, lengths = pad_batch(chunk, codec.end, device)
        total += float(token_nll(model, tokens, lengths, codec).double().sum())
        frames += sum(s.count(codec.end) for s in chunk)
    model.train(was_training)
    if frames == 0:
        raise MusicInputError("no frames to score")
    return total / frames, frames


@dataclass
class MusicBatch:
    tokens: torch.Tensor  # (B, T) BOS + frames' tokens, padded with END
    lengths: torch.Tensor  # (B,)
    num_tokens: int = 0


class MusicTask:
    """Whole pieces per batch row (chorales are short: no truncated BPTT needed), each randomly
    transposed by up to `transpose` semitones within the codec's range, a fresh draw per step."""

    def __init__(self, train_pieces, valid_pieces, codec: PitchCodec, batch_size: int = 16, transpose: int = 6, seed: int = 0):
        if not train_pieces or not valid_pieces:
            raise MusicInputError("need at least one training and one validation piece")
        self.codec, self.batch_size, self.transpose, self.seed = codec, batch_size, transpose, seed
        self.valid_pieces = valid_pieces
        sequences = [codec.encode(piece) for piece in train_pieces]
        self.tokens, self.lengths = pad_batch(sequences, codec.end)
        is_pitch = self.tokens < codec.num_pitches
        big = codec.num_pitches
        self.lowest = torch.where(is_pitch, self.tokens, big).min(1).values  # (N,)
        self.highest = torch.where(is_pitch, self.tokens, -1).max(1).values

    def train_batch(self, step: int, rank: int, world_size: int, device) -> MusicBatch:
        count = len(self.tokens)
        per_epoch = max(1, count // (self.batch_size * world_size))
        epoch, within = divmod(step, per_epoch)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
        first = (within * world_size + rank) * self.batch_size
        rows = order[torch.arange(first, first + self.batch_size) % count]
        generator = torch.Generator().manual_seed(self.seed * 104729 + step * world_size + rank)
        low = torch.clamp(-self.lowest[rows], min=-self.transpose)  # keep every pitch in range
        high = torch.clamp(self.codec.num_pitches - 1 - self.highest[rows], max=self.transpose)
        high = torch.maximum(high, low)  # a piece that is only rests
        shift = low + (torch.rand(len(rows), generator=generator) * (high - low + 1)).long().clamp(max=high - low)
        length = int(self.lengths[rows].max())
        tokens = self.tokens[rows, :length]
        tokens = torch.where(tokens < self.codec.num_pitches, tokens + shift[:, None], tokens)
        lengths = self.lengths[rows]
        return MusicBatch(tokens.to(device), lengths.to(device), num_tokens=int(lengths.sum()))

    def loss(self, model, batch: MusicBatch) -> torch.Tensor:
        nll = token_nll(model, batch.tokens, batch.lengths, self.codec)
        return nll.sum() / (batch.lengths - 1).sum()

    def evaluate(self, model) -> float:
        return nll_per_frame(model, self.valid_pieces)[0]


# ---------------------------------------------------------------- reading primers
@dataclass
class Primer:
    frames: list[list[int]]  # on the codec's grid, in its range
    notes: list[str]  # what was adjusted on the way in, in plain words
    source: str  # a name for the page and the trace


def notes_to_frames(notes, steps_per_quarter: int, max_steps: int) -> tuple[list[list[int]], bool, int]:
    """(pitch, start, end) in quarter notes -> grid frames, whether the piece was cut at
    max_steps, and how many notes sound at no grid point.

    Frame k holds the pitches sounding at time k (in steps), as the JSB data was sampled: a
    note from s to e sounds in frames ceil(s) .. ceil(e) - 1. Times are first snapped to 1/24
    of a step so a hair-late onset of a played MIDI still lands on its grid point; notes that
    sound at no grid point (passing eighths at a quarter-note grid) are left out."""
    frames: list[set[int]] = []
    cut, between = False, 0
    for pitch, start, end in notes:
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


def _midi_notes(path: Path) -> tuple[list[tuple[int, float, float]], list[str]]:
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
    except Exception as error:  # mido/pretty_midi raise many kinds on corrupt files
        raise MusicInputError(f"{path.name} is a corrupt or unsupported MIDI file ({type(error).__name__}: {error}).") from None
    messages = []
    drums = [inst for inst in midi.instruments if inst.is_drum and inst.notes]
    pitched = [inst for inst in midi.instruments if not inst.is_drum and inst.notes]
    if drums:
        messages.append(f"Ignored {len(drums)} drum track(s): the model writes pitched notes only.")
    if not pitched:
        raise MusicInputError(f"{path.name} has no pitched notes" + (" (drums only)." if drums else " (it is empty)."))
    pitches = np.array([note.pitch for inst in pitched for note in inst.notes])
    starts = _seconds_to_quarters(midi, np.array([note.start for inst in pitched for note in inst.notes]))
    ends = _seconds_to_quarters(midi, np.array([note.end for inst in pitched for note in inst.notes]))
    return list(zip(pitches.tolist(), starts.tolist(), ends.tolist(), strict=True)), messages


def _seconds_to_quarters(midi, seconds: np.ndarray) -> np.ndarray:
    """Note times -> quarter notes through the file's tempo map, all at once (pretty_midi's
    time_to_tick goes one time at a time: minutes for a long file)."""
    change_ticks = np.array([tick for tick, _ in midi._tick_scales], dtype=float)
    seconds_per_tick = np.array([scale for _, scale in midi._tick_scales], dtype=float)
    change_seconds = np.concatenate([[0.0], np.cumsum(np.diff(change_ticks) * seconds_per_tick[:-1])])
    segment = np.clip(np.searchsorted(change_seconds, seconds, side="right") - 1, 0, None)
    ticks = change_ticks[segment] + (seconds - change_seconds[segment]) / seconds_per_tick[segment]
    return ticks / float(midi.resolution)


def _score_notes(score) -> list[tuple[int, float, float]]:
    """(pitch, start, end) in quarter notes from a music21 stream, ties merged."""
    try:
        score = score.stripTies()
    except Exception:  # stripTies is a nicety; untied notes still sound
        pass
    notes = []
    for element in score.flatten().notes:
        start = float(element.offset)
        end = start + float(element.quarterLength)
        for pitch in getattr(element, "pitches", ()):  # a Note has one, a Chord several; unpitched none
            notes.append((int(pitch.midi), start, end))
    return notes


def _parse_score(path: Path):
    try:
        from music21 import converter

        return converter.parse(str(path))
    except Exception as error:  # music21's parsers raise many kinds
        raise MusicInputError(f"{path.name} could not be read as a score ({type(error).__name__}: {error}).") from None


def frames_from_notes(notes, codec: PitchCodec, source: str, messages=None, max_bars: int = MAX_PRIMER_BARS) -> Primer:
    """The shared tail of every reader: grid, cap (at most MAX_PRIMER_BARS), range."""
    messages = list(messages or [])
    max_bars = max(1, min(MAX_PRIMER_BARS, int(max_bars)))
    if not notes:
        raise MusicInputError(f"{source} has no notes.")
    if min(start for _, start, _ in notes) < 0:
        notes = [(p, max(0.0, s), max(0.0, e)) for p, s, e in notes]
    max_steps = max_bars * codec.steps_per_bar
    frames, cut, between = notes_to_frames(notes, codec.steps_per_quarter, max_steps)
    if between:
        grid = "quarter note" if codec.steps_per_quarter == 1 else f"1/{codec.steps_per_quarter} of a quarter note"
        messages.append(f"{between} short note(s) that sound at no point of the model's grid (one step = {grid}) were left out.")
    if cut:
        total = max(end for _, _, end in notes) / QUARTERS_PER_BAR
        messages.append(f"The primer is about {total:,.0f} bars long; only its first {max_bars} bar(s) were used.")
    frames, range_notes = codec.fit_to_range(frames)
    messages += range_notes
    while frames and not frames[-1]:  # trailing silence would only teach the model to rest
        frames.pop()
    if not any(frames):
        raise MusicInputError(f"{source} has no notes the model can use.")
    return Primer(frames, messages, source)


def read_primer(path, codec: PitchCodec, max_bars: int = MAX_PRIMER_BARS) -> Primer:
    """A MIDI, MusicXML, ABC or kern file -> frames on the model's grid, with notes on what changed."""
    path = Path(path)
    if not path.is_file():
        raise MusicInputError(f"{path.name or path} is not a file.")
    size = path.stat().st_size
    if size == 0:
        raise MusicInputError(f"{path.name} is empty.")
    if size > MAX_FILE_BYTES:
        raise MusicInputError(f"{path.name} is {size / 1e6:.0f} MB; primers up to {MAX_FILE_BYTES // 1_000_000} MB are accepted.")
    suffix = path.suffix.lower()
    if suffix in SCORE_SUFFIXES:
        return frames_from_notes(_score_notes(_parse_score(path)), codec, path.name, max_bars=max_bars)
    if suffix not in MIDI_SUFFIXES:
        with open(path, "rb") as handle:
            if handle.read(4) != b"MThd":
                known = ", ".join(MIDI_SUFFIXES[:2] + SCORE_SUFFIXES)
                raise MusicInputError(f"{path.name} is neither a MIDI file nor a score music21 reads ({known}).")
    notes, messages = _midi_notes(path)
    return frames_from_notes(notes, codec, path.name, messages, max_bars)


def corpus_primer(name: str, codec: PitchCodec, max_bars: int = MAX_PRIMER_BARS) -> Primer:
    """A chorale from music21's bundled corpus, e.g. 'bach/bwv269'."""
    return frames_from_notes(list(_corpus_notes(name)), codec, name, max_bars=max_bars)


@functools.lru_cache(maxsize=32)
def _corpus_notes(name: str) -> tuple:
    try:  # parsing costs ~0.2 s a chorale, so a tab that offers a few keeps them
        from music21 import corpus

        return tuple(_score_notes(corpus.parse(name)))
    except Exception as error:
        raise MusicInputError(f"music21's corpus has no readable piece {name!r} ({type(error).__name__}).") from None


# ---------------------------------------------------------------- generation
@dataclass
class MusicSettings:
    bars: int = 8  # bars of 4/4 to generate, clamped to [1, MAX_BARS]
    primer: Primer | None = None  # frames to continue; None composes from scratch
    tempo_bpm: float = 80.0  # quarter notes per minute, for MIDI and audio only
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=1.0))


@dataclass
class MusicResult:
    frames: list[list[int]]  # primer frames, then generated ones
    primer_steps: int  # frames that came from the primer
    tempo_bpm: float
    steps_per_quarter: int
    notes: list[str]  # what was adjusted in the request, in plain words


def clean_settings(settings: MusicSettings) -> tuple[int, float, list[str]]:
    notes = []
    try:
        bars = int(settings.bars)
    except (TypeError, ValueError, OverflowError):
        bars = 8
        notes.append(f"Bars {settings.bars!r} is not a number; generated {bars}.")
    if bars < 1:
        notes.append(f"Bars {bars} is below 1; generated 1 bar.")
        bars = 1
    elif bars > MAX_BARS:
        notes.append(f"Bars {bars:,} is above the cap of {MAX_BARS}; generated {MAX_BARS}.")
        bars = MAX_BARS
    try:
        tempo = float(settings.tempo_bpm)
    except (TypeError, ValueError):
        tempo = math.nan
    if not math.isfinite(tempo):
        notes.append(f"Tempo {settings.tempo_bpm!r} is not a number; used 80 quarter notes per minute.")
        tempo = 80.0
    elif not 20 <= tempo <= 300:
        clamped = min(300.0, max(20.0, tempo))
        notes.append(f"Tempo {tempo:g} is outside 20–300 quarter notes per minute; used {clamped:g}.")
        tempo = clamped
    if settings.sampling.temperature <= 0:
        notes.append("Temperature ≤ 0: greedy decoding (always the most likely token); seed and top-k/top-p have no effect.")
    return bars, tempo, notes


@torch.no_grad()
def generate(model: MusicModel, settings: MusicSettings) -> tuple[MusicResult, Trace]:
    """Read BOS and the primer (teacher-forced, traced in one pass), then sample token by token
    with LSTMCore.step until `bars` more frames are complete. Every token is read, the last END
    included, so every frame has a state to show."""
    codec = model.codec
    bars, tempo, notes = clean_settings(settings)
    primer_frames = settings.primer.frames if settings.primer else []
    if settings.primer:
        notes = list(settings.primer.notes) + notes
    device = next(model.parameters()).device
    generator = make_generator(settings.sampling.seed)
    tokens = codec.encode(primer_frames)
    logits, state, gates = model.trace(torch.tensor([tokens], device=device))
    primer_trace = Trace.from_sequence(gates, [codec.label(t) for t in tokens])
    tracker = FrameContextTracker(codec.num_pitches, device)
    for token in tokens:  # the tracker must know the primer's last frames
        tracker.read(token)
    logits, last = logits[0, -1], tokens[-1]
    new_tokens, step_gates = [], []
    target_frames = bars * codec.steps_per_bar
    frames_done = 0
    while frames_done < target_frames:
        allowed = valid_next(torch.tensor([[last]]), codec)[0, 0]
        token = sample_next(logits.cpu().masked_fill(~allowed, float("-inf")), settings.sampling, generator)
        new_tokens.append(token)
        frames_done += token == codec.end
        logits, state, gates = model.step(token, tracker, state)
        step_gates.append(gates)
        last = token
    generated = codec.decode(new_tokens)
    all_tokens = tokens + new_tokens
    meta = {
        "domain": DOMAIN,
        "tokens": all_tokens,
        "min_pitch": codec.min_pitch,
        "num_pitches": codec.num_pitches,
        "steps_per_quarter": codec.steps_per_quarter,
        "primer_frames": len(primer_frames),
        "primer_tokens": len(tokens),
        "primer_source": settings.primer.source if settings.primer else "",
    }
    trace = Trace.concat(primer_trace, Trace.from_steps(step_gates, [codec.label(t) for t in new_tokens]), meta)
    result = MusicResult(primer_frames + generated, len(primer_frames), tempo, codec.steps_per_quarter, notes)
    return result, trace


# ---------------------------------------------------------------- output: MIDI, audio
def frames_to_midi(frames, steps_per_quarter: int = 1, tempo_bpm: float = 80.0, program: int = 19):
    """A pretty_midi.PrettyMIDI: each run of frames holding a pitch is one note (default: church organ)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=float(tempo_bpm))
    instrument = pretty_midi.Instrument(program=program, name="LSTM Studio")
    step_seconds = 60.0 / float(tempo_bpm) / steps_per_quarter
    sounding: dict[int, int] = {}  # pitch -> frame where its note began
    for k, frame in enumerate([*frames, []]):  # the empty tail closes every note
        now = set(frame)
        for pitch in [p for p in sounding if p not in now]:
            begin = sounding.pop(pitch)
            instrument.notes.append(pretty_midi.Note(80, pitch, begin * step_seconds, k * step_seconds))
        for pitch in now:
            sounding.setdefault(pitch, k)
    instrument.notes.sort(key=lambda n: (n.start, n.pitch))
    midi.instruments.append(instrument)
    return midi


def synthesize(midi, sample_rate: int = 22050) -> tuple[np.ndarray, str | None]:
    """(mono float audio, a note when the fallback was used): FluidSynth with pretty_midi's
    bundled TimGM6mb soundfont, else pretty_midi's sine-wave synth."""
    try:
        audio = midi.fluidsynth(fs=sample_rate)
        note = None
    except Exception as error:  # no pyfluidsynth, no libfluidsynth, no soundfont
        audio = midi.synthesize(fs=sample_rate)
        note = f"FluidSynth is not available here ({type(error).__name__}); the audio is a simple sine-wave synth."
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak > 0:
        audio = audio / peak * 0.9
    return audio.astype(np.float32), note


def write_wav(path, audio: np.ndarray, sample_rate: int) -> Path:
    import wave

    samples = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(samples.tobytes())
    return Path(path)


# ---------------------------------------------------------------- render
def frame_steps(trace: Trace) -> np.ndarray:
    """Trace step of each frame's END token (the state that stands for the frame)."""
    tokens = np.asarray(trace.meta["tokens"])
    return np.flatnonzero(tokens == trace.meta["num_pitches"])


def frame_trace(trace: Trace) -> Trace:
    """The trace at frame resolution (one step per frame, the state after its END), labelled
    with frame numbers, so heatmaps line up with the piano roll."""
    steps = frame_steps(trace)
    layers = [{name: values[steps] for name, values in layer.items()} for layer in trace.layers]
    return Trace(layers, [str(k) for k in range(len(steps))], dict(trace.meta))


def piano_roll_arrays(trace: Trace, layer: int, quantity: str, unit: int):
    """(roll (T, P) bool, note values (T, P) with NaN off notes, frame values (T,)) for one unit:
    a note is painted with the unit's value right after the model read that pitch token."""
    tokens = np.asarray(trace.meta["tokens"])
    num_pitches = trace.meta["num_pitches"]
    values = trace.quantity(layer, quantity)[:, unit]
    frame_of_token = np.cumsum(tokens == num_pitches) - (tokens == num_pitches)  # END belongs to its frame
    ends = frame_steps(trace)
    roll = np.zeros((len(ends), num_pitches), dtype=bool)
    note_values = np.full((len(ends), num_pitches), np.nan)
    for step in np.flatnonzero(tokens < num_pitches):
        frame = frame_of_token[step]
        if frame < len(ends):
            roll[frame, tokens[step]] = True
            note_values[frame, tokens[step]] = values[step]
    return roll, note_values, values[ends]


def render_piano_roll(trace: Trace, layer: int, quantity: str, unit: int):
    from studio.viz import piano_roll

    values = trace.quantity(layer, quantity)[:, unit]
    if quantity in ("i", "f", "o"):
        vmin, vmax = 0.0, 1.0
    elif quantity == "c":
        bound = float(np.abs(values).max()) or 1.0
        vmin, vmax = -bound, bound
    else:
        vmin, vmax = -1.0, 1.0
    roll, note_values, step_values = piano_roll_arrays(trace, layer, quantity, unit)
    from studio.trace import QUANTITY_TITLES

    return piano_roll(
        roll,
        trace.meta["min_pitch"],
        note_values=note_values,
        step_values=step_values,
        vmin=vmin,
        vmax=vmax,
        steps_per_bar=QUARTERS_PER_BAR * trace.meta.get("steps_per_quarter", 1),
        primer_steps=trace.meta.get("primer_frames", 0),
        title=f"Layer {layer}, unit {unit}: {QUANTITY_TITLES.get(quantity, quantity)} after each note (notes) and after each frame (strip)",
    )
