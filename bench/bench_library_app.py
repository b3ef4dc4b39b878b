"""The app's own keep step, timed: each tab's registered Generate handler (the one keep_bar.wire wraps)
runs with its default inputs and seeds 1..8, then the keep handler that the page chains after it
(`keep_bar.wire`'s `keep`: record_generation for the page's owner, then one read for the bar). The
keep is a request of its own after the output is shown: it adds nothing to the user's wait for the
output. Its first call in a process is reported apart (the app warms the library at start, in a
background thread, which this bench also starts).

    OMP_NUM_THREADS=1 python bench/bench_library_app.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LSTM_STUDIO_HOME", tempfile.mkdtemp(prefix="bench-library-app-"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import app  # noqa: E402

TABS = ["generate_text", "generate_music", "generate_handwriting", "generate_speech", "forecast"]


def main(seeds: int = 8) -> None:
    torch.set_grad_enabled(False)
    demo = app.build_demo()
    fns = list(demo.fns.values())
    keeps = [f for f in fns if getattr(f.fn, "__name__", "") == "keep"]
    print("| tab | generate (median) | first keep | later keeps: median | max |\n| --- | --- | --- | --- | --- |")
    for name in TABS:
        generate = next(f for f in fns if f.api_name == name)
        keep = next(k for k in keeps if k.inputs[0] in generate.outputs)  # the keep reading this tab's state
        state_at = generate.outputs.index(keep.inputs[0])
        seed_at = next(i for i, c in enumerate(generate.inputs) if (c.elem_id or "").endswith("-seed"))
        generated, kept = [], []
        for seed in range(1, seeds + 1):
            values = [component.value for component in generate.inputs]
            values[seed_at] = seed
            start = time.perf_counter()
            result = generate.fn(*values)
            generated.append(time.perf_counter() - start)
            start = time.perf_counter()
            answer = keep.fn(result[state_at], "")
            kept.append(time.perf_counter() - start)
            assert answer[0] is not None, answer[1]
        print(f"| {name} | {statistics.median(generated) * 1000:,.0f} ms | {kept[0] * 1000:.1f} ms | "
              f"{statistics.median(kept[1:]) * 1000:.1f} ms | {max(kept[1:]) * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
