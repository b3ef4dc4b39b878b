"""The time-series domain: readers and their messages, the scaling, forecasts, the backtest's
origin (no point after it is seen), the CLI's JSON and eval line, a tiny fine-tuning run."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from studio.__main__ import main
from studio.domains import timeseries
from studio.domains.timeseries.codec import Series, fit_scaling
from studio.domains.timeseries.data import example_series, read_series
from studio.domains.timeseries.evaluate import backtest, mase_scale, scores, smape
from studio.domains.timeseries.generate import ForecastSettings


def _csv(tmp_path, text: str, name: str = "s.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _monthly(n: int, start_year: int = 2000) -> list[str]:
    return [f"{start_year + k // 12}-{k % 12 + 1:02d}" for k in range(n)]


@pytest.fixture
def loaded(tmp_path):
    model, codec = timeseries.tiny(seed=0)
    timeseries.save(tmp_path / "tiny", model, codec, {"name": "tiny"})
    return timeseries.load(tmp_path / "tiny")


@pytest.fixture
def series_csv(tmp_path):
    series = example_series(48)
    rows = "\n".join(f"{d},{v:.3f}" for d, v in zip(series.dates, series.values, strict=True))
    return _csv(tmp_path, "Month,Sales\n" + rows)


# ---------------------------------------------------------------- readers
def test_a_plain_monthly_csv_reads(series_csv):
    series = read_series(series_csv)
    assert len(series) == 48 and series.frequency == "monthly" and series.season == 12 and series.notes == []


def test_gaps_are_filled_and_reported(tmp_path):
    dates = _monthly(30)
    del dates[10:13]  # three months missing
    rows = [f"{d},{100 + k}" for k, d in enumerate(dates)]
    rows[5] = rows[5].split(",")[0] + ","  # and one empty cell
    series = read_series(_csv(tmp_path, "date,value\n" + "\n".join(rows)))
    assert len(series) == 30 and np.all(np.isfinite(series.values))
    assert any("3 missing monthly dates" in n for n in series.notes)
    assert any("linear interpolation" in n for n in series.notes)


def test_text_in_a_number_column_is_named(tmp_path):
    rows = [f"{d},{100 + k}" for k, d in enumerate(_monthly(20))]
    rows[7] = rows[7].split(",")[0] + ",twelve"
    with pytest.raises(ValueError, match=r"row 9 of column 'value' holds 'twelve', not a number"):
        read_series(_csv(tmp_path, "date,value\n" + "\n".join(rows)))


def test_one_row_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 8 points"):
        read_series(_csv(tmp_path, "date,value\n2000-01,5\n"))


def test_ten_megabytes_of_noise_is_refused(tmp_path):
    path = tmp_path / "noise.csv"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 10_000_000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=r"10\.0 MB; a series file may be at most 5 MB"):
        read_series(path)


def test_binary_noise_under_the_limit_is_refused(tmp_path):
    path = tmp_path / "noise.csv"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="not a text file|not a table|no column of numbers"):
        read_series(path)


def test_numbered_years_sorted_rows_and_json(tmp_path):
    rows = [f"{1 + k // 12}-{k % 12 + 1:02d},{10 + k}" for k in range(24)]
    rows[3], rows[4] = rows[4], rows[3]
    series = read_series(_csv(tmp_path, '"Month","Sales"\n' + "\n".join(rows)))
    assert series.frequency == "monthly" and series.values[3] == 13 and any("sorted" in n for n in series.notes)
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"date": _monthly(20), "a": list(range(20)), "b": [2.0 * k + 1 for k in range(20)]}))
    assert read_series(path, column="b").values[2] == 5.0
    path.write_text(json.dumps([1.0, 2.0, 3.0] * 5))
    assert read_series(path).frequency == "none"


def test_a_missing_column_is_named(series_csv):
    with pytest.raises(ValueError, match="no column 'Revenue'"):
        read_series(series_csv, column="Revenue")


# ---------------------------------------------------------------- scaling and metrics
def test_scaling_round_trips_and_sees_only_the_history():
    series = example_series(60)
    scaling = fit_scaling(series.values, 12)
    np.testing.assert_allclose(scaling.inverse(scaling.forward(series.values), 0), series.values, rtol=1e-9)
    spiked = series.values.copy()
    spiked[-1] *= 50
    assert fit_scaling(spiked[:-1], 12) == fit_scaling(series.values[:-1], 12)


def test_metrics():
    history = np.array([1.0, 2, 3, 4, 5, 6])
    assert mase_scale(history, 1) == 1.0
    assert smape(np.array([1.0]), np.array([1.0])) == 0.0
    found = scores(history, np.array([7.0, 8.0]), {0.1: np.array([6.0, 9.0]), 0.5: np.array([7.0, 9.0]),
                                                   0.9: np.array([8.0, 10.0])}, 1)
    assert found["mase"] == 0.5 and found["coverage80"] == 0.5


# ---------------------------------------------------------------- forecasts and the backtest
def test_forecast_quantiles_are_ordered(loaded):
    result = timeseries.generate(loaded, ForecastSettings(example_series(40), horizon=6, paths=50)).result
    levels = sorted(result.quantiles, key=float)
    stacked = np.stack([result.quantiles[level] for level in levels])
    assert stacked.shape == (9, 6) and np.all(np.diff(stacked, axis=0) >= 0)
    assert result.future_dates[0] == "2003-05"


def test_the_fan_chart_svg_draws_the_bands_and_says_what_it_shows(loaded):
    from studio.domains.timeseries.render import fan_chart_svg

    generation = timeseries.generate(loaded, ForecastSettings(example_series(40), horizon=6, paths=50))
    svg = fan_chart_svg(generation)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and 'role="img"' in svg
    assert svg.count("<polygon") == 3 and svg.count("<polyline") == 3  # 95 / 80 / 50%; history, median, path
    label = re.search(r'aria-label="([^"]*)"', svg).group(1)
    assert "6-step forecast from 50 sampled paths" in label and "80% interval" in label
    painted = fan_chart_svg(generation, saliency=np.linspace(0, 1, 40), step=38)
    assert painted.count("<circle") >= 40 and "what drove the step" in painted


def test_the_backtest_sees_no_point_after_its_origin(loaded):
    series = example_series(60)
    spiked = Series(series.values.copy(), series.dates, series.name, 12, "monthly", 0)
    spiked.values[-3] *= 100  # after the last origin (the last 12 points are forecast)
    methods = ("model", "seasonal_naive", "ets", "arima")
    plain = backtest(loaded, series, 12, folds=2, paths=20, methods=methods)
    changed = backtest(loaded, spiked, 12, folds=2, paths=20, methods=methods)
    assert plain.origins == changed.origins == [36, 48]
    for method in methods:
        for before, after in zip(plain.forecasts[method], changed.forecasts[method], strict=True):
            for level in before:
                np.testing.assert_array_equal(before[level], after[level])
    assert changed.rows["model"]["mase"] > plain.rows["model"]["mase"]  # the spike is scored, not seen


# ---------------------------------------------------------------- the command line
def test_generate_writes_the_forecast_json(loaded, series_csv, tmp_path, capsys):
    out = tmp_path / "f.json"
    assert main(["generate", "timeseries", "--model", str(tmp_path / "tiny"), "--data", str(series_csv),
                 "--horizon", "5", "--paths", "20", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["forecast"]) == 5 and {"0.1", "0.5", "0.9"} <= set(data["quantiles"])
    assert all(len(v) == 5 for v in data["quantiles"].values()) and data["forecast"] == data["quantiles"]["0.5"]


def test_eval_prints_its_line(loaded, series_csv, tmp_path, capsys):
    assert main(["eval", "timeseries", "--model", str(tmp_path / "tiny"), "--data", str(series_csv),
                 "--horizon", "6", "--paths", "20"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    number = r"[0-9.]+"
    assert re.fullmatch(rf"mase={number} smape={number} coverage80={number} seasonal_naive_mase={number} "
                        rf"ets_mase={number} arima_mase={number}", last), last


def test_a_bad_file_is_one_sentence(loaded, tmp_path):
    bad = _csv(tmp_path, "date,value\n2000-01,5\n")
    with pytest.raises(SystemExit, match="at least 8 points"):
        main(["generate", "timeseries", "--model", str(tmp_path / "tiny"), "--data", str(bad), "--out", str(tmp_path / "x.json")])


def test_fine_tuning_runs(loaded, series_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "tuned"
    assert main(["train", "timeseries", "--data", str(series_csv), "--init", str(tmp_path / "tiny"), "--out", str(out),
                 "--steps", "6", "--eval-every", "3", "--threads", "1"]) == 0
    tuned = timeseries.load(out)
    assert tuned.card["metrics"]["valid_nll"] and tuned.card["hyperparameters"]["init"] == "tiny"
    assert timeseries.TRAINING.prepare([series_csv], tmp_path / "work")[0][0].exists()
