"""Handwriting generation through the models' own `step`, every gate kept as it runs: a synthesis
model writes a text (line by line when it is long), a prediction model scribbles freely.

Trace alignment: step t is the pen point the model *produced* at t (the input that led to it was
the point before); label = the character under the window (synthesis) or the step number
(scribble). Distributions (first axis = trace steps): the mixture the point of step t was sampled
from, sampling bias applied ("pi", "mu", "sigma", "rho", "eos": MDNParams.arrays). The attention
window over the characters is the result's `phi`.

Priming (Graves 5.5): the style strokes are read teacher-forced with the style text prefixed to
the text, then sampling continues. Stopping: Graves' rule, the window has passed the last
character (phi at u = U exceeds phi at every real character), then the pen finishes its stroke.

Style (a model with styles, model.STYLE_NAMES): unprimed writing uses `settings.hand` or, by
default, cursive; a primer picks the style that explains it best (analysis by synthesis: the
primer's teacher-forced NLL per point under each style, `pick_style`), then primes as above, so the
text continues in the primer's own hand.

Hooks (studio.lstm) see the trace's step numbers. A long text is written line by line, each from a
fresh state, and only the written points are kept: a style primer read again before each line is
not in the trace, so the hooks see its points as steps -P..-1.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace

import numpy as np
import torch

from studio import limits
from studio.domains.base import Generation, LoadedModel
from studio.domains.handwriting.codec import (
    TRAINING_STATS,
    HandwritingDetail,
    bounds,
    normalize_primer,
    offsets_to_strokes,
    strokes_to_offsets,
)
from studio.domains.handwriting.data import load_stroke_file
from studio.domains.handwriting.model import (
    NAME,
    STYLE_NAMES,
    MDNParams,
    SynthesisModel,
    mdn_log_likelihood,
    mdn_sample,
    mdn_split,
)
from studio.sampling import make_generator
from studio.trace import Trace

LINE_CHARS = 26  # longer text is written line by line: the training phrases were at most 28 characters
MAX_POINTS = 3000  # free-scribble points per request
MAX_PRIMER_POINTS = 800  # pen points of a style sample read before writing


@dataclass
class HandwritingSettings:
    text: str = "hello world"  # what to write; a prediction model (free scribble) ignores it
    bias: float = 0.5  # Graves' sampling bias: 0 = raw samples, larger = neater; clamped to [0, 10]
    seed: int = 0
    style: str | None = None  # path of a stroke file with a transcript (priming), or None
    max_points: int = 600  # free-scribble length, clamped to [10, MAX_POINTS]
    primer_strokes: list | None = None  # strokes given directly (instead of a style file)
    primer_text: str = ""  # their transcript (given with a style file: overrides the file's own)
    normalize_primer: bool = True  # bring the primer to the training data's scale first (codec.normalize_primer)
    fixed_points: int = 0  # synthesis: write exactly this many points a line, whatever the window does
    # (0: Graves' stopping rule). Keeps a random test model writing for a known number of steps.
    hand: str | None = None  # a model with styles: "cursive" or "print"; None: picked from the primer, else cursive


@dataclass
class HandwritingResult:
    strokes: list[np.ndarray]  # the generated handwriting, absolute, y down (primer excluded)
    offsets: np.ndarray  # (T, 3) the same as offsets, in data units
    text: str  # the text as written (after cleaning)
    notes: list[str]
    finished: bool  # the window passed the last character and the pen lifted (synthesis)
    phi: np.ndarray | None = None  # (T, U) attention window over the text's characters
    chars: str = ""  # the characters phi indexes (the primer's text, a space, then the text)
    primer_points: int = 0  # leading rows of phi that read the primer
    primer: np.ndarray | None = None  # (primer_points, 3) the style offsets read first, data units (one line only)
    hand: str | None = None  # the style written in (a model with styles: model.STYLE_NAMES), else None


@dataclass
class _Line:
    """One line written by a synthesis model, before lines are stacked."""

    result: HandwritingResult
    trace: Trace
    params: list[MDNParams]  # per trace step, the mixture sampled from


def max_steps_for(text: str) -> int:
    return 30 * len(text) + 60


@torch.no_grad()
def generate(loaded: LoadedModel, settings: HandwritingSettings, hooks=None) -> Generation:
    """Write `settings.text` (synthesis model) or scribble freely (prediction model), sampling one
    point at a time with the model's `step` (hooks: studio.lstm)."""
    generator = make_generator(settings.seed)
    bias = float(settings.bias)
    notes: list[str] = []
    if bias < 0:
        notes.append(f"Bias {bias} is below 0; used 0.")
        bias = 0.0
    if bias > 10:
        notes.append(f"Bias {bias} is above 10; used 10.")
        bias = 10.0
    hooks = list(hooks or [])
    write = _write if isinstance(loaded.model, SynthesisModel) else _scribble
    generation = write(loaded, settings, bias, generator, notes, hooks)
    generation.settings = settings
    return generation


def _trace_fields(loaded: LoadedModel, detail: HandwritingDetail, primer_points: int = 0) -> dict:
    return {"domain": NAME, "model": loaded.name, "shown_from": primer_points, "prompt_length": primer_points,
            "layer_names": list(loaded.layer_names), "detail": detail}


def _sample(params: MDNParams, generator, device) -> tuple[torch.Tensor, np.ndarray]:
    """(the next input point (1, 3) on the model's device, its row in normalised units): sampled
    on the CPU, where the seeded generator lives."""
    point = mdn_sample(params.to("cpu"), generator)[None]
    return point.to(device), point[0].numpy().copy()


def _scribble(loaded, settings, bias, generator, notes, hooks) -> Generation:
    model, device = loaded.model, loaded.device
    if (settings.text or "").strip():
        notes.append("This is an unconditional (free-scribble) model: the text was ignored.")
    max_points = int(max(10, min(settings.max_points, MAX_POINTS)))
    if settings.style and settings.primer_strokes is None:
        settings = replace(settings, primer_strokes=load_stroke_file(settings.style)[0])
    settings = _prepare_primer(loaded, settings, "", notes)  # no window: the transcript is not needed
    primer = np.zeros((0, 3), np.float32)
    if settings.primer_strokes is not None:
        primer = strokes_to_offsets(settings.primer_strokes)[:MAX_PRIMER_POINTS]
        primer[0, :2] = 0
    state = model.core.initial_state(1)
    point = torch.tensor([[0.0, 0.0, 1.0]], device=device)
    rows, step_gates, params_per_step = [], [], []
    for j, row in enumerate(primer):  # priming: teacher-forced over the style sample, then scribbling on
        raw, state, gates = model.step(point, state, hooks, j)
        point = torch.tensor([[row[0] / loaded.codec.offset_scale, row[1] / loaded.codec.offset_scale, row[2]]],
                             device=device)
        step_gates.append(gates)
        params_per_step.append(mdn_split(raw[0], model.config.mixtures, bias))
    for t in range(len(primer), len(primer) + max_points):
        raw, state, gates = model.step(point, state, hooks, t)
        params = mdn_split(raw[0], model.config.mixtures, bias)
        point, row = _sample(params, generator, device)
        rows.append(row)
        step_gates.append(gates)
        params_per_step.append(params)
        if limits.out_of_time() and len(rows) < max_points:  # the request's deadline: keep what was drawn
            notes.append(limits.time_note(f"the first {len(rows)} of {max_points} points"))
            break
    offsets = np.array(rows, np.float32)
    offsets[:, :2] *= loaded.codec.offset_scale
    offsets[-1, 2] = 1
    trace = Trace.from_steps(step_gates, [str(k) for k in range(len(primer) + len(rows))],  # as score labels them
                             **_trace_fields(loaded, HandwritingDetail("scribble"), len(primer)))
    result = HandwritingResult(offsets_to_strokes(offsets), offsets, "", notes, True, primer_points=len(primer),
                               primer=primer if len(primer) else None)
    return Generation(result, trace, MDNParams.stack(params_per_step).arrays())


def _write(loaded, settings, bias, generator, notes, hooks) -> Generation:
    text, clean_notes = loaded.codec.alphabet.clean(settings.text or "")
    notes.extend(clean_notes)
    if not text:
        raise ValueError("There is nothing to write: the text is empty" + (
            " after removing characters the model does not know." if (settings.text or "").strip() else "."))
    if settings.style and settings.primer_strokes is None:  # read once, primes every line
        strokes, transcript = load_stroke_file(settings.style)
        settings = replace(settings, primer_strokes=strokes, primer_text=(settings.primer_text or "").strip() or transcript)
    settings = _prepare_primer(loaded, settings, loaded.codec.alphabet.clean(settings.primer_text or "")[0], notes)
    settings = _choose_hand(loaded, settings, notes)
    lines = textwrap.wrap(text, LINE_CHARS)
    if len(lines) <= 1:
        line = _write_line(loaded, replace(settings, text=text), bias, generator, notes, hooks)
        return Generation(line.result, line.trace, MDNParams.stack(line.params).arrays())
    primed = settings.primer_strokes is not None
    notes.append(f"Written in {len(lines)} lines of up to {LINE_CHARS} characters (the model learned phrases of "
                 "at most 28), each from a fresh state" + (" primed with the style." if primed else "."))
    parts, line_start = [], 0
    for k, line_text in enumerate(lines):
        if k and limits.out_of_time():  # the request's deadline: keep the lines written
            notes.append(limits.time_note(f"the first {k} of {len(lines)} lines"))
            break
        part = _write_line(loaded, replace(settings, text=line_text), bias, generator, [], hooks, line_start)
        line_start += part.trace.steps - part.result.primer_points
        parts.append(part)
    return _stack_lines(loaded, parts, notes)


def _prepare_primer(loaded, settings: HandwritingSettings, transcript: str, notes: list[str]) -> HandwritingSettings:
    """The settings with their primer strokes normalised once (every line reads the same), and a
    note saying the primer is used and how it was changed."""
    if settings.primer_strokes is None or not len(settings.primer_strokes):
        return replace(settings, primer_strokes=None)
    if loaded.codec.alphabet is not None and not transcript:
        return settings  # _primer says why it is not used
    points = sum(len(s) for s in settings.primer_strokes)
    said = f" of {transcript!r}" if transcript else ""
    if not settings.normalize_primer:
        notes.append(f"Primed with the style sample{said} ({points} pen points, read as given).")
        return settings
    stats = {**TRAINING_STATS, **loaded.card.get("primer_normalisation", {})}
    strokes, changes = normalize_primer(settings.primer_strokes, transcript, stats)
    notes.append(f"Primed with the style sample{said} ({points} pen points), brought to the training data's "
                 "statistics: " + "; ".join(changes) + ".")
    return replace(settings, primer_strokes=strokes, normalize_primer=False)


@torch.no_grad()
def pick_style(loaded, primer_offsets: np.ndarray, primer_text: str) -> tuple[int, list[float]]:
    """(the style index that explains the primer best, the primer's NLL per point under each style):
    the primer read teacher-forced with its transcript once per style, as priming reads it."""
    model, scale = loaded.model, loaded.codec.offset_scale
    styles = model.config.styles
    dtype = next(model.parameters()).dtype
    targets = torch.as_tensor(primer_offsets, dtype=dtype, device=loaded.device).clone()
    targets[:, :2] /= scale
    points = torch.cat([targets.new_tensor([[0.0, 0.0, 1.0]]), targets[:-1]])[None].expand(styles, -1, -1)
    chars = loaded.codec.alphabet.one_hot(primer_text)[None].to(loaded.device, dtype).expand(styles, -1, -1)
    raw, _ = model(points, chars, torch.ones(chars.shape[:2], dtype=dtype, device=loaded.device), torch.arange(styles))
    nll = -mdn_log_likelihood(mdn_split(raw, model.config.mixtures), targets[None].expand(styles, -1, -1)).mean(1)
    return int(nll.argmin()), [float(v) for v in nll]


def _choose_hand(loaded, settings: HandwritingSettings, notes: list[str]) -> HandwritingSettings:
    """The settings with `hand` set for a model with styles (the asked one, the primer's by
    pick_style, or cursive), with a note; a model without styles ignores it."""
    styles = loaded.model.config.styles
    names = STYLE_NAMES[:styles]
    if not styles:
        if settings.hand:
            notes.append(f"This model has no styles: the hand {settings.hand!r} was ignored.")
        return replace(settings, hand=None)
    if settings.hand:
        if settings.hand not in names:
            raise ValueError(f"the hand must be one of {', '.join(names)}, not {settings.hand!r}")
        return settings
    primer_offsets, primer_text = _primer(loaded.codec.alphabet, settings, [])
    if not len(primer_offsets):
        return replace(settings, hand=names[0])
    best, nll = pick_style(loaded, primer_offsets, primer_text)
    notes.append(f"Hand: {names[best]}, the style that explains the style sample best (its NLL per pen point: "
                 + ", ".join(f"{n} {v:.2f}" for n, v in zip(names, nll, strict=True)) + ").")
    return replace(settings, hand=names[best])


def _primer(alphabet, settings: HandwritingSettings, notes: list[str]) -> tuple[np.ndarray, str]:
    """(the style sample's offsets (P, 3), its cleaned transcript); no rows when there is none."""
    primer_offsets = np.zeros((0, 3), np.float32)
    if settings.primer_strokes is None:
        return primer_offsets, ""
    primer_text, primer_notes = alphabet.clean(settings.primer_text or "")
    if not primer_text:
        notes.append("The style sample has no transcript the model can read, so it was not used: type what it says "
                     "in the style text box (CLI: --style-text).")
        return primer_offsets, primer_text
    primer_offsets = strokes_to_offsets(settings.primer_strokes)
    primer_offsets[0, :2] = 0  # the primer starts where the pen is
    if primer_notes:
        notes.append("Style transcript: " + " ".join(primer_notes))
    return primer_offsets[:MAX_PRIMER_POINTS], primer_text


def _write_line(loaded, settings, bias, generator, notes, hooks, line_start: int | None = None) -> _Line:
    """One line of text, already cleaned by `generate` (settings.text is what gets written).
    line_start None: the only line, its primer kept in the trace (steps 0..P-1, shown_from = P);
    a number: one line of several, its written points numbered from line_start for the hooks."""
    model, device, scale = loaded.model, loaded.device, loaded.codec.offset_scale
    text = settings.text
    primer_offsets, primer_text = _primer(loaded.codec.alphabet, settings, notes)
    primer_points = len(primer_offsets)
    full = (primer_text + " " + text) if primer_points else text
    chars = loaded.codec.alphabet.one_hot(full)[None].to(device)  # (1, U, V)
    primer_first = 0 if line_start is None else -primer_points
    written_first = primer_points if line_start is None else line_start
    state = model.initial_state(1, STYLE_NAMES.index(settings.hand) if settings.hand else None)
    point = torch.tensor([[0.0, 0.0, 1.0]], device=device)
    step_gates, labels, phis, params_per_step = [], [], [], []
    for j, row in enumerate(primer_offsets):  # priming: teacher-forced over the style sample
        params, state, gates, phi = model.step(point, chars, state, bias, hooks, primer_first + j)
        point = torch.tensor([[row[0] / scale, row[1] / scale, row[2]]], device=device)
        step_gates.append(gates)
        phis.append(phi.cpu().numpy())
        params_per_step.append(params)
        labels.append("·")
    rows, finished, passed, lag, in_primer = [], False, False, 0, primer_points > 0
    limit = settings.fixed_points or (max_steps_for(full) + primer_points)
    for k in range(limit):
        params, state, gates, phi = model.step(point, chars, state, bias, hooks, written_first + k)
        point, row = _sample(params, generator, device)
        rows.append(row)
        step_gates.append(gates)
        phis.append(phi.cpu().numpy())
        params_per_step.append(params)
        position = int(phi[:-1].argmax())
        labels.append(full[position] if full[position] != " " else "␣")
        # still on the primer's word or the space after it: a stroke ended there finishes the primer
        in_primer = in_primer and position <= len(primer_text)
        if in_primer and row[2] > 0.5:
            lag = k + 1
        # Graves' rule (phi past the end outweighs every character), or every window Gaussian
        # already beyond the last character (where all phi may underflow to 0)
        if not passed and (float(phi[-1]) > float(phi[:-1].max()) or float(state[1].kappa.min()) > len(full) + 0.5):
            passed = True
        if passed and row[2] > 0.5 and not settings.fixed_points:
            finished = True
            break
        if limits.out_of_time():  # the request's deadline: keep what was written
            notes.append(limits.time_note(f"the first {k + 1} points of this line"))
            break
    if settings.fixed_points:
        finished = passed  # wrote the points asked for; "finished" says whether the window got past the text
    elif not finished and not limits.out_of_time():
        notes.append(f"The pen did not reach the end of the text within {limit - primer_points} points; stopped there.")
    offsets = np.array(rows, np.float32).reshape(-1, 3)
    offsets[:, :2] *= scale
    if 0 < lag < len(offsets):  # points written while the window was still on the primer's transcript: the end of the
        # primer's word, not the text; they join the prompt (in the trace, not in the output)
        primer_offsets = np.vstack([primer_offsets, offsets[:lag]])
        offsets, primer_points = offsets[lag:], primer_points + lag
        notes.append(f"Left out {lag} points the pen wrote to finish the style sample before the text began.")
    if len(offsets):
        offsets[-1, 2] = 1
    trace = Trace.from_steps(step_gates, labels,
                             **_trace_fields(loaded, HandwritingDetail("synthesis", full, finished), primer_points))
    result = HandwritingResult(offsets_to_strokes(offsets), offsets, text, notes, finished,
                               np.array(phis)[:, : len(full)], full, primer_points, primer_offsets, settings.hand)
    return _Line(result, trace, params_per_step)


def _stack_lines(loaded, parts: list[_Line], notes: list[str]) -> Generation:
    """One generation from lines written separately: lines stacked top to bottom, left-aligned; the
    trace, the distributions and the attention window keep only the written steps (a style primer
    is read again for every line and not repeated in the output), the window's columns spanning
    the whole text."""
    strokes, phis, traces, params = [], [], [], []
    top, width, column = 0.0, sum(len(p.result.text) for p in parts) + len(parts) - 1, 0
    for k, part in enumerate(parts):
        result, trace, start = part.result, part.trace, part.result.primer_points
        x0, y0, _, y1 = bounds(result.strokes)
        strokes += [s - np.array([x0, y0 - top], np.float32) for s in result.strokes]
        top += (y1 - y0) * 1.25
        traces.append(trace.with_layers([{n: layer[n][start:] for n in layer} for layer in trace.layers],
                                        trace.labels[start:]))
        params += part.params[start:]
        phi = np.zeros((len(result.phi) - start, width), np.float32)
        phi[:, column : column + len(result.text)] = result.phi[start:, -len(result.text) :]  # the line's characters
        phis.append(phi)
        column += len(result.text) + 1
        notes.extend(f"Line {k + 1}: {note}" for note in result.notes)
    text = " ".join(p.result.text for p in parts)
    finished = all(p.result.finished for p in parts)
    fields = _trace_fields(loaded, HandwritingDetail("synthesis", text, finished, len(parts)))
    trace = traces[0]
    for more in traces[1:]:
        trace = Trace.concat(trace, more, **fields)
    result = HandwritingResult(strokes, strokes_to_offsets(strokes), text, notes, finished, np.concatenate(phis), text, 0,
                               hand=parts[0].result.hand)
    return Generation(result, trace, MDNParams.stack(params).arrays())
