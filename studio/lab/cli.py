"""python -m studio lab: train a tanh RNN, a GRU and an LSTM side by side and measure their gradients.

    python -m studio lab --task adding --length 100 --cells rnn,lstm --minutes 2 --json runs/lab.json

prints one line per cell:

    cell=NAME T=T loss=X baseline=B log10_grad_ratio=R

loss: the cell's loss on 1,000 fresh sequences (MSE for adding, cross-entropy in nats for copy and
quote); baseline: the loss of predicting their mean (the best constant answer); R: log10 of
||dL_T/dx_1|| / ||dL_T/dx_T|| at the end of training, in float64 (a vanished gradient is a large
negative number; -300 where even float64 gives 0, with a note). --minutes is the wall time of the
whole run. --json keeps the curves (loss, held-out loss, gradient norms against k at every
checkpoint) and the trained weights beside it; --progress writes JSON lines while it runs (the job
queue's progress). Ctrl-C stops training and still evaluates and writes everything so far.
--sweep 25,50,100,200,400 runs each T in turn (the minutes shared among them) and prints the longest
T each cell learned (held-out loss below a tenth of the baseline).
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from pathlib import Path

import torch

from studio.lab import cells as lab_cells
from studio.lab import gradients
from studio.lab.run import LabConfig, run, save, summary_line, sweep
from studio.lab.tasks import TASKS

MAX_MINUTES = 60.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m studio lab", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="adding", choices=TASKS, help="the task (default adding)")
    p.add_argument("--length", default="100", help="T, the sequence length (default 100)")
    p.add_argument("--cells", default="rnn,gru,lstm",
                   help=f"comma-separated, from {', '.join(lab_cells.ALL_CELLS)} (default rnn,gru,lstm)")
    p.add_argument("--minutes", type=float, default=2.0, help="wall time of the whole run (default 2)")
    p.add_argument("--hidden", type=int, default=64, help="the LSTM's units; rnn and gru match its parameters "
                                                          "(default 64)")
    p.add_argument("--batch", type=int, default=64, help="sequences per step (default 64)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam's learning rate (default 0.002)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batches (default 0)")
    p.add_argument("--checkpoints", type=int, default=8, help="gradient measurements during training (default 8)")
    p.add_argument("--text", help="quote task: a UTF-8 text file (default: Tiny Shakespeare)")
    p.add_argument("--sweep", help="comma-separated lengths, e.g. 25,50,100,200,400: one run each, --minutes shared")
    p.add_argument("--json", dest="json_out", help="write the curves here (and the weights beside it)")
    p.add_argument("--progress", help="append JSON progress lines here while training")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--library-owner", help=argparse.SUPPRESS)  # the app's job: whose library keeps the run
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        config, lengths = config_of(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background: let cancel reach us
        signal.signal(signal.SIGINT, signal.default_int_handler)
    progress = Path(args.progress) if args.progress else None
    if progress is not None:
        progress.parent.mkdir(parents=True, exist_ok=True)
        progress.write_text("", encoding="utf-8")

    def write_progress(line: dict) -> None:
        if progress is not None:
            with progress.open("a", encoding="utf-8") as file:
                file.write(json.dumps(line) + "\n")

    command = "python -m studio lab " + shlex.join(argv)
    started = time.perf_counter()
    try:
        if lengths:
            result = sweep(config, lengths, write_progress)
        else:
            result = run(config, write_progress)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result["command"] = command
    lines = []  # what is printed, kept in the library's record of the run
    if lengths:
        for row in result["runs"]:
            for name, cell in row["cells"].items():
                lines.append(summary_line(name, row["T"], cell))
        lines.append("longest T learned: "
                     + " ".join(f"{k}={v if v is not None else 'none'}" for k, v in result["longest"].items()))
        print("\n".join(lines))
    else:
        for name, cell in result["cells"].items():
            lines.append(summary_line(name, result["task"]["length"], cell))
            print(lines[-1])
            if cell["ratio_floored"]:
                print(f"note: {name}'s dL/dx_1 is exactly 0 even in float64; its ratio is shown as {gradients.FLOOR:g}")
    if result.get("interrupted"):
        print("interrupted: the curves so far are kept")
    if args.json_out:
        save(result, args.json_out)
    seconds = time.perf_counter() - started
    write_progress({"done": True, "interrupted": bool(result.get("interrupted")), "out": args.json_out})
    from studio.library.events import record_lab_run

    record_lab_run(result, lines, args, seconds)  # after "done": drawing its loss figure takes a second or so
    return 0


def config_of(args) -> tuple[LabConfig, list[int] | None]:
    """The run's LabConfig and the sweep's lengths (None: one run); ValueError with a sentence."""
    if not 0.01 <= args.minutes <= MAX_MINUTES:
        raise ValueError(f"--minutes must be between 0.01 and {MAX_MINUTES:g}.")
    if not 1 <= args.hidden <= 1024 or not 1 <= args.batch <= 4096:
        raise ValueError("--hidden must be 1..1024 and --batch 1..4096.")
    kinds = lab_cells.parse_cells(args.cells)
    text = None
    if args.text:
        path = Path(args.text)
        if not path.is_file():
            raise ValueError(f"{args.text} is not a file.")
        text = path.read_bytes().decode("utf-8", errors="replace")
    lengths = None
    if args.sweep:
        try:
            lengths = sorted({int(n) for n in args.sweep.split(",") if n.strip()})
        except ValueError:
            raise ValueError("--sweep takes whole numbers separated by commas, e.g. 25,50,100,200,400.") from None
        if not lengths:
            raise ValueError("--sweep needs at least one length.")
        length = lengths[0]
    else:
        try:
            length = int(args.length)
        except ValueError:
            raise ValueError("--length takes a whole number.") from None
    config = LabConfig(task=args.task, length=length, cells=kinds, minutes=args.minutes, hidden=args.hidden,
                       batch=args.batch, lr=args.lr, seed=args.seed, checkpoints=max(0, args.checkpoints), corpus=text)
    from studio.lab.tasks import make_task

    for n in lengths or [length]:
        make_task(config.task, n, text)  # a bad T or text is refused now, not minutes into a sweep
    return config, lengths


if __name__ == "__main__":
    sys.exit(main())
