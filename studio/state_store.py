"""What sessions keep between requests, in one bounded store.

A tab keeps its last Generation for "ask why", the experiments and the trace download; a 5,000-step
text's is ~100 MB, and Gradio keeps the state of thousands of sessions. So a session's gr.State
holds only a small `Kept` ticket; the value lives here, under a byte cap and a time to live, least
recently used first out:

    LSTM_STUDIO_STATE_MB    megabytes   what all sessions' kept values may take together (default 400)
    LSTM_STUDIO_STATE_TTL   seconds     a value unused this long is dropped (default 3600)

A ticket whose value was dropped answers `EXPIRED` (one sentence) instead of the value. Which gr.State
values go here is decided by `keeps` (a domain's Generation, any object that carries a trace);
studio.ui.common.apply_request_limits swaps them for tickets on the way out of every handler and back
on the way in.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, fields, is_dataclass

import numpy as np
import torch

MAX_BYTES = int(float(os.environ.get("LSTM_STUDIO_STATE_MB", "400")) * 1_000_000)
TTL_SECONDS = float(os.environ.get("LSTM_STUDIO_STATE_TTL", "3600"))
EXPIRED = "That generation has expired; generate again."


class Expired(ValueError):
    """A ticket's value was dropped (by age or to make room); the message is EXPIRED."""


@dataclass(frozen=True)
class Kept:
    """What a session's gr.State holds instead of a large value (a few bytes, safe to keep for ever)."""

    ticket: str


def nbytes(value, depth: int = 0) -> int:
    """About how many bytes `value` holds: its arrays and tensors, strings, containers, dataclasses
    (what a Generation is made of); 64 for anything else."""
    if depth > 6:
        return 64
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, str | bytes):
        return len(value) + 49
    if isinstance(value, dict):
        return 64 + sum(nbytes(k, depth + 1) + nbytes(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return 56 + sum(nbytes(item, depth + 1) for item in value)
    if is_dataclass(value) and not isinstance(value, type):
        return 64 + sum(nbytes(getattr(value, f.name, None), depth + 1) for f in fields(value))
    if hasattr(value, "__dict__"):
        return 64 + sum(nbytes(v, depth + 1) for v in vars(value).values())
    return 64


class Store:
    """{ticket: value} under a byte cap and a time to live, least recently used first out (thread-safe)."""

    def __init__(self, max_bytes: int = MAX_BYTES, ttl: float = TTL_SECONDS, clock=time.monotonic):
        self.max_bytes, self.ttl, self.clock = max_bytes, ttl, clock
        self._items: OrderedDict[str, tuple[object, int, float]] = OrderedDict()  # ticket -> (value, bytes, last use)
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, value) -> Kept:
        size = nbytes(value)
        ticket = uuid.uuid4().hex
        with self._lock:
            self._items[ticket] = (value, size, self.clock())
            self._bytes += size
            self._evict()
        return Kept(ticket)

    def get(self, kept: Kept):
        """The value, marked as just used; Expired when it was dropped."""
        with self._lock:
            self._evict()
            found = self._items.get(kept.ticket)
            if found is None:
                raise Expired(EXPIRED)
            self._items[kept.ticket] = (found[0], found[1], self.clock())
            self._items.move_to_end(kept.ticket)
            return found[0]

    def _evict(self) -> None:
        """Drop what is older than the time to live, then the least recently used until under the cap
        (the newest value stays even when it alone is over the cap: its session is using it)."""
        now = self.clock()
        while self._items:
            ticket, (_, size, used) = next(iter(self._items.items()))
            if now - used <= self.ttl and (self._bytes <= self.max_bytes or len(self._items) == 1):
                break
            del self._items[ticket]
            self._bytes -= size

    def stats(self) -> dict:
        with self._lock:
            return {"values": len(self._items), "bytes": self._bytes, "max_bytes": self.max_bytes, "ttl_s": self.ttl}


STORE = Store()


def keeps(value) -> bool:
    """Whether a gr.State value goes to the store: anything that carries a trace (a Generation)."""
    return value is not None and not isinstance(value, str | int | float | bool | dict | list | tuple | Kept) \
        and hasattr(value, "trace")


def ticket_for(value):
    return STORE.put(value) if keeps(value) else value


def value_of(value):
    """A ticket's value (Expired when dropped); anything else as it is."""
    return STORE.get(value) if isinstance(value, Kept) else value
