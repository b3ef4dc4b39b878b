"""Concurrent requests as one batch (studio.batching, text.generate_batch) and generation in worker
processes (studio.workers): each request gets exactly what it gets alone."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from studio import limits, workers
from studio.batching import MicroBatcher
from studio.domains import text
from studio.domains.speech.codec import AudioError
from studio.domains.text.generate import TextSettings
from studio.lstm import packed_linear
from studio.sampling import SamplingConfig


def same_generation(a, b) -> None:
    assert a.result.text == b.result.text and a.result.notes == b.result.notes and a.result.prompt == b.result.prompt
    assert a.trace.labels == b.trace.labels and a.trace.shown_from == b.trace.shown_from
    for layer_a, layer_b in zip(a.trace.layers, b.trace.layers, strict=True):
        for name in layer_a:
            assert np.array_equal(layer_a[name], layer_b[name]), name
    assert np.array_equal(a.distributions["logits"], b.distributions["logits"])


REQUESTS = [TextSettings(prompt="The ", length=40, seed=1),
            TextSettings(prompt="", length=7, sampling=SamplingConfig(temperature=1.2, top_k=5), seed=2),
            TextSettings(prompt="Ab?", length=25, sampling=SamplingConfig(temperature=0)),
            TextSettings(prompt="x" * 30, length=1, sampling=SamplingConfig(top_p=0.5), seed=4)]


def test_a_product_gives_a_row_the_same_bits_in_any_batch():
    torch.manual_seed(0)
    weight, bias, rows = torch.randn(40, 96), torch.randn(96), torch.randn(9, 40)
    product = packed_linear(weight, bias)
    if product is None:
        pytest.skip("this torch has no oneDNN linear")
    alone = torch.cat([product(rows[k : k + 1]) for k in range(9)])
    for size in (2, 3, 4, 9):
        order = torch.randperm(9)[:size]
        assert torch.equal(product(rows[order]), alone[order])
    assert torch.allclose(alone, rows @ weight + bias, atol=1e-4)


def test_a_batch_gives_each_request_what_it_gets_alone(tiny_text):
    loaded = tiny_text(0)
    alone = [text.generate(loaded, settings) for settings in REQUESTS]
    together = text.generate_batch(loaded, REQUESTS)
    for a, b in zip(alone, together, strict=True):
        same_generation(a, b)
    assert [len(g.result.text) for g in together] == [40, 7, 25, 1]
    assert together[1].trace.shown_from == 1 and together[1].result.prompt == ""


def test_a_bad_request_fails_alone_and_a_deadline_is_each_rows_own(tiny_text):
    loaded = tiny_text(0)
    past, future = time.monotonic() - 1, time.monotonic() + 60
    results = text.generate_batch(loaded, [REQUESTS[0], None, REQUESTS[2]], [past, None, future])
    assert isinstance(results[1], Exception)
    assert len(results[0].result.text) == 1 and "Stopped early" in results[0].result.notes[-1]
    same_generation(results[2], text.generate(loaded, REQUESTS[2]))


def test_concurrent_callers_share_batches_and_get_their_own_answers():
    def run(items):
        time.sleep(0.05)  # long enough for the other callers to queue behind the first batch
        return [ValueError(f"bad {item}") if item == 3 else item * 10 for item in items]

    batcher = MicroBatcher(run, max_batch=4)
    answers, errors = {}, {}

    def call(item):
        try:
            answers[item] = batcher(item)
        except ValueError as error:
            errors[item] = str(error)

    threads = [threading.Thread(target=call, args=(item,)) for item in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {item: item * 10 for item in range(9) if item != 3} and errors == {3: "bad 3"}
    assert sum(batcher.batch_sizes) == 9 and max(batcher.batch_sizes) > 1 and max(batcher.batch_sizes) <= 4

    def broken(items):
        raise RuntimeError("model gone")

    with pytest.raises(RuntimeError, match="model gone"):
        MicroBatcher(broken)(1)


@pytest.fixture
def worker_pool(monkeypatch):
    monkeypatch.setattr(workers, "WORKERS", 1)
    monkeypatch.setattr(workers, "LOCAL_WHEN_IDLE", False)  # every call goes to the worker
    workers.start([text])
    yield
    workers.stop()


def test_a_workers_error_is_raised_here_as_its_own_class_or_in_words():

    assert type(workers._rebuilt(AudioError.__module__, AudioError.__qualname__, "too short", True)) is AudioError
    odd = workers._rebuilt("no.such.module", "Odd", "it broke", True)
    assert type(odd) is ValueError and str(odd) == "it broke"


def test_a_lone_call_runs_here_and_concurrent_ones_in_the_workers(monkeypatch, tiny_text):
    """With workers started, a call while another runs goes to a worker; alone it runs here."""
    places = []
    monkeypatch.setattr(workers, "_pools", {"": object()})  # workers "running" (never reached here)
    monkeypatch.setattr(workers, "_call_worker", lambda *args: places.append("worker") or "from a worker")
    loaded = tiny_text(0)
    assert isinstance(workers.generate(text, loaded, REQUESTS[3]), type(text.generate(loaded, REQUESTS[3])))
    monkeypatch.setattr(workers, "_busy", [1])  # another request is running
    assert workers.generate(text, loaded, REQUESTS[3]) == "from a worker" and places == ["worker"]


def test_a_worker_process_generates_what_this_process_does(worker_pool, tiny_text, tmp_path):
    loaded = tiny_text(1)
    assert workers.running()
    same_generation(workers.generate(text, loaded, REQUESTS[0]), text.generate(loaded, REQUESTS[0]))
    batch = workers.call(text, loaded, "generate_batch", REQUESTS[:2], [None, None])
    same_generation(batch[1], text.generate(loaded, REQUESTS[1]))
    with limits.deadline_until(time.monotonic() - 1):  # the caller's deadline reaches the worker
        late = workers.generate(text, loaded, REQUESTS[0])
    assert len(late.result.text) == 1 and "Stopped early" in late.result.notes[-1]
    generation, files = workers.generate_files(text, loaded, REQUESTS[2], tmp_path)  # the files written there
    assert files["text"].read_text(encoding="utf-8").endswith(generation.result.text)
    with pytest.raises(AttributeError, match="NoneType. object has no attribute"):  # the domain's own exception, raised here
        workers.generate(text, loaded, None)


def test_the_shared_workers_yield_the_cores_to_the_text_lane(monkeypatch):
    """Under load a lane's short batched requests go first: the shared processes run SHARED_NICE nicer."""
    import os

    monkeypatch.setattr(workers, "WORKERS", 1)
    workers.start([text], lanes={"text": 1})
    try:
        ours = os.nice(0)
        assert workers._pool("").submit(os.nice, 0).result() == ours + workers.SHARED_NICE
        assert workers._pool("text").submit(os.nice, 0).result() == ours
    finally:
        workers.stop()
