"""What a restart of the app must not lose of the Train tab: one small JSON file per training, written
each time its state changes (queued, running, finished), so that after a restart its owner still finds
it with its outcome, final numbers and loss curve (studio.jobs.Trainer.restore reads them back).

    LSTM_STUDIO_HOME/trainings/<job id>.json   the job's status as Trainer.status gives it, plus its
                                               owner, model stem and times

A training that was queued or running when the app stopped is read back as "interrupted" (its
process died with the app), saying whether it left a checkpoint: the trainer saves the best one at
each validation, so such a model is in its owner's list and usable. One whose trainer had finished
(its progress file ends with the "done" line and its model is there) is read back as done.
Each file is written to a temporary name and moved into place (os.replace), so a kill mid-write
leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from studio import checkpoint, owners, train_progress

FOLDER = "trainings"  # under the user data folder (studio.owners.home())
MAX_POINTS = 1000  # loss points kept per training (evenly thinned, the last always kept): a record stays small
LIVE = ("queued", "running")


def folder() -> Path:
    return owners.home() / FOLDER


def thinned(points: list, most: int = MAX_POINTS) -> list:
    if len(points) <= most:
        return points
    every = len(points) / most
    return [points[int(k * every)] for k in range(most - 1)] + [points[-1]]


def write(root: Path, record: dict) -> None:
    """The record as root/<job id>.json, atomically; a full or read-only disk is a warning, not a failed job."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        record = {**record, "progress": thinned(record.get("progress") or [])}
        handle, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=root)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(record, file)
            file.flush()
            os.fsync(file.fileno())  # on disk before it replaces the last one
        os.replace(temporary, root / f"{record['job']}.json")
    except OSError as error:
        print(f"warning: the record of training {record.get('job')} was not saved: {error}", file=sys.stderr)


def read_all(root: Path) -> list[dict]:
    """Every record in root (an unreadable file is skipped with a warning), oldest first."""
    records = []
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(record, dict) and record.get("job") == path.stem:
                records.append(record)
        except (OSError, ValueError) as error:
            print(f"warning: skipping the training record {path.name}: {error}", file=sys.stderr)
    return sorted(records, key=lambda record: record.get("submitted") or 0)


def after_restart(record: dict, title: str, now: float) -> dict:
    """A record left queued or running by an app that stopped, as it is now, with the progress its file got
    to (where the job's folder survived): done if its trainer had finished and left the model (the app died
    before noting it), else interrupted, saying whether it left a checkpoint."""
    lines = train_progress.read(Path(record.get("folder") or "-") / "progress.jsonl")
    steps = [line for line in lines if "step" in line]
    if steps:
        record = {**record, "step": steps[-1]["step"], "steps": steps[-1].get("steps"),
                  "progress": [{k: line[k] for k in ("step", "loss", "val") if k in line} for line in steps],
                  "samples": [{"step": line["step"], "sample": line.get("sample", "")}
                              for line in steps if "val" in line]}
    stem = Path(record.get("out") or "-")
    kept = record.get("status") == "running" and checkpoint.paths(stem)[1].exists()
    if kept and any(line.get("done") for line in lines):
        return {**record, "status": "done", "finished": now, "position": 0, "eta_seconds": None,
                "message": f"Done. The model {stem.name} is in the {title} tab's list."}
    message = "Interrupted by a restart of the server" + (
        f"; its best checkpoint so far is kept: the model {stem.name} is in the {title} tab's list." if kept else
        " before its first checkpoint; start it again." if record.get("status") == "running" else
        " before it started; start it again.")
    return {**record, "status": "interrupted", "message": message, "finished": now, "checkpoint": kept,
            "pictures": [], "tokens_per_s": None, "eta_seconds": None, "position": 0}


class Records:
    """The trainings' records in one folder (default folder()): written as each job changes, and the ones an
    earlier run of the app left, read back by `restore`."""

    def __init__(self, root=None):
        self.root = Path(root) if root is not None else folder()
        self.restored: dict[str, dict] = {}  # job id -> its status as kept (interrupted where it was live)

    def keep(self, status: dict, owner, out, job_folder, submitted, started, finished) -> None:
        write(self.root, {**status, "owner": owner, "out": str(out), "folder": str(job_folder),
                          "submitted": submitted, "started": started, "finished": finished,
                          "pictures": [], "files": [], "eta_seconds": None, "position": 0})

    def restore(self, known, title_of) -> int:
        """Read back every record whose job is not in `known`; title_of(domain name) -> its tab's title."""
        for record in read_all(self.root):
            if record["job"] in known:
                continue
            if record.get("status") in LIVE:  # its process died with the app that ran it
                try:
                    title = title_of(record.get("domain"))
                except ValueError:  # a domain this studio no longer has
                    title = str(record.get("domain"))
                record = after_restart(record, title, time.time())
                write(self.root, record)
            self.restored[record["job"]] = record
        return len(self.restored)

    def status(self, job_id: str) -> dict:
        """A restored training's status, with its model's files where they still are."""
        found = dict(self.restored[job_id])
        has_model = found["status"] == "done" or found.get("checkpoint")
        found["files"] = [str(p) for p in checkpoint.paths(Path(found["out"])) if p.exists()] if has_model else []
        return found

    def of_owner(self, owner) -> list[dict]:
        return [self.status(job_id) for job_id, found in list(self.restored.items())
                if owner is not None and found.get("owner") == owner]
