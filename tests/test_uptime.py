"""Issue 30: a server that stays up. The session store evicts by bytes and by age and an evicted session
gets one sentence; on a shared server a model trained in one browser is absent from another's menus
and refused through the API; a worker killed during a request fails that request in words and the
pool is full again within 10 s; malformed API calls get one sentence naming the input."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from studio import owners, state_store, workers

KEY_A = "a" * 24  # two browsers' owner keys
KEY_B = "b" * 24


class Holder:
    """Something a worker can be sent as a model (workers keep it by model_key)."""


def hold(loaded, seconds: float) -> float:  # runs in a worker: keeps it busy until killed
    time.sleep(seconds)
    return seconds


class Carrier:
    """A Generation-like value: it carries a trace, so it goes to the state store."""

    def __init__(self, size: int):
        self.trace = np.zeros(size, dtype=np.uint8)


# ---------------------------------------------------------------- the state store
def test_the_store_evicts_least_recently_used_by_bytes():
    store = state_store.Store(max_bytes=2_500, ttl=3600)
    first, second = store.put(Carrier(1_000)), store.put(Carrier(1_000))
    store.get(first)  # first is now the most recently used
    third = store.put(Carrier(1_000))
    assert store.get(first) is not None and store.get(third) is not None
    with pytest.raises(state_store.Expired, match="expired; generate again"):
        store.get(second)
    assert store.stats()["bytes"] <= 2_500


def test_the_store_evicts_by_age():
    now = [0.0]
    store = state_store.Store(max_bytes=10**9, ttl=60, clock=lambda: now[0])
    kept = store.put(Carrier(10))
    now[0] = 59
    assert store.get(kept) is not None  # a use renews it
    now[0] = 59 + 61
    with pytest.raises(state_store.Expired):
        store.get(kept)
    assert store.stats()["values"] == 0


def test_an_evicted_session_gets_the_sentence(monkeypatch):
    import gradio as gr

    from studio.ui.common import apply_request_limits

    monkeypatch.setattr(state_store, "STORE", state_store.Store(max_bytes=10**9, ttl=3600))
    with gr.Blocks() as demo:
        state, shown = gr.State(), gr.Markdown()
        make, use = gr.Button(), gr.Button()
        make.click(lambda: ("made", Carrier(100)), None, [shown, state])
        use.click(lambda carrier: f"{carrier.trace.size} steps", state, shown)
    apply_request_limits(demo)
    make_fn, use_fn = (block_fn.fn for block_fn in demo.fns.values())
    _, ticket = make_fn()
    assert isinstance(ticket, state_store.Kept)  # the session keeps a ticket, the store the value
    assert use_fn(ticket) == "100 steps"
    state_store.STORE.ttl = -1  # everything is now too old
    with pytest.raises(gr.Error) as raised:
        use_fn(ticket)
    assert raised.value.message == state_store.EXPIRED == "That generation has expired; generate again."


# ---------------------------------------------------------------- a shared server
@pytest.fixture(scope="module")
def shared_app(tmp_path_factory, serve):
    """The real app on a shared server, with an empty user models folder."""
    import app

    before = os.environ.get(owners.SHARED_ENV)
    os.environ[owners.SHARED_ENV] = "1"
    try:
        users = tmp_path_factory.mktemp("user-models")
        demo = app.build_demo(user_models_dir=users)
        url = serve(demo)
        yield demo, url, users
    finally:
        if before is None:
            os.environ.pop(owners.SHARED_ENV, None)
        else:
            os.environ[owners.SHARED_ENV] = before


def menus(demo, key) -> dict:
    """{dropdown label or id: choices} as a page load gives this browser (train_tab.refresh_on_load)."""
    block_fn = next(f for f in demo.fns.values() if f.name == "lists")
    updates = block_fn.fn(key)
    updates = updates if isinstance(updates, tuple) else (updates,)
    return {getattr(out, "elem_id", None) or str(k): [c[1] if isinstance(c, tuple | list) else c for c in u["choices"]]
            for k, (out, u) in enumerate(zip(block_fn.outputs, updates, strict=True))}


def text_menu(demo, key) -> list[str]:
    return next(choices for name, choices in menus(demo, key).items() if "text" in name)


def test_a_model_made_in_one_browser_is_absent_from_another(shared_app, saved_text_model):
    from gradio_client import Client

    demo, url, users = shared_app
    own = users / owners.owner_of(KEY_A)  # as if browser A had trained or imported it
    own.mkdir(parents=True, exist_ok=True)
    for path in saved_text_model.parent.glob(f"{saved_text_model.name}.*"):
        shutil.copy(path, own / f"mine{path.suffix}")
    assert "mine" in text_menu(demo, KEY_A)
    assert "mine" not in text_menu(demo, KEY_B)
    assert "mine" not in text_menu(demo, None)  # a page load with no key yet
    client = Client(url, verbose=False)
    answer = client.predict("mine", "the", 5, 0.8, 0, 1.0, 1, 0, KEY_A, api_name="/generate_text")
    assert answer[0] is not None
    for key in (KEY_B, None):
        with pytest.raises(Exception, match="Unknown model 'mine'"):
            client.predict("mine", "the", 5, 0.8, 0, 1.0, 1, 0, key, api_name="/generate_text")
    with pytest.raises(Exception, match="Unknown text model 'mine'"):
        client.predict("text", "mine", "the", None, 2, 0, 1, "", "gradient_x_input", KEY_B, api_name="/explain")


def test_a_model_trained_in_one_browser_stays_there(shared_app, monkeypatch):
    from gradio_client import Client

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    demo, url, users = shared_app
    client = Client(url, verbose=False)
    text = "the cat sat on the mat. " * 200
    status = client.predict("start", "", "text", text, None, "trained", "tiny", 0.05, "", KEY_A, api_name="/train")
    deadline = time.monotonic() + 300
    while status["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(2)
        status = client.predict("progress", status["job"], "text", "", None, "", "tiny", 0.1, "", KEY_A, api_name="/train")
    assert status["status"] == "done", status
    assert (users / owners.owner_of(KEY_A) / "trained.json").exists()  # in its owner's folder
    assert "trained" in text_menu(demo, KEY_A)
    assert "trained" not in text_menu(demo, KEY_B)
    with pytest.raises(Exception, match="Unknown model 'trained'"):
        client.predict("trained", "the", 5, 0.8, 0, 1.0, 1, 0, KEY_B, api_name="/generate_text")
    with pytest.raises(Exception, match="send your browser's owner key"):  # no key: no training of one's own
        client.predict("start", "", "text", text, None, "x", "tiny", 0.05, "", None, api_name="/train")


def test_user_models_are_a_bounded_cache(tmp_path, saved_text_model):
    from studio.domains import text
    from studio.user_models import ModelTable, UserModels, current_owner

    users = UserModels(tmp_path, shared=True, loaded_max=2, device="cpu")
    owner = owners.LOCAL + "-test"
    (tmp_path / owner).mkdir()
    for k in range(4):
        for path in saved_text_model.parent.glob(f"{saved_text_model.name}.*"):
            shutil.copy(path, tmp_path / owner / f"m{k}{path.suffix}")
    table = ModelTable(text, {}, users)
    token = current_owner.set(owner)
    try:
        assert sorted(table) == ["m0", "m1", "m2", "m3"]
        for name in table:
            assert table[name] is not None
        assert users.loaded_count() == 2
    finally:
        current_owner.reset(token)
    assert list(table) == []  # another owner sees none of them


# ---------------------------------------------------------------- a worker killed
def test_a_killed_worker_fails_its_request_in_words_and_the_pool_recovers(monkeypatch):
    this = sys.modules[__name__]
    monkeypatch.setattr(workers, "WORKERS", 2)
    monkeypatch.setattr(workers, "LOCAL_WHEN_IDLE", False)
    workers.start([this])
    try:
        deadline = time.monotonic() + 120
        while not workers.pool_ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers.pool_ready()
        model, answers = Holder(), {}

        def ask():
            try:
                answers["value"] = workers.call(this, model, "hold", 30.0)
            except Exception as error:  # noqa: BLE001 (what the request answers)
                answers["error"] = str(error)

        asking = threading.Thread(target=ask)
        asking.start()
        time.sleep(1.5)  # the request is running in a worker
        before = workers.pids()
        os.kill(before[0], 9)
        killed = time.monotonic()
        asking.join(timeout=20)
        assert answers == {"error": workers.WORKER_DIED}
        while not workers.pool_ready() and time.monotonic() - killed < 10:
            time.sleep(0.1)
        assert workers.pool_ready(), "the pool is not full again within 10 s"
        assert time.monotonic() - killed < 10
        assert before[0] not in workers.pids()
        assert workers.call(this, model, "hold", 0.01) == 0.01  # the next request succeeds
    finally:
        workers.stop()


# ---------------------------------------------------------------- malformed calls
def raw_call(url: str, endpoint: str, data: list) -> str:
    """The error message of a call made without gradio_client (as a script might), or "answered"."""
    started = httpx.post(f"{url}gradio_api/call/{endpoint}", json={"data": data}, timeout=60)
    assert started.status_code == 200, started.text
    stream = httpx.get(f"{url}gradio_api/call/{endpoint}/{started.json()['event_id']}", timeout=120).text
    if "event: error" not in stream:
        return "answered"
    import json

    line = next(line for line in stream.splitlines() if line.startswith("data:") and "error" in line)
    return json.loads(line[len("data:"):])["error"]


MUSIC = ["jsb-chorales-quarter", "Continue an uploaded file", None, "bach/bwv2.6", 1, 1, 1.0, 0, 1, 100.0]
GHOST = {"path": "/tmp/never-uploaded.mid", "meta": {"_type": "gradio.FileData"}}


@pytest.mark.parametrize(("endpoint", "data", "expected"), [
    ("generate_music", MUSIC[:2] + [GHOST] + MUSIC[3:], "The input `upload_path` (input 3) names a file that was never uploaded"),
    ("generate_music", MUSIC[:2] + [7] + MUSIC[3:], "The input `upload_path` (input 3) takes a file uploaded to this server"),
    ("explain", ["text", "", "To be", GHOST, 2, 0, 1, "", "gradient_x_input"], "The input `file` (input 4) names a file"),
    ("generate_music", MUSIC[:1], "This endpoint takes 11 inputs and the call gave 1: `source_value` (input 2) is missing."),
    ("generate_text", ["shakespeare-char", "To be"], "the call gave 2: `length_value` (input 3) is missing."),
])
def test_malformed_calls_get_one_sentence(shared_app, capfd, endpoint, data, expected):
    _, url, _ = shared_app
    message = raw_call(url, endpoint, data)
    assert expected in message
    assert message.count(". ") <= 1 and "Traceback" not in message
    assert "Traceback" not in capfd.readouterr().err


def test_a_call_without_the_owner_key_still_answers(shared_app):
    _, url, _ = shared_app
    assert raw_call(url, "generate_text", ["shakespeare-char", "To be", 3, 0.8, 0, 1.0, 1, 0]) == "answered"


def test_a_worker_over_its_memory_cap_is_replaced(monkeypatch):
    this = sys.modules[__name__]
    monkeypatch.setenv("LSTM_STUDIO_WORKER_MAX_MB", "1")  # read by each spawned worker: every one is over it
    monkeypatch.setattr(workers, "WORKERS", 1)
    monkeypatch.setattr(workers, "LOCAL_WHEN_IDLE", False)
    workers.start([this])
    try:
        deadline = time.monotonic() + 120
        while not workers.pool_ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        before, replaced = workers.pids(), workers._replaced[0]
        assert workers.call(this, Holder(), "hold", 0.01) == 0.01  # answered, then its pool is replaced
        assert workers._replaced[0] == replaced + 1
        deadline = time.monotonic() + 10
        while not workers.pool_ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert workers.pool_ready() and not set(before) & set(workers.pids())
    finally:
        workers.stop()
