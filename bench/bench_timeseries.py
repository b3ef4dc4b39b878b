"""Time-series timing and accuracy, in process, one torch thread (as the app samples).

1. Forecast: a 500-point monthly history, 24 steps, 100 sample paths: the Forecast button's work
   (generate + the files + the fan chart + the viewer's payload), median of --repeats.
2. The backtest table that follows it (2 origins x the LSTM, seasonal naive, AutoETS, AutoARIMA).
3. Fine-tuning the shipped model on one 100-point series with the default settings
   (`python -m studio train timeseries --data ...`, in a fresh process, wall clock).
4. The held-out table: the last 12 points of each monthly series forecast from the ones before
   (the two development series and packaged series pretraining never saw): MASE of the LSTM, seasonal
   naive, AutoETS and AutoARIMA, and the LSTM's 80% interval coverage.
With --browser: click-to-result in chromium (wall clock and the page's own marks); with --baseline DIR,
that checkout's app.py and this one's in turn, round by round, and the ratios.

python bench/bench_timeseries.py [--model models/ts-global] [--repeats 5] [--skip-train]
    [--browser [--baseline DIR --rounds 2] [--browser-only]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.domains import timeseries  # noqa: E402
from studio.domains.timeseries.codec import Series  # noqa: E402
from studio.domains.timeseries.data import read_series, shipped_elnino  # noqa: E402
from studio.domains.timeseries.evaluate import backtest  # noqa: E402
from studio.domains.timeseries.generate import ForecastSettings  # noqa: E402
from studio.domains.timeseries.render import fan_chart_svg  # noqa: E402
from studio.domains.timeseries.train import held_out_series  # noqa: E402
from studio.ui.payload import trace_payload  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "series"


def checking_series() -> list[Series]:
    found = []
    for name in ("monthly-robberies.csv", "monthly-writing-paper-sales.csv"):
        if (DEV / name).exists():
            found.append(read_series(DEV / name))
    for series in held_out_series():
        if len(series) > 150:  # about 100-150 points, as the must-show asks
            series = Series(series.values[-120:], series.dates[-120:], series.name, series.season, series.frequency,
                            (series.start + len(series) - 120) % series.season)
        found.append(series)
    return found


# In the page: each animation frame, note when the chart (an <img>'s src or an <svg>'s markup) and
# the viewer's painted trace first differ from what they were at the click.
WATCH_JS = """() => {
  const chart = () => { const e = document.querySelector('#timeseries-chart img, #timeseries-chart svg[aria-label]');
    return e ? (e.tagName === 'IMG' ? (e.complete && e.naturalWidth > 0 ? e.src : null) : e.outerHTML) : null; };
  const painted = () => { const e = document.querySelector('#timeseries-viewer .lv-root');
    return e && e.dataset.ready === 'yes' ? e.dataset.painted : null; };
  window.__ts = null;
  document.addEventListener('click', (event) => {
    if (!event.target.closest('#timeseries-generate')) return;
    const marks = {click: performance.now(), before: [chart(), painted()]};
    window.__ts = marks;
    const frame = () => {
      const now = performance.now() - marks.click;
      if (marks.chart == null && chart() && chart() !== marks.before[0]) marks.chart = now;
      if (marks.viewer == null && painted() && painted() !== marks.before[1]) marks.viewer = now;
      if (marks.chart == null || marks.viewer == null) requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }, true);
}"""


def series_csv(history: Series, folder) -> Path:
    path = Path(folder) / "elnino-500.csv"
    path.write_text("date,value\n" + "\n".join(f"{d},{v}" for d, v in zip(history.dates, history.values, strict=True)))
    return path


def browser_click_to_result(url: str, csv_path: Path, repeats: int) -> dict:
    """Seconds from a click on Forecast (a 500-point CSV uploaded, 24 steps, 100 paths, a new seed each
    time) until the viewer holds the new trace and the fan chart is drawn, and the page's own marks
    (click to the new chart, click to the viewer drawn, click to the backtest table); before each
    click the previous click's backtest table has arrived, so the two do not share the CPU. The
    first click warms caches (the first backtest imports statsforecast, here and in a worker) and is
    reported apart."""
    from common import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    found = {"result": [], "chart": [], "viewer": [], "table": []}
    first = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_role("tab", name=timeseries.TITLE).click()
        page.locator("#timeseries-upload input[type=file]").set_input_files(str(csv_path))
        page.wait_for_timeout(2000)
        page.evaluate(WATCH_JS)
        for k in range(repeats + 1):
            page.locator("#timeseries-seed input").fill(str(100 + k))
            start = time.perf_counter()
            page.click("#timeseries-generate")
            page.wait_for_function("() => window.__ts && window.__ts.chart != null && window.__ts.viewer != null",
                                   timeout=120_000)
            took = time.perf_counter() - start
            # the forecast emptied the table; the next click waits for this one's backtest
            page.wait_for_function("document.querySelector('#timeseries-backtest').innerText.includes('AutoARIMA')",
                                   timeout=120_000)
            table = time.perf_counter() - start
            marks = page.evaluate("() => window.__ts")
            if not k:
                first = {"result": took, "table": table}
            else:
                found["result"].append(took)
                found["chart"].append(marks["chart"] / 1000)
                found["viewer"].append(marks["viewer"] / 1000)
                found["table"].append(table)
            page.wait_for_timeout(500)
        browser.close()
    return {**{name: statistics.median(values) for name, values in found.items()},
            **{f"first {name}": value for name, value in first.items()}}


def start_app(app_dir: Path):
    """`python app.py` of a checkout on a free port (the real app, its warm-up included): (process, url)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
    process = subprocess.Popen([sys.executable, "app.py"], cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    started = time.monotonic()
    while time.monotonic() - started < 300:
        if process.poll() is not None:
            raise SystemExit(f"app.py in {app_dir} exited: {Path(log.name).read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(3)  # the warm-up's imports start with the page
                return process, f"http://127.0.0.1:{port}/"
        time.sleep(0.5)
    process.kill()
    raise SystemExit("app.py did not start within 300 s")


def report(name: str, found: dict) -> None:
    print(f"{name}: forecast click-to-result in chromium (500 points, 24 steps, 100 paths): median {found['result']:.3f} s "
          f"(goal <= 0.5 s); in the page: new chart {found['chart']:.3f} s, viewer drawn {found['viewer']:.3f} s, "
          f"backtest table {found['table']:.2f} s (goal <= 5 s); the first click after start: result "
          f"{found['first result']:.3f} s, table {found['first table']:.2f} s")


def browser_rounds(history: Series, repeats: int, baseline: Path | None, rounds: int) -> None:
    """Click-to-result in `python app.py` as shipped (its worker processes included: the backtest's
    folds run in them); with `baseline`, each round runs that checkout's app.py and this one's, one
    after the other (the same machine, minutes apart), and compares them."""
    with tempfile.TemporaryDirectory() as folder:
        csv_path = series_csv(history, folder)
        ratios = []
        apps = [("this", ROOT)] if baseline is None else [("baseline", baseline.resolve()), ("this", ROOT)]
        for round_number in range(rounds if baseline is not None else 1):
            found = {}
            for name, app_dir in apps:
                process, url = start_app(app_dir)
                try:
                    found[name] = browser_click_to_result(url, csv_path, repeats)
                finally:
                    process.terminate()
                    process.wait(30)
                report(f"round {round_number + 1}, {name}" if baseline is not None else name, found[name])
            if baseline is not None:
                ratios.append({key: found["this"][key] / found["baseline"][key] for key in found["this"]})
                print("   this / baseline: " + ", ".join(f"{key} {value:.2f}x" for key, value in ratios[-1].items()))
        for key in ratios[0] if ratios else ():
            print(f"{key}, this / baseline, per round: {', '.join(f'{r[key]:.2f}x' for r in ratios)}")


def backtest_in_workers(loaded, history: Series, runs: int = 6) -> str:
    """Seconds per backtest with the app's worker processes (2) running one fold each, run after
    run: the first ones include statsforecast's import in the worker that gets the fold."""
    from studio import workers
    from studio.domains.timeseries import evaluate

    workers.start([timeseries])
    try:
        while not workers.pool_ready():
            time.sleep(0.2)
        took = []
        for _ in range(runs):
            start = time.perf_counter()
            backtest(loaded, history, 24, folds=2,
                     run_folds=lambda calls: workers.call_all(evaluate, loaded, "backtest_fold", calls))
            took.append(time.perf_counter() - start)
    finally:
        workers.stop()
    return (f"runs {', '.join(f'{t:.2f}' for t in took)} s; median of the last {runs - 2}: "
            f"{statistics.median(took[2:]):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(timeseries.DEFAULT_MODEL))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--browser", action="store_true", help="also time click-to-result in chromium (the real app)")
    parser.add_argument("--baseline", type=Path, help="with --browser: a checkout of another revision (git worktree "
                        "add DIR REV) whose app.py is timed alternately with this one's, round by round")
    parser.add_argument("--rounds", type=int, default=2, help="with --baseline: rounds of each")
    parser.add_argument("--browser-only", action="store_true", help="only the browser timing (no backtest, held-out)")
    parser.add_argument("--write-card", action="store_true", help="write the held-out table into the model's card metrics")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = timeseries.load(args.model)

    elnino = shipped_elnino()
    history = Series(elnino.values[-500:], elnino.dates[-500:], "El Niño, 500 months", 12, "monthly", (len(elnino) - 500) % 12)
    settings = ForecastSettings(history, horizon=24, paths=100)
    timeseries.generate(loaded, settings)  # warm
    alone, button = [], []
    for seed in range(args.repeats):
        start = time.perf_counter()
        generation = timeseries.generate(loaded, ForecastSettings(history, 24, 100, 0, seed))
        alone.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as folder:
            timeseries.write_files(generation, folder)
        fan_chart_svg(generation)
        trace_payload(generation.trace, timeseries.track(generation))
        button.append(time.perf_counter() - start)
    print(f"forecast 500 points, 24 steps, 100 paths: generate {statistics.median(alone) * 1000:.0f} ms, "
          f"with files + fan chart + viewer payload {statistics.median(button) * 1000:.0f} ms (median of {args.repeats})")

    if args.browser:
        browser_rounds(history, args.repeats, args.baseline, args.rounds)
        if args.browser_only:
            return

    start = time.perf_counter()
    table = backtest(loaded, history, 24, folds=2)
    print(f"backtest table (2 origins, 4 methods) one fold after the other: {time.perf_counter() - start:.2f} s")
    for row in table.table():
        print("   ", row)
    print(f"the same, the folds at once (studio.workers.call_all, as the app): {backtest_in_workers(loaded, history)}")

    if not args.skip_train:
        with tempfile.TemporaryDirectory() as folder:
            series = checking_series()[0]
            path = Path(folder) / "series.csv"
            path.write_text("date,value\n" + "\n".join(f"{d},{v}" for d, v in zip(series.dates[-100:], series.values[-100:], strict=True)))
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "studio", "train", "timeseries", "--data", str(path), "--init", args.model,
                                   "--out", str(Path(folder) / "tuned")], cwd=ROOT, env=env, capture_output=True, text=True)
            took = time.perf_counter() - start
            last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
            print(f"fine-tune on 100 points (defaults, fresh process): {took:.1f} s; {last}")

    print("held-out: last 12 points forecast from the ones before (MASE; coverage of the LSTM's 80% interval)")
    print(f"{'series':34s} {'points':>6s} {'LSTM':>7s} {'s.naive':>7s} {'ETS':>7s} {'ARIMA':>7s} {'cov80':>6s}")
    rows = []
    for series in checking_series():
        found = backtest(loaded, series, 12, folds=1, paths=200).rows
        rows.append(found)
        print(f"{series.name[:34]:34s} {len(series):6d} {found['model']['mase']:7.3f} {found['seasonal_naive']['mase']:7.3f} "
              f"{found['ets']['mase']:7.3f} {found['arima']['mase']:7.3f} {found['model']['coverage80']:6.2f}")
    means = {m: float(np.mean([r[m]["mase"] for r in rows])) for m in rows[0]}
    coverage = float(np.mean([r["model"]["coverage80"] for r in rows]))
    print(f"{'mean':34s} {'':6s} {means['model']:7.3f} {means['seasonal_naive']:7.3f} {means['ets']:7.3f} {means['arima']:7.3f} "
          f"{coverage:6.2f}")
    beats_naive = sum(r["model"]["mase"] < r["seasonal_naive"]["mase"] for r in rows)
    print(f"below seasonal naive on {beats_naive} of {len(rows)}; mean MASE {means['model']:.3f} vs "
          f"min(ETS, ARIMA) {min(means['ets'], means['arima']):.3f}; coverage80 {coverage:.2f}")
    if args.write_card:
        from studio import checkpoint

        card = checkpoint.read_card(args.model)
        card["metrics"].update(
            mean_mase=round(means["model"], 4), mean_mase_seasonal_naive=round(means["seasonal_naive"], 4),
            mean_mase_ets=round(means["ets"], 4), mean_mase_arima=round(means["arima"], 4), coverage80=round(coverage, 4),
            held_out={series.name: {m: round(r[m]["mase"], 4) for m in r} | {"coverage80": round(r["model"]["coverage80"], 4)}
                      for series, r in zip(checking_series(), rows, strict=True)},
            held_out_how="last 12 points of each series forecast from the ones before (200 paths, seed 0); MASE with "
                         "the in-sample seasonal naive scale; baselines: statsforecast 2.1 SeasonalNaive, AutoETS, "
                         "AutoARIMA; bench/bench_timeseries.py")
        checkpoint.write_card(args.model, card)
        print(f"wrote the table into {args.model}.json")


if __name__ == "__main__":
    main()
