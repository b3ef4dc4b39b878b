"""The long references the probe and the pattern match read, for any domain (no gradio here; the
experiments panel, studio/ui/experiments_panel.py, calls these):

- "output": the generation on screen (its own trace: the viewer's step numbers);
- "generations": that one and MORE_GENERATIONS more with the same settings and other seeds;
- "file": an uploaded file in the domain's format;
- the domain's own `references` of a model (a text model's validation text, when its corpus is in
  the data folder: studio.checkpoint.DATA_DIR).

A long input is traced in chunks where the domain can (its `trace_chunks`), never holding every
gate at once.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio import cli_experiments, experiments
from studio.checkpoint import DATA_DIR  # noqa: F401 (the app reads it here)
from studio.domains import member
from studio.trace import Trace

MORE_GENERATIONS = 7
CONTEXT = 30  # steps shown each side of a match
MAX_MATCHES = 40
WINDOW = 300  # steps of the probe's picture of the top units next to the feature
PROBE_SECONDS, SHIPPED_WEIGHTS = 2.4, 1_900_000  # expected_seconds' yardstick: the shipped text model


@dataclass
class Source:
    name: str
    sequence: object  # what domain.score reads
    trace: Trace | None = None  # known already (the generation on screen)


def choices(domain, loaded) -> list[tuple[str, str]]:
    """(label, value) of the references this domain and model offer."""
    offered = [("this output", "output"), (f"this output and {MORE_GENERATIONS} more generations (other seeds)", "generations"),
               ("an uploaded file", "file")]
    return offered + [(own.label, own.value) for own in _own(domain, loaded)]


def _own(domain, loaded) -> list:
    """The domain's references of this model (studio.domains.base.Reference)."""
    references = member(domain, "references")
    return references(loaded) if references is not None and loaded is not None else []


def sources(domain, loaded, generation, choice: str, file=None, limit: int = 200_000) -> list[Source]:
    """The sequences a reference choice stands for (ValueError with a sentence when it cannot be had)."""
    if choice == "file":
        if not file:
            raise ValueError("Upload a file to read (or pick another reference).")
        sequence = domain.read_input(file, loaded)
        first = _first(domain, loaded, sequence, limit) if isinstance(sequence, str) else sequence
        return [Source(Path(file).name, first)]
    own = {reference.value: reference for reference in _own(domain, loaded)}
    if choice in own:
        return [Source(own[choice].label, _first(domain, loaded, own[choice].read(), limit))]
    if choice not in ("output", "generations"):
        raise ValueError(f"This model offers no reference {choice!r}; upload a file instead.")
    if generation is None or generation.trace is None:
        raise ValueError("Generate first: the reference starts with the output on screen.")
    found = [Source("this output", domain.sequence_of(generation), generation.trace)]
    if choice == "generations":
        if generation.settings is None:
            raise ValueError("This output does not say how it was made; generate again.")
        seed = int(generation.settings.seed)
        for k in range(1, MORE_GENERATIONS + 1):
            more = domain.generate(loaded, dataclasses.replace(generation.settings, seed=seed + k))
            found.append(Source(f"seed {seed + k}", domain.sequence_of(more), more.trace))
    return found


def _first(domain, loaded, sequence, limit: int):
    """The first `limit` steps of a long input, counted as the model reads it (a word model's words)."""
    chunks = member(domain, "trace_chunks")
    return cli_experiments.first_steps(chunks, loaded, sequence, limit) if chunks is not None else sequence[:limit]


def expected_seconds(loaded, found: list[Source]) -> float:
    """About how long the probe of these sources takes: the fast probe's time on the shipped text
    model (2 x 384 units, PROBE_SECONDS per 100,000 steps on 2 cores: docs/benchmarks.md,
    Experiments on units) scaled by the steps and by the model's weights (its matrix products)."""
    steps = sum(source.trace.steps if source.trace is not None else length(source.sequence) for source in found)
    weights = sum(p.numel() for p in loaded.model.parameters())
    return PROBE_SECONDS * steps / 100_000 * max(weights / SHIPPED_WEIGHTS, 0.1)


def length(sequence) -> int:
    """A sequence's steps where it says (a text's tokens), else 0."""
    return len(sequence) if hasattr(sequence, "__len__") else 0


def _traced(domain, loaded, source: Source):
    """(trace, track source) of a source: the known trace, else a teacher-forced read."""
    if source.trace is not None:
        return source.trace, None
    scored = domain.score(loaded, source.sequence)
    return scored.trace, scored


def probe(domain, loaded, found: list[Source], feature: str, top: int = 10, limit: int = 200_000,
          progress=None) -> dict:
    """The probe over every source: the ranked hits, and a picture of the top units next to the
    feature over WINDOW steps where it changes. progress(fraction) hears the share read so far."""
    chunks = member(domain, "trace_chunks")
    if len(found) == 1 and found[0].trace is None and chunks is not None:
        # one long text: chunked (the probe's own path), then a window read again to draw
        track, steps, hits = cli_experiments.probe(domain, loaded, found[0].sequence, feature, limit, top,
                                                   progress=progress)
        start = _window_start(track)
        # as the model read it: one item per step
        read = cli_experiments.first_steps(chunks, loaded, found[0].sequence, limit)
        window_trace = domain.score(loaded, read[start : start + WINDOW]).trace
        window_track = np.asarray(track, np.float64)[start : start + window_trace.steps]
        where = f"{found[0].name}, steps {start}–{start + window_trace.steps - 1} (read from a fresh state)"
    else:
        traces, tracks = [], []
        for k, source in enumerate(found):
            trace, scored = _traced(domain, loaded, source)
            tracks.append(np.asarray(cli_experiments.feature_track(domain, source.sequence, scored, feature), np.float64)[: trace.steps])
            traces.append(trace)
            if progress is not None:
                progress((k + 1) / len(found))
        track = np.concatenate(tracks)
        steps = len(track)
        whole = traces[0]
        for trace in traces[1:]:
            whole = Trace.concat(whole, trace)
        hits = experiments.probe(whole, track, top)
        start = _window_start(track)
        window_trace = whole.with_layers([{k: v[start : start + WINDOW] for k, v in layer.items()} for layer in whole.layers],
                                         whole.labels[start : start + WINDOW])
        window_track = track[start : start + WINDOW]
        where = f"steps {start}–{start + window_trace.steps - 1} of the reference ({', '.join(s.name for s in found)})"
    track = np.asarray(track, np.float64)
    binary = experiments.is_binary(track)
    return {
        "kind": "probe", "feature": feature, "steps": int(steps), "on_fraction": float((track > 0).mean()),
        "measure": "AUC" if binary else "correlation", "sources": [s.name for s in found],
        "hits": [vars(hit) for hit in hits],
        "window": {"where": where, "labels": [str(x) for x in window_trace.labels], "track": np.round(window_track, 4).tolist(),
                   "series": [np.round(window_trace.quantity(h.layer, h.quantity)[:, h.unit], 4).tolist() for h in hits[:5]]},
    }


def _window_start(track) -> int:
    """Where the picture starts: a little before the feature first changes."""
    changes = np.flatnonzero(np.diff(np.asarray(track, np.float64)) != 0)
    return int(max(0, changes[0] - WINDOW // 4)) if len(changes) else 0


def pattern(domain, loaded, trace: Trace, layer: int, start: int, end: int, threshold: float, quantity: str,
            found: list[Source]) -> dict:
    """LSTMVis' match: the units above `threshold` at every step of [start, end] of `trace` (the
    output on screen), then every run of steps in each source where all of them are above it together,
    longest first, with CONTEXT steps each side."""
    units, _ = experiments.pattern(trace, layer, start, end, threshold, quantity)
    answer = {"kind": "pattern", "layer": layer, "layer_name": trace.layer_name(layer), "quantity": quantity,
              "threshold": threshold, "start": start, "end": end, "units": units, "matches": [], "total": 0}
    if not units:
        return answer
    matches = []
    for source in found:
        flags, labels = _together(domain, loaded, source, layer, units, threshold, quantity)
        for run_start, run_end, length in experiments.runs(flags):
            matches.append({"source": source.name, "on_screen": source.trace is trace, "start": run_start, "end": run_end,
                            "length": length, "selection": source.trace is trace and run_start <= start and run_end >= end,
                            "before": labels[max(0, run_start - CONTEXT) : run_start], "inside": labels[run_start : run_end + 1][:120],
                            "after": labels[run_end + 1 : run_end + 1 + CONTEXT]})
    matches.sort(key=lambda m: (-m["length"], not m["selection"], m["source"] != "this output", m["start"]))
    answer.update(matches=matches[:MAX_MATCHES], total=len(matches))
    return answer


def _together(domain, loaded, source: Source, layer: int, units: list[int], threshold: float, quantity: str):
    """(per step: all `units` above the threshold, the step labels) over one source."""
    chunks = member(domain, "trace_chunks")
    if source.trace is None and chunks is not None:
        parts, labels = [], []
        for chunk, _ in chunks(loaded, source.sequence)[1]:
            parts.append((chunk.quantity(layer, quantity)[:, units] > threshold).all(1))
            labels.extend(str(x) for x in chunk.labels)
        return np.concatenate(parts), labels
    trace, _ = _traced(domain, loaded, source)
    if layer >= trace.num_layers or max(units) >= trace.hidden_size:
        raise ValueError(f"{source.name} was read by a model without layer {layer} unit {max(units)}")
    return (trace.quantity(layer, quantity)[:, units] > threshold).all(1), [str(x) for x in trace.labels]


def parse_steps(value) -> tuple[int, int] | None:
    """'120-140', '120–140' or '120' -> (120, 140); None when there are no numbers."""
    numbers = [int(n) for n in re.findall(r"\d+", str(value or ""))][:2]
    if not numbers:
        return None
    return min(numbers), max(numbers)
