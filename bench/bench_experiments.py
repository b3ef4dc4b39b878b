"""Experiment timings with the shipped text model: the probe over 100,000 characters of text
(teacher-forced trace in chunks + ranking every (layer, quantity, unit)), and an intervened
generation against a plain one (the hook cost).

python bench/bench_experiments.py --text ../shared/data/tinyshakespeare.txt [--repeats 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

# common sets torch's environment (huge pages), so it is imported before torch
# isort: off
from common import best_of, side_by_side  # noqa: E402 (common also puts the repo on sys.path)
import torch  # noqa: E402
# isort: on

from studio import experiments  # noqa: E402
from studio.cli_experiments import probe  # noqa: E402
from studio.domains import text  # noqa: E402
from studio.sampling import SamplingConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", required=True, help="a long text (the last 100,000 characters are probed)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    loaded = text.load(text.DEFAULT_MODEL)
    reference = Path(args.text).read_text(encoding="utf-8")[-100_000:]
    for feature in ("newline", "space"):
        seconds = best_of(lambda: probe(text, loaded, reference, feature), args.repeats)  # noqa: B023
        _, steps, hits = probe(text, loaded, reference, feature)
        best = hits[0]
        print(f"probe '{feature}' over {steps:,} characters, {torch.get_num_threads()} threads: {seconds:.2f} s "
              f"(goal <= 3 s); best: layer {best.layer} unit {best.unit} quantity {best.quantity} AUC {best.score:.3f}")
    settings = text.TextSettings("ROMEO:\n", 1000, SamplingConfig(seed=1))
    hooks = experiments.intervention_hooks(ablate="1:5", from_step=100)
    plain, changed = side_by_side(lambda: text.generate(loaded, settings),
                                  lambda: text.generate(loaded, settings, hooks=hooks), args.repeats)
    print(f"1,000 characters: plain {plain:.3f} s, with an ablation {changed:.3f} s: ratio {changed / plain:.2f} (goal <= 1.1)")


if __name__ == "__main__":
    main()
