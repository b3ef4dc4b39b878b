"""The lab as a job of the studio's queue (studio.jobs.Trainer): start a run or a sweep, read where it
stands, open its LSTM. The tab and the /lab endpoint both go through here; no gradio.

A run is `python -m studio lab ... --json FOLDER/run.json` in its own process, queued behind the
trainings (one at a time on a shared server); its progress lines come from the job's --progress
file while it runs, its result from run.json once it is written (finished or cancelled).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path

from studio import owners, train_progress, user_models
from studio.lab import explainer, plots
from studio.lab.cells import ALL_CELLS, parse_cells
from studio.lab.run import SWEEP_LENGTHS, load_cell
from studio.lab.tasks import TASKS, make_task

LAB_DIR = Path(tempfile.gettempdir()) / "lstm-studio" / "lab"
MAX_MINUTES = 30.0
MAX_TEXT_MB = 20.0


def start(trainer, task: str, length, cells, minutes, text_path: str | None = None, sweep: bool = False):
    """Queue a run (or the sweep over SWEEP_LENGTHS); the Job. ValueError with a sentence."""
    if task not in TASKS:
        raise ValueError(f"Choose a task: {', '.join(TASKS)}.")
    kinds = parse_cells(cells)
    try:
        minutes = float(minutes)
    except (TypeError, ValueError):
        raise ValueError("Give the time budget in minutes.") from None
    if not 0.05 <= minutes <= MAX_MINUTES:
        raise ValueError(f"The time budget must be between 0.05 and {MAX_MINUTES:g} minutes.")
    folder = LAB_DIR / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True, exist_ok=True)
    text = None
    if task == "quote" and text_path:
        source = Path(text_path)
        if not source.is_file() or source.stat().st_size > MAX_TEXT_MB * 1e6:
            raise ValueError(f"The text must be a file of at most {MAX_TEXT_MB:g} MB.")
        text = folder / "text.txt"
        shutil.copyfile(source, text)
    lengths = SWEEP_LENGTHS if sweep else [length]
    for n in lengths:  # refused here, in a sentence, rather than by the job
        make_task(task, n, text.read_text(encoding="utf-8", errors="replace") if text else None)
    command = ["lab", "--task", task, "--cells", ",".join(kinds), "--minutes", f"{minutes:g}",
               "--json", str(folder / "run.json")]
    command += ["--sweep", ",".join(map(str, lengths))] if sweep else ["--length", str(int(length))]
    command += ["--text", str(text)] if text else []
    owner = user_models.current_owner.get()  # the asker: the run is kept in their library (studio.library.events)
    command += ["--library-owner", owner] if owner and owner != owners.LOCAL else []
    return trainer.submit_command("lab", command, folder, minutes)


def run_path(trainer, job_id: str) -> Path:
    job = trainer.jobs.get(job_id)
    if job is None:
        raise ValueError(f"No lab run {job_id!r}.")
    return Path(job.out).parent / "run.json"


def state(trainer, job_id: str) -> dict:
    """{"status": queued / running / done / cancelled / failed, "message", "step", "steps", "eta_seconds",
    "position", "record" (plots' record: the run's cells and curves so far), "result" (run.json once
    written, else None), "sweep": bool}."""
    path = run_path(trainer, job_id)  # ValueError for an unknown job
    status = trainer.status(job_id)
    job = trainer.jobs[job_id]
    result = None
    if path.is_file():
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            result = None
    lines = train_progress.read(job.progress_path)
    sweep = "--sweep" in job.command
    if result is not None:
        status["status"] = "cancelled" if result.get("interrupted") else "done"
        status["message"] = ("Cancelled: the curves so far are kept." if result.get("interrupted") else "Done.")
    record = plots.from_progress(lines) if result is None or sweep else result
    steps = [line for line in lines if "steps" in line]
    return {**status, "record": record, "result": result, "sweep": sweep,
            "step": steps[-1]["step"] if steps else 0, "steps": (steps[-1].get("steps") or 0) if steps else 0,
            "T": steps[-1].get("T") if steps else None}


def lstm_generation(trainer, job_id: str, kind: str = "lstm", seed: int = 1):
    """The trained LSTM (or an ablation) of a finished or cancelled run on one task sequence: the
    trace viewer's and ask why's LabGeneration. ValueError with a sentence."""
    path = run_path(trainer, job_id)
    if not path.is_file():
        raise ValueError("The run has not finished yet: its LSTM opens once its results are written.")
    result = json.loads(path.read_text(encoding="utf-8"))
    if "cells" not in result:
        raise ValueError("A sweep keeps no model: run one length to open its LSTM.")
    if kind not in result["cells"]:
        lstms = [k for k in ALL_CELLS if k.startswith("lstm") and k in result["cells"]]
        if not lstms:
            raise ValueError("This run trained no LSTM.")
        kind = lstms[0]
    text = path.parent / "text.txt"
    task = make_task(result["task"]["name"], result["task"]["length"],
                     text.read_text(encoding="utf-8", errors="replace") if text.is_file() else None)
    cell = load_cell(path, kind)
    return explainer.generation(cell, task, seed, model=f"lab-{kind}")
