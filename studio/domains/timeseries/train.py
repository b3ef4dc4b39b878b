"""Training tasks for studio.train.train: windows of series, each normalised on its own history.

A window is C history points and up to H future points of one series. Its Scaling is fitted on the
C history points only (as a forecast sees them), and the model learns the Gaussian likelihood of
every next normalised value over the whole window, teacher-forced (DeepAR). Pretraining draws
windows from packaged real series and from fresh synthetic series (`synthetic` below); fine-tuning
draws them from the user's series, with synthetic ones mixed in so a 100-point series does not
make the model forget what a season is.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from studio.domains.base import Training
from studio.domains.timeseries.codec import Series, SeriesCodec, fit_scaling
from studio.domains.timeseries.data import (
    SUFFIXES,
    read_series,
    shipped_airpassengers,
    shipped_co2,
    shipped_elec_equip,
    shipped_elnino,
    shipped_nile,
    shipped_sunspots,
    statsmodels_data,
)
from studio.domains.timeseries.model import gaussian_nll

HORIZON = 24  # future points per training window


@dataclass
class WindowBatch:
    inputs: torch.Tensor  # (B, L, INPUT_SIZE)
    targets: torch.Tensor  # (B, L - 1) the next normalised value after each step but the last
    weights: torch.Tensor  # (B, L - 1) 1 on the history, FUTURE_WEIGHT on the future part
    num_tokens: int = 0


FUTURE_WEIGHT = 2.0  # the steps a forecast is judged on count double


def window(series: Series, first: int, history: int, future: int, codec: SeriesCodec):
    """(inputs (L, X), targets (L-1,), weights (L-1,)) of series[first : first+history+future]."""
    part = series.values[first : first + history + future]
    start = (series.start + first) % max(series.season, 1)
    scaling = fit_scaling(part[:history], series.season, start)
    x = scaling.forward(part)
    inputs = codec.inputs(x, 0, scaling)
    weights = np.where(np.arange(1, len(part)) >= history, FUTURE_WEIGHT, 1.0)
    return inputs, x[1:].astype(np.float32), weights.astype(np.float32)


class WindowTask:
    """Random windows from `series` (and, with `synthetic_share` > 0, from fresh synthetic series)."""

    def __init__(self, series: list[Series], valid: list[Series], codec: SeriesCodec, batch_size: int = 32,
                 synthetic_share: float = 0.5, min_history: int = 24, max_history: int = 160, seed: int = 0):
        self.series, self.codec, self.batch_size, self.seed = series, codec, batch_size, seed
        self.synthetic_share = synthetic_share if series else 1.0
        self.min_history, self.max_history = min_history, max_history
        self.valid = [self._valid_window(s) for s in valid if len(s) >= 2 * 8]

    def _valid_window(self, series: Series):
        future = min(HORIZON, max(1, len(series) // 4))
        history = min(len(series) - future, self.max_history)
        return window(series, len(series) - history - future, history, future, self.codec)

    def train_batch(self, step: int, rank: int, world_size: int, device) -> WindowBatch:
        rng = np.random.default_rng([self.seed, step, rank])
        future = int(rng.integers(6, HORIZON + 1))
        if self.synthetic_share >= 1:
            history = int(rng.integers(self.min_history, self.max_history + 1))
        else:  # windows that fit the longest series
            highest = max(4, min(self.max_history, max(len(s) for s in self.series) - future))
            history = int(rng.integers(min(self.min_history, highest), highest + 1))
        length = history + future
        fitting = [s for s in self.series if len(s) >= length]
        rows = []
        for _ in range(self.batch_size):
            if fitting and rng.random() >= self.synthetic_share:
                series = fitting[int(rng.integers(len(fitting)))]
            else:
                series = synthetic(rng, length)
            first = int(rng.integers(0, len(series) - length + 1))
            rows.append(window(series, first, history, future, self.codec))
        inputs, targets, weights = (torch.from_numpy(np.stack(parts)) for parts in zip(*rows, strict=True))
        return WindowBatch(inputs.to(device), targets.to(device), weights.to(device),
                           num_tokens=self.batch_size * length)

    def loss(self, model, batch: WindowBatch) -> torch.Tensor:
        mean, scale, _ = model(batch.inputs)
        nll = gaussian_nll(mean[:, :-1], scale[:, :-1], batch.targets)
        return (nll * batch.weights).sum() / batch.weights.sum()

    @torch.no_grad()
    def evaluate(self, model) -> float:
        """Mean Gaussian NLL per future point of the validation windows (normalised units)."""
        total, count = 0.0, 0
        device = next(model.parameters()).device
        for inputs, targets, weights in self.valid:
            mean, scale, _ = model(torch.from_numpy(inputs)[None].to(device))
            future = torch.from_numpy(weights).to(device) > 1
            nll = gaussian_nll(mean[0, :-1], scale[0, :-1], torch.from_numpy(targets).to(device))[future]
            total += float(nll.sum())
            count += int(future.sum())
        return total / max(count, 1)


def fine_tune_task(series: Series, codec: SeriesCodec, seed: int = 0) -> WindowTask:
    """Windows of one user's series (its last points validate), a third synthetic."""
    if len(series) < 16:
        raise ValueError(f"{series.name} has {len(series)} points; fine-tuning needs at least 16.")
    return WindowTask([series], [series], codec, batch_size=16, synthetic_share=0.33,
                      min_history=min(24, len(series) // 2), max_history=160, seed=seed)


# ---------------------------------------------------------------- synthetic series for pretraining
def synthetic(rng: np.random.Generator, length: int | None = None) -> Series:
    """A random series with a level, a (damped, broken) trend, a season of random shape and
    strength, AR(1) noise, now and then an outlier or a level shift; multiplicative (exp of the
    sum) about half the time."""
    season = int(rng.choice([12, 12, 12, 4, 1, 52, 7]))
    length = length or int(rng.integers(40, 400 if season != 52 else 600))
    t = np.arange(length)
    slope = rng.normal(0, 0.01) * (rng.random() < 0.7)
    damping = rng.uniform(0.97, 1.0)
    trend = np.cumsum(slope * damping ** t)
    if rng.random() < 0.3:  # a change of slope
        at = rng.integers(length // 4, length)
        trend[at:] += np.cumsum(np.full(length - at, rng.normal(0, 0.01)))
    seasonal = np.zeros(length)
    if season > 1:
        harmonics = int(rng.integers(1, 4))
        strength = rng.uniform(0.0, 0.3)
        for k in range(1, harmonics + 1):
            seasonal += strength / k * np.sin(2 * np.pi * k * t / season + rng.uniform(0, 2 * np.pi))
        seasonal *= (1 + rng.normal(0, 0.002) * t).clip(0.2, 3)  # a slowly changing amplitude
    phi, sigma = rng.uniform(-0.2, 0.9), rng.uniform(0.005, 0.08)
    noise = np.zeros(length)
    shocks = rng.normal(0, sigma, length)
    for i in range(1, length):
        noise[i] = phi * noise[i - 1] + shocks[i]
    walk = np.cumsum(rng.normal(0, sigma * 0.5, length)) * (rng.random() < 0.4)
    y = trend + seasonal + noise + walk
    if rng.random() < 0.2:
        y[rng.integers(0, length)] += rng.choice([-1, 1]) * rng.uniform(0.2, 0.6)
    if rng.random() < 0.15:
        y[rng.integers(length // 3, length):] += rng.normal(0, 0.2)
    values = np.exp(y + rng.uniform(0, 8)) if rng.random() < 0.6 else (y * rng.uniform(1, 100) + rng.normal(0, 50))
    frequency = {12: "monthly", 4: "quarterly", 1: "yearly", 52: "weekly", 7: "daily"}[season]
    return Series(values, [f"t{i + 1}" for i in range(length)], "synthetic", season, frequency,
                  int(rng.integers(0, season)))


def real_training_series() -> list[Series]:
    """Packaged real series used for pretraining (never AirPassengers or electrical equipment, kept
    to check on; El Niño and CO2 only up to their last 10 years, kept to check on too)."""
    found = [shipped_sunspots(), shipped_nile()]
    elnino = shipped_elnino()
    found.append(elnino.head(len(elnino) - 120))
    co2 = shipped_co2()
    found.append(co2.head(len(co2) - 520))
    macro = statsmodels_data("macrodata")
    for column in ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "tbilrate", "unemp", "pop"):
        values = macro[column].to_numpy(np.float64)
        found.append(Series(values, [f"q{i}" for i in range(len(values))], f"macro {column}", 4, "quarterly", 0))
    return found


def held_out_series() -> list[Series]:
    """Monthly seasonal series of about 100-150 points that pretraining never saw, to check on."""
    elnino, co2 = shipped_elnino(), shipped_co2()
    co2_monthly = co2.values[-520:].reshape(-1, 4).mean(1)[-108:]  # ~4 weeks a step: ~monthly, last 9 years
    return [
        shipped_airpassengers(),
        shipped_elec_equip(),
        Series(elnino.values[-120:], elnino.dates[-120:], "El Niño, last 10 years", 12, "monthly", 0),
        Series(co2_monthly, [f"m{i}" for i in range(len(co2_monthly))], "CO2 4-weekly, last 108", 13, "4-weekly", 0),
    ]


# ---------------------------------------------------------------- training from a user's files
def prepare(files: list[Path], folder: Path) -> tuple[list[Path], list[dict]]:
    """The Train tab's files -> (the one series file --data is given, its description): the first
    file that reads as a series (checked here, so a bad upload is refused before a job starts)."""
    errors = []
    for path in files:
        if Path(path).suffix.lower() not in SUFFIXES:
            continue
        try:
            read_series(path)
        except ValueError as error:
            errors.append(str(error))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / Path(path).name
        if Path(path).resolve() != target.resolve():
            shutil.copyfile(path, target)
        data = target.read_bytes()
        return [target], [{"name": target.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}]
    raise ValueError(errors[0] if errors else "no CSV, TSV or JSON series among the files.")


TRAINING = Training(
    suffixes=frozenset(SUFFIXES), what="a series file (CSV, TSV or JSON: a date column and value columns)",
    prepare=prepare, shape_flags=lambda shape: ["--hidden-size", str(shape[0]), "--layers", str(shape[1])],
    hint="Your series: one CSV, TSV or JSON file with a date column and a column of numbers (the first such column "
         "is learnt; the shipped forecaster is fine-tuned on it)",
)
