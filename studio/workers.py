"""Generation in worker processes: the app's threads share one interpreter lock.

Sampling steps an LSTM one position at a time, a dozen small torch calls per step, and each call
hands the interpreter lock back and waits for it again. Under load, with generation in the
server's threads, the lock and not the cores is the limit: the server leaves most of its cores idle
while requests wait (docs/benchmarks.md, Load and requests). A domain's `generate` therefore runs in one of WORKERS processes (started with the app,
`spawn`ed: no fork of a threaded server; any of them runs any domain); the server's threads only
wait on it, and do the drawing and the files. The Generation comes back serialised (size and time
in docs/benchmarks.md, Load and requests). `call_all` runs the independent pieces of one request
(a backtest's folds) in several workers at once.

Models reach a worker once, with the first request it gets for them (a model trained in the Train
tab too), and stay there while they are among its WORKER_MODELS most recently used (a model is known
by a key of its own, `model_key`, never by id(): an id is reused once a user model is let go). Everything crosses by multiprocessing's own serialisation of the app's
in-memory objects, never a file: checkpoints are only ever read as safetensors + JSON, by the app.
A request's deadline goes with it (time.monotonic is one clock for every process).

Faults: a worker that dies (killed, out of memory) fails the requests it and its pool were running,
each with one sentence (WORKER_DIED); its pool is replaced at once and its processes started, so the
next request finds a full pool. A worker whose memory passes WORKER_MAX_MB after a request clears its
models; still over, its pool is replaced once its requests are answered (the old one ends when idle).

    LSTM_STUDIO_WORKERS          processes in the shared pool (default: usable cores, at least 2)
    LSTM_STUDIO_WORKER_MAX_MB    a worker's memory cap (default 2000)
    LSTM_STUDIO_WORKER_MODELS    models a worker keeps (default 12)

Off unless `start()` is called (app.py does on a CPU; tests and the CLI generate in-process).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import multiprocessing
import os
import threading
import time
import uuid
from collections import OrderedDict
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
WORKER_MAX_MB = float(os.environ.get("LSTM_STUDIO_WORKER_MAX_MB", "2000"))
WORKER_MODELS = int(float(os.environ.get("LSTM_STUDIO_WORKER_MODELS", "12")))
WORKER_DIED = "The generation worker stopped during this request (it was killed or ran out of memory); try again."
_models: OrderedDict[str, object] = OrderedDict()  # in a worker: the models it was sent, by model_key, most recent last
_modules: list[str] = []  # the domain modules a fresh worker imports
_replaced = [0]  # pools replaced (a dead worker or one over its memory cap), for the tests and the log


def model_key(loaded) -> str:
    """A key of this model object for the workers' caches, made once and kept on it."""
    key = getattr(loaded, "_worker_key", None)
    if key is None:
        key = uuid.uuid4().hex
        object.__setattr__(loaded, "_worker_key", key)
    return key


def start(domains, lanes: dict[str, int] | None = None) -> None:
    """Start WORKERS shared processes and, per named lane, its own (each imports torch and the
    domains in the background, docs/benchmarks.md, App start-up; a request before then waits for it). A lane keeps its
    requests out of the shared queue: the app gives batched text one, so a batch of short text
    requests never waits behind a speech or music generation."""
    _sizes.update({"": WORKERS, **(lanes or {})})
    _modules[:] = [domain.__name__ for domain in domains]
    for lane in _sizes:
        _fill(_pool(lane), lane)


def _fill(pool, lane: str) -> None:
    """Start every process of a lane's pool now (a pool starts one per submitted task)."""
    for _ in range(_sizes.get(lane, 1)):
        pool.submit(_ready, _modules)


def pool_ready(lane: str = "") -> bool:
    """Whether a lane's pool has all its processes alive and ready (each has imported the domains)."""
    pool = _pools.get(lane)
    processes = dict(getattr(pool, "_processes", None) or {})
    return (pool is not None and len(processes) == _sizes.get(lane, 1) and all(p.is_alive() for p in processes.values())
            and pool._pending_work_items == {})


def pids(lane: str = "") -> list[int]:
    """The process ids of a lane's workers (a test kills one)."""
    pool = _pools.get(lane)
    return list(getattr(pool, "_processes", None) or {}) if pool is not None else []


def _replace(lane: str, old) -> None:
    """A fresh, filled pool for `lane` in place of `old` (unless another thread replaced it already);
    the old one finishes what it runs and ends."""
    with _lock:
        if _pools.get(lane) is not old:
            return
        del _pools[lane]
        _replaced[0] += 1
    _fill(_pool(lane), lane)
    old.shutdown(wait=False)


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


def call_all(module, loaded, function: str, calls: list[tuple]) -> list:
    """[module.<function>(loaded, *args) for args in calls], each in a shared worker, all at once,
    while this thread waits on them; without workers, one after the other here. For independent
    pieces of one request that each take seconds of CPU (a backtest's folds): with the interpreter
    lock held that long in the app, the server's other requests would get half of it."""
    if not _pools:
        return [call(module, loaded, function, *args) for args in calls]
    with _lock:
        _busy[0] += len(calls)
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, len(calls))) as threads:
            # each in a copy of this context: the request's deadline (limits.stop_time) goes along
            futures = [threads.submit(contextvars.copy_context().run, _call_worker, module, loaded, function, args, "")
                       for args in calls]
            return [future.result() for future in futures]
    finally:
        with _lock:
            _busy[0] -= len(calls)


def _call_worker(domain, loaded, function: str, args: tuple, lane: str):
    lane = lane if lane in _sizes else ""
    payload = None  # the model goes along only to a worker that does not have it yet
    for _ in range(3):
        pool = _pool(lane)
        try:
            kind, value, over_cap = pool.submit(_run, domain.__name__, model_key(loaded), payload, function, args,
                                                limits.stop_time()).result()
        except concurrent.futures.process.BrokenProcessPool:
            _replace(lane, pool)  # a worker died (killed, out of memory): a full pool for the next request
            raise RuntimeError(WORKER_DIED) from None
        if over_cap:
            _replace(lane, pool)
        if kind == "missing":
            payload = loaded
            continue
        if kind == "error":
            raise _rebuilt(*value)
        return value
    raise RuntimeError(WORKER_DIED)


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


def _rss_mb() -> float:
    try:
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def _run(module: str, key: str, payload, function: str, args: tuple, stop_at: float | None):
    """(kind, value, over its memory cap) for one call: kind "value", "error" or "missing" (send the model)."""
    import importlib

    if payload is not None:
        _models[key] = payload
        while len(_models) > WORKER_MODELS:
            _models.popitem(last=False)
    if key not in _models:
        return "missing", None, False
    _models.move_to_end(key)
    run = _function(importlib.import_module(module), function)
    try:
        with limits.deadline_until(stop_at):
            return "value", run(_models[key], *args), _over_cap()
    except Exception as error:  # noqa: BLE001 (raised again in the app's thread, by _rebuilt)
        kind = type(error)
        return "error", (kind.__module__, kind.__qualname__, str(error), isinstance(error, ValueError)), _over_cap()
    finally:
        limits.trim_malloc()  # the answer goes back pickled; its tensors' pages go back to the system


def _over_cap() -> bool:
    """Whether this worker is over WORKER_MAX_MB even after letting its models go (its pool is then replaced)."""
    limits.trim_malloc()
    if _rss_mb() <= WORKER_MAX_MB:
        return False
    _models.clear()
    limits.trim_malloc()
    return _rss_mb() > WORKER_MAX_MB
