"""Every domain of studio.domains.ALL through the contract, with its shipped default model:
teacher-forced `score` of the domain's example input, `generate` with the tab's default settings
(Settings()), and the same generation with a hook that ablates one unit from the middle on (hooks
step the prompt too, so this is the cost an intervention adds). Side by side, best of --repeats.

python bench/bench_domains.py [--repeats 3]
"""

from __future__ import annotations

import argparse

# common sets torch's environment (huge pages), so it is imported before torch
# isort: off
from common import best_of, side_by_side  # noqa: E402 (common also puts the repo on sys.path)
import torch  # noqa: E402
# isort: on

from studio.domains import ALL  # noqa: E402
from studio.lstm import set_units  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)  # as the app samples
    for domain in ALL:
        loaded = domain.load(domain.DEFAULT_MODEL)
        sequence, _ = domain.example()
        settings = domain.Settings()
        scored = domain.score(loaded, sequence)
        score_s = best_of(lambda: domain.score(loaded, sequence), args.repeats)  # noqa: B023
        plain = domain.generate(loaded, settings)
        hook = [set_units(plain.trace.num_layers - 1, [0], "h", 0.0, from_step=plain.trace.steps // 2)]
        plain_s, hooked_s = side_by_side(lambda: domain.generate(loaded, settings),  # noqa: B023
                                         lambda: domain.generate(loaded, settings, hooks=hook), args.repeats)  # noqa: B023
        print(f"{domain.NAME:12s} {loaded.name}: score {scored.trace.steps} steps {score_s:.3f} s; generate "
              f"{plain.trace.steps} steps {plain_s:.3f} s, with an ablation hook {hooked_s:.3f} s "
              f"(ratio {hooked_s / plain_s:.2f})")


if __name__ == "__main__":
    main()
