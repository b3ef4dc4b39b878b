"""Generation in worker processes: the app's threads share one interpreter lock.

Sampling steps an LSTM one position at a time, a dozen small torch calls per step, and each call
hands the interpreter lock back and waits for it again. Under load, with generation in the
server's threads, the lock and not the cores is the limit: the server leaves most of its cores idle
while requests wait (docs/benchmarks.md, Load and requests). A domain's `generate` therefore runs in one of WORKERS processes (started with the app,
`spawn`ed: no fork of a threaded server; any of them runs any domain); the server's threads only
wait on it, and do the drawing and the files. The Generation comes back serialised (size and time
in docs/benchmarks.md, Load and requests).

Models reach a worker once, with the first request it gets for them (a model trained in the Train
tab too), and stay there. Everything crosses by multiprocessing's own serialisation of the app's
in-memory objects, never a file: checkpoints are only ever read as safetensors + JSON, by the app.
A request's deadline goes with it (time.monotonic is one clock for every process). A worker that
dies is started again at the next request.

Off unless `start()` is called (app.py does on a CPU; tests and the CLI generate in-process).
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable

from studio import limits

# processes: as many as usable cores (a generation is one thread of small products), at least two
WORKERS = int(float(os.environ.get("LSTM_STUDIO_WORKERS", str(max(2, limits.usable_cores())))))
# The shared processes run this much nicer than the app and its lanes: under load a batch of short
# text requests gets the cores before a music, speech or handwriting generation (a lower text p95
# at the same throughput: docs/benchmarks.md, Load and requests); with idle cores it changes nothing.
SHARED_NICE = int(float(os.environ.get("LSTM_STUDIO_SHARED_NICE", "5")))
_pools: dict[str, concurrent.futures.ProcessPoolExecutor] = {}  # lane -> its processes ("": the shared one)
_sizes: dict[str, int] = {}
_lock = threading.Lock()
_busy = [0]  # calls running now, here or in a worker
LOCAL_WHEN_IDLE = True  # a call with nothing else running runs in the caller's thread (tests turn it off)
_models: dict[int, object] = {}  # in a worker: the models it was sent, by the app's id of them


def start(domains, lanes: dict[str, int] | None = None) -> None:
    """Start WORKERS shared processes and, per named lane, its own (each imports torch and the
    domains in the background, docs/benchmarks.md, App start-up; a request before then waits for it). A lane keeps its
    requests out of the shared queue: the app gives batched text one, so a batch of short text
    requests never waits behind a speech or music generation."""
    _sizes.update({"": WORKERS, **(lanes or {})})
    for lane, size in _sizes.items():
        pool = _pool(lane)
        for _ in range(size):
            pool.submit(_ready, [domain.__name__ for domain in domains])


def running() -> bool:
    return bool(_pools)


def stop() -> None:
    with _lock:
        for pool in _pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        _pools.clear()
        _sizes.clear()


def _pool(lane: str) -> concurrent.futures.ProcessPoolExecutor:
    with _lock:
        if lane not in _pools:
            _pools[lane] = concurrent.futures.ProcessPoolExecutor(
                _sizes.get(lane, 1), mp_context=multiprocessing.get_context("spawn"), initializer=_initialise,
                initargs=(os.getpid(), SHARED_NICE if lane == "" else 0))
        return _pools[lane]


def call(domain, loaded, function: str, *args, lane: str = ""):
    """domain.<function>(loaded, *args): here when workers do not run or nothing else is running (a
    lone request has no lock to share, and shipping its text trace back would be a large part of its
    answer: docs/benchmarks.md, Load and requests),
    else in a worker (in `lane`'s processes when the app started that lane, else the shared ones).
    Either way the same bits; the caller's deadline applies there too; an error raised there is
    raised here."""
    with _lock:
        here = not _pools or (LOCAL_WHEN_IDLE and _busy[0] == 0)  # alone: no lock to share, no trace to ship
        _busy[0] += 1
    try:
        if here:
            return _function(domain, function)(loaded, *args)
        return _call_worker(domain, loaded, function, args, lane)
    finally:
        with _lock:
            _busy[0] -= 1


def _call_worker(domain, loaded, function: str, args: tuple, lane: str):
    lane = lane if lane in _sizes else ""
    payload = None  # the model goes along only to a worker that does not have it yet
    for _ in range(3):
        try:
            kind, value = _pool(lane).submit(_run, domain.__name__, id(loaded), payload, function, args,
                                             limits.stop_time()).result()
        except concurrent.futures.process.BrokenProcessPool:
            with _lock:  # a worker died (killed, out of memory): a fresh pool next time
                _pools.pop(lane, None)
            payload = None
            continue
        if kind == "missing":
            payload = loaded
            continue
        if kind == "error":
            raise _rebuilt(*value)
        return value
    raise RuntimeError("the generation workers stopped; try again")


def generate(domain, loaded, settings):
    """domain.generate(loaded, settings), in a worker when workers run."""
    return call(domain, loaded, "generate", settings)


def generate_files(domain, loaded, settings, folder):
    """(generation, domain.write_files(generation, folder)), both in a worker when workers run:
    a MIDI's audio (fluidsynth, note by note) and a handwriting's pictures are made there too."""
    return call(domain, loaded, "generate_files", settings, folder)


def _generate_files(domain, loaded, settings, folder):
    generation = domain.generate(loaded, settings)
    return generation, domain.write_files(generation, folder)


def _function(domain, name: str) -> Callable:
    """domain.<name>, or this module's helper of that name run on the domain."""
    if name == "generate_files":
        return functools.partial(_generate_files, domain)
    return getattr(domain, name)


# ---------------------------------------------------------------- in the worker
def _initialise(app_pid: int, nice: int = 0) -> None:
    import torch

    if nice:
        os.nice(nice)

    limits.bound_malloc()  # as the app's: freed traces go back to the system
    torch.set_num_threads(1)  # as the app's own threads: one small product per step
    torch.set_grad_enabled(False)
    threading.Thread(target=_exit_with, args=(app_pid,), daemon=True).start()


def _exit_with(app_pid: int) -> None:
    """End this worker when the app is gone (a killed server does not shut its pools down)."""
    while os.getppid() == app_pid:
        time.sleep(1.0)
    os._exit(0)


def _ready(modules: list[str]) -> bool:
    import importlib

    for module in modules:
        importlib.import_module(module)
    return True


def _rebuilt(module: str, name: str, message: str, value_error: bool) -> Exception:
    """A worker's exception raised here as its own class (the tabs catch e.g. speech.AudioError), or
    as ValueError / RuntimeError with its words when that class cannot be made from them."""
    import importlib

    try:
        error = getattr(importlib.import_module(module), name)(message)
        if isinstance(error, Exception):
            return error
    except Exception:  # noqa: BLE001 (a class that takes other arguments)
        pass
    return (ValueError if value_error else RuntimeError)(message)


def _run(module: str, key: int, payload, function: str, args: tuple, stop_at: float | None):
    import importlib

    if payload is not None:
        _models[key] = payload
    if key not in _models:
        return "missing", None
    run = _function(importlib.import_module(module), function)
    try:
        with limits.deadline_until(stop_at):
            return "value", run(_models[key], *args)
    except Exception as error:  # noqa: BLE001 (raised again in the app's thread, by _rebuilt)
        kind = type(error)
        return "error", (kind.__module__, kind.__qualname__, str(error), isinstance(error, ValueError))
    finally:
        limits.trim_malloc()  # the answer goes back pickled; its tensors' pages go back to the system
