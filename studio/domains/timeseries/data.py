"""Series in: a user's CSV, TSV or JSON file, the series that install with a package, synthetic series.

A table file has a header row, then rows; the date column is the one named like a date (date, month,
time, ds, period, year, week, quarter) or else the first column whose entries read as dates, and the
value column is the one asked for or else the first other column of numbers. JSON: a list of numbers,
a list of records ({"date": ..., "value": ...}), or an object of columns ({"date": [...], "sales": [...]}).
Dates may be ISO (1966-01, 1966-01-31, 1966/01/31), US (01/31/1966), a year (1966), a quarter
(1966Q1) or a numbered year with a month (1-01 .. 13-12: "year 1"). The points are put on the
regular grid the dates' spacing implies (daily, weekly, monthly, quarterly, yearly): rows out of
order are sorted, repeated dates averaged, missing dates and empty cells filled by linear
interpolation, and each adjustment is named in the series' notes. Anything that cannot be read is
a ValueError with one sentence.

Shipped series (`SHIPPED`) come from data installed with statsmodels and statsforecast; nothing is
downloaded. The pretraining series (synthetic and packaged) are train.py's.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from pathlib import Path

import numpy as np

from studio.domains.timeseries.codec import SEASONS, Series

MAX_BYTES = 5_000_000  # a forecast reads a few thousand points; a larger file is not a series
MAX_POINTS = 20_000
MIN_POINTS = 8  # fewer points tell no level from noise
MAX_MISSING_SHARE = 0.3  # more gaps than this and the filled series would be mostly made up
SUFFIXES = (".csv", ".tsv", ".txt", ".json")
DATE_WORDS = ("date", "month", "time", "ds", "period", "year", "week", "quarter", "day", "timestamp")


# ---------------------------------------------------------------- tables
def read_table(path) -> tuple[list[str], list[list[str]]]:
    """(header, rows of text cells) of a CSV, TSV or JSON file."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path.name}: no such file.")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{path.name} is {size / 1e6:.1f} MB; a series file may be at most {MAX_BYTES / 1e6:.0f} MB "
                         f"(about {MAX_POINTS:,} rows).")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not a text file (CSV, TSV or JSON in UTF-8).") from None
    if "\x00" in text:
        raise ValueError(f"{path.name} is not a text file (CSV, TSV or JSON in UTF-8).")
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in "[{":
        return _json_table(text, path.name)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path.name} is empty.")
    try:
        dialect = csv.Sniffer().sniff(lines[0] + "\n" + "\n".join(lines[1:5]), delimiters=",\t;|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = "\t" if "\t" in lines[0] else ","
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)]
    header = rows[0]
    if all(_number(cell) is not None for cell in header if cell):  # no header row: name the columns
        header = [f"column {k + 1}" for k in range(len(rows[0]))]
    else:
        rows = rows[1:]
    width = len(header)
    ragged = sum(1 for row in rows if len(row) != width)
    if ragged > max(2, len(rows) // 10):
        raise ValueError(f"{path.name} is not a table: {ragged} of its {len(rows)} rows have a different number of "
                         f"cells than its header ({width}).")
    return header, [(row + [""] * width)[:width] for row in rows]


def _json_table(text: str, name: str) -> tuple[list[str], list[list[str]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name} is not valid JSON ({error.msg} at line {error.lineno}).") from None
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        header = [str(k) for k in data]
        length = max(len(v) for v in data.values())
        return header, [[_cell(data[k][i]) if i < len(data[k]) else "" for k in data] for i in range(length)]
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        header = list(dict.fromkeys(k for record in data for k in record))
        return header, [[_cell(record.get(k)) for k in header] for record in data]
    if isinstance(data, list) and data and all(not isinstance(v, (dict, list)) for v in data):
        return ["value"], [[_cell(v)] for v in data]
    raise ValueError(f"{name}: expected a list of numbers, a list of records or an object of columns.")


def _cell(value) -> str:
    return "" if value is None else str(value)


def _number(cell: str) -> float | None:
    cell = cell.strip().replace("\u2212", "-")
    if cell == "":
        return None
    try:
        value = float(cell.replace(",", "")) if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d*)?", cell) else float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------- dates
# each reader: text -> (kind, ordinal) where kind is "month", "quarter", "year" or "day"
_PATTERNS = [
    (re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T].*)?$"),
     lambda m: ("day", dt.date(int(m[1]), int(m[2]), int(m[3])).toordinal())),
    (re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$"),
     lambda m: ("day", dt.date(int(m[3]), int(m[1]), int(m[2])).toordinal())),
    (re.compile(r"^(\d{1,4})[-/.](\d{1,2})$"), lambda m: ("month", int(m[1]) * 12 + _month(int(m[2])))),
    (re.compile(r"^(\d{4})\s*-?\s*[Qq]([1-4])$"), lambda m: ("quarter", int(m[1]) * 4 + int(m[2]) - 1)),
    (re.compile(r"^(\d{4})(?:\.0)?$"), lambda m: ("year", int(m[1]))),
    (re.compile(r"^([A-Za-z]{3})[a-z]*[- ](\d{2,4})$"), lambda m: ("month", _year(m[2]) * 12 + _month_name(m[1]))),
]
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def _month(number: int) -> int:
    if not 1 <= number <= 12:
        raise ValueError("month")
    return number - 1


def _month_name(word: str) -> int:
    return _MONTHS.index(word[:3].lower())


def _year(text: str) -> int:
    year = int(text)
    return year + (1900 if year >= 50 else 2000) if len(text) == 2 else year


def parse_date(text: str) -> tuple[str, int] | None:
    for pattern, read in _PATTERNS:
        match = pattern.match(text.strip())
        if match:
            try:
                return read(match)
            except (ValueError, IndexError):
                return None
    return None


def _grid(kinds: set[str], ordinals: np.ndarray) -> tuple[str, np.ndarray, int]:
    """(frequency, grid index per point from 0, season phase of grid point 0) of parsed dates."""
    kind = kinds.pop() if len(kinds) == 1 else "mixed"
    first = int(ordinals.min())
    if kind == "month":
        return "monthly", ordinals - first, first % 12
    if kind == "quarter":
        return "quarterly", ordinals - first, first % 4
    if kind == "year":
        return "yearly", ordinals - first, 0
    if kind != "day":
        raise ValueError("mixed")
    spacing = float(np.median(np.diff(np.unique(ordinals)))) if len(np.unique(ordinals)) > 1 else 1.0
    day = dt.date.fromordinal(first)
    if spacing < 2:
        return "daily", ordinals - first, day.weekday()
    if spacing < 10:
        return "weekly", np.rint((ordinals - first) / 7).astype(int), min(day.isocalendar()[1] - 1, 51)
    if spacing < 45:  # month ends, month starts or any day of the month: count months
        months = np.array([dt.date.fromordinal(int(o)).year * 12 + dt.date.fromordinal(int(o)).month - 1
                           for o in ordinals])
        return "monthly", months - months.min(), int(months.min()) % 12
    if spacing < 135:
        quarters = np.array([dt.date.fromordinal(int(o)).year * 4 + (dt.date.fromordinal(int(o)).month - 1) // 3
                             for o in ordinals])
        return "quarterly", quarters - quarters.min(), int(quarters.min()) % 4
    years = np.array([dt.date.fromordinal(int(o)).year for o in ordinals])
    return "yearly", years - years.min(), 0


# ---------------------------------------------------------------- a table -> a series
def _date_column(header: list[str], rows: list[list[str]]) -> int | None:
    """The column named like a date whose entries read as dates, else the first that reads as dates
    (plain four-digit numbers count as years only in the first column: elsewhere they are values)."""
    sample = rows[:50]
    readable = [sum(parse_date(row[k]) is not None for row in sample) >= 0.8 * len(sample) for k in range(len(header))]
    for k, name in enumerate(header):
        if name.strip().lower() in DATE_WORDS and readable[k]:
            return k
    for k in range(len(header)):
        if readable[k] and (k == 0 or any(not re.fullmatch(r"\d{4}(\.0)?", row[k]) for row in sample)):
            return k
    return None


def value_columns(header: list[str], rows: list[list[str]]) -> list[str]:
    """The columns that hold numbers (most of their non-empty cells), the date column left out."""
    date = _date_column(header, rows)
    found = []
    for k, name in enumerate(header):
        if k == date:
            continue
        cells = [row[k] for row in rows if row[k] != ""]
        if cells and sum(_number(c) is not None for c in cells) >= 0.5 * len(cells):
            found.append(name)
    return found


def series_from_table(header: list[str], rows: list[list[str]], column: str | None = None, name: str = "series",
                      season: int = 0) -> Series:
    """The series of one value column (`column`, else the first column of numbers) on its dates'
    grid; `season` 0 = from the dates (12 monthly, 52 weekly, 4 quarterly, 7 daily, 1 yearly)."""
    if len(rows) < MIN_POINTS:
        raise ValueError(f"{name} has {len(rows)} row{'s' * (len(rows) != 1)}; a forecast needs at least "
                         f"{MIN_POINTS} points.")
    if len(rows) > MAX_POINTS:
        raise ValueError(f"{name} has {len(rows):,} rows; at most {MAX_POINTS:,} points are read.")
    columns = value_columns(header, rows)
    if column:
        if column not in header:
            raise ValueError(f"{name} has no column {column!r}; its columns: {', '.join(header)}.")
        if column not in columns:
            raise ValueError(f"column {column!r} of {name} does not hold numbers.")
    elif not columns:
        raise ValueError(f"{name} has no column of numbers (columns: {', '.join(header)}).")
    column = column or columns[0]
    k = header.index(column)
    notes, values = [], []
    for row_number, row in enumerate(rows, start=2):
        cell = row[k]
        value = _number(cell)
        if value is None and cell.strip() and cell.strip().lower() not in ("na", "nan", "null", "none", "-", "?",
                                                                           "n/a"):
            raise ValueError(f"{name}: row {row_number} of column {column!r} holds {cell[:30]!r}, not a number.")
        values.append(np.nan if value is None else value)
    values = np.asarray(values, np.float64)
    date_k = _date_column(header, rows)
    frequency, start, dates = "none", 0, None
    if date_k is not None:
        parsed = [parse_date(row[date_k]) for row in rows]
        bad = [row[date_k] for row, p in zip(rows, parsed, strict=True) if p is None]
        if bad:
            raise ValueError(f"{name}: {len(bad)} date{'s' * (len(bad) > 1)} of column {header[date_k]!r} cannot be "
                             f"read (first: {bad[0][:30]!r}).")
        try:
            frequency, index, start = _grid({kind for kind, _ in parsed}, np.array([o for _, o in parsed]))
        except ValueError:
            raise ValueError(f"{name}: the dates of column {header[date_k]!r} mix formats (months, "
                             "days, years).") from None
        order = np.argsort(index, kind="stable")
        if np.any(np.diff(index) < 0):
            notes.append("rows were out of date order: sorted")
        index, values = index[order], values[order]
        labels = [rows[i][date_k] for i in order]
        unique, first_of = np.unique(index, return_index=True)
        if len(unique) < len(index):
            notes.append(f"{len(index) - len(unique)} repeated dates: their values averaged")
            values = np.array([np.nanmean(values[index == u]) if np.any(~np.isnan(values[index == u])) else np.nan
                               for u in unique])
            labels = [labels[i] for i in first_of]
        length = int(unique[-1]) + 1
        if length > MAX_POINTS:
            raise ValueError(f"{name}: the dates span {length:,} {frequency} steps; at most {MAX_POINTS:,} are read.")
        grid = np.full(length, np.nan)
        grid[unique] = values
        grid_labels = [""] * length
        for u, label in zip(unique, labels, strict=True):
            grid_labels[int(u)] = label
        if length > len(unique):
            notes.append(f"{length - len(unique)} missing {frequency} dates: filled by linear interpolation")
        values, dates = grid, [label or f"(gap {i})" for i, label in enumerate(grid_labels)]
    missing = int(np.isnan(values).sum())
    if missing == len(values):
        raise ValueError(f"column {column!r} of {name} is empty.")
    if missing > MAX_MISSING_SHARE * len(values):
        raise ValueError(f"{name}: {missing} of {len(values)} points of column {column!r} are missing; at most "
                         f"{MAX_MISSING_SHARE:.0%} can be filled in.")
    if missing:
        known = np.flatnonzero(~np.isnan(values))
        filled = np.interp(np.arange(len(values)), known, values[known])
        notes.append(f"{missing} missing value{'s' * (missing > 1)} in all filled by linear interpolation")
        values = filled
    if dates is None:
        dates = [f"t{i + 1}" for i in range(len(values))]
    season = season or SEASONS.get(frequency, 1)
    if len(values) < MIN_POINTS:
        raise ValueError(f"{name} has {len(values)} points; a forecast needs at least {MIN_POINTS}.")
    if np.ptp(values) == 0:
        notes.append("the series is constant")
    _check_noise(values, name)
    return Series(values, dates, name=f"{name}: {column}" if len(columns) > 1 else name, season=season,
                  frequency=frequency, start=start % max(season, 1), notes=notes)


def _check_noise(values: np.ndarray, name: str) -> None:
    """Refuse values spanning absurd magnitudes (random bytes read as numbers): a forecast of them means nothing."""
    finite = np.abs(values[values != 0])
    if len(finite) and finite.max() > 1e15:
        raise ValueError(f"{name}: values reach {finite.max():.3g}; that is not a series a forecast can use.")


def read_series(path, column: str | None = None, season: int = 0) -> Series:
    """A series from a user's file (see the module docstring)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path.name}: expected a CSV, TSV or JSON file, not "
                         f"{path.suffix or 'a file without a suffix'}.")
    header, rows = read_table(path)
    return series_from_table(header, rows, column, name=path.stem, season=season)


def read_input(path, loaded=None) -> Series:
    """The contract's reader: a series file (its first value column)."""
    return read_series(path)


# ---------------------------------------------------------------- series that install with a package
def statsmodels_data(name: str):
    import importlib

    return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data


def _monthly_labels(year: int, month: int, n: int) -> list[str]:
    return [f"{year + (month - 1 + k) // 12}-{(month - 1 + k) % 12 + 1:02d}" for k in range(n)]


def shipped_airpassengers() -> Series:
    from statsforecast.utils import AirPassengersDF

    values = AirPassengersDF["y"].to_numpy(np.float64)
    return Series(values, _monthly_labels(1949, 1, len(values)), "AirPassengers", 12, "monthly", 0)


def shipped_elnino() -> Series:
    table = statsmodels_data("elnino")
    values = table.iloc[:, 1:13].to_numpy(np.float64).ravel()
    return Series(values, _monthly_labels(1950, 1, len(values)), "El Niño sea temperature", 12, "monthly", 0)


def shipped_co2() -> Series:
    table = statsmodels_data("co2")
    values = table["co2"].interpolate(limit_direction="both").to_numpy(np.float64)
    dates = [d.strftime("%Y-%m-%d") for d in table.index]
    notes = [f"{int(table['co2'].isna().sum())} missing weeks filled by linear interpolation"]
    return Series(values, dates, "Mauna Loa CO2 (weekly)", 52, "weekly", 12, notes)


def shipped_sunspots() -> Series:
    table = statsmodels_data("sunspots")
    return Series(table["SUNACTIVITY"].to_numpy(np.float64), [str(int(y)) for y in table["YEAR"]], "sunspots", 1,
                  "yearly", 0)


def shipped_nile() -> Series:
    table = statsmodels_data("nile")
    return Series(table["volume"].to_numpy(np.float64), [str(int(y)) for y in table["year"]], "Nile flow", 1, "yearly",
                  0)


def shipped_elec_equip() -> Series:
    table = statsmodels_data("elec_equip")
    values = table.iloc[:, 0].to_numpy(np.float64)
    return Series(values, [d.strftime("%Y-%m") for d in table.index], "electrical equipment orders", 12, "monthly",
                  int(table.index[0].month) - 1)


SHIPPED = {
    "AirPassengers (monthly, statsforecast)": shipped_airpassengers,
    "El Niño sea temperature (monthly, statsmodels)": shipped_elnino,
    "Mauna Loa CO2 (weekly, statsmodels)": shipped_co2,
    "Sunspots (yearly, statsmodels)": shipped_sunspots,
    "Nile flow (yearly, statsmodels)": shipped_nile,
}
SHIPPED_LICENCES = ("statsmodels datasets: public domain / BSD (statsmodels' licence); AirPassengers: Box & Jenkins "
                    "(1976), public domain, as shipped in statsforecast (Apache-2.0)")


def shipped(label: str) -> Series:
    if label not in SHIPPED:
        raise ValueError(f"no shipped series {label!r}; one of {', '.join(SHIPPED)}.")
    return SHIPPED[label]()


def example_series(length: int = 60, season: int = 12) -> Series:
    """A small monthly series with a trend, a season and fixed noise (tests, docs, the default)."""
    t = np.arange(length)
    noise = np.random.default_rng(0).normal(0, 0.03, length)
    values = 100 * np.exp(0.01 * t + 0.2 * np.sin(2 * np.pi * t / season) + noise)
    return Series(values, _monthly_labels(2000, 1, length), "example", season, "monthly", 0)
