"""The library's costs: what recording adds to a generation, and search over 100,000 records.

1. Recording: each domain's shipped model generates with its tab's default settings (seeds 1..N);
   `record_generation` of each (the files already written, as a tab has them) is timed into a
   library that already holds the 100,000 records of part 2. The first record of a model also
   hashes its weights file (once per process: cached by path, size and mtime); it is reported apart.
2. Search: 100,000 records of one owner (plus 10,000 of others), outputs of 400 characters cut at
   random from the Shakespeare corpus (or random words without it), 384-long unit embeddings (the text
   model's hidden size), all of one model, so "more like this" scans every vector. Keyword queries of a
   rare, a middling and the commonest word and two words; similarity with and without a rating
   filter; both combined. The first similarity query reads every vector into memory (cold) and is
   reported apart from the rest (warm).

    OMP_NUM_THREADS=2 python bench/bench_library.py              # 100,000 records, 8 generations a domain
    python bench/bench_library.py --records 20000 --generations 3
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from studio import owners  # noqa: E402
from studio.library.store import Caps, Store  # noqa: E402

DIM = 384


def corpus_text() -> str:
    from studio.reference import DATA_DIR

    path = Path(DATA_DIR) / "tinyshakespeare.txt"
    if path.exists():
        return path.read_text(encoding="utf-8")
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(2, 9))) for _ in range(5000)]
    return " ".join(rng.choice(words, 400_000, p=_zipf(len(words))))


def _zipf(n):
    weights = 1.0 / np.arange(1, n + 1)
    return weights / weights.sum()


def fill(store: Store, count: int, others: int) -> None:
    """count records of the local owner and `others` of ten other owners, in one transaction."""
    text = corpus_text()
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((50, DIM)).astype(np.float32)
    now = time.time()
    rows, vectors = [], []
    for k in range(count + others):
        start = int(rng.integers(0, len(text) - 400))
        output = text[start:start + 400]
        owner = owners.LOCAL if k < count else f"other{k % 10}"
        vector = centres[k % 50] + 0.5 * rng.standard_normal(DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        rows.append((k + 1, owner, "d", "bench-model", "/bench/model", "0" * 64, "x:y", "{}", k, output[:20], output,
                     hashlib.sha256(f"{k}{output}".encode()).hexdigest(), now - (count + others - k), 0.5, "bench",
                     (k % 5) + 1 if k % 3 == 0 else None, "", "", 1, now, None, 1000))
        vectors.append((k + 1, vector.tobytes()))
    db = store.db
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO records (id, owner, domain, model, model_stem, weights_sha256, settings_type, settings, "
                   "seed, prompt, output, content_hash, created, duration, version, rating, tags, note, count, last_made, "
                   "share_token, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO embeddings VALUES (?, ?)", vectors)
    db.execute("COMMIT")


def timed(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return times


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    return (f"median {statistics.median(ordered):7.1f} ms   p95 {ordered[int(0.95 * (len(ordered) - 1))]:7.1f} ms   "
            f"max {ordered[-1]:7.1f} ms   (n={len(ordered)})")


def bench_search(store: Store, repeats: int) -> None:
    print("\nsearch (one owner's 100% of the records; ms per query)")
    words = {}
    counts = {}
    for record in store.search(owners.LOCAL, "", limit=2000):
        for word in record.output.lower().split():
            word = "".join(ch for ch in word if ch.isalpha())
            if word:
                counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts, key=lambda w: -counts[w])
    words["commonest word"] = ranked[0]
    words["middling word"] = ranked[len(ranked) // 20]
    words["rare word"] = ranked[-1]
    words["two words"] = f"{ranked[3]} {ranked[40]}"
    for what, query in words.items():
        hits = store.search(owners.LOCAL, query)
        print(f"  keyword, {what:16s} {query!r:24s} {len(hits):3d} hits  {summary(timed(lambda query=query: store.search(owners.LOCAL, query), repeats))}")
    print(f"  keyword + filters (rating >= 4, since a date)        "
          f"{summary(timed(lambda: store.search(owners.LOCAL, words['middling word'], min_rating=4, since=0), repeats))}")
    print(f"  newest first, no query                               {summary(timed(lambda: store.search(owners.LOCAL), repeats))}")
    cold = timed(lambda: store.search(owners.LOCAL, like=7), 1)
    print(f"  similarity, cold (reads every vector)                {cold[0]:7.1f} ms")
    print(f"  similarity, warm                                     {summary(timed(lambda: store.search(owners.LOCAL, like=7), repeats))}")
    print(f"  similarity + rating >= 4                             "
          f"{summary(timed(lambda: store.search(owners.LOCAL, like=7, min_rating=4), repeats))}")
    print(f"  keyword + similarity (one fused list)                "
          f"{summary(timed(lambda: store.search(owners.LOCAL, words['middling word'], like=7), repeats))}")


def bench_recording(store: Store, generations: int) -> None:
    from studio.domains import ALL
    from studio.library import record_generation

    print("\nrecording (record_generation after the tab's generate + write_files; wall and CPU ms)")
    for domain in ALL:
        loaded = domain.load(domain.DEFAULT_MODEL)
        times, cpu_times, generate_times, first = [], [], [], None
        for seed in range(1, generations + 1):
            settings = domain.Settings()
            settings = _seeded(settings, seed)
            start = time.perf_counter()
            generation = domain.generate(loaded, settings)
            generate_times.append((time.perf_counter() - start) * 1000)
            with tempfile.TemporaryDirectory() as folder:
                files = domain.write_files(generation, Path(folder))
                start, cpu = time.perf_counter(), time.process_time()
                record_generation(domain, loaded, settings, generation, files, owners.LOCAL, stem=domain.DEFAULT_MODEL,
                                  duration=generate_times[-1] / 1000, store=store)
                elapsed = (time.perf_counter() - start) * 1000
                cpu = (time.process_time() - cpu) * 1000
            if first is None:
                first = elapsed
            else:
                times.append(elapsed)
                cpu_times.append(cpu)
        print(f"  {domain.NAME:12s} generate median {statistics.median(generate_times):7.0f} ms; record: first "
              f"{first:5.1f} ms (hashes the weights), then {summary(times)}; CPU time median "
              f"{statistics.median(cpu_times):5.1f} ms (the rest of the wall time: waiting for a core)")


def bench_events(store: Store, repeats: int) -> None:
    """The records of a finished training (the shipped text model, its 1.1 MB corpus kept) and of a lab
    run (a loss figure drawn and kept): made once per training or run, after minutes of it."""
    import argparse as argparse_module

    from studio import checkpoint
    from studio.library import events

    print("\nrecording a trained model and a lab run (ms)")
    sys.stderr = io.StringIO()  # their "saved: N" lines
    corpus = Path(os.environ.get("LSTM_STUDIO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    corpus = corpus / "tinyshakespeare.txt"
    stems = [stem for stem in checkpoint.MODELS_DIR.glob("*.safetensors")]
    stem = stems[0].with_suffix("") if stems else None
    if stem is not None:
        args = argparse_module.Namespace(out=str(stem), data=[str(corpus)] if corpus.exists() else None, seed=0,
                                         progress=None)
        metrics = {"best_val_loss": 1.5, "steps_done": 1000}
        first = timed(lambda: events.record_training("text", args, metrics, 60.0, store=store), 1)
        again = timed(lambda: events.record_training("text", args, metrics, 60.0, store=store), repeats)
        print(f"  trained model: first {first[0]:5.1f} ms (hashes the weights and the corpus), the same model again "
              f"{summary(again)}")
    lab_result = {"config": {"task": "adding", "length": 100, "cells": ["rnn", "lstm"]},
                  "task": {"loss_name": "MSE"},
                  "cells": {k: {"curve": [{"step": s, "loss": 1 / (s + 1)} for s in range(0, 4000, 10)],
                                "val": [], "gradients": [], "baseline": 0.17} for k in ("rnn", "lstm")}}
    runs = iter(range(10**6))
    lab_args = argparse_module.Namespace(task="adding", cells="rnn,lstm", progress=None)
    lab = timed(lambda: events.record_lab_run({**lab_result, "config": {**lab_result["config"], "seed": next(runs)}},
                                              ["cell=lstm T=100 loss=0.01"], lab_args, 60.0, store=store), repeats)
    sys.stderr = sys.__stderr__
    print(f"  lab run (with its loss figure drawn): {summary(lab)}")


def _seeded(settings, seed):
    import dataclasses

    if hasattr(settings, "seed"):
        return dataclasses.replace(settings, seed=seed)
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value) and hasattr(value, "seed"):
            return dataclasses.replace(settings, **{f.name: dataclasses.replace(value, seed=seed)})
    return settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=10_000, help="records of other owners beside them")
    parser.add_argument("--generations", type=int, default=8, help="generations recorded per domain")
    parser.add_argument("--repeats", type=int, default=20, help="times each query runs")
    parser.add_argument("--db", help="keep the library here (default: a temporary folder)")
    args = parser.parse_args()
    print(f"cores usable: {len(os.sched_getaffinity(0))}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(args.db) if args.db else Path(folder) / "library.sqlite3"
        store = Store(path, caps=Caps(0, 0, 0, 0))
        if store.usage(owners.LOCAL)[0] < args.records:
            start = time.perf_counter()
            fill(store, args.records, args.others)
            print(f"filled {args.records:,} + {args.others:,} records in {time.perf_counter() - start:.1f} s; "
                  f"database {path.stat().st_size / 1e6:.0f} MB")
        bench_search(store, args.repeats)
        if args.generations:
            bench_recording(store, args.generations)
            bench_events(store, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
