"""Where the long work runs: on a ZeroGPU Space, in calls that borrow a GPU; anywhere else, right here.

A free Hugging Face Space runs on ZeroGPU hardware. The app's own process has no GPU and must never
initialise CUDA; a function decorated with `@spaces.GPU(duration=S)` borrows one for a call of at most S
seconds. The call runs in a worker process forked from the app, where CUDA exists; its arguments and its
answer cross over by pickle; each visitor has a daily quota of GPU seconds, and a call the quota cannot
cover is refused before it starts with a gradio Error that says so ("ZeroGPU quota exceeded", "You have
exceeded your GPU quota (60s requested vs. 30s left)"). The Space sets SPACES_ZERO_GPU=true and has the
`spaces` package installed; neither is needed anywhere else, and without them every function here is a
plain call on this machine.

    gpu.long_call(fn, *args, seconds=60, **kwargs)   # an analysis: fn(*args, **kwargs) in a lent call
    gpu_slices.train_in_slices(argv, progress, log, stop)   # a training job: lent calls (studio.gpu_slices)

`long_call` sends the models it is given (a LoadedModel, or an nn.Module) to the lent GPU inside the call
and brings tensors in the answer back to the CPU; when the call is refused (quota spent, no GPU free) or
its arguments cannot be pickled, it runs on the CPU instead. A training job runs as a series of lent
calls, each training in that process for at most SLICE_SECONDS and leaving the resume state for the next
(studio.train keeps the schedule's clock in it, so the slices make one run; the progress file grows);
when a call is refused the caller runs the rest on the CPU with --resume. Sampling for a click never
comes here: it is short, and borrowing a GPU costs more than it saves.
"""

from __future__ import annotations

import contextvars
import importlib
import io
import logging
import os
import pickle
import types

import torch

try:  # preinstalled on Spaces, never a requirement: without it nothing here borrows anything
    import spaces
except ImportError:
    spaces = None

DURATIONS = (60, 120)  # the lent calls' lengths in seconds: ZeroGPU serves short calls first, and caps a call's
# length by the visitor's tier (a few minutes at most); the quota check asks for the whole length up front
# a training slice's training time: its 120 s call also loads the data and the model and may validate once
SLICE_SECONDS = float(os.environ.get("LSTM_STUDIO_GPU_SLICE_S", "100"))
SLICE_SETUP_SECONDS = 20  # what a slice's call needs beyond its training time (data, model, the first CUDA use)
REFUSALS = ("quota", "zerogpu", "no gpu was available", "gpu task aborted")  # what a refused call's error says
log = logging.getLogger(__name__)

_lent = contextvars.ContextVar("lent_gpu", default=False)  # True inside a lent call (the forked worker's task)


def available() -> bool:
    """On a ZeroGPU Space: long work goes through lent GPU calls."""
    return spaces is not None and os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def cuda_usable() -> bool:
    """May this code use CUDA here? On ZeroGPU only inside a lent call: the app's process sees a stand-in
    CUDA (torch.cuda.is_available() says True there) whose tensors it cannot compute with."""
    return torch.cuda.is_available() and (not available() or _lent.get())


def refused(error: BaseException) -> bool:
    """A lent call that did not run: the quota is spent, no GPU came, or the worker died."""
    words = f"{getattr(error, 'title', '') or ''} {error}".lower()
    return any(word in words for word in REFUSALS)


# ---------------------------------------------------------------- the lent calls
class _Pickler(pickle.Pickler):
    """Pickles a module (a domain package passed as an argument) as its name, imported again on arrival."""

    def reducer_override(self, obj):
        if isinstance(obj, types.ModuleType):
            return importlib.import_module, (obj.__name__,)
        return NotImplemented


def _dumps(fn, args, kwargs) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump((fn, args, kwargs))
    return buffer.getvalue()


def _to_device(values, device) -> None:
    """The models among the arguments (and in dicts of them) onto `device`: they are this call's own copies."""
    for value in values:
        inner = list(value.values()) if isinstance(value, dict) else [value]
        for item in inner:
            module = item if isinstance(item, torch.nn.Module) else getattr(item, "model", None)
            if isinstance(module, torch.nn.Module):
                module.to(device)


def _to_cpu(value):
    """Tensors in an answer (also inside lists, tuples and dicts) on the CPU: the app's process has no GPU."""
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return type(value)(_to_cpu(item) for item in value)
    return value


def _make_lent(seconds: int):
    """A function that runs a pickled call with the GPU lent for `seconds`, decorated when `spaces` is here
    (ZeroGPU wants its decorated functions made before the app launches: they are made at import)."""

    def run(blob: bytes):
        token = _lent.set(True)
        try:
            fn, args, kwargs = pickle.loads(blob)  # our own call, pickled by lend() in the app's process
            if cuda_usable():
                _to_device([*args, *kwargs.values()], "cuda")
            return _to_cpu(fn(*args, **kwargs))
        finally:
            _lent.reset(token)

    run.__name__ = run.__qualname__ = f"lent_gpu_{seconds}s"
    return spaces.GPU(duration=seconds)(run) if spaces is not None else run


LENT = {seconds: _make_lent(seconds) for seconds in DURATIONS}


def lend(fn, *args, seconds: float = 60, **kwargs):
    """fn(*args, **kwargs) in a lent GPU call of the shortest length that covers `seconds`; the errors of a
    refused call (see `refused`) and of arguments that cannot be pickled reach the caller."""
    return _lent_for(seconds)(_dumps(fn, args, kwargs))


def _lent_for(seconds: float):
    return LENT[next((d for d in DURATIONS if d >= seconds), DURATIONS[-1])]


def long_call(fn, *args, seconds: float = 60, **kwargs):
    """fn(*args, **kwargs): in a lent GPU call on ZeroGPU, else (and when that call is refused, or the
    arguments cannot cross to it) a plain call here. fn's own errors reach the caller as they are."""
    if not available():
        return fn(*args, **kwargs)
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        blob = _dumps(fn, args, kwargs)
    except Exception as error:  # a closure, a lock, a generator...: it stays here
        log.warning("%s runs on the CPU: its arguments cannot go to a GPU call (%s)", name, error)
        return fn(*args, **kwargs)
    try:
        return _lent_for(seconds)(blob)
    except Exception as error:
        if not refused(error):
            raise
        log.warning("%s runs on the CPU: the GPU call was refused (%s)", name, error)
    return fn(*args, **kwargs)
