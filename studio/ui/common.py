"""Small helpers every tab uses."""

from __future__ import annotations

import functools
import inspect
import math
import os
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr

from studio import limits, state_store, user_models
from studio.domains import member
from studio.ui.owner import key_parameter, key_position

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
# than KEEP_SECONDS: under load a longer period and a longer spare let the disk pass the cap
# (docs/benchmarks.md, Memory, disk and bad inputs); 5 s and 20 s leave ~800 + 50 MB at most.
MAX_OUTPUT_BYTES = int(float(os.environ.get("LSTM_STUDIO_MAX_TEMP_MB", "1000")) * 1_000_000)
PRUNE_AT = 0.8
KEEP_SECONDS = 20  # nothing younger is deleted (a page is still loading it)
PRUNE_EVERY_SECONDS = 5  # a walk over a few thousand files is cheap (docs/benchmarks.md, Memory, disk and bad inputs)
_last_prune = 0.0


def output_dir() -> Path:
    """A fresh folder per request for downloads (the oldest outputs pruned past MAX_OUTPUT_BYTES)."""
    global _last_prune
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    if time.time() - _last_prune > PRUNE_EVERY_SECONDS:  # a walk over every file: not on every request, and
        _last_prune = time.time()                        # beside it (thousands of folders take 0.1-0.5 s)
        threading.Thread(target=prune_outputs, daemon=True).start()
    return Path(tempfile.mkdtemp(dir=OUTPUT_ROOT))


def prune_outputs(limit: int | None = None) -> int:
    """Delete the oldest files under OUTPUT_ROOT (request folders, viewer blobs, finished trainings'
    pictures) until the rest fit in PRUNE_AT of `limit` bytes; returns the bytes freed."""
    limit = PRUNE_AT * (MAX_OUTPUT_BYTES if limit is None else limit)
    files = []
    for folder, _, names in os.walk(OUTPUT_ROOT):  # a third of rglob's time: no Path per entry
        for name in names:
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except OSError:  # deleted meanwhile by another request
                continue
            files.append((stat.st_mtime, stat.st_size, Path(path)))
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


def _session_aware(fn, inputs: list, outputs: list, key=None):
    """`fn` that (1) answers for the owner of the browser key among its inputs (studio.user_models.
    current_owner; the key is added as the last input when `fn` does not take it) and (2) keeps large
    gr.State values in studio.state_store: a ticket goes out in their place and comes back as the value
    (or as the store's one sentence when it expired)."""
    states_in = [k for k, block in enumerate(inputs) if isinstance(block, gr.State)]
    states_out = [k for k, block in enumerate(outputs) if isinstance(block, gr.State)]
    key_at = next((k for k, block in enumerate(inputs) if block is key), None)
    added = key is not None and key_at is None
    if added:
        inputs.append(key)
    key_from = key_position(fn, len(inputs) - 1) if added else None  # None: the last argument

    def enter(args):
        """(owner, the handler's arguments: the added key taken out, tickets made values again)."""
        args = list(args)
        if added:  # gradio inserts gr.Request and the like at their own places, defaults after the key
            at = len(args) - 1 if key_from is None else key_from
            owner = user_models.owner_or_none(args.pop(at) if len(args) >= len(inputs) else None)
        else:
            owner = user_models.owner_or_none(args[key_at] if key_at is not None and key_at < len(args) else None)
        try:
            for k in states_in:
                if k < len(args):
                    args[k] = state_store.value_of(args[k])
        except state_store.Expired as error:
            raise gr.Error(str(error), print_exception=False) from None
        return owner, args

    def leave(value):
        if not states_out:
            return value
        if isinstance(value, dict) and any(isinstance(c, gr.State) for c in value):  # {component: value}
            return {c: state_store.ticket_for(v) if isinstance(c, gr.State) else v for c, v in value.items()}
        if len(outputs) == 1:
            return state_store.ticket_for(value)
        if isinstance(value, tuple | list):
            return type(value)(state_store.ticket_for(v) if k in states_out else v for k, v in enumerate(value))
        return value

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def run_generator(*args, **kwargs):
            owner, args = enter(args)
            iterator = fn(*args, **kwargs)
            while True:  # each step may run in another thread: the owner is set around each
                token = user_models.current_owner.set(owner)
                try:
                    value = next(iterator)
                except StopIteration:
                    return
                finally:
                    user_models.current_owner.reset(token)
                yield leave(value)

        return key_parameter(run_generator, fn, key_from) if added else run_generator
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return fn

    @functools.wraps(fn)
    def run(*args, **kwargs):
        owner, args = enter(args)
        token = user_models.current_owner.set(owner)
        try:
            return leave(fn(*args, **kwargs))
        finally:
            user_models.current_owner.reset(token)

    return key_parameter(run, fn, key_from) if added else run


def _input_name(block_fn, index: int) -> str:
    names = getattr(block_fn, "input_parameter_names", None) or []
    name = names[index] if index < len(names) and names[index] else None
    label = getattr(block_fn.inputs[index], "label", None) if index < len(block_fn.inputs) else None
    return f"`{name or label or f'input {index + 1}'}` (input {index + 1})"


def _is_file_input(block) -> bool:
    model = getattr(block, "data_model", None)
    return model is not None and "FileData" in str(getattr(model, "model_fields", {}) or model)


def _file_data(value) -> bool:
    items = value if isinstance(value, list) and value else [value]
    return all(isinstance(item, dict) and isinstance(item.get("path") or item.get("url"), str) for item in items)


def _bad_input_sentence(block_fn, inputs: list) -> str:
    """One sentence naming the input gradio could not read: a file never uploaded, something else where
    a file goes; else a sentence for the call as a whole."""
    for index, value in enumerate(inputs[: len(block_fn.inputs)]):
        if value is not None and _file_data(value):  # the only values gradio reads before the handler: files
            return (f"The input {_input_name(block_fn, index)} names a file that was never uploaded to this server; "
                    "upload it first (gradio_client's handle_file does).")
    for index, (block, value) in enumerate(zip(block_fn.inputs, inputs, strict=False)):
        if value is not None and _is_file_input(block):
            return (f"The input {_input_name(block_fn, index)} takes a file uploaded to this server (a FileData with "
                    f"its path), not {type(value).__name__}.")
    return "The call's inputs could not be read; see this endpoint's parameters on the API page."


def guard_inputs(demo: gr.Blocks, key=None) -> None:
    """Malformed calls get one sentence and leave no traceback in the log: too few inputs (the optional
    owner key at the end may be left out), a file never uploaded, a wrong type where a file goes."""
    original = demo.preprocess_data

    async def preprocess_data(block_fn, inputs, *args, **kwargs):
        inputs = list(inputs) if isinstance(inputs, list | tuple) else []
        missing = block_fn.inputs[len(inputs):]
        if missing and all(block is key for block in missing):
            inputs += [None] * len(missing)
        elif missing:
            raise gr.Error(f"This endpoint takes {len(block_fn.inputs)} inputs and the call gave {len(inputs)}: "
                           f"{_input_name(block_fn, len(inputs))} is missing.", print_exception=False)
        try:
            return await original(block_fn, inputs, *args, **kwargs)
        except gr.Error as error:
            error.print_exception = False
            raise
        except Exception:  # noqa: BLE001 (gradio's own reading of the inputs: a sentence instead of its traceback)
            raise gr.Error(_bad_input_sentence(block_fn, inputs), print_exception=False) from None

    demo.preprocess_data = preprocess_data


class _NoBlocks:
    """What gradio's SessionState reads of a Blocks, with no blocks to copy the configuration of."""

    def __init__(self, blocks: gr.Blocks):
        self.default_config, self.blocks = blocks.default_config, {}


def lean_sessions() -> None:
    """Gradio's SessionState copies the configuration of every block of the app into each new session
    (only its "deep link" button reads them; the studio has none): 766 KB a session for this app's 504
    blocks, and gradio keeps 10,000 sessions. Each session now starts with none (the values a session
    changes are still recorded as they change)."""
    from gradio import state_holder

    if getattr(state_holder.SessionState.__init__, "_lean", False):
        return
    original = state_holder.SessionState.__init__

    def init(self, blocks):
        original(self, _NoBlocks(blocks))

    init._lean = True
    state_holder.SessionState.__init__ = init


def apply_request_limits(demo: gr.Blocks, key=None) -> dict[str, list[str]]:
    """Every event runs within the request deadline (studio.limits.deadline: the generation loops
    stop there and say so) and in its tab's queue (concurrency_id "tab:LABEL", CONCURRENCY_PER_TAB
    at once); an endpoint outside every tab (gr.api) gets a queue of its own, and so does a handler
    marked `batch_size` (its requests are merged by a studio.batching.MicroBatcher: that many at once).
    Every handler knows its browser's owner from `key` (studio.ui.owner's BrowserState) and keeps
    its large gr.State values in the bounded studio.state_store (`_session_aware`). Call once the
    demo is built, before launch. Returns {queue: [event names]}."""
    owner, queues = _tab_of_blocks(demo), {}
    guard_inputs(demo, key)
    lean_sessions()
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and not getattr(block_fn.fn, "_session_aware", False):
            taken = len(block_fn.inputs)
            block_fn.fn = _session_aware(block_fn.fn, block_fn.inputs, block_fn.outputs,
                                         None if getattr(block_fn, "inputs_as_dict", False) else key)
            names = getattr(block_fn, "input_parameter_names", None)
            if len(block_fn.inputs) > taken and isinstance(names, list) and names:
                names.append("owner_key")  # gradio's API page names parameters from this list
            block_fn.fn._session_aware = True
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
