"""Music generation: read BOS and the primer, then sample token by token through the model's
`step` until the requested bars are complete, keeping every gate. Trace alignment: step t is the
token the model read at t (BOS, primer tokens, generated tokens, the last END included), so every
frame has a state to show; distributions["logits"] row t is the head's raw output after reading
step t (the sampler masks it with codec.valid_next first)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from studio import limits
from studio.domains.base import Generation, LoadedModel
from studio.domains.music.codec import (
    QUARTERS_PER_BAR,
    FrameContextTracker,
    MusicTraceDetail,
    bar_start,
    bars_before,
    valid_next,
)
from studio.domains.music.data import Primer
from studio.sampling import SamplingConfig, make_generator, sample_next
from studio.trace import Trace

MAX_BARS = 64  # generated bars per request; more are clamped
TOKENS = True  # outputs are frames of tokens: two runs part where their sampled frames differ
DEFAULT_TEMPO = 80.0  # quarter notes per minute when neither the request nor the primer's file gives one


@dataclass
class MusicSettings:
    bars: int = 8  # bars to generate (of the primer's metre, else 4/4), clamped to [1, MAX_BARS]
    primer: Primer | list | None = None  # frames to continue (a Primer keeps its notes and source); None composes from scratch
    tempo_bpm: float = 0.0  # quarter notes per minute, for MIDI and audio only; 0: the primer's, else 80
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=1.0))
    seed: int = 0  # same seed, same settings, same model => identical output


@dataclass
class MusicResult:
    frames: list[list[int]]  # primer frames, then generated ones (each a list of MIDI pitches)
    primer_frames: int  # frames that came from the primer
    tempo_bpm: float  # the continuation's tempo
    steps_per_quarter: int
    notes: list[str]  # what was adjusted in the request, in plain words
    tempos: list = field(default_factory=list)  # (quarter note, bpm) tempo changes of the whole piece; empty: tempo_bpm
    time_signatures: list = field(default_factory=list)  # the primer's metre map (codec.clean_metre); empty: 4/4
    bars: int = 0  # bars generated


def clean_settings(settings: MusicSettings) -> tuple[int, float | None, list[str]]:
    """(bars, tempo (None: the primer's, else 80), notes): the documented limits applied to a user's request."""
    notes = []
    try:
        bars = int(settings.bars)
    except (TypeError, ValueError, OverflowError):
        bars = 8
        notes.append(f"Bars {settings.bars!r} is not a number; generated {bars}.")
    if not 1 <= bars <= MAX_BARS:
        notes.append(f"Bars {bars} is below 1; generated 1 bar." if bars < 1
                     else f"Bars {bars:,} is above the cap of {MAX_BARS}; generated {MAX_BARS}.")
        bars = min(MAX_BARS, max(1, bars))
    try:
        tempo = float(settings.tempo_bpm)
    except (TypeError, ValueError):
        tempo = math.nan
    if tempo == 0:
        tempo = None
    elif not math.isfinite(tempo):
        notes.append(f"Tempo {settings.tempo_bpm!r} is not a number; used the primer's tempo, else {DEFAULT_TEMPO:g}.")
        tempo = None
    elif not 20 <= tempo <= 300:
        clamped = min(300.0, max(20.0, tempo))
        notes.append(f"Tempo {tempo:g} is outside 20–300 quarter notes per minute; used {clamped:g}.")
        tempo = clamped
    if settings.sampling.temperature <= 0:
        notes.append("Temperature ≤ 0: greedy decoding (always the most likely token); seed and top-k/top-p have no effect.")
    return bars, tempo, notes


def timing(primer, tempo: float | None, bars: int, steps_per_quarter: int) -> tuple[list, list, int, list[str]]:
    """(tempo changes [(quarter, bpm)], metre map, frames to generate, notes) for a primer and request.

    A primer read from a file brings its time signatures and tempo: the requested bars are counted in
    its metre (the primer's unfinished last bar is filled first, so the piece ends on a bar line), and
    the output is written in that metre. A tempo change in the primer is kept as written for the
    primer, and the continuation goes on at the tempo in effect where the primer ends: it follows
    on from the last music heard (an average would play the primer wrong and a return to the first
    tempo would jump). A tempo in the request overrides the file's for the whole piece. Without a
    file (no primer, a list of frames, a corpus chorale without a metronome mark) it is 4/4 at 80."""
    metre, notes = list(getattr(primer, "time_signatures", None) or []), []
    given = [tuple(change) for change in getattr(primer, "tempos", None) or []]
    tempos = [(quarter, min(300.0, max(20.0, bpm))) for quarter, bpm in given]
    if tempos != given:
        notes.append("The primer's tempo is outside 20–300 quarter notes per minute; it was clamped to that range.")
    if tempos and tempos[0][0] > 0:  # a first metronome mark later in a score holds from the start
        tempos.insert(0, (0.0, tempos[0][1]))
    if tempo is not None:
        notes += [f"Tempo {tempo:g} as asked, not the primer's {tempos[-1][1]:g}."] if tempos else []
        tempos = [(0.0, tempo)]
    elif len(tempos) > 1:
        values = [bpm for _, bpm in tempos]
        changes = (", ".join(f"{bpm:g}" for bpm in values) if len(values) <= 4
                   else f"{len(values) - 1} times, between {min(values):g} and {max(values):g}")
        notes.append(f"The primer changes tempo ({changes} quarter notes per minute); it plays as written and the "
                     f"continuation keeps {values[-1]:g}, the tempo where the primer ends.")
    elif tempos:
        notes.append(f"Tempo from the primer: {tempos[0][1]:g} quarter notes per minute.")
    tempos = tempos or [(0.0, DEFAULT_TEMPO)]
    if not metre:
        return tempos, [], bars * QUARTERS_PER_BAR * steps_per_quarter, notes
    done = len(primer) / steps_per_quarter
    first = math.ceil(bars_before(metre, done) - 1e-9)  # the bar after the primer's last (unfinished) one
    notes.append(f"Bars counted in the primer's metre: {metre_text(metre)}.")
    return tempos, metre, max(1, round(bar_start(metre, first + bars) * steps_per_quarter) - len(primer)), notes


def metre_text(signatures) -> str:
    """'3/4', or '3/4, then 4/4 from bar 9' for a map with changes."""
    return ", then ".join(f"{num}/{den}" + (f" from bar {bars_before(signatures, start) + 1:g}" if start else "")
                          for start, num, den in signatures)


@torch.no_grad()
def generate(loaded: LoadedModel, settings: MusicSettings, hooks=None) -> Generation:
    """Read BOS and the primer, then sample token by token with the model's `step` until `bars`
    more frames are complete.

    Without hooks BOS and the primer are read in one teacher-forced pass (LSTMCore.trace); with
    hooks they are stepped too, so a hook sees every step (hook step = trace step)."""
    model, codec = loaded.model, loaded.codec
    bars, tempo, notes = clean_settings(settings)
    primer = settings.primer or []
    primer_frames = [list(frame) for frame in primer]
    tempos, metre, target_frames, timing_notes = timing(primer, tempo, bars, codec.steps_per_quarter)
    notes = list(getattr(primer, "notes", [])) + notes + timing_notes
    device = loaded.device
    generator = make_generator(settings.seed)
    hooks = list(hooks or [])
    tokens = codec.encode(primer_frames)
    tracker = FrameContextTracker(codec.num_pitches, device)
    step_gates, step_logits = [], []
    if hooks:
        state = model.core.initial_state(1, device)
        for t, token in enumerate(tokens):
            logits, state, gates = model.step(token, tracker, state, hooks, t)
            step_gates.append(gates)
            step_logits.append(logits[None])
        prompt_trace = None
    else:
        prompt_logits, state, gates = model.trace(torch.tensor([tokens], device=device))
        prompt_trace = Trace.from_sequence(gates, [codec.label(t) for t in tokens])
        step_logits.append(prompt_logits[0])
        for token in tokens:  # the tracker must know the primer's last frames
            tracker.read(token)
        logits = prompt_logits[0, -1]
    last = tokens[-1]
    new_tokens, new_gates = [], []
    frames_done = 0
    while frames_done < target_frames:
        allowed = valid_next(torch.tensor([[last]]), codec)[0, 0]
        token = sample_next(logits.cpu().masked_fill(~allowed, float("-inf")), settings.sampling, generator)
        new_tokens.append(token)
        frames_done += token == codec.end
        # every token is read, the last END too, so every frame has a state to show
        logits, state, gates = model.step(token, tracker, state, hooks, len(tokens) + len(new_tokens) - 1)
        new_gates.append(gates)
        step_logits.append(logits[None])
        last = token
        if token == codec.end and frames_done < target_frames and limits.out_of_time():  # at a whole frame
            notes.append(limits.time_note(f"the first {frames_done} of {target_frames} time steps"))
            break
    result = MusicResult(primer_frames + codec.decode(new_tokens), len(primer_frames), tempos[-1][1], codec.steps_per_quarter,
                         notes, tempos, metre, bars)
    fields = {
        "domain": "music", "model": loaded.name, "shown_from": 1, "prompt_length": len(tokens),  # BOS only sets up the state
        "layer_names": list(loaded.layer_names),
        "detail": MusicTraceDetail.of(codec, tokens + new_tokens, len(primer_frames), getattr(primer, "source", ""), metre),
    }
    labels = [codec.label(t) for t in new_tokens]
    if hooks:
        trace = Trace.from_steps(step_gates + new_gates, [codec.label(t) for t in tokens] + labels, **fields)
    else:
        trace = Trace.concat(prompt_trace, Trace.from_steps(new_gates, labels), **fields)
    logits_per_step = torch.cat(step_logits).float().cpu().numpy()  # (steps, V)
    return Generation(result, trace, {"logits": logits_per_step.astype(np.float32)}, settings)
