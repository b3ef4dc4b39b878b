"""Concurrent text requests, one at a time each in its own thread against batched (studio.batching):
the same 8 requests (400 characters, the Text tab's defaults, seeds 0-7) sent at once from 8 threads,
each thread sampling alone (text.generate) vs the threads' requests merged into batches
(MicroBatcher -> text.generate_batch). Prints the wall time for all 8 and the median latency,
alternately, best of --repeats; and checks the two give the same texts.

    python bench/bench_batching.py [--requests 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

# common sets torch's environment, so it is imported before torch
# isort: off
from common import side_by_side  # noqa: E402,F401 (common also puts the repo on sys.path)
import torch  # noqa: E402
# isort: on

from studio.batching import MicroBatcher  # noqa: E402
from studio.domains import text  # noqa: E402
from studio.domains.text.generate import TextSettings  # noqa: E402


def run_all(requests: list, call) -> tuple[float, list[float], list[str]]:
    """(wall seconds, each request's latency, the texts) for every request sent at once."""
    latencies, texts = [0.0] * len(requests), [""] * len(requests)

    def one(k: int) -> None:
        started = time.perf_counter()
        texts[k] = call(requests[k]).result.text
        latencies[k] = time.perf_counter() - started

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(requests))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, texts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the app
    torch.set_grad_enabled(False)
    loaded = text.load(text.DEFAULT_MODEL)
    requests = [TextSettings(prompt="To be, or not to be", length=400, seed=seed)
                for seed in range(args.requests)]
    batcher = MicroBatcher(lambda items: text.generate_batch(loaded, items), max_batch=args.requests)
    ways = {"each alone": lambda settings: text.generate(loaded, settings), "batched": batcher}
    results = {name: [] for name in ways}
    texts = {}
    text.generate(loaded, requests[0])  # warm caches
    for _ in range(args.repeats):
        for name, call in ways.items():
            wall, latencies, texts[name] = run_all(requests, call)
            results[name].append((wall, statistics.median(latencies)))
    for name, runs in results.items():
        wall, median = min(runs)
        print(f"{name}: {args.requests} requests in {wall:.3f} s (best of {args.repeats}), median latency {median:.3f} s")
    alone, batched = min(results["each alone"]), min(results["batched"])
    print(f"batched / each alone: wall {batched[0] / alone[0]:.2f}, median latency {batched[1] / alone[1]:.2f}; "
          f"batch sizes {sorted(set(batcher.batch_sizes))}; same texts: {texts['each alone'] == texts['batched']}")


if __name__ == "__main__":
    main()
