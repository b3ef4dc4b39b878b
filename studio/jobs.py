"""Training jobs for the Train tab and the /train endpoint (no gradio here).

Every domain of studio.domains.ALL trains here; its TRAINING record (studio.domains.base.Training)
says which files it reads, how they become the trainer's `--data` and which flags a size preset
gives. One training at a time on a shared server; later ones wait in line and know their place. Each runs
`python -m studio train DOMAIN --data ... --progress FILE` in its own process, with one intra-op thread at a
lower priority, so the app's generation keeps the rest of the machine; cancel
sends it Ctrl-C, on which the trainer validates and keeps its best checkpoint. A finished model lands
in the user models folder with a complete card (its data: file names, sizes, hashes) and is handed
to `on_done` (the app adds it to its tab's list). Each training's state is also kept on disk
(studio.job_records), so that `restore` at start-up gives back every owner's trainings after a restart.

    trainer = Trainer(models_dir, on_done=lambda job, stem: ...)
    job = trainer.submit(TrainRequest("text", files=["essays.txt"], name="mine", minutes=5))
    trainer.status(job.id)   # {"status": "running", "position": 0, "progress": [...], ...}
    trainer.cancel(job.id)
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from studio import checkpoint, domains, gpu, gpu_slices, job_records, limits, owners, train_progress
from studio.domains.base import describe

REPO = Path(__file__).resolve().parent.parent
USER_MODELS_DIR = owners.user_models_dir()  # LSTM_STUDIO_USER_MODELS, else LSTM_STUDIO_HOME/models
JOBS_DIR = Path(tempfile.gettempdir()) / "lstm-studio" / "training"
MAX_UPLOAD_MB = float(os.environ.get("LSTM_STUDIO_MAX_UPLOAD_MB", "20"))  # all of one job's files, unzipped
MAX_MINUTES = float(os.environ.get("LSTM_STUDIO_MAX_TRAIN_MINUTES", "30"))
DOMAINS = tuple(domain.NAME for domain in domains.ALL)  # every domain trains (its TRAINING record says how)
# (hidden size, layers, embedding) per size; the speed at "medium" is in docs/benchmarks.md, Training
PRESETS = {"tiny": (64, 1, 16), "small": (128, 2, 32), "medium": (256, 2, 64), "large": (512, 2, 64)}


@dataclass
class TrainRequest:
    domain: str  # a domain's NAME (one of DOMAINS)
    files: list = field(default_factory=list)  # uploaded paths (the domain's TRAINING.suffixes; zips of them)
    name: str = "mine"
    preset: str = "medium"
    minutes: float = 5.0
    base: str | None = None  # a checkpoint stem to fine-tune (None: from scratch)
    corpus: str | None = None  # a shipped corpus file (in the data folder) instead of uploads


@dataclass
class Job:
    id: str
    request: TrainRequest
    folder: Path
    out: Path
    command: list[str]
    data: list[dict]  # {"name", "bytes", "sha256"} per file it read
    status: str = "queued"  # queued, running, done, cancelled, failed (interrupted: a restored one, job_records)
    message: str = ""
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    process: subprocess.Popen | None = None
    trains_model: bool = True  # a `train` command leaving a checkpoint at `out`; else a command writing its own results
                               # (the lab)
    owner: str | None = owners.LOCAL  # whose training it is (studio.owners): whose list shows it after a restart

    @property
    def progress_path(self) -> Path:
        return self.folder / "progress.jsonl"


def trainable(name: str):
    """The domain of this name (its TRAINING record says how it trains); ValueError with a sentence otherwise."""
    try:
        return domains.by_name(name)
    except ValueError:
        raise ValueError(f"Training runs for {', '.join(DOMAINS)}; {name!r} is not one of them.") from None


def page_folder() -> Path:
    """A fresh folder for data made in the page (drawings, recordings) before a training is started."""
    JOBS_DIR.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="made-", dir=JOBS_DIR))


def gather(files, suffixes, folder: Path) -> list[Path]:
    """Every uploaded file checked for size and copied into `folder/files` (zips opened there by
    limits.extract_zip, keeping their members with these suffixes): one folder, so a transcript
    sits beside its file (name.wav + name.txt) and gradio's sweep of old uploads never reaches a
    queued job. ValueError with a sentence otherwise."""
    budget = int(MAX_UPLOAD_MB * 1_000_000)
    paths = [Path(f) for f in files or [] if f]
    if not paths:
        raise ValueError("Upload at least one file (or pick a shipped corpus).")
    found, into = [], folder / "files"
    for path in paths:
        if not path.is_file():
            raise ValueError(f"{path.name} was not received; upload it again.")
        if path.stat().st_size > budget:
            raise ValueError(f"{path.name} is larger than {MAX_UPLOAD_MB:g} MB.")
        if path.stat().st_size == 0:
            raise ValueError(f"{path.name} is empty.")
        if path.suffix.lower() == ".zip":
            what = "/".join(sorted(s for s in suffixes if s)) + " files"
            found += limits.extract_zip(path, into / f"zip-{len(found)}",
                                        lambda name: Path(name).suffix.lower() in suffixes,
                                        budget, what, ValueError)
        else:
            target = into / path.name
            if target.exists():  # two uploads of one name: the later one gets a number
                target = target.with_name(f"{target.stem}-{len(found)}{target.suffix}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            found.append(target)
    if sum(p.stat().st_size for p in found) > budget:
        raise ValueError(f"The files come to more than {MAX_UPLOAD_MB:g} MB together; upload less.")
    return found


def safe_name(name: str, models_dir: Path) -> str:
    """A file-safe model name, not yet taken in models_dir (by a model of any domain)."""
    base = re.sub(r"[^a-z0-9_-]+", "-", str(name or "").strip().lower()).strip("-")[:40] or "mine"
    taken = {stem for models in checkpoint.scan(models_dir)[0].values() for stem in models}
    candidate, k = base, 2
    while candidate in taken or (models_dir / f"{candidate}.json").exists():
        candidate, k = f"{base}-{k}", k + 1
    return candidate


def command_for(request: TrainRequest, data: list[Path], out: Path, progress: Path) -> list[str]:
    command = [sys.executable, "-m", "studio", "train", request.domain, "--data", *map(str, data), "--out", str(out),
               "--minutes", f"{request.minutes:g}", "--threads", "1", "--progress", str(progress)]
    if request.base:  # fine-tuning keeps the base model's shape
        return command + ["--init", str(request.base)]
    return command + trainable(request.domain).TRAINING.shape_flags(PRESETS[request.preset])


class Trainer:
    def __init__(self, models_dir=USER_MODELS_DIR, on_done=None, data_dir: Path | None = None, models_dir_of=None,
                 owner_of=None, records_dir=None):
        self.models_dir = Path(models_dir)
        # () -> the folder of the model a request trains (the asker's own on a shared server, None when
        # the asker has no owner key); None: models_dir
        self.models_dir_of = models_dir_of
        self.on_done = on_done  # (job, stem) -> None, called when a run leaves a checkpoint
        self.owner_of = owner_of  # () -> the asker's owner (None: owners.LOCAL)
        self.records = job_records.Records(records_dir)  # each training's state on disk, and those from before
        self.data_dir = data_dir
        self.jobs: dict[str, Job] = {}
        self.queue: list[str] = []
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.worker: threading.Thread | None = None

    # ---------------------------------------------------------------- requests
    def submit(self, request: TrainRequest) -> Job:
        """Check the request and its data (ValueError with a sentence), then queue it."""
        trainable(request.domain)
        if request.preset not in PRESETS:
            raise ValueError(f"Size {request.preset!r} is not one of {', '.join(PRESETS)}.")
        try:
            minutes = float(request.minutes)
        except (TypeError, ValueError):
            raise ValueError("Give the time budget in minutes.") from None
        if not 0.05 <= minutes <= MAX_MINUTES:
            raise ValueError(f"The time budget must be between 0.05 and {MAX_MINUTES:g} minutes on this server.")
        request.minutes = minutes
        job_id = uuid.uuid4().hex[:12]
        folder = JOBS_DIR / job_id
        folder.mkdir(parents=True, exist_ok=True)
        data, described = self._data(request, folder)
        models_dir = self.models_dir_of() if self.models_dir_of is not None else self.models_dir
        if models_dir is None:
            raise ValueError("This server is shared: send your browser's owner key to train a model of your own.")
        models_dir = Path(models_dir)
        models_dir.mkdir(parents=True, exist_ok=True)
        out = models_dir / safe_name(request.name, models_dir)
        job = Job(job_id, request, folder, out, command_for(request, data, out, folder / "progress.jsonl"), described,
                  owner=self.owner_of() if self.owner_of is not None else owners.LOCAL)
        return self._keep(self._enqueue(job))

    def _enqueue(self, job: Job) -> Job:
        """The job at the end of the line, with the worker that runs the line started if it is not running."""
        with self.lock:
            self.jobs[job.id] = job
            self.queue.append(job.id)
            if self.worker is None or not self.worker.is_alive():
                self.worker = threading.Thread(target=self._work, name="training-jobs", daemon=True)
                self.worker.start()
        self.wake.set()
        return job

    def _data(self, request: TrainRequest, folder: Path) -> tuple[list[Path], list[dict]]:
        training = trainable(request.domain).TRAINING
        if request.corpus:
            path = (self.data_dir or Path()) / Path(request.corpus).name
            if path.name not in training.corpora or not path.is_file():
                raise ValueError(f"The corpus {request.corpus} is not on this server.")
            return [path], [describe(path)]
        return training.prepare(gather(request.files, training.suffixes, folder), folder)

    def cancel(self, job_id: str) -> dict:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise ValueError(f"No training {job_id!r}.")
            if job.status == "queued":
                self.queue.remove(job_id)
                job.status, job.message, job.finished = "cancelled", "Cancelled before it started.", time.time()
            elif job.status == "running":
                job.message = "Cancelling: keeping the best checkpoint…"
                if job.process is not None:  # else _run sees the message and never starts it
                    job.process.send_signal(signal.SIGINT)
        if job.status == "cancelled":  # (a running one is kept when it ends) outside the lock: status() takes it
            self._keep(job)
        return self.status(job_id)

    def status(self, job_id: str) -> dict:
        job = self.jobs.get(job_id)
        if job is None and job_id in self.records.restored:  # from before a restart: as it was kept
            return self.records.status(job_id)
        if job is None:
            raise ValueError(f"No training {job_id!r}.")
        lines = train_progress.read(job.progress_path)
        steps = [line for line in lines if "step" in line]
        last = steps[-1] if steps else {}
        eta = None
        if job.status == "running" and job.started:
            eta = max(0.0, job.request.minutes * 60 - (time.time() - job.started))
        with self.lock:
            position = self.queue.index(job_id) + 1 if job_id in self.queue else 0
        return {"job": job.id, "status": job.status, "position": position, "message": job.message,
                "name": job.out.name, "domain": job.request.domain, "minutes": job.request.minutes,
                "step": last.get("step", 0), "steps": last.get("steps"), "tokens_per_s": last.get("tokens_per_s"),
                "eta_seconds": eta, "progress": [{k: line[k] for k in ("step", "loss", "val") if k in line} for line in steps],
                "samples": [{"step": line["step"], "sample": line.get("sample", "")} for line in steps if "val" in line],
                "pictures": [line["picture"] for line in steps if line.get("picture")],
                "files": [str(p) for p in checkpoint.paths(job.out) if p.exists()] if job.status == "done" else [],
                "data": job.data}

    # ---------------------------------------------------------------- the worker
    def _work(self) -> None:
        while True:
            self.wake.wait(timeout=1.0)
            self.wake.clear()
            with self.lock:  # out of the queue and running in one step: a cancel sees one or the other
                job_id = self.queue.pop(0) if self.queue else None
                if job_id is not None:
                    self.jobs[job_id].started, self.jobs[job_id].status = time.time(), "running"
            if job_id is None:
                continue
            self._keep(self.jobs[job_id])
            self._run(self.jobs[job_id])
            self._keep(self.jobs[job_id])

    def _run(self, job: Job) -> None:
        """The job in its own CPU process; on a ZeroGPU Space in slices of lent GPU calls (studio.gpu), and the
        rest in that CPU process (resumed) when a GPU call is refused. A cancel that no process can hear
        (before it starts, between slices) is a stop file the trainer reads as Ctrl-C."""
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        log_path, stop = job.folder / "train.log", job.folder / "stop"
        command, code = job.command, 0
        if gpu.available() and job.trains_model:  # the slices resume a training; another command runs whole
            with self.lock:
                if "Cancelling" in job.message:
                    job.status, job.message, job.finished = "cancelled", "Cancelled before it started.", time.time()
                    return
            try:
                outcome = gpu_slices.train_in_slices(job.command[3:], job.progress_path, log_path, stop,
                                              cancelled=lambda: "Cancelling" in job.message)
            except Exception as error:  # the worker thread must outlive a failed job
                outcome = "failed"
                with log_path.open("a", encoding="utf-8") as log:
                    print(f"error: the GPU training call failed: {error}", file=log)
            code = 0 if outcome == "done" else 1
            command = [*job.command, "--resume", "--stop-file", str(stop)] if outcome == "cpu" else None
        if command is not None:
            with log_path.open("a", encoding="utf-8") as log:
                with self.lock:
                    if "Cancelling" in job.message:
                        if command is job.command:  # cancelled between leaving the queue and here
                            job.status, job.message, job.finished = ("cancelled", "Cancelled before it started.",
                                                                      time.time())
                            return
                        stop.touch()
                    job.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                   preexec_fn=_lower_priority if hasattr(os, "nice") else None)
                code = job.process.wait()
        _plain_command_in_card(job)
        job.finished = time.time()
        tail = (job.folder / "train.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        errors = [line for line in tail if line.startswith("error:")]
        has_model = checkpoint.paths(job.out)[1].exists()
        if has_model:
            self._complete_card(job)
            if self.on_done is not None:
                self.on_done(job, job.out)
        cancelled = "Cancelling" in job.message
        if not job.trains_model:  # its results are in its own folder, whether it ended or was stopped
            job.status = "cancelled" if cancelled else ("done" if code == 0 else "failed")
            job.message = "Cancelled; what it measured so far is kept." if cancelled else (
                "Done." if code == 0 else errors[-1][len("error: "):] if errors else f"Stopped (exit {code}): "
                f"{tail[-1] if tail else ''}")
        elif has_model:  # finished, or cancelled after a checkpoint: either way a model to use and download
            job.status = "done"
            job.message = ("Cancelled; the best checkpoint so far is kept." if cancelled else "Done.") + \
                f" The model {job.out.name} is in the {trainable(job.request.domain).TITLE} tab's list."
        else:
            job.status = "cancelled" if cancelled else "failed"
            job.message = errors[-1][len("error: "):] if errors else (
                "Cancelled before the first checkpoint." if cancelled else f"Training stopped (exit {code}): {tail[-1] if tail else ''}")

    # ---------------------------------------------------------------- kept across restarts (studio.job_records)
    def _keep(self, job: Job) -> Job:
        """The job's state on disk (a training; the lab's commands keep their own results)."""
        if job.trains_model:
            self.records.keep(self.status(job.id), job.owner, job.out, job.folder, job.submitted, job.started,
                              job.finished)
        return job

    def restore(self) -> int:
        """Every owner's trainings kept by an earlier run of the app, back in their lists (one that was queued or
        running then is interrupted now); how many."""
        return self.records.restore(self.jobs, lambda name: trainable(name).TITLE)

    def trainings(self, owner: str | None) -> list[dict]:
        """This owner's trainings, from before and since the last restart, newest first (None: nobody's)."""
        live = [self.status(job.id) | {"submitted": job.submitted} for job in list(self.jobs.values())
                if job.trains_model and job.owner == owner and owner is not None]
        return sorted(live + self.records.of_owner(owner), key=lambda found: -(found.get("submitted") or 0))

    def _complete_card(self, job: Job) -> None:
        """The card says what the model learnt from: the uploaded files (name, size, hash)."""
        card = checkpoint.read_card(job.out)
        card["data"]["files"] = job.data
        if job.request.corpus is None:
            card["data"]["source"] = "uploaded to LSTM Studio: " + ", ".join(f"{d['name']} ({d['bytes']:,} bytes)" for d in job.data)
            card["data"]["licence"] = "as the uploader's files (not stated)"
        checkpoint.write_card(job.out, card)

    # ---------------------------------------------------------------- other commands (the lab)
    def submit_command(self, kind: str, command: list[str], out_folder, minutes: float) -> Job:
        """Queue `python -m studio COMMAND... --progress FILE` (FILE in the job's folder) behind the
        trainings: one at a time, `cancel` sends it Ctrl-C, `status` reads its progress lines and
        gives the ETA from `minutes`. For commands that write their own results into out_folder
        rather than a model into the models folder (the "Why LSTM" lab: kind "lab")."""
        job_id = uuid.uuid4().hex[:12]
        folder = JOBS_DIR / job_id
        folder.mkdir(parents=True, exist_ok=True)
        out = Path(out_folder)
        out.mkdir(parents=True, exist_ok=True)
        full = [sys.executable, "-m", "studio", *map(str, command), "--progress", str(folder / "progress.jsonl")]
        # job.out names no checkpoint: the finished job leaves no model for on_done to load
        job = Job(job_id, TrainRequest(kind, name=out.name, minutes=float(minutes)), folder, out / f"{kind}-job", full,
                  [],
                  trains_model=False)
        return self._enqueue(job)


def _lower_priority() -> None:
    """In the training process (one intra-op thread, from --threads 1): a lower priority, so that the
    app's generation goes first on whichever core it needs. Not pinned to a core: pinned, the job
    runs slower (its helper threads cannot use the idle core; docs/benchmarks.md, Training)."""
    os.nice(5)


def _plain_command_in_card(job: Job) -> None:
    """The card's command that trains the model again, without the flags that ran this job in slices
    (--resume, --slice-seconds, --stop-file): the job's own command."""
    if checkpoint.paths(job.out)[1].exists():
        card = checkpoint.read_card(job.out)
        card["reproduce"] = "python -m studio " + shlex.join(job.command[3:])
        checkpoint.write_card(job.out, card)
