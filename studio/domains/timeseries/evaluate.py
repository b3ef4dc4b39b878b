"""Scoring forecasts, the contract's score/fused/features/explainable, the tiny model and example.

Metrics (the M4 competition's, with the quantile loss of probabilistic forecasting):
- MASE: mean absolute error over the horizon divided by the in-sample mean absolute error of the
  seasonal naive forecast (lag = the season: 12 monthly, 52 weekly, 4 quarterly, 1 yearly) on the
  history alone.
- sMAPE: 200/H * sum |y - f| / (|y| + |f|), in percent.
- pinball: the mean quantile loss over the levels 0.1, 0.5, 0.9, divided by the mean |history|
  (scale-free: comparable across series).
- coverage80: the share of held-out points inside the 80% interval (0.1 .. 0.9 quantiles).
The baselines (seasonal naive, AutoETS, AutoARIMA) are statsforecast's; its intervals give their
0.1 / 0.9 quantiles and the point forecast their median.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from studio.domains.base import LoadedModel, Scored
from studio.domains.timeseries.codec import Series, SeriesCodec
from studio.domains.timeseries.generate import ForecastSettings, TimeseriesDetail, generate
from studio.domains.timeseries.model import NAME, ForecastModel, ForecastModelConfig, gaussian_nll
from studio.trace import Trace

PINBALL_LEVELS = (0.1, 0.5, 0.9)
BASELINES = ("seasonal_naive", "ets", "arima")
BASELINE_CONTEXT = 150  # points of history the statistical baselines are fitted on
BASELINE_TITLES = {"model": "LSTM (this model)", "seasonal_naive": "seasonal naive", "ets": "AutoETS",
                   "arima": "AutoARIMA"}


# ---------------------------------------------------------------- metrics
def mase_scale(history: np.ndarray, season: int) -> float:
    lag = season if len(history) > season else 1
    errors = np.abs(history[lag:] - history[:-lag])
    scale = float(errors.mean()) if len(errors) else 0.0
    return scale if scale > 0 else max(float(np.abs(history).mean()), 1e-12)


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.where(denominator > 0, np.abs(actual - forecast) / np.where(denominator > 0, denominator, 1), 0.0)
    return float(200 * ratio.mean())


def pinball(actual: np.ndarray, quantiles: dict[float, np.ndarray]) -> float:
    losses = [np.mean(np.maximum(q * (actual - f), (q - 1) * (actual - f))) for q, f in quantiles.items()]
    return float(np.mean(losses))


def scores(history: np.ndarray, actual: np.ndarray, quantiles: dict[float, np.ndarray], season: int) -> dict:
    """{"mase", "smape", "pinball", "coverage80"} of one forecast (quantiles: 0.1, 0.5, 0.9 at least)."""
    median = quantiles[0.5]
    inside = (actual >= quantiles[0.1]) & (actual <= quantiles[0.9])
    return {"mase": float(np.abs(actual - median).mean() / mase_scale(history, season)),
            "smape": smape(actual, median),
            "pinball": (pinball(actual, {q: quantiles[q] for q in PINBALL_LEVELS})
                        / max(float(np.abs(history).mean()), 1e-12)),
            "coverage80": float(inside.mean())}


def baseline_quantiles(name: str, history: np.ndarray, horizon: int, season: int) -> dict[float, np.ndarray]:
    """statsforecast's forecast of `name` (BASELINES) as {0.1, 0.5, 0.9: (H,)}, fitted on the
    history's last BASELINE_CONTEXT points (AutoARIMA's search grows with the length: ~15 s at 500
    points on a busy core)."""
    import warnings

    from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

    history = np.asarray(history, np.float64)[-BASELINE_CONTEXT:]
    season = season if len(history) > 2 * season else 1
    model = {"seasonal_naive": lambda: SeasonalNaive(season_length=max(season, 1)),
             "ets": lambda: AutoETS(season_length=max(season, 1)),
             "arima": lambda: AutoARIMA(season_length=max(season, 1))}[name]()
    with warnings.catch_warnings():  # the ARIMA search's convergence notes are its own business
        warnings.simplefilter("ignore")
        out = model.forecast(y=history, h=horizon, level=[80])
    return {0.1: np.asarray(out["lo-80"]), 0.5: np.asarray(out["mean"]), 0.9: np.asarray(out["hi-80"])}


def model_quantiles(loaded: LoadedModel, history: Series, horizon: int, paths: int = 100, seed: int = 0):
    result = generate(loaded, ForecastSettings(history, horizon, paths, 0, seed)).result
    return {q: result.quantiles[f"{q:g}"] for q in PINBALL_LEVELS}


@dataclass
class Backtest:
    """Rolling-origin backtest: per method, the scores averaged over the origins."""

    origins: list[int]  # positions of the first forecast point of each fold
    horizon: int
    rows: dict[str, dict]  # method -> {"mase", "smape", "pinball", "coverage80"}
    forecasts: dict[str, list[dict]]  # method -> per origin {0.1, 0.5, 0.9: (H,)}

    def table(self) -> list[list]:
        return [[BASELINE_TITLES[m], round(r["mase"], 3), round(r["smape"], 2), round(r["pinball"], 4),
                 round(r["coverage80"], 2)]
                for m, r in self.rows.items()]


BACKTEST_COLUMNS = ["method", "MASE", "sMAPE %", "pinball (scaled)", "80% coverage"]


def backtest_fold(loaded: LoadedModel, series: Series, origin: int, horizon: int, paths: int = 100, seed: int = 0,
                  methods: tuple[str, ...] = ("model",) + BASELINES) -> dict[str, tuple[dict, dict]]:
    """One fold: per method, (scores, quantiles) of its forecast of `horizon` points from `origin`,
    seeing only the points before it. A module-level function of plain arguments, so a worker
    process can run it (studio.workers.call_all)."""
    history = series.head(origin)
    actual = series.values[origin : origin + horizon]
    found = {}
    for method in methods:
        quantiles = (model_quantiles(loaded, history, horizon, paths, seed) if method == "model"
                     else baseline_quantiles(method, history.values, horizon, series.season))
        found[method] = (scores(history.values, actual, quantiles, series.season), quantiles)
    return found


def backtest(loaded: LoadedModel, series: Series, horizon: int, folds: int = 2, paths: int = 100, seed: int = 0,
             methods: tuple[str, ...] = ("model",) + BASELINES, run_folds=None) -> Backtest:
    """Each fold forecasts `horizon` points from an origin seeing only the points before it; the
    origins are the last `folds` multiples of `horizon` before the end. `run_folds(calls)`: the
    results of backtest_fold(loaded, *args) for each args in `calls`, in order (the tab runs them at
    once in worker processes: AutoARIMA's search is most of the time, one fold per core); by
    default one after the other here."""
    horizon = int(max(1, min(horizon, len(series) // 3)))
    origins = [len(series) - horizon * k for k in range(folds, 0, -1) if len(series) - horizon * k >= max(8, horizon)]
    if not origins:
        raise ValueError(f"{series.name} has {len(series)} points: too few for a backtest of {horizon} steps.")
    calls = [(series, origin, horizon, paths, seed, methods) for origin in origins]
    found = run_folds(calls) if run_folds is not None else [backtest_fold(loaded, *args) for args in calls]
    rows = {m: {key: float(np.mean([fold[m][0][key] for fold in found])) for key in found[0][m][0]} for m in methods}
    return Backtest(origins, horizon, rows, {m: [fold[m][1] for fold in found] for m in methods})


# ---------------------------------------------------------------- the contract
def _read(loaded: LoadedModel, sequence: Series):
    inputs, scaling, first = loaded.codec.encode(sequence)
    return torch.from_numpy(inputs).to(loaded.device)[None], scaling, first


@torch.no_grad()
def score(loaded: LoadedModel, sequence: Series) -> Scored:
    """Teacher-forced over a series: the exact trace and per step the predicted Gaussian of the next
    normalised value ("mean", "scale")."""
    x, scaling, first = _read(loaded, sequence)
    mean, scale, _, gates = loaded.model.trace(x)
    trace = Trace.from_sequence(gates, list(sequence.dates[first:]), domain=NAME, model=loaded.name,
                                prompt_length=x.shape[1], layer_names=list(loaded.layer_names),
                                detail=TimeseriesDetail(scaling.season, x.shape[1], 0, 0))
    notes = list(sequence.notes) + ([f"the model read the last {x.shape[1]} of {len(sequence)} points"] if first
                                    else [])
    return Scored(trace, {"mean": mean[0].cpu().numpy(), "scale": scale[0].cpu().numpy()}, sequence, notes)


@torch.no_grad()
def fused(loaded: LoadedModel, sequence: Series) -> dict[str, np.ndarray]:
    x, _, _ = _read(loaded, sequence)
    mean, scale, _ = loaded.model(x)
    return {"mean": mean[0].cpu().numpy(), "scale": scale[0].cpu().numpy()}


def step_divergence(plain: dict, changed: dict) -> tuple[np.ndarray, str]:
    """Per step, the KL between the two predicted Gaussians of the next normalised value."""
    steps = min(len(plain["mean"]), len(changed["mean"]))
    m1, s1 = plain["mean"][:steps].astype(np.float64), plain["scale"][:steps].astype(np.float64)
    m2, s2 = changed["mean"][:steps].astype(np.float64), changed["scale"][:steps].astype(np.float64)
    values = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    return values, "KL between the two predicted Gaussians of the next value (nats, normalised units)"


def explainable(loaded: LoadedModel, sequence: Series):
    """(Scored, studio.explain.Explainable): the input at step t is what the model read there
    (normalised value, sin and cos of the season phase); row t of the log-likelihood is the
    Gaussian log-density of the actual next normalised value (0 at the last step). guesses(t): the
    predicted next value's bands split at its 0.1, 0.5 and 0.9 quantiles (p: the mass in each), the
    Gaussian's entropy, and
    "value": {"mean", "low80", "high80"} in the series' own units."""
    from studio.explain import Explainable, core_weights

    scored = score(loaded, sequence)
    x, scaling, first = _read(loaded, sequence)
    model = loaded.model
    targets = x[:, 1:, 0]

    def log_likelihood(inputs):
        mean, scale, _ = model(inputs)
        ll = -gaussian_nll(mean[:, :-1], scale[:, :-1], targets.expand(len(inputs), -1))
        return torch.cat([ll, torch.zeros_like(ll[:, :1])], 1)

    mean, scale = scored.distributions["mean"].astype(np.float64), scored.distributions["scale"].astype(np.float64)

    def guesses(step):
        position = step + 1
        centre = float(scaling.inverse(np.array([mean[step]]), position)[0])
        low = float(scaling.inverse(np.array([mean[step] - 1.2816 * scale[step]]), position)[0])
        high = float(scaling.inverse(np.array([mean[step] + 1.2816 * scale[step]]), position)[0])
        bands = [(f"{low:.4g} to {centre:.4g}", 0.4), (f"{centre:.4g} to {high:.4g}", 0.4), (f"below {low:.4g}", 0.1),
                 (f"above {high:.4g}", 0.1)]
        entropy = float(0.5 * np.log(2 * np.pi * np.e * scale[step] ** 2))
        return {"topk": [{"token": name, "p": p} for name, p in bands], "entropy": entropy,
                "value": {"mean": centre, "low80": low, "high80": high}}

    layer_inputs = [x[0].cpu().numpy()] + [scored.trace.layers[k]["h"] for k in range(scored.trace.num_layers - 1)]
    return scored, Explainable(x, log_likelihood, layer_inputs, core_weights(model.core), guesses, None,
                               list(scored.trace.labels))


def drivers(loaded: LoadedModel, sequence: Series, step: int) -> np.ndarray:
    """(step + 1,): |d predicted mean at `step` / d value read at t| for t = 0..step (normalised units):
    how far the prediction for point step+1 moves per unit moved of each past point. Plain
    sensitivity, not gradient x input: in normalised units a point far below the last level (the
    early part of a trending series) would otherwise look important for being far away."""
    x, _, _ = _read(loaded, sequence)
    step = int(step)
    if not 0 <= step < x.shape[1]:
        raise ValueError(f"step {step} is outside 0..{x.shape[1] - 1}")
    x = x[:, : step + 1].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        mean, _, _ = loaded.model(x)
        mean[0, step].backward()
    return x.grad[0, :, 0].abs().double().cpu().numpy()


def strongest_lags(amounts: np.ndarray, step: int, season: int, top: int = 3) -> dict:
    """{"top": the `top` lags by amount, each {"lag", "share"}; "seasonal": the strongest whole-season lag
    {"lag", "share"} (None without a season or history that long)} for the prediction made at `step`."""
    amounts = np.abs(np.asarray(amounts, np.float64))[: step + 1]
    total = amounts.sum() or 1.0
    lags = step + 1 - np.arange(len(amounts))  # lag of each point before the predicted one
    order = np.argsort(-amounts, kind="stable")[:top]
    found = {"top": [{"lag": int(lags[k]), "share": float(amounts[k] / total)} for k in order], "seasonal": None}
    seasonal = np.flatnonzero((lags % max(season, 1) == 0) & (season > 1))
    if len(seasonal):
        k = seasonal[np.argmax(amounts[seasonal])]
        found["seasonal"] = {"lag": int(lags[k]), "share": float(amounts[k] / total)}
    return found


# ---------------------------------------------------------------- features for the probes
def features(sequence: Series, scored: Scored | None = None) -> dict[str, np.ndarray]:
    """Per point read (the last `context` of the series, as score reads them): "level" (the
    deseasonalised value, normalised), "trend" (its change over the last season), "season phase"
    (0..1), "month" (1..12; monthly series only), "peak" / "trough" (the highest / lowest point of
    its season), "outlier" (1 where the point lies more than 3 robust deviations from a moving median)."""
    codec = SeriesCodec() if scored is None else None
    steps = scored.trace.steps if scored is not None else min(len(sequence), codec.context)
    values = np.asarray(sequence.values[len(sequence) - steps :], np.float64)
    from studio.domains.timeseries.codec import fit_scaling

    start = (sequence.start + len(sequence) - steps) % max(sequence.season, 1)
    scaling = fit_scaling(values, sequence.season, start)
    level = scaling.forward(values)
    season = max(scaling.season, 1)
    lag = min(season, steps - 1) if steps > 1 else 0
    trend = np.zeros(steps)
    if lag:
        trend[lag:] = (level[lag:] - level[:-lag]) / lag
    phase = scaling.phase(np.arange(steps)) / season
    peak, trough = np.zeros(steps), np.zeros(steps)
    for first in range(0, steps, season):
        part = values[first : first + season]
        if season > 1 and len(part) == season:
            peak[first + int(np.argmax(part))] = 1
            trough[first + int(np.argmin(part))] = 1
    window = max(5, season + 1 if season % 2 == 0 else season)
    padded = np.pad(values, window // 2, mode="edge")
    medians = np.array([np.median(padded[k : k + window]) for k in range(steps)])
    residual = values - medians
    spread = 1.4826 * np.median(np.abs(residual - np.median(residual))) or 1.0
    tracks = {"level": level.astype(np.float32), "trend": trend.astype(np.float32),
              "season phase": phase.astype(np.float32),
              "peak": peak.astype(np.float32), "trough": trough.astype(np.float32),
              "outlier": (np.abs(residual) > 3 * spread).astype(np.float32)}
    if sequence.frequency == "monthly":
        tracks["month"] = (scaling.phase(np.arange(steps)) + 1).astype(np.float32)
    return tracks


# ---------------------------------------------------------------- tiny model, example
def tiny(seed: int = 0):
    torch.manual_seed(seed)
    model = ForecastModel(ForecastModelConfig(hidden_size=8, num_layers=2))
    for parameter in model.head.parameters():  # the real head starts at zero; a tiny random one must not
        torch.nn.init.normal_(parameter, std=0.3)
    return model.eval(), SeriesCodec()


def example():
    from studio.domains.timeseries.data import example_series

    series = example_series(36)
    return series, ForecastSettings(series=series, horizon=8, paths=8, seed=0)


def with_history(settings: ForecastSettings, series: Series) -> ForecastSettings:
    return replace(settings, series=series)
