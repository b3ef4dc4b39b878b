"""Concurrent requests merged into one batched call: a MicroBatcher.

A tab's generation handler runs in one of the server's worker threads per request. Sampled one at
a time, eight concurrent text requests step the LSTM 8 x 400 times, each step a dozen small torch
calls that every other thread waits on for the interpreter lock; batched, they step it 400 times
at 8 rows, for little more than the time of one row (docs/benchmarks.md, Load and requests). Each caller still gets exactly its own result
(studio.lstm.packed_linear: a row's bits do not depend on the batch).

How: a caller queues its item and waits. If no batch is running, it becomes the leader: it takes
every waiting item (up to `max_batch`), runs them as one call, hands each caller its result and
steps down; items queued meanwhile go in the next batch, led by one of their callers. No thread
of its own and no timer: with one request at a time it is a plain call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

# requests merged into one batch at most (a tab's batched queue runs this many at once)
MAX_BATCH = int(float(os.environ.get("LSTM_STUDIO_BATCH", "8")))


@dataclass
class _Job:
    item: object
    done: bool = False
    result: object = None
    error: BaseException | None = None


class MicroBatcher:
    """batcher(item) -> run([item, ...])[its index], with concurrent callers' items run together.

    `run` takes a list of items and returns a list of the same length, in order; an entry that is
    an exception is raised in its own caller only (one bad request does not fail the others). An
    exception raised by `run` itself reaches every caller of that batch."""

    def __init__(self, run: Callable[[list], list], max_batch: int = MAX_BATCH):
        self.run, self.max_batch = run, max(1, int(max_batch))
        self._changed = threading.Condition()
        self._waiting: list[_Job] = []
        self._leading = False
        self.batch_sizes: list[int] = []  # every batch run, for tests and benchmarks

    def __call__(self, item):
        job = _Job(item)
        with self._changed:
            self._waiting.append(job)
            while not job.done and self._leading:
                self._changed.wait()
            if job.done:
                return self._answer(job)
            self._leading = True  # this caller leads the next batch: its own job and the longest waiting
            others = [queued for queued in self._waiting if queued is not job][: self.max_batch - 1]
            batch = [job, *others]
            taken = {id(queued) for queued in batch}
            self._waiting = [queued for queued in self._waiting if id(queued) not in taken]
        try:
            results = self.run([queued.item for queued in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
            for queued, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    queued.error = result
                else:
                    queued.result = result
        except BaseException as error:  # noqa: BLE001 (every caller of the batch hears of it)
            for queued in batch:
                queued.error = error
        finally:
            with self._changed:
                for queued in batch:
                    queued.done = True
                self.batch_sizes.append(len(batch))
                self._leading = False
                self._changed.notify_all()
        return self._answer(job)

    @staticmethod
    def _answer(job: _Job):
        if job.error is not None:
            raise job.error
        return job.result
