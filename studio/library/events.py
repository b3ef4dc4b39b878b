"""Records of what is made but not generated: a finished training (kind "model") and a finished run of
the "Why LSTM" lab (kind "lab run"). They sit in the library beside the generations: searched (their
text says what was trained or measured and how it went), filtered by kind, rated, tagged, noted,
shared and deleted alike, owner-scoped alike. Replay makes only generations again; a model record
says whether the model's weights are still the ones recorded.

    record_training(domain, args, metrics, seconds)   # studio.cli_common.run_training, when a training ends
    record_lab_run(result, lines, args, seconds)      # studio.lab.cli, when a run (or a sweep) ends
    saved_id(log)                                     # the app: the record a finished job's log names

Both print `saved: ID` on stderr, as `generate --save` does; the app's job writes its output to its log
(studio.jobs), so the page that started the job finds the record there (studio.ui.keep_bar.wire_job).

Both run in the process that trained (the command line, or the app's job of the Train or Lab tab). The
owner: the local owner for the command line; for a job of the app on a shared server, the owner whose
models folder the model went to (a training) or the owner the job names (`--library-owner`, a lab run),
and no record when neither is known. A library that cannot take the record prints one sentence; the
training or the run still succeeds.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path

from studio import owners
from studio.library.records import Record, weights_path, weights_sha256

MODEL, LAB_RUN = "model", "lab run"
KEEP_DATA_MB = 20.0  # training files kept with a model record up to this much in all (their hashes always)
CURVE_POINTS = 200  # a model record keeps its loss curve (from the job's progress file) thinned to this many points
SAVED = re.compile(r"^saved: (\d+)\s*$", re.MULTILINE)
OWNER_FOLDER = re.compile(r"k[0-9a-f]{32}")  # owners.owner_of's ids: a shared server's models folder per owner


def _plain(value):
    """A command's arguments as JSON values (paths as strings; what JSON cannot hold as its repr)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def settings_of(args, leave_out=("run", "command", "func")) -> dict:
    return {name: _plain(value) for name, value in sorted(vars(args).items())
            if name not in leave_out and not callable(value)}


def _owner(job: bool, named: str | None = None) -> str | None:
    """Whose record: the local owner off a shared server or for the command line; on a shared server a
    job's owner (named), None when it names none."""
    if not owners.shared_server() or not job:
        return owners.LOCAL
    return named if named and OWNER_FOLDER.fullmatch(named) else None


def _keep(record: Record, owner: str | None, files: dict, store=None) -> int | None:
    from studio import library

    if owner is None:
        return None
    try:
        store = store or library.open_store()
        record_id = store.add(record, owner, files)
    except (library.LibraryFull, ValueError, OSError) as error:
        print(f"not saved in the library: {error}", file=sys.stderr)
        return None
    print(f"saved: {record_id}", file=sys.stderr)
    return record_id


def _data_files(data) -> list[Path]:
    if data is None:
        return []
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    return [Path(p) for p in paths if Path(p).is_file()]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def saved_id(log) -> int | None:
    """The record id the last `saved: ID` line of a job's log names (None: nothing was kept)."""
    try:
        found = SAVED.findall(Path(log).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return int(found[-1]) if found else None


def _thinned(points: list) -> list:
    stride = max(1, -(-len(points) // CURVE_POINTS))
    return points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])


def loss_curve(progress) -> dict:
    """{"train": [[step, loss], ...], "val": [[step, val loss], ...]} of a progress file (each thinned to
    CURVE_POINTS); {} without one."""
    from studio import train_progress

    lines = train_progress.read(progress) if progress else []
    train = [[line["step"], line["loss"]] for line in lines if "step" in line and "loss" in line]
    val = [[line["step"], line["val"]] for line in lines if "step" in line and "val" in line]
    return {"train": _thinned(train), "val": _thinned(val)} if train else {}


def record_training(domain: str, args, metrics: dict, seconds: float | None, val_name: str = "val_loss",
                    store=None) -> int | None:
    """Keep a finished training (a checkpoint at args.out) as a "model" record: the domain, the model's
    name and weights' sha256, the command's settings and seed, the data files by hash (kept up to
    KEEP_DATA_MB), the final metrics, the loss curve (with --progress) and the card; its text is the
    metrics in words."""
    stem = Path(args.out)
    if not weights_path(stem).exists():
        return None
    job = bool(getattr(args, "progress", None))  # the app's Train tab runs trainings as jobs with a progress file
    owner = _owner(job, stem.resolve().parent.name)
    data = _data_files(getattr(args, "data", None))
    described = [{"name": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)} for p in data]
    keep_data = sum(d["bytes"] for d in described) <= KEEP_DATA_MB * 1e6
    final = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()
             if isinstance(v, (bool, int, float, str))}
    settings = {"command": settings_of(args), "data": described, "metrics": final,
                "curve": loss_curve(getattr(args, "progress", None))}
    weights = weights_sha256(stem)
    trained_on = ", ".join(f"{d['name']} ({d['bytes']:,} bytes)" for d in described) or "its packaged data"
    text = (f"{domain} model {stem.name} trained on {trained_on}: "
            f"best {val_name} {metrics.get('best_val_loss', 0):.4f} "
            f"after {metrics.get('steps_done', 0)} steps"
            + (" (stopped by hand)" if metrics.get("interrupted") else "") + ".")
    record = Record(domain=domain, model=stem.name, model_stem=str(stem.resolve()), weights_sha256=weights,
                    settings_type="", settings=json.dumps(settings, sort_keys=True), seed=getattr(args, "seed", None),
                    prompt=trained_on, output=text,
                    content_hash=hashlib.sha256(f"model:{weights}".encode()).hexdigest(),
                    duration=seconds, kind=MODEL,
                    inputs={f"data {k + 1}": p for k, p in enumerate(data)} if keep_data else {})
    card = weights_path(stem).with_suffix(".json")
    return _keep(record, owner, {"card": card} if card.is_file() else {}, store)


def record_lab_run(result: dict, lines: list[str], args, seconds: float | None, store=None) -> int | None:
    """Keep a finished (or stopped) lab run as a "lab run" record: the task, the cells, the settings and
    seed, the result lines as its text, the curves (run.json) and the loss figure as its files."""
    config = result.get("config", {})
    task = config.get("task", getattr(args, "task", ""))
    cells = config.get("cells") or getattr(args, "cells", "")
    cells = ", ".join(cells) if isinstance(cells, (list, tuple)) else str(cells)
    settings = {"command": settings_of(args, ("run", "progress", "json_out", "library_owner")), "config": config}
    text = f"Lab: {task}, cells {cells}. " + " ".join(lines)
    settings_json = json.dumps(settings, sort_keys=True)
    content = hashlib.sha256(f"lab:{settings_json}:{text}".encode()).hexdigest()
    record = Record(domain="lab", model=cells, model_stem="", weights_sha256="", settings_type="",
                    settings=settings_json, seed=config.get("seed", getattr(args, "seed", None)),
                    prompt=f"{task} T={config.get('length', '')}", output=text, content_hash=content,
                    duration=seconds, kind=LAB_RUN)
    owner = _owner(bool(getattr(args, "progress", None)), getattr(args, "library_owner", None))
    with tempfile.TemporaryDirectory(prefix="lstm-studio-lab-record-") as folder:
        files = {}
        run_json = Path(folder) / "run.json"
        run_json.write_text(json.dumps({k: v for k, v in result.items() if k != "_models"}) + "\n", encoding="utf-8")
        files["run (JSON)"] = run_json
        if "cells" in result:
            try:
                from studio.lab import plots

                figure = plots.loss_figure(result, result["cells"][next(iter(result["cells"]))].get("baseline"),
                                           result.get("task", {}).get("loss_name", "loss"))
                figure.savefig(Path(folder) / "loss.png", dpi=80)
                files["loss (PNG)"] = Path(folder) / "loss.png"
            except (KeyError, ValueError, TypeError, StopIteration, OSError):
                pass  # the curves are in run.json; a figure that cannot be drawn is left out
        return _keep(record, owner, files, store)
