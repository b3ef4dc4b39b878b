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
from studio.trace import Trace

MAX_LENGTH = 5000  # generated characters per request; longer requests are clamped
MAX_PROMPT = 20_000  # prompt characters kept (the most recent ones)
MAX_TRACED_PROMPT = 2_000  # of those, the ones traced and shown; older ones set the state through the fused kernel


@dataclass
class TextSettings:
    prompt: str = ""  # primes the state; empty starts from a fresh state after a newline
    length: int = 400  # characters to generate, clamped to [1, MAX_LENGTH]
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


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
        start = "\n" if "\n" in codec.index else codec.chars[0]
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

    Without hooks the prompt is read in one teacher-forced pass (LSTMCore.trace); with hooks it is
    stepped too, so a hook sees every step. traced=False runs the fused kernel each step and keeps
    nothing (the benchmarks compare the two); it takes no hooks.
    """
    model, codec = loaded.model, loaded.codec
    prompt_ids, fresh_start, length, notes = clean_settings(settings, codec)
    device = loaded.device
    generator = make_generator(settings.sampling.seed)
    hooks = list(hooks or [])
    if hooks and not traced:
        raise ValueError("hooks need the traced path")
    step_gates, step_logits = [], []
    if hooks:
        state = model.core.initial_state(1, device)
        for t, token in enumerate(prompt_ids):
            logits, state, gates = model.step(torch.tensor([token], device=device), state, hooks, t)
            step_gates.append(gates)
            step_logits.append(logits)
        prompt_trace, prompt_logits = None, None
        logits = logits[0]
    elif traced:
        state = None
        if len(prompt_ids) > MAX_TRACED_PROMPT:  # tracing and drawing 20,000 steps alone would take the deadline
            _, state = model(torch.tensor([prompt_ids[:-MAX_TRACED_PROMPT]], device=device))
            notes.append(f"The prompt's first {len(prompt_ids) - MAX_TRACED_PROMPT:,} characters were read without keeping "
                         f"their gates; the trace shows its last {MAX_TRACED_PROMPT:,}.")
            prompt_ids = prompt_ids[-MAX_TRACED_PROMPT:]
        logits, state, gates = model.trace(torch.tensor([prompt_ids], device=device), state)
        prompt_trace, prompt_logits = Trace.from_sequence(gates, codec.decode(prompt_ids)), logits[0]
        logits = logits[0, -1]
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
    # shown_from: the implicit line break of a fresh start is traced but not shown
    fields = {"domain": "text", "model": loaded.name, "prompt_length": len(prompt_ids), "shown_from": int(fresh_start)}
    stepped = Trace.from_steps(step_gates, codec.decode(prompt_ids) + text if hooks else text, **fields)
    trace = stepped if hooks else Trace.concat(Trace(prompt_trace.layers, prompt_trace.labels, **fields), stepped)
    rows = [prompt_logits] if prompt_logits is not None else []
    logits_per_step = torch.cat(rows + [torch.cat(step_logits)]).float().cpu().numpy()
    return Generation(result, trace, {"logits": logits_per_step.astype(np.float32)}, settings)
