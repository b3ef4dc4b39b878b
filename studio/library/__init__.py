"""The library: every generation kept with what made it, to rate, tag, search, share and make again.

What the tabs, the CLI and the API call (through the domain contract only; docs/library.md):
    record_generation(domain, loaded, settings, generation, files, owner, ...) -> record id
    replay(record_id, owner) / replay_shared(token) -> Replayed(generation, reproduced, why)
    add_save_flag(parser) + save_after(args, domain, loaded, settings, generation, files): `--save`
    open_store() -> the Store in the user data folder (studio.owners.home())
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from studio import owners
from studio.library import records
from studio.library.records import Record, build_record, content_hash, decode_settings, weights_sha256
from studio.library.store import Caps, LibraryFull, NotFound, Store, Stored, as_json, default_path

_STORES: dict[Path, Store] = {}


def open_store(path=None) -> Store:
    """The library at path (default: HOME/library/library.sqlite3), opened once per process."""
    path = Path(path) if path is not None else default_path()
    key = path.expanduser().resolve()
    if key not in _STORES:
        _STORES[key] = Store(path)
    return _STORES[key]


def record_generation(domain, loaded, settings, generation, files: dict | None = None, owner: str = owners.LOCAL, *,
                      input_files: dict | None = None, stem=None, duration: float | None = None,
                      store: Store | None = None) -> int:
    """Keep one generation; returns its record id (an output this owner already has: that record's id).

    files: write_files' {label: path}; input_files: {settings field: path} for fields that name a
    file (a style file) or stand for an upload, kept by hash; stem: the checkpoint the model was loaded
    from (found in the models folders when not given); duration: seconds the generation took."""
    store = store or open_store()
    record = build_record(domain, loaded, settings, generation, stem=stem, input_files=input_files, duration=duration)
    return store.add(record, owner, files)


class Replayed(NamedTuple):
    generation: Any  # the new generation (None when it could not be made)
    reproduced: bool  # the output's content hash equals the stored one
    why: str  # "" when reproduced; otherwise the reason, in words


def _replay(store: Store, record: Stored, load=None) -> Replayed:
    from studio.checkpoint import CheckpointError
    from studio.domains import by_name

    if record.kind != "generation":  # a trained model or a lab run is kept, not made again
        return Replayed(None, False, f"it is a {record.kind} record: only generations are made again")

    try:
        domain = by_name(record.domain)
    except ValueError as error:
        return Replayed(None, False, str(error))
    stem = Path(record.model_stem)
    if not records.weights_path(stem).exists():  # the studio moved: the model of that name where models are now
        stem = records.stem_by_name(domain, record.model)
        if stem is None:
            return Replayed(None, False, f"the model {record.model!r} is no longer at {record.model_stem}")
    try:
        loaded = load(domain, stem) if load is not None else domain.load(stem)
    except CheckpointError as error:
        return Replayed(None, False, f"the model cannot be loaded: {error}")
    now_sha = weights_sha256(stem)
    with tempfile.TemporaryDirectory(prefix="lstm-studio-replay-") as folder:
        inputs = {}
        for kept in record.files:
            if kept["role"] == "input":
                source = store.file_path(kept["sha256"])
                if not source.exists():
                    return Replayed(None, False, f"its input file {kept['name']} is missing from the library")
                path = Path(folder) / kept["label"] / kept["name"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(source.read_bytes())
                inputs[kept["label"]] = path
        try:
            settings, notes = decode_settings(record.settings, lambda sha: store.file_path(sha).read_bytes(), inputs)
        except (ValueError, TypeError, AttributeError, ImportError, KeyError, OSError) as error:
            return Replayed(None, False, f"its settings cannot be read by this version of the studio ({error})")
        try:
            with one_thread():
                generation = domain.generate(loaded, settings)
        except ValueError as error:  # the domain's sentence for settings it no longer takes
            return Replayed(None, False, f"the domain refused its settings: {error}")
    if content_hash(domain, generation) == record.content_hash:
        return Replayed(generation, True, "")
    reasons = []
    if now_sha != record.weights_sha256:
        reasons.append(f"the model changed: its weights' sha256 is {now_sha[:12]}…, was {record.weights_sha256[:12]}…")
    if notes:
        reasons.extend(notes)
    if record.version != records.studio.__version__:
        reasons.append(f"it was made by studio {record.version}, this is {records.studio.__version__}")
    if not reasons:
        reasons.append("the same model and settings gave a different output (different hardware or library versions)")
    return Replayed(generation, False, "; ".join(reasons))


def replay(record_id, owner: str = owners.LOCAL, store: Store | None = None, load=None) -> Replayed:
    """Make the owner's record again with its model and settings and compare the output's hash.
    load(domain, stem) -> LoadedModel: the app's already loaded models (default: domain.load)."""
    store = store or open_store()
    return _replay(store, store.get(record_id, owner), load)


def replay_shared(token: str, store: Store | None = None, load=None) -> Replayed:
    """Replay a record through its share link (read-only: nothing is written)."""
    store = store or open_store()
    return _replay(store, store.by_token(token), load)


# ---------------------------------------------------------------- --save for every domain's generate
def add_save_flag(parser) -> None:
    parser.add_argument("--save", action="store_true",
                        help="keep the generation in the library (python -m studio library ...); prints its id")


def save_after(args, domain, loaded, settings, generation, files=None, *, input_files=None, stem=None,
               duration: float | None = None) -> int | None:
    """When `--save` was given: record the generation for the local owner and print `saved: ID` on
    stderr; a library that cannot take it prints one sentence and the command still succeeds."""
    if not getattr(args, "save", False):
        return None
    given = getattr(args, "model", None)
    if stem is None and isinstance(given, str) and records.weights_path(given).exists():
        stem = given  # --model names a checkpoint stem in most domains (not in every one: then it is looked up)
    try:
        with tempfile.TemporaryDirectory(prefix="lstm-studio-save-") as folder:
            if files is None:  # a command that printed its output: keep the domain's files of it
                files = domain.write_files(generation, Path(folder))
            record_id = record_generation(domain, loaded, settings, generation, files, owners.LOCAL,
                                          input_files=input_files, stem=stem, duration=duration)
    except (LibraryFull, ValueError, OSError) as error:
        print(f"not saved: {error}", file=sys.stderr)
        return None
    print(f"saved: {record_id}", file=sys.stderr)
    return record_id


@contextlib.contextmanager
def one_thread():
    """Generation as the app runs it: one torch thread (the app's and its workers' setting). A matrix
    product's last float bits depend on how many threads share it, and a sample drifts from the first
    differing bit (a handwriting stroke did): records are made and made again alike."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def timed(function, *args, **kwargs):
    """(result, seconds) of one generation, for record_generation's duration, run as the app runs it
    (one_thread)."""
    start = time.perf_counter()
    with one_thread():
        result = function(*args, **kwargs)
    return result, time.perf_counter() - start


__all__ = ["Caps", "LibraryFull", "NotFound", "Record", "Replayed", "Store", "Stored", "add_save_flag", "as_json",
           "one_thread", "open_store", "record_generation", "replay", "replay_shared", "save_after", "timed"]
