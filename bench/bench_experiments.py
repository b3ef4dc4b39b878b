"""Experiment timings with the shipped text model: the probe over 100,000 characters of text
(teacher-forced trace + ranking every (layer, quantity, unit)), exact (one stream, in chunks) and
fast (parallel streams from a burn-in, the default, one thread per core whatever torch's thread
count: probe_stream.probe_parts) side by side with their agreement, and an intervened
generation against a plain one (the hook cost). --threads sets torch's intra-op threads (the
exact probe's; the app runs with 1).

python bench/bench_experiments.py --text ../shared/data/tinyshakespeare.txt [--repeats 3] [--threads 1,2]

With --baseline DIR (a checkout of another revision: git worktree add /tmp/baseline REV), only the
fast probe, in a fresh process per revision and round, alternately, with each revision's own
defaults (its bench's torch threads: --baseline-threads), and their ratio:

python bench/bench_experiments.py --text ../shared/data/tinyshakespeare.txt --baseline /tmp/baseline --rounds 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

# common sets torch's environment (huge pages), so it is imported before torch
# isort: off
from common import side_by_side  # noqa: E402 (common also puts the repo on sys.path)
import numpy as np  # noqa: E402
import torch  # noqa: E402
# isort: on

from studio import experiments  # noqa: E402
from studio.cli_experiments import probe  # noqa: E402
from studio.domains import text  # noqa: E402
from studio.domains.text.generate import TextSettings  # noqa: E402
from studio.probe_stream import probe_parts  # noqa: E402


def agreement(exact: list, fast: list) -> str:
    """How the fast probe's hits (all of them) compare with the exact one's: the top 10, and the
    largest difference of any (layer, quantity, unit)'s score."""
    key = lambda hit: (hit.layer, hit.quantity, hit.unit)  # noqa: E731
    scores = {key(hit): hit.score for hit in exact}
    differences = np.array([abs(hit.score - scores[key(hit)]) for hit in fast])
    same = [key(h) for h in exact[:10]] == [key(h) for h in fast[:10]]
    same_units = {key(h) for h in exact[:10]} == {key(h) for h in fast[:10]}
    order = "the same" if same else "the same units, another order" if same_units else "DIFFERENT"
    return (f"top 10 {order}; score differences over all {len(fast):,}: largest {differences.max():.1e}, "
            f"99th percentile {np.quantile(differences, 0.99):.1e}, median {np.median(differences):.1e}")


# the fast probe's best time per feature, run in a fresh process with `repo` first on sys.path
# (any revision whose studio.cli_experiments.probe takes (domain, loaded, sequence, feature))
PROBE_TIMES = """
import sys, time
sys.path.insert(0, sys.argv[1])
import torch
from studio.cli_experiments import probe
from studio.domains import text
torch.set_grad_enabled(False)
torch.set_num_threads(int(sys.argv[4]))
loaded = text.load(text.DEFAULT_MODEL)
reference = open(sys.argv[2], encoding="utf-8").read()[-100_000:]
probe(text, loaded, reference[:3000], "newline")  # compiles and warms what a first call would
for feature in ("newline", "space"):
    times = []
    for _ in range(int(sys.argv[3])):
        start = time.perf_counter()
        probe(text, loaded, reference, feature)
        times.append(time.perf_counter() - start)
    print(feature, min(times))
"""


def compare_with(baseline: Path, text_path: str, repeats: int, rounds: int, threads: str) -> None:
    """This checkout's fast probe against another's, alternately: best of `repeats` per run."""
    here = Path(__file__).resolve().parents[1]
    runs = {"this": [], "baseline": []}
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": "1"}  # huge pages, as app.py and this bench (common) run torch
    for round_ in range(rounds):
        for name, repo, torch_threads in (("baseline", baseline, threads), ("this", here, "1")):
            out = subprocess.run([sys.executable, "-c", PROBE_TIMES, str(repo), text_path, str(repeats), torch_threads],
                                 capture_output=True, text=True, check=True, env=env).stdout
            best = {line.split()[0]: float(line.split()[1]) for line in out.splitlines() if line.strip()}
            runs[name].append(best)
            print(f"round {round_ + 1}, {name} ({repo}): " + ", ".join(f"{k} {v:.2f} s" for k, v in best.items()), flush=True)
    for feature in ("newline", "space"):
        ratios = [this[feature] / base[feature] for this, base in zip(runs["this"], runs["baseline"], strict=True)]
        print(f"{feature}: this / baseline per round " + ", ".join(f"{r:.2f}" for r in ratios))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", required=True, help="a long text (the last 100,000 characters are probed)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default=str(torch.get_num_threads()), help="torch thread counts to time, e.g. 2,1")
    parser.add_argument("--baseline", type=Path, help="another revision's checkout: time its fast probe against this one's")
    parser.add_argument("--baseline-threads", default="2", help="torch threads for the baseline (the probe's threads before 2026-11-25)")
    parser.add_argument("--rounds", type=int, default=3, help="with --baseline: runs of each, alternating")
    args = parser.parse_args()
    if args.baseline is not None:
        compare_with(args.baseline, args.text, args.repeats, args.rounds, args.baseline_threads)
        return
    torch.set_grad_enabled(False)
    loaded = text.load(text.DEFAULT_MODEL)
    reference = Path(args.text).read_text(encoding="utf-8")[-100_000:]
    every = 2 * len(experiments.QUANTITIES) * loaded.model.core.config.hidden_size  # all hits: every unit's score
    threads_before = torch.get_num_threads()
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for feature in ("newline", "space"):
            times = {"exact": [], "fast": []}
            for _ in range(args.repeats):  # interleaved, so drift hits both
                for name in ("exact", "fast"):
                    start = time.perf_counter()
                    _, steps, hits = probe(text, loaded, reference, feature, top=every, exact=name == "exact")
                    times[name].append(time.perf_counter() - start)
                    times[name + " hits"] = hits
            exact, fast = min(times["exact"]), min(times["fast"])
            best = times["fast hits"][0]
            print(f"probe '{feature}' over {steps:,} characters, torch threads {threads}, fast probe in "
                  f"{probe_parts(loaded.device)} thread(s), best of {args.repeats}: exact {exact:.2f} s, "
                  f"fast {fast:.2f} s = {exact / fast:.1f}x faster (goal <= 3 s: {'met' if fast <= 3 else 'not met'}); "
                  f"{agreement(times['exact hits'], times['fast hits'])}; best: layer {best.layer} unit {best.unit} "
                  f"quantity {best.quantity} AUC {best.score:.3f}")
    torch.set_num_threads(threads_before)
    settings = TextSettings("ROMEO:\n", 1000, seed=1)
    hooks = experiments.intervention_hooks(ablate="1:5", from_step=100)
    plain, changed = side_by_side(lambda: text.generate(loaded, settings),
                                  lambda: text.generate(loaded, settings, hooks=hooks), args.repeats)
    print(f"1,000 characters: plain {plain:.3f} s, with an ablation {changed:.3f} s: ratio {changed / plain:.2f} (goal <= 1.1)")


if __name__ == "__main__":
    main()
