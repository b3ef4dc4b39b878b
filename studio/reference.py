"""The long references the probe and the pattern match read, for any domain (no gradio here; the
experiments panel, studio/ui/experiments_panel.py, calls these):

- "output": the generation on screen (its own trace: the viewer's step numbers);
- "generations": that one and MORE_GENERATIONS more with the same settings and other seeds;
- "file": an uploaded file in the domain's format;
- "validation": a text model's validation text (the last 10% of its corpus), when the corpus is in
  the data folder (LSTM_STUDIO_DATA, default ../shared/data next to the repository).

A long text is traced in chunks (the domain's `trace_chunks`), never holding every gate at once.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio import cli_experiments, experiments
from studio.trace import Trace

DATA_DIR = Path(os.environ.get("LSTM_STUDIO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MORE_GENERATIONS = 7
CONTEXT = 30  # steps shown each side of a match
MAX_MATCHES = 40
WINDOW = 300  # steps of the probe's picture of the top units next to the feature


@dataclass
class Source:
    name: str
    sequence: object  # what domain.score reads
    trace: Trace | None = None  # known already (the generation on screen)


def validation_text(loaded) -> str | None:
    """The validation part of a text model's corpus, if the corpus file is at hand."""
    name = (loaded.card.get("data") or {}).get("file")
    path = DATA_DIR / name if isinstance(name, str) and name else None
    if path is None or not path.is_file():
        return None
    from studio.domains.text.data import read_text, split_train_val

    return split_train_val(read_text(path))[1]


def choices(domain, loaded) -> list[tuple[str, str]]:
    """(label, value) of the references this domain and model offer."""
    offered = [("this output", "output"), (f"this output and {MORE_GENERATIONS} more generations (other seeds)", "generations"),
               ("an uploaded file", "file")]
    if domain.NAME == "text" and loaded is not None and validation_text(loaded) is not None:
        offered.append((f"the model's validation text ({loaded.card['data']['file']}, last 10%)", "validation"))
    return offered


def sources(domain, loaded, generation, choice: str, file=None, limit: int = 200_000) -> list[Source]:
    """The sequences a reference choice stands for (ValueError with a sentence when it cannot be had)."""
    if choice == "file":
        if not file:
            raise ValueError("Upload a file to read (or pick another reference).")
        sequence = domain.read_input(file, loaded)
        return [Source(Path(file).name, sequence[:limit] if isinstance(sequence, str) else sequence)]
    if choice == "validation":
        text = validation_text(loaded) if domain.NAME == "text" else None
        if text is None:
            raise ValueError(f"The validation text is not in {DATA_DIR}; upload a text instead.")
        return [Source("validation text", text[:limit])]
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


def _traced(domain, loaded, source: Source):
    """(trace, track source) of a source: the known trace, else a teacher-forced read."""
    if source.trace is not None:
        return source.trace, None
    scored = domain.score(loaded, source.sequence)
    return scored.trace, scored


def probe(domain, loaded, found: list[Source], feature: str, top: int = 10, limit: int = 200_000) -> dict:
    """The probe over every source: the ranked hits, and a picture of the top units next to the
    feature over WINDOW steps where it changes."""
    if len(found) == 1 and found[0].trace is None and hasattr(domain, "trace_chunks"):
        # one long text: chunked (the probe's own path), then a window read again to draw
        track, steps, hits = cli_experiments.probe(domain, loaded, found[0].sequence, feature, limit, top)
        start = _window_start(track)
        excerpt = found[0].sequence[start : start + WINDOW]
        scored = domain.score(loaded, excerpt)
        window_trace, window_track = scored.trace, cli_experiments.feature_track(domain, excerpt, scored, feature)
        where = f"{found[0].name}, characters {start}–{start + len(excerpt) - 1} (read from a fresh state)"
    else:
        traces, tracks = [], []
        for source in found:
            trace, scored = _traced(domain, loaded, source)
            tracks.append(np.asarray(cli_experiments.feature_track(domain, source.sequence, scored, feature), np.float64)[: trace.steps])
            traces.append(trace)
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
    if source.trace is None and hasattr(domain, "trace_chunks") and isinstance(source.sequence, str):
        parts, labels = [], []
        for chunk, read in domain.trace_chunks(loaded, source.sequence):
            parts.append((chunk.quantity(layer, quantity)[:, units] > threshold).all(1))
            labels.append(read)
        return np.concatenate(parts), list("".join(labels))
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
