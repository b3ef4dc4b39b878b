"""The time-series format and how the model reads a series.

A `Series` is a regular sequence of real values with one date label per point:
    values  (T,) float64, no NaN (gaps are filled by the reader and reported in `notes`)
    dates   T strings as the file wrote them (or the reader made them: "t1", "t2", ...)
    season  points per seasonal cycle: 12 monthly, 52 weekly, 4 quarterly, 7 daily, 1 yearly/none
    start   the season phase of the first point (0 = January for a monthly series that starts there)

The model never sees raw values. `fit_scaling(values, season)` makes a per-series `Scaling`, the
exponential-smoothing-hybrid idea of the M4 winner (Smyl 2020) in its simplest form: the log of a
positive series (so multiplicative seasons and trends become additive), minus additive seasonal
indices from a classical decomposition (centred moving average, mean deviation per phase, recent
cycles weighing more), minus the
level of the last season, divided by the spread of the deseasonalised values. The LSTM reads and
predicts those normalised values; `Scaling.inverse` puts them back. The scaling is fitted on the
history alone, so a forecast or a backtest never sees a point after its origin.

Per step the model reads INPUT_SIZE numbers: the normalised value and the season phase as a point on
the unit circle (sin, cos; both 0 for a series without a season).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INPUT_SIZE = 3  # normalised value, sin(phase), cos(phase)
SEASONS = {"monthly": 12, "weekly": 52, "quarterly": 4, "daily": 7, "yearly": 1, "none": 1}
HALF_LIFE_SEASONS = 2.0  # seasonal indices: a cycle this many seasons back weighs half as much as the last
CLIP = 12.0  # normalised values beyond this many spreads are clipped (a typo's 1e9 must not blow the state up)


@dataclass
class Series:
    values: np.ndarray  # (T,) float64
    dates: list[str]  # T labels
    name: str = "series"
    season: int = 12  # points per cycle (1: none)
    frequency: str = "monthly"  # a key of SEASONS, or "irregular"
    start: int = 0  # phase of the first point
    notes: list[str] = field(default_factory=list)  # what the reader adjusted, in plain words

    def __len__(self) -> int:
        return len(self.values)

    def head(self, n: int) -> Series:
        """The first n points (a backtest's history)."""
        return Series(self.values[:n].copy(), self.dates[:n], self.name, self.season, self.frequency, self.start, [])


@dataclass
class Scaling:
    """Per-series normalisation: x = (log?(y) - seasonal[phase] - level) / scale."""

    log: bool  # values were positive: read in log space
    seasonal: list[float]  # additive indices per phase (season long), in (log) value space
    level: float
    scale: float
    start: int = 0  # phase of point 0

    @property
    def season(self) -> int:
        return len(self.seasonal)

    def phase(self, index: np.ndarray) -> np.ndarray:
        return (np.asarray(index) + self.start) % self.season

    def forward(self, values: np.ndarray, first: int = 0) -> np.ndarray:
        """Values at positions first, first+1, ... -> normalised (clipped to +-CLIP)."""
        values = np.asarray(values, np.float64)
        y = np.log(np.maximum(values, 1e-12)) if self.log else values
        s = np.asarray(self.seasonal)[self.phase(np.arange(first, first + len(values)))]
        return np.clip((y - s - self.level) / self.scale, -CLIP, CLIP)

    def inverse(self, x: np.ndarray, first: int) -> np.ndarray:
        """Normalised values (..., n) at positions first.. -> values."""
        x = np.asarray(x, np.float64)
        s = np.asarray(self.seasonal)[self.phase(np.arange(first, first + x.shape[-1]))]
        y = x * self.scale + self.level + s
        return np.exp(np.clip(y, -700, 700)) if self.log else y


def seasonal_indices(y: np.ndarray, season: int) -> np.ndarray:
    """Additive seasonal indices (season,), summing to 0: a classical decomposition's (the series
    minus its centred moving average, averaged per phase) with recent seasons weighing more (weights
    halve every HALF_LIFE_SEASONS cycles back, as exponential smoothing lets a season drift); zeros
    when the series is shorter than two cycles (too little to tell a season from noise)."""
    if season <= 1 or len(y) < 2 * season:
        return np.zeros(max(season, 1))
    # 2 x m moving average for an even season, m for an odd one: centred either way
    kernel = np.r_[0.5, np.ones(season - 1), 0.5] / season if season % 2 == 0 else np.ones(season) / season
    trend = np.convolve(y, kernel, mode="valid")
    offset = season // 2
    detrended = y[offset : offset + len(trend)] - trend
    positions = np.arange(len(detrended)) + offset
    weights = 0.5 ** ((positions.max() - positions) / (HALF_LIFE_SEASONS * season))
    phases = positions % season
    indices = np.array([np.average(detrended[phases == p], weights=weights[phases == p]) if np.any(phases == p) else 0.0
                        for p in range(season)])
    return indices - indices.mean()


def fit_scaling(values: np.ndarray, season: int, start: int = 0) -> Scaling:
    """The Scaling of a history (only these values are looked at)."""
    values = np.asarray(values, np.float64)
    log = bool(np.all(values > 0))
    y = np.log(values) if log else values
    season = max(int(season), 1)
    indices = seasonal_indices(y, season)
    # indices are by position from 0; rotate them to phases (position k has phase (k + start) % season)
    seasonal = np.zeros(season)
    for k in range(season):
        seasonal[(k + start) % season] = indices[k]
    deseasoned = y - seasonal[(np.arange(len(y)) + start) % season]
    recent = deseasoned[-max(season, 3):]
    level = float(recent.mean())
    scale = float(np.std(deseasoned))
    if not np.isfinite(scale) or scale < 1e-8 * max(1.0, abs(level)):
        scale = max(1e-8 * max(1.0, abs(level)), 1e-12)  # a constant series
    return Scaling(log, seasonal.tolist(), level, scale, start)


@dataclass
class SeriesCodec:
    """Series <-> the model's inputs. `context`: the most recent points the model reads (longer
    histories are cut: the state forgets far-back points anyway, and the trace stays small)."""

    context: int = 520

    def card(self) -> dict:
        return {"context": self.context}

    @classmethod
    def from_card(cls, card: dict) -> SeriesCodec:
        return cls(**card)

    @staticmethod
    def phase_features(positions: np.ndarray, scaling: Scaling) -> np.ndarray:
        """(n, 2) sin, cos of each position's season phase (zeros without a season)."""
        if scaling.season <= 1:
            return np.zeros((len(positions), 2))
        angle = 2 * np.pi * scaling.phase(positions) / scaling.season
        return np.stack([np.sin(angle), np.cos(angle)], 1)

    def inputs(self, x: np.ndarray, first: int, scaling: Scaling) -> np.ndarray:
        """Normalised values at positions first.. -> (n, INPUT_SIZE) float32."""
        positions = np.arange(first, first + len(x))
        return np.concatenate([np.asarray(x, np.float64)[:, None], self.phase_features(positions, scaling)],
                              1).astype(np.float32)

    def encode(self, series: Series) -> tuple[np.ndarray, Scaling, int]:
        """(inputs (T', INPUT_SIZE), the scaling fitted on the read part, first position read):
        the last `context` points of the series."""
        first = max(0, len(series.values) - self.context)
        part = series.values[first:]
        scaling = fit_scaling(part, series.season, (series.start + first) % max(series.season, 1))
        return self.inputs(scaling.forward(part), 0, scaling), scaling, first

    def decode(self, x: np.ndarray, scaling: Scaling, first: int) -> np.ndarray:
        """Normalised values at read positions first.. -> values."""
        return scaling.inverse(x, first)
