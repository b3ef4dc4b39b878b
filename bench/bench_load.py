"""Load on the real app: N concurrent clients, each sending M mixed requests (the four tabs' Generate
with their default sizes, seeds varied), through gradio_client against `python app.py` started as a
Space starts it (its own process, fresh temporary folders).

Prints: errors, per-tab latency p50 / p95 / max, requests per second, the server's RSS after start,
after one warm-up request per tab and after the load (peak sampled every 0.5 s), and the app's
temporary disk (its outputs + Gradio's cache) at the end and its peak.

    python bench/bench_load.py --clients 20 --requests 10
    git worktree add /tmp/baseline 6303081   # the code issue 16 measured (2.4 requests/s)
    python bench/bench_load.py --clients 20 --requests 10 --baseline /tmp/baseline --rounds 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# one request per tab, as the page sends it with the tab's defaults (the seed varies)
REQUESTS = {
    "text": ("/generate_text", lambda seed: ["shakespeare-char", "To be, or not to be", 400, 0.8, 0, 1.0, seed]),
    "music": ("/generate_music", lambda seed: ["jsb-chorales-quarter", "Compose from scratch", None, "bach/bwv2.6",
                                               4, 8, 1.0, 0, seed, 0]),
    "handwriting": ("/generate_handwriting", lambda seed: ["hershey-synthesis", "hello world", 0.5, seed, "none",
                                                           None, 600]),
    "speech": ("/generate_speech", lambda seed: ["espeak-tts", "The quick brown fox jumps over the lazy dog.", 0, seed]),
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mb(folder: Path) -> float:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue
    return total / 1e6


def start_app(tmp: Path, env_extra: dict, app_dir: Path = REPO) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           "TMPDIR": str(tmp), "GRADIO_TEMP_DIR": str(tmp / "gradio"), "LSTM_STUDIO_USER_MODELS": str(tmp / "user-models"),
           **env_extra}
    process = subprocess.Popen([sys.executable, "app.py"], cwd=app_dir, env=env, stdout=open(tmp / "app.log", "w"),
                               stderr=subprocess.STDOUT)
    started = time.monotonic()
    while time.monotonic() - started < 300:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited: {(tmp / 'app.log').read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}/"
        time.sleep(0.5)
    raise SystemExit("app.py did not start within 300 s")


def children_of(pid: int) -> list[int]:
    """The app's worker processes (studio.workers), from every thread's children list."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process (its threads included) and of its live children."""
    total = 0.0
    for process in [pid, *children_of(pid)]:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def app_rss_mb(pid: int) -> float:
    """RSS of the app and its worker processes together."""
    total = 0.0
    for process in [pid, *children_of(pid)]:
        try:
            total += rss_mb(process)
        except OSError:
            continue
    return total


def client_run(k: int, url: str, requests: int, answers, go, downloads: bool = True) -> None:
    """One client (a process of its own): `requests` requests in turn, starting at tab k mod 4.
    downloads=False: the output files stay on the server (a browser fetches only what it shows)."""
    from gradio_client import Client

    client = Client(url, verbose=False, **({} if downloads else {"download_files": False}))
    answers.put("ready")
    go.wait()
    kinds = list(REQUESTS)
    for j in range(requests):
        kind = kinds[(k + j) % len(kinds)]
        endpoint, make = REQUESTS[kind]
        started = time.perf_counter()
        try:
            client.predict(*make(1000 * k + j), api_name=endpoint)
            error = None
        except Exception as failure:  # counted and shown, not raised
            error = str(failure)[:200]
        answers.put((kind, time.perf_counter() - started, error))


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10, help="per client")
    parser.add_argument("--env", nargs="*", default=[], help="NAME=VALUE for the app (caps, LSTM_STUDIO_CONCURRENCY)")
    parser.add_argument("--no-downloads", action="store_true", help="clients do not download the output files "
                        "(MIDI, pictures, audio), as a browser does not until asked")
    parser.add_argument("--long", action="store_true", help="first, alone: 1 MB of text to handwriting, and a 1 MB "
                        "prompt + 5,000 characters to text (time and notes of each)")
    parser.add_argument("--baseline", type=Path, help="a checkout of another revision (git worktree add DIR REV): "
                        "its app.py is loaded the same way, alternately with this one, and the throughputs compared "
                        "round by round (this machine's speed drifts by 10-25%% between runs)")
    parser.add_argument("--rounds", type=int, default=2, help="with --baseline: runs of each, alternating")
    args = parser.parse_args()
    if args.baseline is None:
        run_load(args, REPO)
        return
    ratios = []
    for round_number in range(args.rounds):
        throughput = {}
        for name, folder in (("baseline", args.baseline.resolve()), ("this", REPO)):
            print(f"\n== round {round_number + 1}, {name} ({folder})")
            throughput[name] = run_load(args, folder)
        ratios.append(throughput["this"] / throughput["baseline"])
        print(f"round {round_number + 1}: {throughput['this']:.2f} / {throughput['baseline']:.2f} requests/s = {ratios[-1]:.2f}x")
    print(f"throughput, this / baseline, per round: {', '.join(f'{r:.2f}x' for r in ratios)}")


def run_load(args, app_dir: Path) -> float:
    """One load run against app_dir's app.py (printed); returns its requests per second."""
    from gradio_client import Client

    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    process, url = start_app(tmp, dict(item.split("=", 1) for item in args.env), app_dir)
    try:
        rss = {"after start": rss_mb(process.pid)}
        together = {"after start": app_rss_mb(process.pid)}
        warm = Client(url, verbose=False)
        for endpoint, make in REQUESTS.values():  # first calls compile, load caches: not counted
            warm.predict(*make(0), api_name=endpoint)
        rss["after one request per tab"] = rss_mb(process.pid)
        together["after one request per tab"] = app_rss_mb(process.pid)
        if args.long:
            for endpoint, request in (("/generate_handwriting", ["hershey-synthesis", "hello world " * 90_000, 0.5, 0,
                                                                 "none", None, 600]),
                                      ("/generate_text", ["shakespeare-char", "To be, or not to be " * 50_000, 5000, 0.8, 0,
                                                          1.0, 1])):
                started = time.perf_counter()
                notes = warm.predict(*request, api_name=endpoint)[0]
                print(f"{endpoint}, {len(request[1]):,} characters: {time.perf_counter() - started:.2f} s; notes:\n{notes}")
            rss["after the long requests"] = rss_mb(process.pid)
        peaks = {"rss": rss["after one request per tab"], "disk": disk_mb(tmp)}
        done = threading.Event()

        def monitor():
            while not done.wait(0.5):
                peaks["rss"] = max(peaks["rss"], rss_mb(process.pid))
                peaks["disk"] = max(peaks["disk"], disk_mb(tmp))

        # every client in its own process, as real clients are on their own machines: 20 client
        # threads in one process spent the load waiting for each other's interpreter lock, and
        # their latency counted as the server's
        context = multiprocessing.get_context("spawn")
        answers, go = context.Queue(), context.Event()
        clients = [context.Process(target=client_run, args=(k, url, args.requests, answers, go, not args.no_downloads),
                                   daemon=True)
                   for k in range(args.clients)]
        for client in clients:
            client.start()
        for _ in clients:  # each has fetched the app's config
            answers.get(timeout=300)
        threading.Thread(target=monitor, daemon=True).start()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        cpu_before = cpu_seconds(process.pid)
        go.set()
        results: list[tuple[str, float, str | None]] = []
        while len(results) < args.clients * args.requests:
            results.append(answers.get(timeout=900))
            if len(results) == 100:  # issue 16: growth is counted from here
                rss["after the first 100 requests"] = rss_mb(process.pid)
                together["after the first 100 requests"] = app_rss_mb(process.pid)
        wall = time.perf_counter() - started
        server_cpu = cpu_seconds(process.pid) - cpu_before
        for client in clients:
            client.join(timeout=60)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
        done.set()
        rss["after the load"] = rss_mb(process.pid)
        together["after the load"] = app_rss_mb(process.pid)
        peaks["rss"] = max(peaks["rss"], rss["after the load"])
        errors = [r for r in results if r[2] is not None]
        print(f"{args.clients} clients x {args.requests} requests: {len(results)} requests in {wall:.1f} s, "
              f"{len(results) / wall:.2f} requests/s, {len(errors)} errors")
        print(f"CPU during the load: the app (its workers included) {server_cpu:.1f} s "
              f"({server_cpu / max(len(results), 1):.2f} s a request), "
              f"the client processes {client_cpu:.1f} s (their start included), of {2 * wall:.0f} core-seconds on 2 cores")
        for kind, _, error in errors[:10]:
            print(f"  error ({kind}): {error}")
        print("| tab | requests | p50 (s) | p95 (s) | max (s) |\n| --- | --- | --- | --- | --- |")
        for kind in REQUESTS:
            times = [t for name, t, error in results if name == kind and error is None]
            print(f"| {kind} | {len(times)} | {statistics.median(times):.2f} | {percentile(times, 0.95):.2f} | {max(times):.2f} |"
                  if times else f"| {kind} | 0 | - | - | - |")
        print("RSS (MB): " + ", ".join(f"{name} {value:.0f}" for name, value in rss.items()) + f", peak {peaks['rss']:.0f}")
        print("RSS (MB) of the app and its child processes (workers, multiprocessing's resource tracker) together: "
              + ", ".join(f"{name} {value:.0f}" for name, value in together.items()))
        end_disk = disk_mb(tmp)
        print(f"temporary disk (MB): end {end_disk:.1f}, peak {max(peaks['disk'], end_disk):.1f}")
        log = (tmp / "app.log").read_text()
        print(f"tracebacks in the server log: {log.count('Traceback')}")
        return len(results) / wall
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
