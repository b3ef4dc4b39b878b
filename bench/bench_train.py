"""Training benchmarks (issue 14), each printing figures measured side by side in one run.

  --speed   the same text training (2 x 256, one thread, a progress file with samples, --minutes M)
            started from the command line and through the app's /train endpoint (what the Train tab
            runs): tokens/s of both and their ratio (goal >= 0.9); then the app's /generate_text
            latency (400 characters) idle and while another training runs (goal: <= 2x idle).
  --quality a 100 KB corpus trained with the defaults for 5 minutes and for 30 minutes spent in full
            (no cap on the steps): the best validation nats/char of each (goal: within 0.1).

python bench/bench_train.py --speed --text ../shared/data/tinyshakespeare.txt [--minutes 0.5]
python bench/bench_train.py --quality --text ../shared/data/tinyshakespeare.txt
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import serve  # noqa: E402 (common also puts the repo on sys.path)

REPO = Path(__file__).resolve().parents[1]
TRAINED = re.compile(r"trained: steps=(\d+) tokens_per_s=(\d+) best_val=([0-9.]+)")


def corpus_file(source: Path, folder: Path, size: int = 100_000) -> Path:
    """The first `size` characters of the source: the '100 KB corpus' both runs read."""
    path = folder / "corpus-100k.txt"
    path.write_text(source.read_text(encoding="utf-8")[:size], encoding="utf-8")
    return path


def cli_train(data: Path, out: Path, minutes: float, *extra: str) -> tuple[int, float, float]:
    """(steps, tokens/s, best val) of `python -m studio train text` with the defaults."""
    command = [sys.executable, "-m", "studio", "train", "text", "--data", str(data), "--out", str(out),
               "--minutes", f"{minutes:g}", *extra]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    steps, speed, best = TRAINED.search(done.stdout.strip().splitlines()[-1]).groups()
    return int(steps), float(speed), float(best)


def generate_latency(client, repeats: int) -> list[float]:
    times = []
    for seed in range(repeats):
        started = time.perf_counter()
        client.predict("shakespeare-char", "ROMEO:\n", 400, 0.8, 0, 1.0, seed, api_name="/generate_text")
        times.append(time.perf_counter() - started)
    return times


def run_job(client, data: Path, minutes: float, during=None) -> dict:
    """A training through /train (what the Train tab does) to its end; `during(client)` runs once it has started."""
    job = client.predict("start", "", "text", data.read_text(encoding="utf-8"), None, "bench", "medium", minutes, "",
                         api_name="/train")
    status, measured = job, None
    while status["status"] in ("queued", "running"):
        time.sleep(1)
        status = client.predict("progress", job["job"], "", "", None, "", "", 0, "", api_name="/train")
        if during is not None and measured is None and status.get("step", 0) >= 10:
            measured = during(client)
    return {**status, "during": measured}


def speed(data: Path, folder: Path, minutes: float, repeats: int = 3) -> None:
    """CLI and Train tab runs alternately (the machine's speed drifts within minutes): best and median of each."""
    from gradio_client import Client

    cli, tab = [], []
    with serve() as url:
        client = Client(url, verbose=False)
        for k in range(repeats):
            # the same settings as the Train tab's job: 2 x 256, one thread, a progress file with samples
            cli.append(cli_train(data, folder / f"cli{k}", minutes, "--hidden-size", "256", "--embed-size", "64",
                                 "--threads", "1", "--progress", str(folder / f"cli{k}.jsonl"))[1])
            tab.append(run_job(client, data, minutes)["tokens_per_s"])
            print(f"pair {k + 1}: CLI {cli[-1]:,.0f} tokens/s, Train tab {tab[-1]:,.0f} tokens/s")
        idle = generate_latency(client, 6)[1:]
        busy = run_job(client, data, 0.5, during=lambda c: generate_latency(c, 5))["during"]
    print(f"Train tab / CLI tokens/s: best {max(tab) / max(cli):.2f}, median {statistics.median(tab) / statistics.median(cli):.2f} "
          f"(goal >= 0.9)")
    print(f"/generate_text, 400 characters: idle median {statistics.median(idle):.3f} s, while training "
          f"{statistics.median(busy):.3f} s: ratio {statistics.median(busy) / statistics.median(idle):.2f} (goal <= 2)")


def quality(data: Path, folder: Path) -> None:
    """Both runs at once, each pinned to its own core (a training uses one), so neither waits."""
    runs = {5: (), 30: ("--steps", "1000000")}  # the 30-minute run is given all its time (no 50-pass cap)
    started = {}
    for core, (minutes, extra) in enumerate(runs.items()):
        command = [sys.executable, "-m", "studio", "train", "text", "--data", str(data), "--out", str(folder / f"m{minutes}"),
                   "--minutes", str(minutes), *extra]
        started[minutes] = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                            preexec_fn=lambda core=core: os.sched_setaffinity(0, {core % os.cpu_count()}))
    results = {}
    for minutes, process in started.items():
        out, _ = process.communicate()
        steps, tokens, best = TRAINED.search(out.strip().splitlines()[-1]).groups()
        results[minutes] = float(best)
        print(f"{minutes} minutes {'spent in full' if runs[minutes] else 'with the defaults'}: {steps} steps, "
              f"{float(tokens):,.0f} tokens/s, best val {float(best):.4f} nats/char")
    print(f"difference {results[5] - results[30]:+.4f} nats/char (goal: within 0.1)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", required=True, help="a text; its first 100,000 characters are the corpus")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--minutes", type=float, default=0.5, help="each run of --speed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["LSTM_STUDIO_USER_MODELS"] = str(Path(folder) / "user-models")  # not the user's own folder
        data = corpus_file(Path(args.text), Path(folder))
        if args.speed:
            speed(data, Path(folder), args.minutes)
        if args.quality:
            quality(data, Path(folder))


if __name__ == "__main__":
    main()
