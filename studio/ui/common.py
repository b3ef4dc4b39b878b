"""Small helpers every tab uses."""

from __future__ import annotations

import functools
import inspect
import math
import os
import tempfile
import time
from pathlib import Path

import gradio as gr

from studio import limits
from studio.domains import member

# Every file the tabs make (downloads, audio, the viewer's trace blobs) lies under this folder, which
# Gradio serves in place (serve_outputs_in_place): no second copy in Gradio's cache, no hashing of
# a trace's megabytes before the answer leaves.
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "lstm-studio"


def serve_outputs_in_place() -> None:
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([OUTPUT_ROOT])


# The app's outputs may take this much disk: past PRUNE_AT of it the oldest are deleted (a page still
# showing them gets a broken download link, which generating again mends). Pruning runs at most every
# PRUNE_EVERY_SECONDS, so it leaves room for what arrives meanwhile, and never deletes what is younger
# than KEEP_SECONDS: at 4 requests/s of ~2.5 MB, a 30 s period and 60 s kept let the disk reach
# 1,137 MB (1,000 requests, docs/benchmarks.md); 5 s and 20 s leave ~800 + 50 MB at most.
MAX_OUTPUT_BYTES = int(float(os.environ.get("LSTM_STUDIO_MAX_TEMP_MB", "1000")) * 1_000_000)
PRUNE_AT = 0.8
KEEP_SECONDS = 20  # nothing younger is deleted (a page is still loading it)
PRUNE_EVERY_SECONDS = 5  # a walk over a few thousand files: ~20 ms
_last_prune = 0.0


def output_dir() -> Path:
    """A fresh folder per request for downloads (the oldest outputs pruned past MAX_OUTPUT_BYTES)."""
    global _last_prune
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    if time.time() - _last_prune > PRUNE_EVERY_SECONDS:  # a walk over every file: not on every request
        _last_prune = time.time()
        prune_outputs()
    return Path(tempfile.mkdtemp(dir=OUTPUT_ROOT))


def prune_outputs(limit: int | None = None) -> int:
    """Delete the oldest files under OUTPUT_ROOT (request folders, viewer blobs, finished trainings'
    pictures) until the rest fit in PRUNE_AT of `limit` bytes; returns the bytes freed."""
    limit = PRUNE_AT * (MAX_OUTPUT_BYTES if limit is None else limit)
    files = []
    for path in OUTPUT_ROOT.rglob("*"):
        try:
            if path.is_file():
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        except OSError:  # deleted meanwhile by another request
            continue
    total, freed, now = sum(size for _, size, _ in files), 0, time.time()
    for mtime, size, path in sorted(files):
        if total - freed <= limit or now - mtime < KEEP_SECONDS:
            break
        path.unlink(missing_ok=True)
        freed += size
    return freed


def notes_markdown(notes: list[str]) -> str:
    return "\n".join(f"- {note}" for note in notes)


def number_or(value, default: float) -> float:
    """A number from a UI field or an API call as a finite float; blank, garbage, NaN or an
    infinity gives `default` (the domains then clamp the range, with a note)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def clamp_int(value, low: int, high: int, default: int) -> int:
    """A number from a UI field as an int in [low, high]; blank, garbage or NaN gives `default`,
    an infinity the nearer end."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if math.isnan(number):
        return default
    return max(low, min(high, int(number))) if math.isfinite(number) else (high if number > 0 else low)


def endpoint_model(loaded_by_domain: dict, domain, model):
    """(domain module, LoadedModel) an API call names ("" = the domain's first model); gr.Error
    with the choices otherwise."""
    by_name = {d.NAME: (d, models) for d, (models, _) in loaded_by_domain.items()}
    if not isinstance(domain, str) or domain not in by_name:
        raise gr.Error(f"Unknown domain {domain!r}; one of {', '.join(by_name)}.")
    module, models = by_name[domain]
    if not models:
        raise gr.Error(f"No {domain} model is loaded.")
    if model is not None and not isinstance(model, str):
        raise gr.Error(f"The model is named by a string, one of {', '.join(models)}.")
    loaded = models.get(model) if model else next(iter(models.values()))
    if loaded is None:
        raise gr.Error(f"Unknown {domain} model {model!r}; one of {', '.join(models)}.")
    return module, loaded


def endpoint_input(module, loaded, text, file):
    """The sequence an API call gives: an uploaded file in the domain's format, or plain text where
    the domain reads one (its `sequence_from_text`)."""
    if isinstance(file, str) and file:
        return module.read_input(file, loaded)
    from_text = member(module, "sequence_from_text")
    if from_text is not None and isinstance(text, str) and text:
        return from_text(text)
    if from_text is not None:
        raise ValueError(f"Give the input: a text, or a file in the {module.NAME} domain's format.")
    raise ValueError(f"Give the input: a file in the {module.NAME} domain's format (this domain reads no plain text).")


# Events of one tab share one queue of this many workers: a long job in one tab never holds up
# another tab's users, and a quick request in a tab runs beside a long one there.
CONCURRENCY_PER_TAB = int(float(os.environ.get("LSTM_STUDIO_CONCURRENCY", "2")))


def _tab_of_blocks(demo: gr.Blocks) -> dict[int, str]:
    """{block id: label of the top-level tab it is in} for every block inside a gr.Tab."""
    owner: dict[int, str] = {}

    def walk(block, label):
        if isinstance(block, gr.Tab) and label is None:  # a tab's inner tabs belong to it
            label = str(block.label)
        if label is not None:
            owner[block._id] = label
        for child in getattr(block, "children", None) or []:
            walk(child, label)

    walk(demo, None)
    return owner


def _within_deadline(fn):
    @functools.wraps(fn)  # gradio reads the signature through __wrapped__
    def run(*args, **kwargs):
        try:
            with limits.deadline():
                return fn(*args, **kwargs)
        finally:
            limits.trim_malloc()  # what the request freed goes back to the system

    return run


def _quiet(method):
    """`method`, its gr.Error (a user's mistake, answered in words) kept out of the server log:
    gradio prints a traceback for every gr.Error unless told not to; and shown until dismissed."""

    @functools.wraps(method)
    def run(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except gr.Error as error:
            error.print_exception = False
            error.duration = None  # the message stays until the user closes it (a fading one is easily missed)
            raise

    return run


def apply_request_limits(demo: gr.Blocks) -> dict[str, list[str]]:
    """Every event runs within the request deadline (studio.limits.deadline: the generation loops
    stop there and say so) and in its tab's queue (concurrency_id "tab:LABEL", CONCURRENCY_PER_TAB
    at once); an endpoint outside every tab (gr.api) gets a queue of its own, and so does a handler
    marked `batch_size` (its requests are merged by a studio.batching.MicroBatcher: that many at once). Call once the demo is
    built, before launch. Returns {queue: [event names]}."""
    owner, queues = _tab_of_blocks(demo), {}
    for block_fn in demo.fns.values():
        if block_fn.fn is None or not block_fn.queue:
            continue
        tabs = sorted({owner[block_id] for block_id, _ in block_fn.targets if block_id in owner})
        queue = f"tab:{tabs[0]}" if tabs else f"api:{block_fn.api_name or block_fn.name}"
        block_fn.concurrency_id, block_fn.concurrency_limit = queue, CONCURRENCY_PER_TAB
        fn = block_fn.fn
        batch = getattr(fn, "batch_size", 0)
        if batch:  # a handler that batches (studio.batching): a queue of its own, a batch's worth at once
            queue = f"{queue}:{block_fn.api_name or block_fn.name}"
            block_fn.concurrency_id, block_fn.concurrency_limit = queue, batch
        if not (inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)):
            block_fn.fn = _quiet(_within_deadline(fn))
        for component in block_fn.inputs:  # a component's own check (a file's type, a choice) too
            if not getattr(component.preprocess, "_quiet", False):
                component.preprocess = _quiet(component.preprocess)
                component.preprocess._quiet = True
        queues.setdefault(queue, []).append(block_fn.api_name or block_fn.name)
    return queues
