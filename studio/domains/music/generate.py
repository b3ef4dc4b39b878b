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

from studio.domains.base import Generation, LoadedModel
from studio.domains.music.codec import FrameContextTracker, MusicTraceDetail, valid_next
from studio.domains.music.data import Primer
from studio.sampling import SamplingConfig, make_generator, sample_next
from studio.trace import Trace

MAX_BARS = 64  # generated bars per request; more are clamped


@dataclass
class MusicSettings:
    bars: int = 8  # bars of 4/4 to generate, clamped to [1, MAX_BARS]
    primer: Primer | list | None = None  # frames to continue (a Primer keeps its notes and source); None composes from scratch
    tempo_bpm: float = 80.0  # quarter notes per minute, for MIDI and audio only
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=1.0))


@dataclass
class MusicResult:
    frames: list[list[int]]  # primer frames, then generated ones (each a list of MIDI pitches)
    primer_frames: int  # frames that came from the primer
    tempo_bpm: float
    steps_per_quarter: int
    notes: list[str]  # what was adjusted in the request, in plain words


def clean_settings(settings: MusicSettings) -> tuple[int, float, list[str]]:
    """(bars, tempo, notes): the documented limits applied to a user's request."""
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
def generate(loaded: LoadedModel, settings: MusicSettings, hooks=None) -> Generation:
    """Read BOS and the primer, then sample token by token with the model's `step` until `bars`
    more frames are complete.

    Without hooks BOS and the primer are read in one teacher-forced pass (LSTMCore.trace); with
    hooks they are stepped too, so a hook sees every step (hook step = trace step)."""
    model, codec = loaded.model, loaded.codec
    bars, tempo, notes = clean_settings(settings)
    primer = settings.primer or []
    primer_frames = [list(frame) for frame in primer]
    notes = list(getattr(primer, "notes", [])) + notes
    device = loaded.device
    generator = make_generator(settings.sampling.seed)
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
    target_frames = bars * codec.steps_per_bar
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
    result = MusicResult(primer_frames + codec.decode(new_tokens), len(primer_frames), tempo, codec.steps_per_quarter, notes)
    fields = {
        "domain": "music", "model": loaded.name, "shown_from": 1, "prompt_length": len(tokens),  # BOS only sets up the state
        "layer_names": list(loaded.layer_names),
        "detail": MusicTraceDetail.of(codec, tokens + new_tokens, len(primer_frames), getattr(primer, "source", "")),
    }
    labels = [codec.label(t) for t in new_tokens]
    if hooks:
        trace = Trace.from_steps(step_gates + new_gates, [codec.label(t) for t in tokens] + labels, **fields)
    else:
        trace = Trace.concat(prompt_trace, Trace.from_steps(new_gates, labels), **fields)
    logits_per_step = torch.cat(step_logits).float().cpu().numpy()  # (steps, V)
    return Generation(result, trace, {"logits": logits_per_step.astype(np.float32)}, settings)
