"""Pictures and files of a forecast: the fan chart (an inline SVG for the tab, a matplotlib figure
for the CLI's picture), saliency painted on the history, the viewer's strip (the series itself, one
dot per step), the JSON and CSV downloads."""

from __future__ import annotations

import csv
import html
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


# The tab's chart: SVG drawn from the arrays, no matplotlib on the click's path (a figure plus the
# PNG that gr.Plot encodes cost about 100 ms a click; this string costs about 1 ms).
SVG_WIDTH, SVG_HEIGHT = 1000, 360
SVG_MARGIN = (64, 36, 56, 42)  # left, right, top, bottom
BLUE, ORANGE, INK, RED = "#1f77b4", "#c85a00", "#333", "#b71c1c"  # orange darkened to pass AA as legend text


def nice_ticks(low: float, high: float, count: int = 8) -> np.ndarray:
    """Round values (1, 2 or 5 times a power of ten apart) covering low..high."""
    raw = (high - low) / max(count, 1) or 1.0
    power = 10 ** np.floor(np.log10(raw))
    step = power * min((m for m in (1, 2, 5, 10) if m * power >= raw), default=10)
    return np.arange(np.ceil(low / step) * step, high + step * 1e-9, step)


def _points(xs, ys) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def fan_chart_svg(generation: Generation, show_history: int = 240, saliency: np.ndarray | None = None,
                  step: int | None = None) -> str:
    """`fan_chart` as an inline SVG (the same history, bands, median, traced path, saliency and
    step), with a text alternative for screen readers."""
    result = generation.result
    series, first, history = result.series, result.first, result.series.values
    n, horizon = len(history), result.paths.shape[1]
    shown = max(0, n - show_history)
    path = result.paths[result.median_path]
    q = {level: np.asarray(values, np.float64) for level, values in result.quantiles.items()}
    seen = np.concatenate([history[shown:], q["0.025"], q["0.975"], path])
    low, high = float(np.nanmin(seen)), float(np.nanmax(seen))
    pad = (high - low) * 0.05 or 1.0
    low, high = low - pad, high + pad
    left, right, top, bottom = SVG_MARGIN
    width, height = SVG_WIDTH - left - right, SVG_HEIGHT - top - bottom
    span = max(n + horizon - 1 - shown, 1)

    def x(at):
        return left + (np.asarray(at, np.float64) - shown) / span * width

    def y(value):
        return top + (high - np.asarray(value, np.float64)) / (high - low) * height

    future = np.arange(n, n + horizon)
    title = f"{series.name}: {horizon}-step forecast from {result.paths.shape[0]} sampled paths"
    summary = (f"{title}. History of {n} points ({series.dates[0]} to {series.dates[-1]}), the last {n - shown} "
               f"drawn; median forecast from {result.forecast[0]:.4g} to {result.forecast[-1]:.4g}; the 80% "
               f"interval at the last step {q['0.1'][-1]:.4g} to {q['0.9'][-1]:.4g}.")
    parts = [f'<svg viewBox="0 0 {SVG_WIDTH} {SVG_HEIGHT}" width="100%" role="img" aria-label="{html.escape(summary)}" '
             f'font-family="sans-serif" font-size="11" style="background:#fff;display:block;max-width:{SVG_WIDTH}px">',
             f'<rect width="{SVG_WIDTH}" height="{SVG_HEIGHT}" fill="#fff"/>',
             f'<text x="{SVG_WIDTH / 2}" y="18" text-anchor="middle" font-size="14" fill="{INK}">'
             f'{html.escape(title)}</text>']
    for value in nice_ticks(low, high):
        parts.append(f'<line x1="{left}" x2="{left + width}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="{INK}">{value:.6g}</text>')
    dates = list(series.dates) + list(result.future_dates)
    for tick in np.linspace(shown, n + horizon - 1, 8).astype(int):
        parts.append(f'<text x="{x(tick):.1f}" y="{top + height + 16}" text-anchor="middle" fill="{INK}">'
                     f'{html.escape(dates[tick]) if tick < len(dates) else ""}</text>')
    for low_q, high_q, _, alpha in BANDS:
        outline = _points(np.concatenate([x(future), x(future[::-1])]),
                          np.concatenate([y(q[f"{low_q:g}"]), y(q[f"{high_q:g}"][::-1])]))
        parts.append(f'<polygon points="{outline}" fill="{BLUE}" fill-opacity="{alpha}"/>')
    parts += [f'<polyline points="{_points(x(np.arange(shown, n)), y(history[shown:]))}" fill="none" stroke="{INK}" '
              'stroke-width="1.2"/>',
              f'<polyline points="{_points(x(future), y(result.forecast))}" fill="none" stroke="{BLUE}" '
              'stroke-width="1.8"/>',
              f'<polyline points="{_points(x(future), y(path))}" fill="none" stroke="{ORANGE}" stroke-width="1" '
              'stroke-dasharray="4 3"/>']
    if saliency is not None:  # the history's points and the traced path's (those read before the step)
        weights = np.abs(np.asarray(saliency, np.float64))
        weights = weights / (weights.max() or 1.0)
        positions = first + np.arange(len(weights))
        values = np.array([history[p] if p < n else path[p - n] for p in positions])
        for at, value, weight in zip(positions, values, weights, strict=True):
            if at >= shown:
                parts.append(f'<circle cx="{x(at):.1f}" cy="{y(value):.1f}" r="{2 + 4 * weight:.1f}" fill="{RED}" '
                             f'fill-opacity="{0.25 + 0.75 * weight:.2f}"/>')
    if step is not None:
        parts.append(f'<line x1="{x(first + step + 1):.1f}" x2="{x(first + step + 1):.1f}" y1="{top}" '
                     f'y2="{top + height}" stroke="{RED}" stroke-dasharray="2 2"/>')
    legend = [("history", INK, ""), ("median", BLUE, ""), ("traced path", ORANGE, "4 3")]
    legend += [(f"{label} interval", None, alpha) for _, _, label, alpha in BANDS]
    if saliency is not None:
        legend.append(("what drove the step", RED, None))
    for k, (label, colour, style) in enumerate(legend):
        lx, ly = left + (k % 4) * 150, 25 + (k // 4) * 14
        if colour is None:
            mark = f'<rect x="{lx}" y="{ly}" width="18" height="8" fill="{BLUE}" fill-opacity="{style}"/>'
        elif style is None:
            mark = f'<circle cx="{lx + 9}" cy="{ly + 4}" r="4" fill="{colour}"/>'
        else:
            mark = (f'<line x1="{lx}" x2="{lx + 18}" y1="{ly + 4}" y2="{ly + 4}" stroke="{colour}" stroke-width="2" '
                    f'stroke-dasharray="{style}"/>')
        parts.append(f'{mark}<text x="{lx + 24}" y="{ly + 8}" fill="{INK}">{label}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#999"/></svg>')
    return "".join(parts)


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
