"""A training job as a series of lent ZeroGPU calls (studio.gpu), each training for a bounded time and
resuming the last; studio.jobs runs a job through here when gpu.available(). Kept apart from studio.gpu,
which the trainer itself imports (pick_device): a slice runs the command line, which imports the trainer."""

from __future__ import annotations

import threading
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import torch

from studio import gpu


def train_slice(argv: list[str], log_path: str) -> int:
    """In a lent call: `python -m studio train ...` (argv without the `python -m studio`) in this process,
    its output appended to the job's log; the exit status (a command line's `error: ...` lands in the log)."""
    from studio.__main__ import main

    # (the app turns gradients off for its own thread; a lent call's thread trains)
    with open(log_path, "a", encoding="utf-8") as out, redirect_stdout(out), redirect_stderr(out), torch.enable_grad():
        try:
            return int(main(list(argv)) or 0)
        except SystemExit as exit:
            if isinstance(exit.code, str):
                print(exit.code)
                return 1
            return int(exit.code or 0)
        except Exception:  # the job fails with its traceback in the log, the app goes on
            traceback.print_exc()
            return 1


def train_in_slices(argv: list[str], progress, log_path, stop_file, cancelled=lambda: False,
                    slice_seconds: float | None = None) -> str:
    """A training job (argv as for `python -m studio train`, with --progress `progress`) as lent GPU calls of
    at most `slice_seconds` of training each, every one resuming the last. "done" (it ended: finished, or
    stopped by a cancel with the best checkpoint kept), "failed" (see the log), or "cpu": a call was
    refused, and the rest is the caller's to run on the CPU with --resume --stop-file STOP_FILE.

    `cancelled()` is asked while a slice runs; when it says yes the stop file appears, which the slice's
    trainer (perhaps in another process) reads as Ctrl-C: it validates, keeps the best and ends the run."""
    from studio import train_progress

    # a longer call is cut off
    seconds = min(slice_seconds or gpu.SLICE_SECONDS, gpu.DURATIONS[-1] - gpu.SLICE_SETUP_SECONDS)
    stop_file, finished = Path(stop_file), threading.Event()

    def watch():  # a cancel reaches a trainer it cannot signal through the stop file
        while not finished.wait(0.2):
            if cancelled():
                stop_file.touch()
                return

    threading.Thread(target=watch, name="gpu-slices-cancel", daemon=True).start()
    try:
        resume: list[str] = []
        while True:
            try:
                code = gpu.lend(train_slice,
                                [*argv, *resume, "--slice-seconds", f"{seconds:g}", "--stop-file", str(stop_file)],
                            str(log_path), seconds=seconds + gpu.SLICE_SETUP_SECONDS)
            except Exception as error:
                if not gpu.refused(error):
                    raise
                with open(log_path, "a", encoding="utf-8") as out:
                    print(f"note: the GPU call was refused ({error}); training goes on on the CPU", file=out)
                return "cpu"
            if code != 0:
                return "failed"
            if any(line.get("done") for line in train_progress.read(progress)):
                return "done"
            resume = ["--resume"]
    finally:
        finished.set()
