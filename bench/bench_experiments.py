"""Experiment timings with the shipped text model: the probe over 100,000 characters of text
(teacher-forced trace + ranking every (layer, quantity, unit)), exact (one stream, in chunks) and
fast (parallel streams from a burn-in, the default, one thread per core whatever torch's thread
count: cli_experiments.probe_parts) side by side with their agreement, and an intervened
generation against a plain one (the hook cost). --threads sets torch's intra-op threads (the
exact probe's; the app runs with 1).

python bench/bench_experiments.py --text ../shared/data/tinyshakespeare.txt [--repeats 3] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# common sets torch's environment (huge pages), so it is imported before torch
# isort: off
from common import side_by_side  # noqa: E402 (common also puts the repo on sys.path)
import numpy as np  # noqa: E402
import torch  # noqa: E402
# isort: on

from studio import experiments  # noqa: E402
from studio.cli_experiments import probe, probe_parts  # noqa: E402
from studio.domains import text  # noqa: E402
from studio.sampling import SamplingConfig  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", required=True, help="a long text (the last 100,000 characters are probed)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default=str(torch.get_num_threads()), help="torch thread counts to time, e.g. 2,1")
    args = parser.parse_args()
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
    settings = text.TextSettings("ROMEO:\n", 1000, SamplingConfig(seed=1))
    hooks = experiments.intervention_hooks(ablate="1:5", from_step=100)
    plain, changed = side_by_side(lambda: text.generate(loaded, settings),
                                  lambda: text.generate(loaded, settings, hooks=hooks), args.repeats)
    print(f"1,000 characters: plain {plain:.3f} s, with an ablation {changed:.3f} s: ratio {changed / plain:.2f} (goal <= 1.1)")


if __name__ == "__main__":
    main()
