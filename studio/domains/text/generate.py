"""Text generation: prime with the prompt, then sample one character at a time through the
model's `step`, keeping every gate. Trace alignment: step t is the character the model *read* at
t (prompt characters, then the generated ones), so each character can be painted with the state
right after reading it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from studio import limits
from studio.domains.base import Generation, LoadedModel
from studio.sampling import SamplingConfig, make_generator, sample_next
from studio.trace import GATE_NAMES, Trace

MAX_LENGTH = 5000  # generated characters per request; longer requests are clamped
MAX_PROMPT = 20_000  # prompt characters kept (the most recent ones)
MAX_TRACED_PROMPT = 2_000  # of those, the ones traced and shown; older ones set the state through the fused kernel
TOKENS = True  # outputs are characters: two runs part where their sampled characters differ
WORKER_LANE = 1  # batched text generation runs in worker processes of its own (studio.workers)


@dataclass
class TextSettings:
    prompt: str = ""  # primes the state; empty starts from a fresh state after a newline
    length: int = 400  # characters to generate, clamped to [1, MAX_LENGTH]
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    seed: int = 0  # same seed, same settings, same model => identical output
    # 0: the state is carried on from step to step; N > 0: sample as a model trained on fixed windows
    # from a zero state was (the Keras tutorial's 40 characters): each step re-reads the last N tokens
    # from a zero state, and the trace holds, per step, the gates at the window's last position
    window: int = 0


@dataclass
class TextResult:
    prompt: str  # the prompt as the model read it (unknown characters removed)
    text: str  # the generated characters only
    notes: list[str]  # what was adjusted in the request, in plain words


def clean_settings(settings: TextSettings, codec) -> tuple[list[int], bool, int, list[str]]:
    """(prompt ids, whether they are the implicit fresh start, length, notes): applies the
    documented limits to a user's request."""
    notes = []
    prompt = settings.prompt or ""
    if len(prompt) > MAX_PROMPT:
        prompt = prompt[-MAX_PROMPT:]
        notes.append(f"The prompt was longer than {MAX_PROMPT:,} characters; only its last {MAX_PROMPT:,} were used.")
    ids, dropped = codec.encode(prompt)
    fresh_start = not ids
    if dropped:
        shown = ", ".join(repr(ch) for ch in dropped[:20]) + (" …" if len(dropped) > 20 else "")
        capitals = any(ch.isupper() and ch.lower() in codec.index for ch in dropped)
        advice = (" It never saw these as capitals: type them in lowercase." if capitals else
                  " Type only characters of its corpus, or train (or fine-tune) a model on text that has them.")
        notes.append(f"Dropped characters this model never saw: {shown}.{advice}")
    if not ids:
        start = next((token for token in ("\n", "<eos>") if token in codec.index), codec.tokens[0])
        ids = [codec.index[start]]
        notes.append("Empty prompt: started from a fresh state, as after a line break." if not prompt else "Nothing of the prompt was usable: started from a fresh state, as after a line break.")
    length = int(settings.length)
    if length < 1:
        notes.append(f"Length {length} is below 1; generated 1 character.")
        length = 1
    elif length > MAX_LENGTH:
        notes.append(f"Length {length:,} is above the cap of {MAX_LENGTH:,}; generated {MAX_LENGTH:,} characters.")
        length = MAX_LENGTH
    if settings.sampling.temperature <= 0:
        notes.append("Temperature ≤ 0: greedy decoding (always the most likely character); seed and top-k/top-p have no effect.")
    return ids, fresh_start, length, notes


@torch.no_grad()
def generate(loaded: LoadedModel, settings: TextSettings, hooks=None, traced: bool = True) -> Generation:
    """Prime with the prompt, then sample step by step.

    Without hooks the prompt is read in one teacher-forced pass (LSTMCore.trace) and the sampling
    is generate_batch's with one row (the same bits as in any batch); with hooks it is stepped too,
    so a hook sees every step. traced=False runs the fused kernel each step and keeps nothing (the
    benchmarks compare the two); it takes no hooks.
    """
    hooks = list(hooks or [])
    if settings.window:
        return _generate_windowed(loaded, settings, hooks)
    if hooks and not traced:
        raise ValueError("hooks need the traced path")
    if traced and not hooks:
        result = generate_batch(loaded, [settings])[0]
        if isinstance(result, Exception):
            raise result
        return result
    model, codec = loaded.model, loaded.codec
    prompt_ids, fresh_start, length, notes = clean_settings(settings, codec)
    device = loaded.device
    generator = make_generator(settings.seed)
    step_gates, step_logits = [], []
    if hooks:
        state = model.core.initial_state(1, device)
        for t, token in enumerate(prompt_ids):
            logits, state, gates = model.step(torch.tensor([token], device=device), state, hooks, t)
            step_gates.append(gates)
            step_logits.append(logits)
        logits = logits[0]
    else:
        logits, state = model(torch.tensor([prompt_ids], device=device))
        logits = logits[0, -1]
    out_ids = []
    for k in range(length):
        token = sample_next(logits.cpu(), settings.sampling, generator)
        out_ids.append(token)
        # The last character is read too, so every shown character has a state to paint.
        token = torch.tensor([token], device=device)
        if traced:
            logits, state, gates = model.step(token, state, hooks, len(prompt_ids) + k)
            step_gates.append(gates)
            step_logits.append(logits)
        else:
            logits, state = model(token[:, None], state)
            logits = logits[:, -1]
        logits = logits[0]
        if limits.out_of_time() and k + 1 < length:  # the request's deadline: keep what was written
            notes.append(limits.time_note(f"the first {k + 1:,} of {length:,} characters"))
            break
    text = codec.decode(out_ids)
    result = TextResult(prompt="" if fresh_start else codec.decode(prompt_ids), text=text, notes=notes)
    if not traced:
        return Generation(result, None, {}, settings)
    fields = {"domain": "text", "model": loaded.name, "prompt_length": len(prompt_ids), "shown_from": int(fresh_start)}
    trace = Trace.from_steps(step_gates, codec.labels(list(prompt_ids) + list(out_ids)), **fields)
    logits_per_step = torch.cat(step_logits).float().cpu().numpy()
    return Generation(result, trace, {"logits": logits_per_step.astype(np.float32)}, settings)


@dataclass
class _Row:
    """One request of a batch: what it asked for, its primed state, what it has written."""
    settings: TextSettings
    prompt_ids: list[int]
    fresh_start: bool
    length: int
    notes: list[str]
    stop_at: float | None
    prompt_trace: Trace
    prompt_logits: torch.Tensor  # (prompt steps, V)
    logits: torch.Tensor  # (V,): the prediction for its first character
    state: tuple[torch.Tensor, torch.Tensor]  # (layers, 1, H) each
    generator: torch.Generator = None
    out_ids: list[int] = field(default_factory=list)
    pieces: list = field(default_factory=list)  # (segment, position in its rows) it was stepped in


def _prime(loaded: LoadedModel, settings: TextSettings, stop_at: float | None) -> _Row:
    """Apply the limits to one request and read its prompt in one teacher-forced pass."""
    model, codec, device = loaded.model, loaded.codec, loaded.device
    prompt_ids, fresh_start, length, notes = clean_settings(settings, codec)
    state = None
    if len(prompt_ids) > MAX_TRACED_PROMPT:  # tracing and drawing 20,000 steps alone would take the deadline
        _, state = model(torch.tensor([prompt_ids[:-MAX_TRACED_PROMPT]], device=device))
        notes.append(f"The prompt's first {len(prompt_ids) - MAX_TRACED_PROMPT:,} characters were read without keeping "
                     f"their gates; the trace shows its last {MAX_TRACED_PROMPT:,}.")
        prompt_ids = prompt_ids[-MAX_TRACED_PROMPT:]
    logits, state, gates = model.trace(torch.tensor([prompt_ids], device=device), state)
    return _Row(settings, prompt_ids, fresh_start, length, notes, stop_at,
                Trace.from_sequence(gates, codec.labels(prompt_ids)), logits[0], logits[0, -1], state,
                make_generator(settings.seed))


@torch.no_grad()
def generate_batch(loaded: LoadedModel, settings: list[TextSettings], stop_at: list | None = None) -> list:
    """Several requests sampled side by side: one model.step per character for all of them (a row
    leaves the batch when it has its length or its deadline passes). Each row is exactly what
    generate gives it alone: its own seed, settings and notes, and a step's bits do not depend on
    the batch (studio.lstm.packed_linear). `stop_at`: each request's limits.stop_time() (default:
    this thread's). Returns a Generation per request, or the exception its settings raised."""
    stop_at = stop_at or [limits.stop_time()] * len(settings)
    results, rows = [None] * len(settings), {}
    for index, (request, stop) in enumerate(zip(settings, stop_at, strict=True)):
        try:
            if request.window:  # windows re-read from zero at every step: not a batch of carried states
                results[index] = _generate_windowed(loaded, request, [])
                continue
            rows[index] = _prime(loaded, request, stop)
        except Exception as error:  # noqa: BLE001 (that request's caller hears it; the others go on)
            results[index] = error
    active = list(rows)
    if active:
        _sample_rows(loaded, rows, active)
    for index, row in rows.items():
        results[index] = _finish(loaded, row)
    return results


def _sample_rows(loaded: LoadedModel, rows: dict, active: list) -> None:
    """Step the active rows together until each has its characters; fills each row's out_ids and
    pieces (the segments of steps it was in: a segment ends when a row leaves)."""
    model, device = loaded.model, loaded.device
    logits = torch.stack([rows[r].logits for r in active])
    state = tuple(torch.cat([rows[r].state[j] for r in active], dim=1) for j in range(2))
    segment, segment_logits = [], []
    while active:
        tokens = []
        for position, r in enumerate(active):
            token = sample_next(logits[position].cpu(), rows[r].settings.sampling, rows[r].generator)
            rows[r].out_ids.append(token)
            tokens.append(token)
        # The last character is read too, so every shown character has a state to paint.
        logits, state, gates = model.step(torch.tensor(tokens, device=device), state)
        segment.append(gates)
        segment_logits.append(logits)
        leaving = []
        for position, r in enumerate(active):
            row, made = rows[r], len(rows[r].out_ids)
            if made >= row.length:
                leaving.append(position)
            elif limits.past(row.stop_at):  # the request's deadline: keep what was written
                row.notes.append(limits.time_note(f"the first {made:,} of {row.length:,} characters"))
                leaving.append(position)
        if leaving:
            stacked = ([{name: torch.stack([g[k][name] for g in segment]) for name in GATE_NAMES}
                        for k in range(len(gates))], torch.stack(segment_logits))  # (T, rows, H), (T, rows, V)
            for position, r in enumerate(active):
                rows[r].pieces.append((stacked, position))
            staying = [p for p in range(len(active)) if p not in leaving]
            active = [active[p] for p in staying]
            keep = torch.tensor(staying, dtype=torch.long, device=device)
            logits, state = logits[keep], (state[0][:, keep], state[1][:, keep])
            segment, segment_logits = [], []


def _finish(loaded: LoadedModel, row: _Row) -> Generation:
    codec, text = loaded.codec, loaded.codec.decode(row.out_ids)
    result = TextResult(prompt="" if row.fresh_start else codec.decode(row.prompt_ids), text=text, notes=row.notes)
    # shown_from: the implicit line break of a fresh start is traced but not shown
    fields = {"domain": "text", "model": loaded.name, "prompt_length": len(row.prompt_ids), "shown_from": int(row.fresh_start)}
    layers = [{name: torch.cat([stacked[0][k][name][:, position] for stacked, position in row.pieces]).float().cpu().numpy()
               for name in GATE_NAMES} for k in range(len(row.prompt_trace.layers))]
    stepped = Trace(layers, codec.labels(row.out_ids), **fields)
    trace = Trace.concat(Trace(row.prompt_trace.layers, row.prompt_trace.labels, **fields), stepped)
    step_logits = torch.cat([stacked[1][:, position] for stacked, position in row.pieces])
    logits_per_step = torch.cat([row.prompt_logits, step_logits]).float().cpu().numpy()
    return Generation(result, trace, {"logits": logits_per_step.astype(np.float32)}, row.settings)


@torch.no_grad()
def _generate_windowed(loaded: LoadedModel, settings: TextSettings, hooks) -> Generation:
    """generate with settings.window = N: before each prediction the last N tokens (fewer at the
    start) are read from a zero state, as a model trained on fixed windows saw them; a hook sees each
    read token as the step it is in the sequence."""
    model, codec = loaded.model, loaded.codec
    window = int(settings.window)
    if window < 1:
        raise ValueError(f"The window must be at least 1 token, not {window}.")
    prompt_ids, fresh_start, length, notes = clean_settings(settings, codec)
    notes.append(f"Each step re-read the last {window} tokens from a zero state (the window the model was trained on).")
    device = loaded.device
    generator = make_generator(settings.seed)
    ids = list(prompt_ids)
    step_gates, step_logits = [], []

    def read_window(end: int):
        """The logits and gates after reading ids[end - window : end] from zero: those of its last position."""
        start = max(0, end - window)
        state = model.core.initial_state(1, device)
        for t in range(start, end):
            logits, state, gates = model.step(torch.tensor([ids[t]], device=device), state, hooks, t)
        step_gates.append(gates)
        step_logits.append(logits)
        return logits[0]

    for end in range(1, len(ids) + 1):
        logits = read_window(end)
    out_ids = []
    for _ in range(length):
        token = sample_next(logits.cpu(), settings.sampling, generator)
        out_ids.append(token)
        ids.append(token)
        logits = read_window(len(ids))
    text = codec.decode(out_ids)
    result = TextResult(prompt="" if fresh_start else codec.decode(prompt_ids), text=text, notes=notes)
    fields = {"domain": "text", "model": loaded.name, "prompt_length": len(prompt_ids), "shown_from": int(fresh_start)}
    trace = Trace.from_steps(step_gates, codec.labels(ids), **fields)
    logits_per_step = torch.cat(step_logits).float().cpu().numpy()
    return Generation(result, trace, {"logits": logits_per_step.astype(np.float32)}, settings)


@torch.no_grad()
def read_windowed(loaded: LoadedModel, ids: list, window: int):
    """Teacher-forced as the window sampler reads (_generate_windowed): step t is the last position of
    ids[t - window + 1 .. t] read from a zero state. (logits (1, T, V), per-layer gates (1, T, H)).
    Batched: the first window - 1 windows are prefixes of one read from zero; each later one's state
    before its last token comes from the fused kernel, and only that token is traced."""
    model, device = loaded.model, loaded.device
    tokens = torch.tensor(ids, device=device)
    head = min(window - 1, len(ids))
    parts = [model.trace(tokens[None, :head])[::2]] if head else []
    for start in range(head, len(ids), 512):  # 512 windows at a time: bounded memory for a long text
        rows = tokens[start - window + 1 : min(start + 512, len(ids))].unfold(0, window, 1)  # (B, window)
        state = model(rows[:, :-1])[1] if window > 1 else None
        logits, _, gates = model.trace(rows[:, -1:], state)
        parts.append((logits.transpose(0, 1), [{k: v.transpose(0, 1) for k, v in g.items()} for g in gates]))
    logits = torch.cat([p[0] for p in parts], 1)
    gates = [{k: torch.cat([p[1][layer][k] for p in parts], 1) for k in GATE_NAMES}
             for layer in range(len(parts[0][1]))]
    return logits, gates
