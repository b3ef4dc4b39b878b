"""Issue 30: the app killed under load and started again on the same folders loses no stored record and
no finished training. `python app.py` runs in a subprocess on a shared server; browsers (the queue
protocol a page speaks, so that each generation is kept by the Text tab's keep bar) generate and keep
records while one owner's tiny training has finished and another is running; then the app and every
process it started (workers, the training) get SIGKILL. Started again: every record whose id was
answered before the kill is there, the database passes its integrity check, the finished training is
listed with its numbers and its model is its owner's alone and generates, and the running one says it
was interrupted by the restart."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from studio import owners

KEY_A = "restart-owner-a-" + "a" * 8  # two browsers' owner keys
KEY_B = "restart-owner-b-" + "b" * 8
PACE = 2.0  # seconds between one browser's generations
CORPUS = "the cat sat on the mat. the dog sat on the log. " * 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`python app.py` on a shared server over `home` (library, user models, training records), in a
    process group of its own: its workers and trainings die with it when the group is killed."""

    def __init__(self, repo_root: Path, home: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "LSTM_STUDIO_HOME": str(home), "LSTM_STUDIO_USER_MODELS": str(home / "models"),
               owners.SHARED_ENV: "1", "GRADIO_SERVER_PORT": str(self.port), "GRADIO_ANALYTICS_ENABLED": "False",
               "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "LSTM_STUDIO_WORKERS": "1", "TMPDIR": str(home.parent)}
        self.log = log
        with open(log, "a") as out:
            self.process = subprocess.Popen([sys.executable, "app.py"], cwd=repo_root, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"app.py exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(self.url + "config", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        self.config = httpx.get(self.url + "config", timeout=10).json()

    def kill(self, sig=signal.SIGKILL) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def fn_index(self, api_name: str, after: str | None = None) -> int:
        """The event of this name (after: the one chained after the event named `after`)."""
        deps = self.config["dependencies"]
        first = None if after is None else next(d["id"] for d in deps if d.get("api_name") == after)
        return next(d["id"] for d in deps if d.get("api_name") == api_name
                    and (first is None or d.get("trigger_after") == first))

    def event(self, fn_index: int, data: list, session: str, http: httpx.Client) -> list:
        """One event as a page sends it (its session keeps the gr.State values between events)."""
        page = {"x-gradio-user": "app"}  # what a page's front end sends (an API call is kept in its handler)
        http.post(self.url + "gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                            "event_data": None, "trigger_id": None},
                  headers=page).raise_for_status()
        with http.stream("GET", self.url + "gradio_api/queue/data", params={"session_hash": session},
                         headers=page) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    assert message.get("success"), message
                    return message["output"]["data"]
        raise ConnectionError("the stream ended")

    def keep_text(self, key: str, prompt: str, http: httpx.Client) -> int:
        """A Text generation kept by the keep bar, as a browser makes it: its record id."""
        session = uuid.uuid4().hex
        self.event(self.fn_index("generate_text"), ["shakespeare-char", prompt, 8, 0.8, 0, 1.0, 1, 0, key], session,
                   http)
        said = self.event(self.fn_index("keep", after="generate_text"), [None, key], session, http)[1]
        found = re.search(r"record (\d+)", said)
        assert found, said
        return int(found.group(1))

    def text_menu(self, key: str) -> list[str]:
        """The Text tab's model list as a page load gives this browser (studio.ui.train_tab.refresh_on_load)."""
        with httpx.Client(timeout=60) as http:
            updates = self.event(self.fn_index("lists"), [key], uuid.uuid4().hex, http)
        block = next(d for d in self.config["dependencies"] if d.get("api_name") == "lists")
        ids = {c["id"]: c.get("props", {}).get("elem_id") for c in self.config["components"]}
        text = next(k for k, out in enumerate(block["outputs"]) if "text" in (ids.get(out) or ""))
        return [c[1] if isinstance(c, list) else c for c in updates[text]["choices"]]


def train(client, key: str, action: str, job: str = "", name: str = "", minutes: float = 0.05) -> dict:
    return client.predict(action, job, "text", CORPUS if action == "start" else "", None, name, "tiny", minutes, "",
                          key, api_name="/train")


def until(what, seconds: float, step: float = 0.3):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(step)
    raise AssertionError(f"not within {seconds} s")


def test_a_restart_under_load_loses_no_record_and_no_finished_training(repo_root, tmp_path):
    from gradio_client import Client

    home = tmp_path / "home"
    app = App(repo_root, home, tmp_path / "app.log")
    try:
        client = Client(app.url, verbose=False)
        finished = train(client, KEY_A, "start", name="finished", minutes=0.05)
        running = train(client, KEY_A, "start", name="running", minutes=3)  # waits in line behind it
        kept: dict[str, list[int]] = {KEY_A: [], KEY_B: []}  # ids answered before the kill, per owner
        stop, full_speed, killing, failures, hiccups = threading.Event(), threading.Event(), threading.Event(), [], []

        def browser(key: str, k: int) -> None:
            with httpx.Client(timeout=60) as http:
                n = 0
                while not stop.is_set():
                    try:
                        record = app.keep_text(key, f"Browser {k} line {n}", http)
                    except (httpx.HTTPError, ConnectionError, json.JSONDecodeError) as error:
                        if killing.is_set():
                            return  # the app is gone
                        # before the kill, a connection dropped on a loaded machine: a browser tries again
                        hiccups.append(repr(error))
                        if len(hiccups) > 20:
                            failures.append(f"connections kept failing: {hiccups[-3:]}")
                            return
                        time.sleep(1)
                        continue
                    except Exception as error:  # noqa: BLE001 (a failed keep before the kill fails the test)
                        failures.append(repr(error))
                        return
                    kept[key].append(record)
                    n += 1
                    stop.wait(0 if full_speed.is_set() else PACE)  # paced while the trainings start

        browsers = [threading.Thread(target=browser, args=(key, k)) for k, key in enumerate([KEY_A, KEY_B, KEY_A])]
        for thread in browsers:
            thread.start()
        done = until(lambda: (s := train(client, KEY_A, "progress", finished["job"]))["status"] not in
                     ("queued", "running") and s, 120, 1.0)
        assert done["status"] == "done", done
        # running, past its first validation: its best checkpoint so far is on disk
        until(lambda: any("val" in p for p in train(client, KEY_A, "progress", running["job"])["progress"]), 90, 1.0)
        until(lambda: failures or (len(kept[KEY_A]) >= 3 and len(kept[KEY_B]) >= 2), 180)
        assert not failures, failures
        full_speed.set()  # then every browser has an event in flight nearly all the time
        time.sleep(2)
        assert not failures, failures
        killing.set()
        app.kill()  # in the middle of the load: the browsers' events are in flight
        stop.set()
        for thread in browsers:
            thread.join(timeout=60)
        assert not failures, failures
    finally:
        app.kill()

    app = App(repo_root, home, tmp_path / "app.log")
    try:
        with sqlite3.connect(home / "library" / "library.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        client = Client(app.url, verbose=False)
        for key, ids in kept.items():
            found = {hit["id"]: hit for hit in client.predict(key, "", None, "", "", None, 1000,
                                                               api_name="/library_search")}
            assert set(ids) <= set(found), sorted(set(ids) - set(found))
            for record in ids:  # and every file a record names
                assert all((home / "library" / "files" / f["sha256"][:2] / f["sha256"]).is_file()
                           for f in found[record]["files"])

        trainings = {t["job"]: t for t in train(client, KEY_A, "list")["trainings"]}
        assert trainings[finished["job"]]["status"] == "done", trainings[finished["job"]]
        kept_run = train(client, KEY_A, "progress", finished["job"])
        assert kept_run["status"] == "done" and kept_run["step"] > 0 and len(kept_run["files"]) == 2
        assert any("val" in point for point in kept_run["progress"])  # its loss curve and validation
        interrupted = trainings[running["job"]]
        assert interrupted["status"] == "interrupted" and "Interrupted by a restart" in interrupted["message"]
        assert "best checkpoint so far is kept" in interrupted["message"] and len(interrupted["files"]) == 2
        assert train(client, KEY_B, "list")["trainings"] == []  # another browser sees none of them

        assert {"finished", "running"} <= set(app.text_menu(KEY_A))  # the interrupted run's checkpoint too
        assert not {"finished", "running"} & set(app.text_menu(KEY_B))
        with httpx.Client(timeout=60) as http:  # the Train tab lists the browser's trainings on a page load
            listed = app.event(app.fn_index("trainings_of"), [KEY_A], uuid.uuid4().hex, http)[0]
            assert "| finished | text | done |" in listed and "| running | text | interrupted |" in listed
            assert app.event(app.fn_index("trainings_of"), [KEY_B], uuid.uuid4().hex, http)[0] == ""
        for name in ("finished", "running"):  # whole checkpoints (each written whole, then renamed into place)
            assert client.predict(name, "the", 5, 0.8, 0, 1.0, 1, 0, KEY_A, api_name="/generate_text")[0] is not None
        with pytest.raises(Exception, match="Unknown model 'finished'"):
            client.predict("finished", "the", 5, 0.8, 0, 1.0, 1, 0, KEY_B, api_name="/generate_text")
        assert "Traceback" not in (tmp_path / "app.log").read_text()
    finally:
        app.kill()


# ---------------------------------------------------------------- the records alone (no app, no training)
def kept_record(folder: Path, out: Path, status: str, owner: str = "someone", **extra) -> dict:
    return {"job": f"job-{status}", "status": status, "message": "", "name": out.name, "domain": "text",
            "minutes": 1.0, "step": 0, "steps": None, "progress": [], "samples": [], "data": [], "owner": owner,
            "out": str(out), "folder": str(folder), "submitted": time.time(), "started": None, "finished": None,
            **extra}


def test_records_are_read_back_as_they_are_after_a_restart(tmp_path, saved_text_model):
    from studio import checkpoint, job_records, jobs

    root, folder = tmp_path / "trainings", tmp_path / "job"
    folder.mkdir()
    (folder / "progress.jsonl").write_text('{"step": 5, "steps": 9, "loss": 2.0}\n{"step": 9, "steps": 9, '
                                           '"loss": 1.5, "val": 1.6}\n{"done": true}\n', encoding="utf-8")
    for status in ("queued", "running", "done"):  # running: its trainer had finished and left the model
        out = saved_text_model if status == "running" else tmp_path / f"none-{status}"
        job_records.write(root, kept_record(folder if status == "running" else tmp_path, out, status,
                                            progress=[{"step": k, "loss": 1.0} for k in range(3000)]))
    (root / "job-broken.json").write_text("{not json", encoding="utf-8")  # skipped, with a warning
    assert not list(root.glob("*.tmp"))  # written in place, no temporary file left
    assert len(json.loads((root / "job-done.json").read_text())["progress"]) == job_records.MAX_POINTS

    trainer = jobs.Trainer(tmp_path / "models", records_dir=root)
    assert trainer.restore() == 3
    queued, running = trainer.status("job-queued"), trainer.status("job-running")
    assert queued["status"] == "interrupted" and "before it started" in queued["message"]
    assert running["status"] == "done" and running["step"] == 9 and running["progress"][-1]["val"] == 1.6
    assert running["files"] == [str(p) for p in checkpoint.paths(saved_text_model)]
    assert json.loads((root / "job-queued.json").read_text())["status"] == "interrupted"  # kept so
    assert [t["job"] for t in trainer.trainings("someone")] and trainer.trainings("another") == []
    assert trainer.trainings(None) == []
