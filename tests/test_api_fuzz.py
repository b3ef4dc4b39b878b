"""Every API endpoint of the real app, sent the kinds of bad values users and scripts send (a string
where a number goes, a list, None, NaN, infinities, huge numbers, an object, an empty string), one
parameter at a time with the others valid: each call either answers or says what was wrong in a
sentence; none ends in a bare "Error" (an exception the app did not turn into words).

Every file parameter is sent each kind of bad file (empty, binary junk, truncated, the wrong type,
an archive that unpacks to hundreds of MB, JSON nested thousands deep, huge coordinates): each gets
a plain sentence (no exception class names, no parser jargon), and the server logs no traceback."""

from __future__ import annotations

import io
import json
import math
import re
import time
import zipfile

import pytest

BAD = ["abc", [1, 2], None, math.nan, math.inf, -1e30, 2**40, {"a": 1}, ""]

# valid, cheap arguments per endpoint (file parameters are left out: the client uploads files itself)
VALID = {
    "/generate_text": ["shakespeare-char", "To be", 3, 0.8, 0, 1.0, 1],
    "/generate_music": ["jsb-chorales-quarter", "Compose from scratch", None, "bach/bwv2.6", 1, 1, 1.0, 0, 1, 100.0],
    "/generate_handwriting": ["hershey-synthesis", "hi", 1.0, 1, "none", None, 5],
    "/generate_speech": ["espeak-tts", "hi.", 0, 1],
    "/explain": ["text", "", "To be", None, 2, 0, 1, "", "gradient_x_input"],
    "/probe": ["text", "", "To be, or not to be\nthat is", None, "newline", 3],
    "/intervene": ["text", "", 1, "1:2", "", 3],
    "/compare": ["text", "", "", "To be, or not", None],
    "/train": ["progress", "no-such-job", "text", "", None, "x", "tiny", 0.1, ""],
}
FILE_PARAMETERS = {("/generate_music", 2), ("/generate_handwriting", 5), ("/explain", 3), ("/probe", 3), ("/compare", 4),
                   ("/train", 4)}


@pytest.fixture(scope="module")
def client(tmp_path_factory, serve):
    from gradio_client import Client

    import app

    url = serve(app.build_demo(user_models_dir=tmp_path_factory.mktemp("user-models")))
    return Client(url, verbose=False)


def call(client, endpoint: str, args: list) -> str | None:
    """None when the call answered, else the error's message."""
    try:
        client.predict(*args, api_name=endpoint)
    except Exception as error:  # gradio_client's AppError carries the app's message
        return str(error)
    return None


def call_all(client, endpoint: str, calls: list[list]) -> list[str | None]:
    """`call` for every argument list, all submitted at once (the tab's queue runs them
    CONCURRENCY_PER_TAB at a time: the fuzz waits on the server, not on round trips)."""
    jobs = [client.submit(*args, api_name=endpoint) for args in calls]
    messages = []
    for job in jobs:
        try:
            job.result()
            messages.append(None)
        except Exception as error:
            messages.append(str(error))
    return messages


def tracebacks(log: str) -> list[str]:
    """The last line of each traceback in a log (what was raised)."""
    lines = log.splitlines()
    return [line for k, line in enumerate(lines) if line and not line[0].isspace() and k and lines[k - 1].startswith(" ")]


def is_bare(message: str | None) -> bool:
    return message is not None and (len(message.strip()) < 12 or "has raised an exception" in message
                                    or message.strip() in ("None", "Error"))


@pytest.mark.parametrize("endpoint", list(VALID))
def test_bad_values_in_every_parameter_get_words_not_a_bare_error(client, capfd, endpoint):
    baseline = call(client, endpoint, VALID[endpoint])
    assert baseline is None or endpoint == "/train", baseline  # the valid call works (/train: "No training ...")
    capfd.readouterr()
    cases = [(position, value) for position in range(len(VALID[endpoint])) if (endpoint, position) not in FILE_PARAMETERS
             for value in BAD]
    calls = [[value if k == position else valid for k, valid in enumerate(VALID[endpoint])] for position, value in cases]
    messages = call_all(client, endpoint, calls)
    assert [(*case, message) for case, message in zip(cases, messages, strict=True) if is_bare(message)] == []
    log = capfd.readouterr()
    assert "Traceback" not in log.err + log.out, tracebacks(log.err + log.out)


# ---------------------------------------------------------------- file parameters
# the arguments that make each endpoint read its file parameter (a domain whose reader it is)
FILE_CALLS = {
    ("/generate_music", 2): ["jsb-chorales-quarter", "Continue an uploaded file", "FILE", "bach/bwv2.6", 1, 1, 1.0, 0, 1, 100.0],
    ("/generate_handwriting", 5): ["hershey-synthesis", "hi", 1.0, 1, "uploaded file", "FILE", 5],
    ("/explain", 3): ["handwriting", "", "", "FILE", 2, 0, 1, "", "gradient_x_input"],
    ("/probe", 3): ["music", "", "", "FILE", "voices", 3],
    ("/compare", 4): ["speech", "", "", "", "FILE"],
    ("/train", 4): ["start", "", "text", "", "FILE", "fuzz", "tiny", 0.1, ""],
}
# raw exception text a user must never see
RAW = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|Traceback|Errno|codec can't|has raised an exception")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> list:
    return make_bad_files(tmp_path_factory.mktemp("bad-files"))


def make_bad_files(folder) -> list:
    """(kind, path) of every kind of bad upload, each under the names the readers dispatch on,
    written into `folder` (bench/bench_bad_inputs.py sends them too)."""
    import numpy as np

    def bomb(name: str, member: str) -> bytes:  # ~100 KB unpacking to 100 MB (the cap: 50 MB)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open(member, "w", force_zip64=True) as out:
            if member.endswith(".npy"):
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (4_000_000, 3)})
                out.write(header.getvalue())
            for _ in range(100):
                out.write(bytes(1_000_000))
        return buffer.getvalue()

    npz = io.BytesIO()
    np.savez(npz, train=np.zeros((1, 50, 3)))
    midi = b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x40\x00\x90\x3c"
    files = {
        "empty": [("empty.mid", b""), ("empty.json", b""), ("empty.wav", b"")],
        "binary junk": [("junk.mid", bytes(range(256)) * 8), ("junk.npz", b"PK\x03\x04" + bytes(range(256)) * 4),
                        ("junk.wav", b"RIFF" + bytes(range(256)) * 4), ("junk.krn", bytes(range(256)) * 4)],
        "truncated": [("cut.mid", midi), ("cut.npz", npz.getvalue()[:200]), ("cut.json", b'{"strokes": [[[0, 1], [2'),
                      ("cut.xml", b"<?xml version='1.0'?><score-partwise><part")],
        "wrong type": [("picture.mid", b"\x89PNG\r\n\x1a\n" + bytes(200)), ("notes.json", b"just some words"),
                       ("song.wav", midi)],
        "zip bomb": [("bomb.npz", bomb("bomb.npz", "train.npy")), ("bomb.mxl", bomb("bomb.mxl", "score.xml")),
                     ("bomb.zip", bomb("bomb.zip", "corpus.txt"))],
        "deep JSON": [("deep.json", b"[" * 500 + b"]" * 500), ("deep.ndjson", b'{"drawing": ' + b"[" * 500 + b"]" * 500 + b"}")],
        "huge coordinates": [("huge.json", json.dumps({"strokes": [[[0, 0], [1e30, 5], [3e30, -1e30]]], "text": "hi"}).encode())],
    }
    made = []
    for kind, named in files.items():
        for name, content in named:
            path = folder / name
            path.write_bytes(content)
            made.append((kind, path))
    return made


@pytest.mark.parametrize("endpoint, position", list(FILE_CALLS), ids=[f"{e}-{p}" for e, p in FILE_CALLS])
def test_bad_files_in_every_file_parameter_get_a_plain_sentence(client, bad_files, capfd, endpoint, position):
    from gradio_client import handle_file

    capfd.readouterr()
    failures, slowest = [], 0.0
    for kind, path in bad_files:
        args = [handle_file(str(path)) if value == "FILE" else value for value in FILE_CALLS[(endpoint, position)]]
        started = time.perf_counter()
        message = call(client, endpoint, args)
        slowest = max(slowest, time.perf_counter() - started)
        if message is None and endpoint == "/train":
            failures.append((kind, path.name, "a training started from a bad file"))
        elif message is not None and (is_bare(message) or RAW.search(message)):
            failures.append((kind, path.name, message))
    log = capfd.readouterr()
    assert failures == []
    assert "Traceback" not in log.err + log.out, tracebacks(log.err + log.out)
    assert slowest < 10


def test_a_trace_asked_for_before_any_generation_gets_a_sentence(client, capfd, tmp_path_factory):
    """The trace's file is written when asked for, from the session's last generation: a fresh
    session has none, and is told so in words."""
    from gradio_client import Client

    fresh = Client(client.src, verbose=False)  # a session of its own: nothing generated yet
    capfd.readouterr()
    for endpoint in ("/text_trace", "/music_trace", "/handwriting_trace", "/speech_trace", "/speech_continue_trace"):
        message = call(fresh, endpoint, [])
        assert message is not None and "Generate something first" in message, (endpoint, message)
    log = capfd.readouterr()
    assert "Traceback" not in log.err + log.out, tracebacks(log.err + log.out)


# ---------------------------------------------------------------- time
def test_a_long_request_stops_at_the_deadline_with_a_note(client, monkeypatch):
    """1 MB of text sent to handwriting: written until the deadline, then returned with a note."""
    from studio import limits

    monkeypatch.setattr(limits, "DEADLINE_S", 2.0)  # the server runs in this process
    monkeypatch.setattr(limits, "GENERATION_SHARE", 0.1)  # stop generating after 0.2 s, whatever the machine's load
    started = time.perf_counter()
    notes = client.predict("hershey-synthesis", "hello world " * 90_000, 1.0, 1, "none", None, 5,
                           api_name="/generate_handwriting")[0]
    assert time.perf_counter() - started < 10
    assert "Stopped early" in notes and "160 characters" in notes, notes


def test_a_quick_request_is_not_held_up_by_a_long_one_in_the_same_tab(client):
    """Each tab's events share a queue of CONCURRENCY_PER_TAB workers: a short request runs beside a long one."""
    from studio.ui.common import CONCURRENCY_PER_TAB

    assert CONCURRENCY_PER_TAB >= 2
    long_job = client.submit("hershey-synthesis", "hello world " * 20, 1.0, 1, "none", None, 5, api_name="/generate_handwriting")
    time.sleep(0.3)
    client.predict("hershey-synthesis", "hi", 1.0, 1, "none", None, 5, api_name="/generate_handwriting")
    assert not long_job.done()  # the quick one (two letters) came back while the long one (155) was still writing
    long_job.result()
