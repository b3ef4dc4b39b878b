"""Forecasting: H future steps as sampled paths, with quantiles, through the model's own `step`.

The history (its last `context` points) is read teacher-forced in one pass (LSTMCore.trace; with
hooks, step by step so they see every step); then `paths` futures are sampled side by side (one
batch): each step draws the next normalised value from the predicted Gaussian with the path's own
noise (drawn up front from `seed`), and feeds it back. Values go back through the series' Scaling.
The trace is the history's and, after it, that of the sampled path nearest the median (the one
whose values lie closest to the per-step median in normalised units); the per-step predictions of
the forecast part are the median over paths of each step's predicted mean and scale.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import torch

from studio.domains.base import Generation, LoadedModel
from studio.domains.timeseries.codec import CLIP, Scaling, Series
from studio.domains.timeseries.model import NAME
from studio.trace import Trace

QUANTILES = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)  # the fan chart's 95 / 80 / 50% bands and the median
MAX_HORIZON = 520
MAX_PATHS = 2000


@dataclass
class ForecastSettings:
    series: Series | None = None  # the history (None: data.example_series(), a small seasonal series)
    horizon: int = 24  # steps to forecast
    paths: int = 100  # sampled futures (the quantiles are read off them)
    season: int = 0  # points per cycle (0: the series' own, from its dates)
    seed: int = 0


@dataclass
class TimeseriesDetail:
    """The trace's domain record."""

    season: int
    history: int  # steps read from the series (the rest are the median path's)
    horizon: int
    path: int  # the path the trace follows


@dataclass
class ForecastResult:
    series: Series  # the history as read
    first: int  # position of the first point the model read (a long history is cut to the codec's context)
    scaling: Scaling
    paths: np.ndarray  # (P, H) sampled future values
    median_path: int  # the path the trace follows
    quantiles: dict[str, np.ndarray]  # "0.1" -> (H,) per QUANTILES
    future_dates: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def forecast(self) -> np.ndarray:
        """The median per step."""
        return self.quantiles["0.5"]

    def to_json(self) -> dict:
        return {"series": self.series.name, "season": self.series.season, "horizon": int(self.paths.shape[1]),
                "paths": int(self.paths.shape[0]), "dates": self.future_dates,
                "forecast": [float(v) for v in self.forecast],
                "quantiles": {level: [float(v) for v in values] for level, values in self.quantiles.items()},
                "notes": self.notes}


def clean_settings(settings: ForecastSettings, series: Series) -> tuple[int, int, list[str]]:
    """(horizon, paths, notes): the settings within bounds, and what was changed."""
    notes = []
    horizon = int(np.clip(settings.horizon, 1, MAX_HORIZON))
    paths = int(np.clip(settings.paths, 2, MAX_PATHS))
    if horizon != settings.horizon:
        notes.append(f"horizon {settings.horizon} set to {horizon} (1..{MAX_HORIZON})")
    if paths != settings.paths:
        notes.append(f"sample paths {settings.paths} set to {paths} (2..{MAX_PATHS})")
    return horizon, paths, notes


def future_labels(series: Series, horizon: int) -> list[str]:
    """Dates after the last point: months and years counted on when the last date reads so, else +1, +2, ..."""
    from studio.domains.timeseries.data import parse_date

    parsed = parse_date(series.dates[-1]) if series.dates else None
    if parsed and series.frequency == "monthly" and parsed[0] == "month":
        return [f"{(parsed[1] + k) // 12}-{(parsed[1] + k) % 12 + 1:02d}" for k in range(1, horizon + 1)]
    if parsed and series.frequency in ("monthly", "weekly", "daily") and parsed[0] == "day":
        last = dt.date.fromordinal(parsed[1])
        if series.frequency == "monthly":
            months = last.year * 12 + last.month - 1
            return [f"{(months + k) // 12}-{(months + k) % 12 + 1:02d}" for k in range(1, horizon + 1)]
        days = 7 if series.frequency == "weekly" else 1
        return [(last + dt.timedelta(days=days * k)).isoformat() for k in range(1, horizon + 1)]
    if parsed and series.frequency == "yearly" and parsed[0] == "year":
        return [str(parsed[1] + k) for k in range(1, horizon + 1)]
    return [f"+{k}" for k in range(1, horizon + 1)]


def with_season(series: Series, season: int) -> Series:
    if not season or season == series.season:
        return series
    return Series(series.values, series.dates, series.name, int(season), series.frequency, 0, list(series.notes))


@torch.no_grad()
def read_history(loaded: LoadedModel, series: Series, hooks=None):
    """(inputs (T, X), scaling, first, mean (T,), scale (T,), state, trace layers): the history read.
    Without hooks one fused pass with the exact trace; with hooks step by step (batch 1)."""
    model, codec, device = loaded.model, loaded.codec, loaded.device
    inputs, scaling, first = codec.encode(series)
    x = torch.from_numpy(inputs).to(device)
    if not hooks:
        mean, scale, state, gates = model.trace(x[None])
        layers = [{name: g[name][0].float().cpu().numpy() for name in g} for g in gates]
        return inputs, scaling, first, mean[0].cpu().numpy(), scale[0].cpu().numpy(), state, layers
    state = model.core.initial_state(1, device)
    means, scales, steps = [], [], []
    for t in range(len(inputs)):
        mean, scale, state, gates = model.step(x[t : t + 1], state, hooks, t)
        means.append(float(mean[0]))
        scales.append(float(scale[0]))
        steps.append(gates)
    layers = [{name: torch.cat([s[k][name] for s in steps]).float().cpu().numpy() for name in steps[0][k]}
              for k in range(len(steps[0]))]
    return inputs, scaling, first, np.array(means, np.float32), np.array(scales, np.float32), state, layers


@torch.no_grad()
def generate(loaded: LoadedModel, settings: ForecastSettings, hooks=None) -> Generation:
    from studio.domains.timeseries.data import example_series

    series = with_season(settings.series if settings.series is not None else example_series(), settings.season)
    horizon, count, notes = clean_settings(settings, series)
    notes = list(series.notes) + notes
    model, codec, device = loaded.model, loaded.codec, loaded.device
    inputs, scaling, first, mean, scale, state, layers = read_history(loaded, series, hooks)
    steps = len(inputs)
    if first:
        notes.append(f"the model read the last {steps} of {len(series)} points")
    noise = torch.randn(count, horizon, generator=torch.Generator().manual_seed(int(settings.seed)),
                        dtype=torch.float64)
    h, c = state
    state = (h.expand(-1, count, -1).contiguous(), c.expand(-1, count, -1).contiguous())
    mu = torch.full((count,), float(mean[-1]), dtype=torch.float64)
    sigma = torch.full((count,), float(scale[-1]), dtype=torch.float64)
    values = torch.empty(count, horizon, dtype=torch.float64)
    step_means, step_scales, step_gates = [], [], []
    for k in range(horizon):
        values[:, k] = (mu + sigma * noise[:, k]).clamp(-CLIP, CLIP)
        if k == horizon - 1:
            break  # the last value drawn is not read: nothing follows it
        phase = codec.phase_features(np.array([steps + k]), scaling)
        x = torch.cat([values[:, k : k + 1], torch.from_numpy(phase).expand(count, -1)], 1).to(device, torch.float32)
        out_mean, out_scale, state, gates = model.step(x, state, hooks, steps + k)
        mu, sigma = out_mean.double().cpu(), out_scale.double().cpu()
        step_means.append(mu)
        step_scales.append(sigma)
        step_gates.append(gates)
    normalised = values.numpy()
    median = np.median(normalised, 0)
    path = int(np.argmin(np.abs(normalised - median).sum(1)))
    future = scaling.inverse(normalised, steps)  # (P, H)
    quantiles = {f"{q:g}": np.quantile(future, q, axis=0) for q in QUANTILES}
    future_dates = future_labels(series, horizon)
    for gates in step_gates:
        for layer, gate in zip(layers, gates, strict=True):
            for name in gate:
                layer[name] = np.concatenate([layer[name], gate[name][path : path + 1].float().cpu().numpy()])
    distributions = {
        "mean": np.concatenate([mean, [float(m.median()) for m in step_means]]).astype(np.float32),
        "scale": np.concatenate([scale, [float(s.median()) for s in step_scales]]).astype(np.float32),
    }
    labels = list(series.dates[first:]) + future_dates[: horizon - 1]
    trace = Trace(layers, labels, domain=NAME, model=loaded.name, prompt_length=steps,
                  layer_names=list(loaded.layer_names),
                  detail=TimeseriesDetail(scaling.season, steps, horizon, path))
    result = ForecastResult(series, first, scaling, future, path, quantiles, future_dates, notes)
    return Generation(result, trace, distributions, settings)
