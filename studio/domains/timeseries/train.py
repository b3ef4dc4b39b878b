"""Training tasks for studio.train.train: windows of series, each normalised on its own history.

A window is C history points and up to H future points of one series. Its Scaling is fitted on the
C history points only (as a forecast sees them), and the model learns the Gaussian likelihood of
every next normalised value over the whole window, teacher-forced (DeepAR). Pretraining draws
windows from packaged real series and from fresh synthetic series (data.synthetic); fine-tuning
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
from studio.domains.timeseries.data import SUFFIXES, read_series, synthetic
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
)
