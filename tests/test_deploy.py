"""The app started the way a Hugging Face Space starts it (docs/deploy.md): `python app.py` in the
repository root, GRADIO_SERVER_NAME=0.0.0.0 and the port from the environment, the caps set by
environment variables; one request through gradio_client answers, an upload over the size cap is
refused, and a request over the deadline comes back with a note. Every binary file the repository holds is
declared for LFS in .gitattributes (the Hub refuses binary files stored otherwise), and none is an LFS pointer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 240) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise AssertionError(f"app.py exited with {process.returncode}:\n{process.stdout.read()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"app.py did not listen on port {port} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def space(repo_root, tmp_path_factory):
    """(url, log path) of `python app.py` run as a Space runs it; stopped afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp("space") / "app.log"
    env = {**os.environ, "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "LSTM_STUDIO_USER_MODELS": str(tmp_path_factory.mktemp("user-models")),
           "LSTM_STUDIO_MAX_UPLOAD_MB": "1", "LSTM_STUDIO_DEADLINE_S": "1", "LSTM_STUDIO_MAX_TEMP_MB": "200"}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=repo_root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, text=True)
    try:
        with open(log) as reader:
            process.stdout = reader  # for wait_for_port's message if it dies
            wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/", log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_app_serves_a_request_as_a_space_with_the_caps_in_force(space, tmp_path):
    from gradio_client import Client, handle_file

    url, log = space
    client = Client(url, verbose=False)
    notes = client.predict("shakespeare-char", "To be", 5, 0.8, 0, 1.0, 1, api_name="/generate_text")[0]
    assert isinstance(notes, str)
    # LSTM_STUDIO_DEADLINE_S=1: 5,000 characters stop early, with a note
    notes = client.predict("shakespeare-char", "To be", 5000, 0.8, 0, 1.0, 1, api_name="/generate_text")[0]
    assert "Stopped early" in notes, notes
    # every tab's generation runs in the worker processes (studio/workers.py), files written there
    music = client.predict("jsb-chorales-quarter", "Compose from scratch", None, "bach/bwv2.6", 1, 1, 1.0, 0, 1, 100.0,
                           api_name="/generate_music")
    assert music[1] and Path(music[1]).stat().st_size > 0  # the audio
    written = client.predict("hershey-synthesis", "hi", 1.0, 1, "none", None, 50, api_name="/generate_handwriting")
    assert "<img" in written[6]  # the attention window
    spoken = client.predict("espeak-tts", "hi.", 0, 1, api_name="/generate_speech")
    assert spoken[1] and Path(spoken[1]).stat().st_size > 0
    # LSTM_STUDIO_MAX_UPLOAD_MB=1 -> launch(max_file_size="1mb"): a 2 MB upload never reaches a handler
    big = tmp_path / "big.mid"
    big.write_bytes(b"MThd" + bytes(2_000_000))
    with pytest.raises(Exception) as refused:
        client.predict("jsb-chorales-quarter", "Continue an uploaded file", handle_file(str(big)), "bach/bwv2.6",
                       1, 1, 1.0, 0, 1, 100.0, api_name="/generate_music")
    assert "exceeds the maximum file size of 1048576 bytes" in str(refused.value), refused.value  # the client reads the cap
    upload = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.mid", big.read_bytes())}, timeout=60)
    assert upload.status_code == 413, upload.text  # and the server refuses the bytes of a client that does not
    assert "Traceback" not in log.read_text()


LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"


def tracked_files(repo_root) -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=repo_root, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [name for name in listed.stdout.decode().split("\0") if name and (repo_root / name).is_file()]


def is_binary(data: bytes) -> bool:
    """Binary by content, as git and the Hub judge it: a NUL byte near the start, or not UTF-8 text."""
    if b"\0" in data[:8000]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_every_tracked_binary_file_is_declared_for_lfs_and_none_is_a_pointer(repo_root):
    """The Hub refuses a push of binary files not stored with LFS/Xet: .gitattributes declares each binary
    type the repository holds (so a clone of the Space with git-lfs stores them so); this repository itself
    keeps the real files (git-lfs is never installed here), so a pointer among them is an accident."""
    names = tracked_files(repo_root)
    pointers = [name for name in names if (repo_root / name).read_bytes()[:100].startswith(LFS_POINTER)]
    assert not pointers, f"LFS pointers where real files belong (was git-lfs installed in this clone?): {pointers}"
    binary = [name for name in names if is_binary((repo_root / name).read_bytes())]
    assert binary  # the checkpoints at least
    answer = subprocess.run(["git", "check-attr", "-z", "--stdin", "filter"], cwd=repo_root, capture_output=True,
                            input="\0".join(binary).encode() + b"\0", check=True).stdout.decode().split("\0")
    filters = dict(zip(answer[0::3], answer[2::3], strict=False))
    undeclared = sorted({Path(name).suffix or name for name in binary if filters.get(name) != "lfs"})
    assert not undeclared, f"binary file types without an LFS line in .gitattributes: {undeclared}"
