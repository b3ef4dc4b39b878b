"""The "Why LSTM" lab's runs (issue 27), each `python -m studio lab` in its own process with one thread,
its lines printed as they are and checked against the issue's goals; --figures draws a run's pictures.

  --must-show  the adding problem at T = 100, a tanh RNN and an LSTM, 2 minutes for the whole run.
               Goals: the LSTM's MSE <= 0.01, the RNN's >= 0.1, the LSTM's log10_grad_ratio at least 3
               above the RNN's.
  --long       the same at T = 200 with 4 minutes, once per seed (--seeds 0,1,2): reported, no goal.
  --sweep      T = 25, 50, 100, 200, 400 in turn (--minutes shared): the longest T each cell learned.
  --figures    with --json of a finished run: its loss and gradient pictures as PNGs in DIR.

OMP_NUM_THREADS=1 python bench/bench_lab.py --must-show --json /tmp/lab-100.json
OMP_NUM_THREADS=1 python bench/bench_lab.py --long --seeds 0 --json /tmp/lab-200.json
OMP_NUM_THREADS=1 python bench/bench_lab.py --sweep --cells rnn,gru,lstm --minutes 20
python bench/bench_lab.py --figures docs/figures --json /tmp/lab-100.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^cell=(\S+) T=(\d+) loss=(\S+) baseline=(\S+) log10_grad_ratio=(\S+)$")


def lab(*args: str) -> dict:
    """Run `python -m studio lab ARGS`, echo its output, and return {cell: {loss, baseline, ratio}}."""
    command = [sys.executable, "-m", "studio", "lab", *args]
    print("$ OMP_NUM_THREADS=1 python -m studio lab " + " ".join(args), flush=True)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    print(done.stdout, end="")
    if done.returncode:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(done.returncode)
    cells = {}
    for line in done.stdout.splitlines():
        match = LINE.match(line)
        if match:
            name, _, loss, baseline, ratio = match.groups()
            cells[name] = {"loss": float(loss), "baseline": float(baseline), "ratio": float(ratio)}
    return cells


def must_show(json_out: str | None) -> bool:
    cells = lab("--task", "adding", "--length", "100", "--cells", "rnn,lstm", "--minutes", "2",
                *(["--json", json_out] if json_out else []))
    rnn, lstm = cells["rnn"], cells["lstm"]
    goals = [(f"LSTM MSE {lstm['loss']:.4f} <= 0.01", lstm["loss"] <= 0.01),
             (f"RNN MSE {rnn['loss']:.4f} >= 0.1", rnn["loss"] >= 0.1),
             (f"ratio gap {lstm['ratio'] - rnn['ratio']:.1f} >= 3", lstm["ratio"] - rnn["ratio"] >= 3)]
    for text, ok in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return all(ok for _, ok in goals)


def figures(json_path: str, folder: str) -> None:
    from studio.lab import plots

    result = json.loads(Path(json_path).read_text(encoding="utf-8"))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"lab-{result['task']['name']}-T{result['task']['length']}"
    baseline = next(iter(result["cells"].values()))["baseline"]
    plots.loss_figure(result, baseline, result["task"]["loss_name"]).savefig(folder / f"{stem}-loss.png", dpi=100)
    plots.gradient_figure(result).savefig(folder / f"{stem}-gradient.png", dpi=100)
    print(f"wrote {folder / (stem + '-loss.png')} and {folder / (stem + '-gradient.png')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--must-show", action="store_true")
    parser.add_argument("--long", action="store_true")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--figures", metavar="DIR")
    parser.add_argument("--json", help="where the run keeps its curves (--figures: the run to draw)")
    parser.add_argument("--seeds", default="0", help="--long: comma-separated seeds")
    parser.add_argument("--cells", default="rnn,gru,lstm", help="--sweep: the cells")
    parser.add_argument("--minutes", default="20", help="--sweep: the whole sweep's minutes")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    ok = True
    if args.must_show:
        ok = must_show(args.json) and ok
    if args.long:
        for seed in args.seeds.split(","):
            out = args.json.replace(".json", f"-seed{seed}.json") if args.json else None
            lab("--task", "adding", "--length", "200", "--cells", "rnn,lstm", "--minutes", "4", "--seed", seed,
                *(["--json", out] if out else []))
    if args.sweep:
        lab("--task", "adding", "--sweep", "25,50,100,200,400", "--cells", args.cells, "--minutes", args.minutes)
    if args.figures:
        if not args.json:
            parser.error("--figures needs --json (a finished run)")
        figures(args.json, args.figures)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
