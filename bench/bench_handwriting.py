"""Handwriting-tab timing: one line of text written, with the pen animation, the strokes coloured by a
unit, the attention window, the gate heatmaps and the saturation plot, through the real server. Prints the median of
(1) the generation alone, in process, (2) the request through gradio_client, and (3) click-to-result
in Debian chromium (the new animation, strokes, attention and heatmap images all shown).

python bench/bench_handwriting.py [--model hershey-synthesis] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import report_click_to_result, serve, time_api  # noqa: E402

from studio.domains import handwriting as hw  # noqa: E402
from studio.domains.handwriting.generate import HandwritingSettings  # noqa: E402

LINE = "The quick brown fox jumps"  # one line: 25 characters
# the viewer's drawn trace first: it changes only once the new trace is decoded and drawn
WATCHED = ["#handwriting-viewer .lv-loaded", "#handwriting-output svg.handwriting", "#handwriting-attention img"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="hershey-synthesis", help="a handwriting model in models/")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from gradio_client import Client

    loaded = hw.load(Path("models") / args.model)
    gen_times = []
    for seed in range(args.repeats + 1):
        start = time.perf_counter()
        result = hw.generate(loaded, HandwritingSettings(text=LINE, bias=0.5, seed=seed)).result
        gen_times.append(time.perf_counter() - start)
    print(f"generation alone, {len(LINE)} characters ({len(result.offsets)} pen points): "
          f"median {statistics.median(gen_times[1:]):.3f} s")
    with serve("models") as url:
        client = Client(url, verbose=False)
        api = time_api(lambda seed: client.predict(args.model, LINE, 0.5, seed, "none", None, 600,
                                                   api_name="/generate_handwriting"), args.repeats)
        print(f"handwriting tab API (gradio_client), one line + all plots: median {api:.3f} s")
        report_click_to_result(
            "handwriting tab, one line + all plots", 3, url, "Handwriting", "#handwriting-generate",
            "#handwriting-seed input", WATCHED, args.repeats,
            prepare=lambda page: page.get_by_label("Text to write", exact=False).fill(LINE))


if __name__ == "__main__":
    main()
