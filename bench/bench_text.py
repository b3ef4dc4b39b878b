"""Text-domain and LSTM-core benchmarks. Prints ratios measured side by side in one run.

python bench/bench_text.py [--model models/shakespeare-char] [--repeats 3] [--skip-naive] [--skip-ui] [--device auto]

Every comparison runs both sides in the same process, alternating, and reports the best of
`--repeats` for each, so a busy shared machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as app.py sets it (read at torch's first allocation)

import torch  # noqa: E402
from common import best_of, click_to_result, serve, side_by_side  # noqa: E402 (common also puts the repo on sys.path)

from studio.domains import text  # noqa: E402
from studio.domains.text.generate import TextSettings  # noqa: E402
from studio.sampling import SamplingConfig, make_generator, sample_next  # noqa: E402
from studio.train import pick_device  # noqa: E402


def lstmcell_loop(core, x):
    """Baseline: the usual way to see inside an LSTM, one nn.LSTMCell call per step and layer."""
    cells = []
    for layer in core.layers:
        cell = torch.nn.LSTMCell(layer.input_size, layer.hidden_size, device=x.device)
        cell.weight_ih.data, cell.weight_hh.data = layer.weight_ih_l0.data, layer.weight_hh_l0.data
        cell.bias_ih.data, cell.bias_hh.data = layer.bias_ih_l0.data, layer.bias_hh_l0.data
        cells.append(cell)
    with torch.no_grad():
        seq = x[0]
        for cell in cells:
            h = torch.zeros(1, cell.hidden_size, device=x.device)
            c = torch.zeros(1, cell.hidden_size, device=x.device)
            outs = []
            for t in range(seq.shape[0]):
                h, c = cell(seq[t : t + 1], (h, c))
                outs.append(h)
            seq = torch.cat(outs)
    return seq


def naive_generate(model, codec, prompt_ids, length, sampling, seed):
    """Baseline: the tutorial loop that re-encodes and re-runs the whole sequence from a fresh
    state for every new character."""
    generator = make_generator(seed)
    ids = list(prompt_ids)
    device = next(model.parameters()).device
    with torch.no_grad():
        for _ in range(length):
            logits, _ = model(torch.tensor([ids], device=device))
            ids.append(sample_next(logits[0, -1].cpu(), sampling, generator))
    return codec.decode(ids[len(prompt_ids) :])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="models/shakespeare-char")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-ui", action="store_true")
    parser.add_argument("--device", default="auto", help="auto: cuda when there is one, else cpu")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    device = pick_device(args.device)
    loaded = text.load(args.model, device=device)
    model, codec = loaded.model, loaded.codec
    cfg = model.config
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"model {args.model}: {cfg.num_layers}x{cfg.hidden_size}, torch {torch.__version__}, device {where}, "
          f"THP_MEM_ALLOC_ENABLE={os.environ['THP_MEM_ALLOC_ENABLE']}")
    sampling = SamplingConfig(temperature=0.8)
    settings = TextSettings(prompt="ROMEO:\n", length=1000, sampling=sampling, seed=1)

    # 1. traced vs untraced generation, 1,000 characters
    traced, untraced = side_by_side(
        lambda: text.generate(loaded, settings, traced=True),
        lambda: text.generate(loaded, settings, traced=False),
        args.repeats,
    )
    print(f"generation 1000 chars: traced {traced:.3f} s, untraced (fused per step) {untraced:.3f} s, "
          f"ratio traced/untraced {traced / untraced:.2f} (goal <= 1.1)")
    print(f"batch-1 sampling: traced {1000 / traced:,.0f} steps/s, untraced {1000 / untraced:,.0f} steps/s")

    # 2. teacher-forced trace of 10,000 steps vs fused forward and vs an LSTMCell loop
    x = torch.randn(1, 10_000, cfg.embed_size, device=device)
    fused, trace = side_by_side(lambda: model.core(x), lambda: model.core.trace(x), args.repeats)
    cell_loop = best_of(lambda: lstmcell_loop(model.core, x), 1)
    print(f"trace 10,000 steps: fused forward {fused:.3f} s, exact trace {trace:.3f} s, LSTMCell loop {cell_loop:.3f} s")
    print(f"  trace/fused {trace / fused:.2f} (goal <= 1.5); LSTMCell loop/trace {cell_loop / trace:.1f}x (goal >= 10)")

    # 3. 1,000-character generation vs the naive re-run-everything loop
    if not args.skip_naive:
        prompt_ids = codec.encode(settings.prompt)[0]
        naive = best_of(lambda: naive_generate(model, codec, prompt_ids, 1000, sampling, settings.seed), 1)
        print(f"1000 chars: naive re-run loop {naive:.2f} s vs ours (traced) {traced:.3f} s: "
              f"{naive / traced:.0f}x faster (goal >= 20)")

    # 4. What the server does per Text-tab click (CPU seconds), and the viewer's payload size
    bench_server_work(loaded, args.repeats)

    # 5. Text-tab click-to-result: 400 characters with all plots, through the real server
    if not args.skip_ui:
        bench_ui(args.model, args.repeats)


def bench_server_work(loaded, repeats: int) -> None:
    """CPU seconds of everything the Text tab's Generate does on the server for 400 characters
    (sampling, files, the viewer payload, units worth a look), and the JSON
    size of a 5,000-step payload (issue goal: <= 0.25 s and <= 15 MB)."""
    import json
    import tempfile

    from studio.ui import blocks

    def click(seed, length=400):
        generation = text.generate(loaded, TextSettings("ROMEO:\n", length, seed=seed))
        folder = Path(tempfile.mkdtemp(prefix="bench-text-"))
        text.write_files(generation, folder)
        generation.trace.save_npz(folder / "trace.npz", dtype="float16")
        return generation, blocks.gate_values(generation.trace, text.track(generation), "bench")

    click(0)  # warm-up
    cpu = []
    for seed in range(1, repeats + 1):
        start = time.process_time()
        click(seed)
        cpu.append(time.process_time() - start)
    print(f"text tab server CPU per Generate (400 chars): median {statistics.median(cpu):.3f} s (goal <= 0.25 s)")
    _, (value, *_) = click(0, length=5000)
    blob = Path(value["blob"].split("file=", 1)[1]).stat().st_size  # 5,000 steps: a file, not inline
    size = len(json.dumps(value)) + blob
    print(f"viewer payload, 5,000 steps x {value['units']} units x {len(value['layers'])} layers: "
          f"{size / 1e6:.1f} MB ({blob / 1e6:.1f} MB binary + {(size - blob) / 1e6:.2f} MB JSON; goal <= 15 MB)")


def bench_ui(model_stem: str, repeats: int) -> None:
    """Times the Text tab's Generate from click to the page showing text and plots, in Debian
    chromium when playwright can drive it, and the API call alone through gradio_client."""
    from gradio_client import Client

    with serve(Path(model_stem).parent) as url:
        client = Client(url, verbose=False)
        args = dict(name=Path(model_stem).name, prompt_text="ROMEO:\n", length_value=400, temp=0.8, k=0, p=1.0,
                    seed_value=0)
        api_times = []
        for seed in range(repeats + 1):
            args["seed_value"] = seed
            start = time.perf_counter()
            client.predict(*args.values(), api_name="/generate_text")
            api_times.append(time.perf_counter() - start)
        print(f"text tab API (gradio_client) 400 chars + all plots: median {statistics.median(api_times[1:]):.3f} s "
              f"(first call {api_times[0]:.3f} s)")
        try:
            browser_times = browser_click_to_result(url, repeats)
        except Exception as error:  # no chromium here: the API figure still stands
            print(f"browser timing skipped: {error}")
        else:
            print(f"text tab click-to-result in chromium, 400 chars + all plots: median "
                  f"{statistics.median(browser_times):.3f} s over {len(browser_times)} clicks (goal <= 0.5 s)")
            viewer_repaints(url)


def viewer_repaints(url: str) -> None:
    """The browser viewer with 5,000 generated characters: how long each repaint takes (layer,
    quantity, row order, unit, zoom, scroll) as the viewer measures it, and whether any of them
    sent a request (goal: none, each <= 50 ms)."""
    from common import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    root = "#text-viewer .lv-root"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_label("Length", exact=False).fill("5000")
        start = time.perf_counter()
        page.click("#text-generate")
        page.wait_for_function(f"document.querySelector('{root}').dataset.ready === 'yes'", timeout=120_000)
        print(f"5,000 chars: click to the viewer drawn {time.perf_counter() - start:.2f} s "
              f"(fetch + inflate {page.get_attribute(root, 'data-decode-ms')} ms, first paint "
              f"{page.get_attribute(root, 'data-paint-ms')} ms)")
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        actions = {
            "layer": lambda: page.select_option(f"{root} .lv-layer", "1"),
            "quantity": lambda: page.select_option(f"{root} .lv-quantity", "f"),
            "order (saturation)": lambda: page.select_option(f"{root} .lv-order", "saturation"),
            "unit": lambda: (page.fill(f"{root} .lv-unit", "17"), page.press(f"{root} .lv-unit", "Enter")),
            "zoom in": lambda: page.click(f"{root} .lv-zoom-in"),
            "scroll": lambda: page.locator(f"{root} .lv-scroll").fill("2000"),
            "fit": lambda: page.click(f"{root} .lv-fit"),
        }
        times, frames = {}, {}
        for name, action in actions.items():
            action()
            page.wait_for_timeout(200)
            times[name] = float(page.get_attribute(root, "data-paint-ms"))
            frames[name] = float(page.get_attribute(root, "data-frame-ms"))
            if name == "layer":
                print(f"  a layer change, per part (ms): {page.get_attribute(root, 'data-parts')}")
        browser.close()
    print("viewer repaints, 5,000 chars x 384 units (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items())
          + f"; max {max(times.values()):.0f} ms (goal <= 50); requests sent: {len(requests)} (goal 0)")
    print("  until the frame is on screen (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in frames.items())
          + f"; max {max(frames.values()):.0f} ms")


# the viewer's drawn trace: it changes once the new trace is decoded and drawn (saturation included)
WATCHED = ["#text-viewer .lv-loaded"]


def browser_click_to_result(url: str, repeats: int) -> list[float]:
    """Click to the painted text and the heatmap image both new and loaded."""
    return click_to_result(url, None, "#text-generate", "#text-seed input", WATCHED, repeats)


if __name__ == "__main__":
    main()
