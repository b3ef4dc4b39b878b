"""studio.workers.call_all: the pieces of one request run at once in worker processes, in order,
with the same answers as one after the other here; the time-series backtest's folds so (its
AutoARIMA searches take seconds each)."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from studio import workers
from studio.domains import timeseries
from studio.domains.timeseries import evaluate
from studio.domains.timeseries.data import example_series


def where(loaded, name: str, seconds: float) -> tuple:  # runs here or in a worker
    started = time.time()
    time.sleep(seconds)
    return name, os.getpid(), started, time.time()


def refuse(loaded, text: str) -> str:
    if text != "fine":
        raise ValueError(text)
    return text


class Holder:
    """Something a worker can be sent as a model."""


@pytest.fixture(scope="module")
def pool():
    this = sys.modules[__name__]
    saved = workers.WORKERS
    workers.WORKERS = 2
    workers.start([this, evaluate])
    try:
        deadline = time.monotonic() + 120
        while not workers.pool_ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers.pool_ready()
        yield this
    finally:
        workers.stop()
        workers.WORKERS = saved


def test_call_all_runs_the_pieces_at_once_in_order(pool):
    found = workers.call_all(pool, Holder(), "where", [("a", 1.5), ("b", 1.5)])
    assert [name for name, *_ in found] == ["a", "b"]
    pids = [pid for _, pid, _, _ in found]
    assert os.getpid() not in pids and len(set(pids)) == 2  # in the two workers, not the app
    latest_start, earliest_end = max(f[2] for f in found), min(f[3] for f in found)
    assert latest_start < earliest_end  # both were running at one moment
    assert workers._busy[0] == 0


def test_call_all_raises_a_pieces_error_here(pool):
    with pytest.raises(ValueError, match="no such column"):
        workers.call_all(pool, Holder(), "refuse", [("fine",), ("no such column",)])
    assert workers._busy[0] == 0


def test_the_backtest_in_workers_equals_the_one_here(pool, tmp_path):
    model, codec = timeseries.tiny(seed=0)
    timeseries.save(tmp_path / "tiny", model, codec, {"name": "tiny"})
    loaded = timeseries.load(tmp_path / "tiny")
    series = example_series(72)
    here = evaluate.backtest(loaded, series, 12, folds=3, paths=20)
    ran = []

    def run_folds(calls):
        ran.append(len(calls))
        return workers.call_all(evaluate, loaded, "backtest_fold", calls)

    spread = evaluate.backtest(loaded, series, 12, folds=3, paths=20, run_folds=run_folds)
    assert ran == [3] and spread.origins == here.origins == [36, 48, 60]
    assert spread.rows == here.rows
    for method in here.forecasts:
        for ours, theirs in zip(here.forecasts[method], spread.forecasts[method], strict=True):
            for level in ours:
                np.testing.assert_array_equal(ours[level], theirs[level])
