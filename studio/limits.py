"""Caps a user's file or request meets before any work is done on it, and the plain sentences a
refused or unparsable file gets. Pure Python (numpy for the .npy headers); every reader of
something a user uploads calls these, so one place says how big, how deep and how long.

The caps (environment variables override them; sizes in MB of 1,000,000 bytes):

    LSTM_STUDIO_MAX_UNZIPPED_MB   50      what a .zip / .npz / .mxl may unpack to, all members together
    LSTM_STUDIO_MAX_ZIP_MEMBERS   2000    files inside one archive
    LSTM_STUDIO_MAX_JSON_MB       5       a JSON / ndjson file read from a user
    LSTM_STUDIO_MAX_JSON_DEPTH    20      nesting of [ and { (a stroke file needs 4)
    LSTM_STUDIO_MAX_FILE_POINTS   100000  pen points (or array rows) read from one file
    LSTM_STUDIO_MAX_COORDINATE    100000  |x|, |y| of a pen point, in the file's own units
    LSTM_STUDIO_DEADLINE_S        10      seconds a request may take; 0 = no deadline

Every check raises LimitError (a ValueError: the tabs show its message as it is) naming the file
and the cap, before the file is parsed or unpacked.

The deadline: the app runs each request inside `deadline()`; the generation loops ask
`out_of_time()` once per step and stop there, returning what they made with `time_note()`.
Generation may use GENERATION_SHARE of the deadline, the rest is left for drawing the result.
Outside `deadline()` (the CLI, the tests) `out_of_time()` is always False.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import re
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np


def _env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return float(default)


MAX_UNZIPPED_BYTES = int(_env("LSTM_STUDIO_MAX_UNZIPPED_MB", 50) * 1_000_000)
MAX_ZIP_MEMBERS = int(_env("LSTM_STUDIO_MAX_ZIP_MEMBERS", 2000))
MAX_JSON_BYTES = int(_env("LSTM_STUDIO_MAX_JSON_MB", 5) * 1_000_000)
MAX_JSON_DEPTH = int(_env("LSTM_STUDIO_MAX_JSON_DEPTH", 20))
MAX_FILE_POINTS = int(_env("LSTM_STUDIO_MAX_FILE_POINTS", 100_000))
MAX_COORDINATE = _env("LSTM_STUDIO_MAX_COORDINATE", 100_000)
DEADLINE_S = _env("LSTM_STUDIO_DEADLINE_S", 10)
GENERATION_SHARE = 0.6  # of the deadline; the rest draws the figures and writes the files


class LimitError(ValueError):
    """A file or request over a cap, or unreadable; the message is a sentence for the user."""


def _mb(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


# ---------------------------------------------------------------- archives (.zip, .npz, .mxl)
def check_zip(path, max_bytes: int | None = None, max_members: int | None = None,
              error: type[ValueError] = LimitError) -> list[zipfile.ZipInfo]:
    """The members of a zip archive after checking what they declare they unpack to (zipfile
    itself stops a member at its declared size, so the declaration is what counts). `error`: the
    ValueError class to raise (a reader's own)."""
    path = Path(path)
    max_bytes = MAX_UNZIPPED_BYTES if max_bytes is None else max_bytes
    max_members = MAX_ZIP_MEMBERS if max_members is None else max_members
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, struct.error):
        raise error(f"{path.name} is not a readable zip archive: it is cut short or damaged.") from None
    if len(members) > max_members:
        raise error(f"{path.name} holds {len(members):,} files; at most {max_members:,} are read.")
    total = sum(member.file_size for member in members)
    if total > max_bytes:
        raise error(f"{path.name} unpacks to {_mb(total)}; at most {_mb(max_bytes)} are read.")
    return members


def check_if_zip(path, error: type[ValueError] = LimitError) -> None:
    """check_zip for a file that starts as a zip archive does (.mxl, .npz, .zip under any name)."""
    with open(path, "rb") as handle:
        if handle.read(2) == b"PK":
            check_zip(path, error=error)


def hidden(name: str) -> bool:
    """A path a packer adds that holds no user data (macOS __MACOSX, dot files)."""
    return any(part.startswith(".") or part == "__MACOSX" for part in Path(name).parts)


def extract_zip(path, folder, keep, max_bytes: int | None = None, what: str = "files",
                error: type[ValueError] = LimitError) -> list[Path]:
    """The one reader of a user's .zip: every member whose name `keep(name)` accepts (hidden ones
    never), written under `folder` at its own relative path (so `a/x.json` and `a/x.txt` stay side by
    side; no part of a name can leave `folder`), after the archive's caps (check_zip) and the kept
    members' total (`max_bytes`, default MAX_UNZIPPED_BYTES) are checked. `error`: the reader's own
    ValueError class; "holds no ..." when nothing is kept, "not a readable zip" when it is damaged."""
    path, folder = Path(path), Path(folder)
    max_bytes = MAX_UNZIPPED_BYTES if max_bytes is None else max_bytes
    members = [m for m in check_zip(path, error=error) if not m.is_dir() and not hidden(m.filename)
               and keep(m.filename)]
    if not members:
        raise error(f"{path.name} holds no {what}.")
    if sum(m.file_size for m in members) > max_bytes:
        raise error(f"{path.name} unzips to more than {_mb(max_bytes)} of {what}; upload less.")
    found = []
    try:
        with zipfile.ZipFile(path) as archive:
            for member in members:
                parts = [re.sub(r"[^\w.+-]+", "_", part)[:100]
                         for part in Path(member.filename.replace("\\", "/")).parts
                         if part not in ("", ".", "..", "/")]
                target = folder.joinpath(*parts) if parts else folder / "file"
                if target.exists():  # two names made the same by cleaning: the later one gets a number
                    target = target.with_name(f"{target.stem}-{len(found)}{target.suffix}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
                found.append(target)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError, OSError, zlib.error,
            struct.error) as reason:
        raise error(unreadable(path.name, "zip file", reason)) from None
    return found


def npz_headers(path, max_bytes: int | None = None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} of a .npz, read from each .npy header without loading any data;
    the archive's unpacked size checked first."""
    path = Path(path)
    members = check_zip(path, max_bytes)
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in members:
                if not member.filename.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(handle)
                headers[member.filename[:-4]] = (tuple(shape), dtype)
    except (ValueError, zipfile.BadZipFile, EOFError, OSError, SyntaxError, struct.error, KeyError):
        raise LimitError(f"{path.name} is not a readable .npz: an array in it is damaged or not a numpy array.") from None
    return headers


def check_array_shape(name: str, shape: tuple[int, ...], max_rows: int | None = None, max_dims: int = 3) -> None:
    """An array of at most `max_dims` dimensions and at most `max_rows` rows in all (the product of
    every axis but the last)."""
    max_rows = MAX_FILE_POINTS if max_rows is None else max_rows
    if len(shape) > max_dims:
        raise LimitError(f"{name} holds an array of {len(shape)} dimensions; at most {max_dims} are read.")
    rows = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else (shape[0] if shape else 1)
    if rows > max_rows:
        raise LimitError(f"{name} holds {rows:,} rows; at most {max_rows:,} are read.")


# ---------------------------------------------------------------- JSON
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')


def json_depth(data: bytes) -> int:
    """The deepest nesting of [ and { in JSON text (brackets inside strings not counted)."""
    body = _STRINGS.sub(b'""', data)
    codes = np.frombuffer(body, dtype=np.uint8)
    steps = (codes == ord("[")).astype(np.int32) + (codes == ord("{")) - (codes == ord("]")) - (codes == ord("}"))
    return int(np.cumsum(steps).max()) if len(steps) else 0


def check_json_text(name: str, data: bytes, max_bytes: int | None = None, max_depth: int | None = None) -> None:
    max_bytes = MAX_JSON_BYTES if max_bytes is None else max_bytes
    max_depth = MAX_JSON_DEPTH if max_depth is None else max_depth
    if len(data) > max_bytes:
        raise LimitError(f"{name} is {_mb(len(data))} of JSON; at most {_mb(max_bytes)} are read.")
    if (depth := json_depth(data)) > max_depth:
        raise LimitError(f"{name} nests its JSON {depth} levels deep; at most {max_depth} are read.")


def load_json(path, max_bytes: int | None = None, max_depth: int | None = None):
    """A JSON file from a user, its size and nesting checked before parsing."""
    path = Path(path)
    max_bytes = MAX_JSON_BYTES if max_bytes is None else max_bytes
    if path.stat().st_size > max_bytes:
        raise LimitError(f"{path.name} is {_mb(path.stat().st_size)} of JSON; at most {_mb(max_bytes)} are read.")
    data = path.read_bytes()
    check_json_text(path.name, data, max_bytes, max_depth)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise LimitError(f"{path.name} is not valid JSON: {plain_reason(error)}.") from None


# ---------------------------------------------------------------- numbers
def check_coordinates(name: str, points, limit: float | None = None) -> None:
    """Every coordinate finite and within ±limit (huge ones overflow the model's arithmetic)."""
    limit = MAX_COORDINATE if limit is None else limit
    points = np.asarray(points, dtype=np.float64)
    if points.size and not np.isfinite(points).all():
        raise LimitError(f"{name} contains coordinates that are not finite numbers.")
    if points.size and (largest := float(np.abs(points).max())) > limit:
        raise LimitError(f"{name} has a coordinate of {largest:.3g}; pen coordinates must lie within ±{limit:g} "
                         "(rescale the drawing).")


def seed32(seed) -> int:
    """A seed numpy's legacy RandomState (librosa's Griffin-Lim) accepts: [0, 2**32)."""
    return int(seed) % 2**32


# ---------------------------------------------------------------- parser failures in plain words
def plain_reason(error: BaseException) -> str:
    """What went wrong while parsing, in words (no exception class names, no parser jargon)."""
    kind = type(error).__name__
    if isinstance(error, EOFError | struct.error) or "unexpected end" in str(error).lower():
        return "it ends too early (the file is cut short)"
    if kind in ("ParseError", "ExpatError"):
        line, column = getattr(error, "position", (None, None))
        where = f" (line {line}, column {column})" if line is not None else ""
        return f"it is not well-formed XML{where}"
    if isinstance(error, UnicodeDecodeError):
        return f"it is not UTF-8 text (an unreadable byte at position {error.start:,})"
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg.lower()} at line {error.lineno}, column {error.colno}"
    if isinstance(error, zipfile.BadZipFile):
        return "it is not a complete zip archive"
    if isinstance(error, RecursionError):
        return "it is nested too deeply"
    if isinstance(error, MemoryError):
        return "it is too large to read"
    if "Humdrum" in kind:
        return "it is not a Humdrum (**kern) score music21 can read"
    if "ABC" in kind:
        return "its ABC notation could not be read"
    if "MusicXML" in kind:
        return "its MusicXML could not be read"
    return "its contents are damaged or not in the expected format"


def unreadable(name: str, what: str, error: BaseException) -> str:
    """'NAME is not a WHAT this studio can read: REASON.'"""
    return f"{name} is not a {what} this studio can read: {plain_reason(error)}."


# ---------------------------------------------------------------- the per-request deadline
_stop_at: contextvars.ContextVar[float | None] = contextvars.ContextVar("lstm_studio_stop_at", default=None)


@contextlib.contextmanager
def deadline(seconds: float | None = None):
    """Within this block, generation loops stop after GENERATION_SHARE of `seconds`
    (DEADLINE_S when None; 0 or less: no deadline)."""
    seconds = DEADLINE_S if seconds is None else seconds
    token = _stop_at.set(time.monotonic() + seconds * GENERATION_SHARE if seconds > 0 else None)
    try:
        yield
    finally:
        _stop_at.reset(token)


@contextlib.contextmanager
def deadline_until(stop_at: float | None):
    """Within this block, generation stops at `stop_at` (a stop_time() taken elsewhere: another
    thread's or process's request; time.monotonic is one clock for all of them)."""
    token = _stop_at.set(stop_at)
    try:
        yield
    finally:
        _stop_at.reset(token)


def out_of_time() -> bool:
    """Whether the request's generation time is spent (cheap: once per step is fine)."""
    return past(_stop_at.get())


def stop_time() -> float | None:
    """When this request's generation must stop (time.monotonic()), None for never: for work done
    for it in another thread (a batch led by another request's thread checks each row's own)."""
    return _stop_at.get()


def past(stop_at: float | None) -> bool:
    return stop_at is not None and time.monotonic() > stop_at


def time_note(made: str) -> str:
    """The note a generation stopped by the deadline carries; `made` says what was kept."""
    return (f"Stopped early: this server gives a request {DEADLINE_S:g} s (LSTM_STUDIO_DEADLINE_S), "
            f"so this shows {made}.")


# ---------------------------------------------------------------- memory
def bound_malloc() -> None:
    """glibc's malloc gives each of the server's worker threads its own arena (up to 8 per core), and
    a freed block of a trace's size goes back to its arena, not to the system: RSS crept up with
    every request. Two arenas and a fixed 4 MB mmap threshold (bigger blocks are mapped and
    unmapped, never kept) measured 977 MB after 288 mixed requests against 1,134 MB
    (docs/benchmarks.md, "Memory"). The app and its generation workers call it at start;
    elsewhere than glibc it does nothing."""
    libc = _glibc()
    if libc is None:
        return
    mallopt = libc.mallopt
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # glibc's <malloc.h>
    mallopt(m_arena_max, 2)
    mallopt(m_mmap_threshold, 4 << 20)
    mallopt(m_trim_threshold, 4 << 20)


_last_trim = [0.0]


def trim_malloc(every_seconds: float = 2.0) -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim), at most every few
    seconds. A generation made in this process leaves its trace's thousands of per-step tensors
    freed but scattered between live blocks, and a freed page in the middle of an arena stays in
    RSS until trimmed: without this, the bad inputs of bench/bench_bad_inputs.py (a 5,000-character
    text among them) leave the app well above its start-up RSS (docs/benchmarks.md, Memory, disk and
    bad inputs). Elsewhere than glibc it does nothing."""
    now = time.monotonic()
    if now - _last_trim[0] < every_seconds:
        return
    _last_trim[0] = now
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc():
    """glibc, when this process runs on it (with mallopt and malloc_trim), else None."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 (both exist: it is glibc)
    except (OSError, AttributeError):
        return None
    return libc


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process can keep busy: its CPU affinity, lowered by a cgroup CPU quota. A
    container on a big host (a 2-vCPU Space) often sees all the host's cores; sized by those, the
    worker pool and the probe's threads would each be several times too many for its share."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for quota_file, period_file in (("cpu.max", None), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"; v1: two files, a quota of -1 for none
            words = (cgroup / quota_file).read_text().split()
            quota, period = words[0], (words[1] if period_file is None else (cgroup / period_file).read_text().strip())
            if quota not in ("max", "-1"):
                return max(1, min(cores, -(-int(quota) // int(period))))
        except (OSError, ValueError, IndexError):
            continue
    return max(1, cores)
