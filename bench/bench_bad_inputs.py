"""Bad input against the real app (issue 16's first check): every endpoint's parameters sent the
bad values of tests/test_api_fuzz.py one at a time, and every file parameter each kind of bad file,
to `python app.py` started as a Space starts it (bench_load.start_app).

Prints: requests, bare errors (an "Error" with no words), raw exception text in a file's answer,
tracebacks in the server log, requests over 10 s, the slowest, RSS after start-up / after one
request per tab / after the bad inputs (the app alone and with its worker processes), and the
app's temporary disk at its peak.

    python bench/bench_bad_inputs.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_load import REQUESTS, app_rss_mb, disk_mb, rss_mb, start_app  # noqa: E402
from test_api_fuzz import BAD, FILE_CALLS, FILE_PARAMETERS, RAW, VALID, is_bare, make_bad_files  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="times every bad input is sent")
    parser.add_argument("--env", nargs="*", default=[], help="NAME=VALUE for the app")
    parser.add_argument("--trail", action="store_true", help="the app's RSS after each endpoint's bad inputs")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp(prefix="bench-bad-"))
    process, url = start_app(tmp, dict(item.split("=", 1) for item in args.env))
    try:
        client = Client(url, verbose=False)
        time.sleep(5)  # the worker processes start in the background
        rss = {"after start": (rss_mb(process.pid), app_rss_mb(process.pid))}
        for endpoint, make in REQUESTS.values():
            client.predict(*make(0), api_name=endpoint)
        rss["after one request per tab"] = (rss_mb(process.pid), app_rss_mb(process.pid))
        peak = {"disk": disk_mb(tmp)}
        done = threading.Event()

        def monitor():
            while not done.wait(0.5):
                peak["disk"] = max(peak["disk"], disk_mb(tmp))

        threading.Thread(target=monitor, daemon=True).start()
        calls = []  # (endpoint, arguments, what it is, whether a file)
        for endpoint, valid in VALID.items():
            for position in range(len(valid)):
                if (endpoint, position) in FILE_PARAMETERS:
                    continue
                calls += [(endpoint, [value if k == position else v for k, v in enumerate(valid)], f"{position}={value!r}", False)
                          for value in BAD]
        (tmp / "bad-files").mkdir()
        for kind, path in make_bad_files(tmp / "bad-files"):
            for (endpoint, _), template in FILE_CALLS.items():
                calls.append((endpoint, [handle_file(str(path)) if v == "FILE" else v for v in template],
                              f"{kind}: {path.name}", True))
        bare, raw, slow, slowest, count = [], [], [], 0.0, 0
        started = time.perf_counter()
        for _ in range(args.rounds):
            for k, (endpoint, arguments, what, is_file) in enumerate(calls):
                if args.trail and (k == 0 or calls[k - 1][0] != endpoint or calls[k - 1][3] != is_file):
                    print(f"RSS before {endpoint} ({'files' if is_file else 'values'}): app {rss_mb(process.pid):.0f} MB")
                begun = time.perf_counter()
                try:
                    client.predict(*arguments, api_name=endpoint)
                    message = None
                except Exception as error:  # the app's answer in words, or a bare error
                    message = str(error)
                took = time.perf_counter() - begun
                count += 1
                slowest = max(slowest, took)
                if took > 10:
                    slow.append((endpoint, what, round(took, 1)))
                if is_bare(message):
                    bare.append((endpoint, what, message))
                elif message is not None and is_file and RAW.search(message):
                    raw.append((endpoint, what, message[:120]))
        wall = time.perf_counter() - started
        done.set()
        rss["after the bad inputs"] = (rss_mb(process.pid), app_rss_mb(process.pid))
        log = (tmp / "app.log").read_text()
        print(f"{count} bad inputs in {wall:.0f} s: {len(bare)} bare errors, {len(raw)} answers with raw exception text, "
              f"{log.count('Traceback')} tracebacks in the server log, {len(slow)} over 10 s (slowest {slowest:.1f} s)")
        for item in (bare + raw + slow)[:10]:
            print("  ", item)
        for name, (alone, together) in rss.items():
            print(f"RSS {name}: app {alone:.0f} MB, app + workers {together:.0f} MB")
        start_alone, start_together = rss["after start"]
        end_alone, end_together = rss["after the bad inputs"]
        print(f"RSS after the bad inputs / after start: app {end_alone / start_alone:.2f}x, "
              f"app + workers {end_together / start_together:.2f}x")
        print(f"temporary disk peak: {max(peak['disk'], disk_mb(tmp)):.1f} MB")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
