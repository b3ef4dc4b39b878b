"""App start-up: cold starts of `python app.py` until its page answers 200, against the bare imports
of torch, gradio and matplotlib (`python -c "import torch, gradio, matplotlib"`), alternated, the
median of each. The issue's goal: the page no later than 2 s after the bare imports.

python bench/bench_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = "import torch, gradio, matplotlib"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    return {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONWARNINGS": "ignore"}


def time_imports() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], check=True, env=env(), cwd=ROOT)
    return time.perf_counter() - start


def time_app(timeout: float = 120) -> float:
    """Seconds from `python app.py` to the first 200 of its page; the app is then stopped."""
    port = free_port()
    start = time.perf_counter()
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env={**env(), "GRADIO_SERVER_PORT": str(port)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("the app did not answer")
    finally:
        app.terminate()
        try:
            app.wait(20)
        except subprocess.TimeoutExpired:
            app.kill()
        time.sleep(1.0)  # its workers notice it is gone (studio.workers._exit_with) before the next run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    apps, imports = [], []
    for k in range(runs):
        imports.append(time_imports())
        apps.append(time_app())
        print(f"run {k + 1}: imports {imports[-1]:.2f} s, app {apps[-1]:.2f} s", flush=True)
    app_s, imports_s = statistics.median(apps), statistics.median(imports)
    print(f"median of {runs}: app to first page {app_s:.2f} s, bare imports {imports_s:.2f} s, "
          f"difference {app_s - imports_s:+.2f} s (goal: at most +2 s)")


if __name__ == "__main__":
    main()
