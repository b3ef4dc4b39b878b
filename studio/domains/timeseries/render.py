"""Pictures and files of a forecast: the fan chart, saliency painted on the history, the viewer's
strip (the series itself, one dot per step), the JSON and CSV downloads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from studio.domains.base import Generation
from studio.domains.timeseries.codec import Series

BANDS = ((0.025, 0.975, "95%", 0.15), (0.1, 0.9, "80%", 0.25), (0.25, 0.75, "50%", 0.4))
STRIP_LEVELS = 100  # the strip draws a value as one of this many heights


def _figure(height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(10, height), dpi=100)


def fan_chart(generation: Generation, show_history: int = 240, saliency: np.ndarray | None = None,
              step: int | None = None):
    """The history, the 50 / 80 / 95% bands, the median and the path the trace follows; with
    `saliency` (per point read up to `step`) those points are painted by how much each drove the
    prediction made at `step`."""
    result = generation.result
    series, first = result.series, result.first
    history = series.values
    fig, ax = _figure()
    n = len(history)
    shown = max(0, n - show_history)
    x_hist = np.arange(shown, n)
    ax.plot(x_hist, history[shown:], color="#333", lw=1.2, label="history")
    horizon = result.paths.shape[1]
    x_future = np.arange(n, n + horizon)
    for low, high, label, alpha in BANDS:
        ax.fill_between(x_future, result.quantiles[f"{low:g}"], result.quantiles[f"{high:g}"], color="#1f77b4",
                        alpha=alpha, lw=0, label=f"{label} interval")
    ax.plot(x_future, result.forecast, color="#1f77b4", lw=1.6, label="median")
    ax.plot(x_future, result.paths[result.median_path], color="#ff7f0e", lw=0.9, ls="--", label="traced path")
    if saliency is not None:  # the history's points and the traced path's (those read before the step)
        weights = np.abs(np.asarray(saliency, np.float64))
        weights = weights / (weights.max() or 1.0)
        positions = first + np.arange(len(weights))
        path = result.paths[result.median_path]
        values = np.array([history[p] if p < n else path[p - n] for p in positions])
        ax.scatter(positions, values, c=weights, cmap="Reds", s=10 + 60 * weights, zorder=3, label="what drove "
                   "the step")
    if step is not None:
        ax.axvline(first + step + 1, color="#d62728", lw=1, ls=":")
    ticks = np.linspace(shown, n + horizon - 1, 8).astype(int)
    dates = list(series.dates) + list(result.future_dates)
    ax.set_xticks(ticks, [dates[t] if t < len(dates) else "" for t in ticks], fontsize=8)
    ax.set_title(f"{series.name}: {horizon}-step forecast from {result.paths.shape[0]} sampled paths")
    ax.legend(fontsize=7, loc="upper left", ncols=3)
    fig.tight_layout()
    return fig


def render(generation: Generation, view=None, title: str | None = None):
    """The tab's and the CLI's picture of a forecast."""
    return fan_chart(generation)


def sequence_of(generation: Generation) -> Series:
    """The history followed by the traced path's values (all but the last, which is never read):
    what `score` reads to give the generation's trace again."""
    result = generation.result
    series = result.series
    path = result.paths[result.median_path][:-1]
    values = np.concatenate([series.values[result.first :], path])
    dates = list(series.dates[result.first :]) + result.future_dates[: len(path)]
    start = (series.start + result.first) % max(series.season, 1)
    return Series(values, dates, series.name, series.season, series.frequency, start)


def track(generation: Generation) -> dict:
    """The viewer's strip: the series (history, then the traced path) as one dot a step at its
    height, coloured by the unit (kind "roll": a dot per step at a level, as notes are drawn)."""
    values = sequence_of(generation).values[: generation.trace.steps]
    low, high = float(values.min()), float(values.max())
    levels = np.rint((values - low) / ((high - low) or 1.0) * (STRIP_LEVELS - 1)).astype(int)
    return {"kind": "roll", "pitches": levels.tolist(), "low": 0, "high": STRIP_LEVELS - 1}


def write_files(generation: Generation, folder) -> dict[str, Path]:
    """forecast.json (median, quantiles, dates) and forecast.csv (a row per future step)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result = generation.result
    data = result.to_json()
    json_path = folder / "forecast.json"
    json_path.write_text(json.dumps(data, indent=1))
    csv_path = folder / "forecast.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        levels = list(data["quantiles"])
        writer.writerow(["date", "median", *[f"q{level}" for level in levels]])
        for k, date in enumerate(data["dates"]):
            writer.writerow([date, data["forecast"][k], *[data["quantiles"][level][k] for level in levels]])
    return {"forecast (JSON)": json_path, "forecast (CSV)": csv_path}


def summary_of(generation: Generation) -> str:
    """The forecast in words for the library (its trace's labels are only dates): the series, the
    settings, the median per step (the first 60) and the last step's 80% band."""
    result = generation.result
    series, forecast = result.series, result.forecast
    steps = ", ".join(f"{date} {value:.4g}" for date, value in zip(result.future_dates[:60], forecast[:60],
                                                                  strict=False))
    low, high = result.quantiles["0.1"][-1], result.quantiles["0.9"][-1]
    return (f"{series.name}: {len(series)} points, season {series.season} ({series.frequency}); a {len(forecast)}-step "
            f"forecast from {result.paths.shape[0]} sampled paths. Median: {steps}"
            f"{' …' if len(forecast) > 60 else ''}. The last step's 80% band: {low:.4g} to {high:.4g}.")
