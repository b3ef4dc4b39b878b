"""Soak: does the server's memory level off? `python app.py` started as a Space starts it
(bench_load.start_app), then REQUESTS requests of the load mix (bench_load.REQUESTS: the four tabs'
Generate), CLIENTS at a time, each request from a new session (gradio_client's reset_session: as
thousands of visitors a day, each with a session of their own).

Prints, after start-up, after one request per tab and after every STEP requests: the PSS of the app and
its worker processes together (shared pages counted once per process share: /proc/PID/smaps_rollup),
the app's RSS, and the temporary disk (outputs + Gradio's cache); then errors, tracebacks in the log,
the disk's peak against its cap, and PSS growth from request STEP to the last.

    python bench/bench_soak.py --requests 2400 --clients 20 --step 200
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import REQUESTS, children_of, disk_mb, rss_mb, start_app  # noqa: E402


def pss_mb(pid: int) -> float:
    """Proportional set size of the app and its children (workers, multiprocessing's resource tracker)."""
    total = 0.0
    for process in [pid, *children_of(pid)]:
        try:
            for line in Path(f"/proc/{process}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def client_run(k: int, url: str, total: int, taken, answers, go) -> None:
    """One client process: takes request numbers until `total` are taken; each from a new session."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    answers.put("ready")
    go.wait()
    kinds = list(REQUESTS)
    while True:
        with taken.get_lock():
            if taken.value >= total:
                return
            number = taken.value
            taken.value += 1
        kind = kinds[number % len(kinds)]
        endpoint, make = REQUESTS[kind]
        client.reset_session()  # a new session: a new visitor
        started = time.perf_counter()
        try:
            client.predict(*make(number), api_name=endpoint)
            error = None
        except Exception as failure:  # counted and shown, not raised
            error = str(failure)[:200]
        answers.put((kind, time.perf_counter() - started, error))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2400)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--step", type=int, default=200)
    parser.add_argument("--env", nargs="*", default=[], help="NAME=VALUE for the app")
    args = parser.parse_args()
    from gradio_client import Client

    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    env = dict(item.split("=", 1) for item in args.env)
    cap_mb = float(env.get("LSTM_STUDIO_MAX_TEMP_MB", os.environ.get("LSTM_STUDIO_MAX_TEMP_MB", "1000")))
    process, url = start_app(tmp, env)

    def report(label: str) -> float:
        pss = pss_mb(process.pid)
        print(f"{label}: PSS (app + workers) {pss:.0f} MB, app RSS {rss_mb(process.pid):.0f} MB, "
              f"temporary disk {disk_mb(tmp):.0f} MB", flush=True)
        return pss

    try:
        time.sleep(10)  # the worker processes start in the background
        report("after start-up")
        warm = Client(url, verbose=False, download_files=False)
        for endpoint, make in REQUESTS.values():
            warm.predict(*make(0), api_name=endpoint)
        report("after one request per tab")
        peak = {"disk": disk_mb(tmp)}
        done = threading.Event()

        def monitor():
            while not done.wait(1.0):
                peak["disk"] = max(peak["disk"], disk_mb(tmp))

        threading.Thread(target=monitor, daemon=True).start()
        context = multiprocessing.get_context("spawn")
        answers, go, taken = context.Queue(), context.Event(), context.Value("i", 0)
        clients = [context.Process(target=client_run, args=(k, url, args.requests, taken, answers, go), daemon=True)
                   for k in range(args.clients)]
        for client in clients:
            client.start()
        for _ in clients:
            answers.get(timeout=300)
        started = time.perf_counter()
        go.set()
        results, curve = [], {}
        while len(results) < args.requests:
            results.append(answers.get(timeout=900))
            if len(results) % args.step == 0:
                curve[len(results)] = report(f"after request {len(results)} ({time.perf_counter() - started:.0f} s, "
                                             f"{sum(r[2] is not None for r in results)} errors)")
        wall = time.perf_counter() - started
        done.set()
        for client in clients:
            client.join(timeout=60)
        errors = [r for r in results if r[2] is not None]
        print(f"{len(results)} requests in {wall:.0f} s ({len(results) / wall:.2f} requests/s), {len(errors)} errors")
        for kind, _, error in errors[:10]:
            print(f"  error ({kind}): {error}")
        log = (tmp / "app.log").read_text()
        print(f"tracebacks in the server log: {log.count('Traceback')}")
        print(f"temporary disk: end {disk_mb(tmp):.0f} MB, peak {max(peak['disk'], disk_mb(tmp)):.0f} MB (cap {cap_mb:.0f} MB)")
        if args.step in curve and args.requests in curve:
            print(f"PSS after request {args.requests} - after request {args.step}: "
                  f"{curve[args.requests] - curve[args.step]:+.0f} MB")
        print("| after request | " + " | ".join(str(n) for n in curve) + " |")
        print("| PSS (MB) | " + " | ".join(f"{v:.0f}" for v in curve.values()) + " |")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
