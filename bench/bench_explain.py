"""'Ask why' timings with the shipped text model: saliency of one step over the previous 400 steps
(captum, gradient x input and integrated gradients) on one and two threads, the whole explanation
(top guesses, saliency, anatomy), and click-to-result in Debian chromium: from a click on a
character of a 400-character generation until the panel shows that step's explanation.

python bench/bench_explain.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

# common sets torch's environment (huge pages), so it is imported before torch
# isort: off
from common import CHROMIUM, CHROMIUM_ARGS, best_of, serve  # noqa: E402 (common also puts the repo on sys.path)
import torch  # noqa: E402
# isort: on

from studio import explain  # noqa: E402
from studio.domains import text  # noqa: E402
from studio.domains.text.generate import TextSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    loaded = text.load(text.DEFAULT_MODEL)
    generation = text.generate(loaded, TextSettings("ROMEO:\n", 400, seed=1))
    _, ex = text.explainable(loaded, text.sequence_of(generation))
    step = ex.steps - 1  # the last prediction: 400+ earlier inputs
    for threads in (1, 2):
        torch.set_num_threads(threads)
        explain.saliency(ex, step)  # warm-up
        gxi = best_of(lambda: explain.saliency(ex, step), args.repeats)
        ig = best_of(lambda: explain.saliency(ex, step, method="integrated_gradients"), max(1, args.repeats // 2))
        print(f"saliency of step {step} over {step + 1} inputs, {threads} thread(s): gradient x input {gxi:.3f} s, "
              f"integrated gradients (32 steps) {ig:.3f} s (goal <= 0.3 s on 2 cores)")
    torch.set_num_threads(1)  # as the app runs
    scored, _ = text.explainable(loaded, text.sequence_of(generation))
    whole = best_of(lambda: explain.explain(scored.trace, ex, step, 1, 7), args.repeats)
    made = best_of(lambda: text.explainable(loaded, text.sequence_of(generation)), args.repeats)
    print(f"one explanation (guesses + saliency + anatomy), 1 thread: {whole:.3f} s; its Explainable, made once per "
          f"generation: {made:.3f} s")
    browser(args.repeats)


def browser(repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    with serve("models") as url, sync_playwright() as p:
        page = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS).new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_label("Seed").fill("5")
        page.click("#text-generate")
        page.wait_for_function("document.querySelector('#text-viewer .lv-root').dataset.ready === 'yes'", timeout=120_000)
        times = []
        visible = page.evaluate("() => [...document.querySelectorAll('#text-viewer .lv-ch')]"
                                ".filter(s => s.textContent.trim()).map(s => Number(s.dataset.step))")
        for k, step in enumerate(visible[100 : 100 + 40 * (repeats + 1) : 40]):
            page.locator(f"#text-viewer .lv-ch[data-step='{step}']").click()
            start = time.perf_counter()
            page.wait_for_function(f"document.querySelector('#text-explain .ex-root').dataset.step === '{step}'",
                                   timeout=60_000)
            if k:  # the first click also makes the generation's Explainable
                times.append(time.perf_counter() - start)
        print(f"ask-why click-to-result in chromium (400 chars, a character clicked): median "
              f"{statistics.median(times):.3f} s over {len(times)} clicks (goal <= 0.5 s)")


if __name__ == "__main__":
    main()
