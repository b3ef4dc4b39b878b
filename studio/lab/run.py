"""Lockstep training of the lab's cells within one wall budget, and the sweep over T.

Every step draws one batch and every cell trains on it (Adam, gradient norm clipped), so all of
them see the same sequences for the same number of steps; the step loop stops when the budget,
less what the last measurement and the final evaluation will take, is spent. At CHECKPOINTS even
moments (and at initialisation) each cell's held-out loss and gradient curves are measured
(studio.lab.gradients). The end: each cell's loss on EVAL_SIZE fresh sequences, the baseline (the
loss of predicting their mean) and the final gradient curves.

Ctrl-C (the job queue's cancel) stops the training, not the run: the measurements so far are kept
and the final evaluation still runs on the weights reached, so a cancelled run has its curves.

    result = run(LabConfig(task="adding", length=100, cells=("rnn", "lstm"), minutes=2))
    result["cells"]["lstm"]["loss"], result["cells"]["lstm"]["log10_grad_ratio"]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from studio.lab import cells as lab_cells
from studio.lab import gradients
from studio.lab.tasks import make_task

SWEEP_LENGTHS = (25, 50, 100, 200, 400)
LEARNED = 0.1  # learned: held-out loss below this fraction of the baseline
CURVE_POINTS = 400  # loss points kept per cell (every step's loss is averaged into them)
EMIT_EVERY = 0.5  # seconds between progress lines of the loss


@dataclass
class LabConfig:
    task: str = "adding"  # adding, copy or quote
    length: int = 100  # T
    cells: tuple = ("rnn", "gru", "lstm")  # from studio.lab.cells.ALL_CELLS
    minutes: float = 2.0  # wall time of the whole run, measurements and evaluation included
    hidden: int = 64  # the LSTM's units; rnn and gru are sized to its parameter count
    batch: int = 64
    lr: float = 2e-3  # Adam
    clip: float = 1.0  # gradient norm clipped to this
    seed: int = 0
    checkpoints: int = 8  # gradient measurements during training (one more at initialisation)
    measure_batch: int = 32  # sequences the gradients are measured on (the same at every checkpoint)
    val_size: int = 256  # held-out sequences for the loss at checkpoints
    eval_size: int = 1000  # fresh sequences for the final loss
    corpus: str | None = field(default=None, repr=False)  # quote: the text read (None: Tiny Shakespeare)


def run(config: LabConfig, on_progress: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> dict:
    """Train config.cells in lockstep; the result (JSON-ready): per cell its size, curves, final
    loss, baseline and gradient ratio. on_progress gets every progress line (see cli.py)."""
    started = time.perf_counter()
    budget = float(config.minutes) * 60.0
    task = make_task(config.task, config.length, config.corpus)
    kinds = lab_cells.parse_cells(config.cells)
    cells = lab_cells.build(kinds, task.input_size, task.output_size, config.hidden, config.seed)
    optimisers = {k: torch.optim.Adam(c.parameters(), lr=config.lr) for k, c in cells.items()}
    data = torch.Generator().manual_seed(config.seed)
    fixed = torch.Generator().manual_seed(10_000 + config.seed)  # held-out sets, never trained on
    measure_x, measure_y = task.sample(config.measure_batch, fixed)
    val_x, val_y = task.sample(config.val_size, fixed)
    emit = on_progress or (lambda line: None)
    record = {k: {"cell": k, "title": lab_cells.TITLES[k], "hidden": c.hidden_size, "params": c.parameters_count,
                  "curve": [], "val": [], "gradients": []} for k, c in cells.items()}

    def checkpoint(step: int) -> float:
        torch.set_flush_denormal(False)  # the measurement keeps every float64 digit down to 1e-308
        began = time.perf_counter()
        line = {"checkpoint": len(next(iter(record.values()))["gradients"]), "step": step,
                "seconds": round(began - started, 2), "val": {}, "gradients": {}}
        for kind, cell in cells.items():
            curves = gradients.measure(cell, task, measure_x, measure_y)
            with torch.no_grad():
                line["val"][kind] = float(task.loss(cell(val_x), val_y))
            line["gradients"][kind] = {"step": step, "seconds": line["seconds"], **curves}
        for kind in cells:  # every cell's measurement or none (a Ctrl-C may land in the middle)
            record[kind]["gradients"].append(line["gradients"][kind])
            record[kind]["val"].append({"step": step, "loss": line["val"][kind]})
        emit(line)
        return time.perf_counter() - began

    sums = {k: 0.0 for k in cells}
    step, pending, interrupted, spent = 0, 0, False, 0.0
    steps_estimate, last_emit = None, 0.0
    try:
        measure_cost = checkpoint(0)
        eval_cost = 0.2 + 2e-6 * config.eval_size * task.length * len(cells)  # the final loss, a rough guess
        reserve = 2 * (measure_cost + eval_cost) + 1.0  # doubled: a busy machine slows the end too
        train_budget = max(0.0, budget - (time.perf_counter() - started) - reserve)
        every = train_budget / (config.checkpoints + 1)  # seconds of the step loop between checkpoints
        next_checkpoint = every
        loop_started = time.perf_counter()
        while spent < train_budget and not (should_stop and should_stop()):
            x, y = task.sample(config.batch, data)
            # flushed to 0: a tanh RNN's vanishing gradient is made of float32 denormals, which the
            # CPU computes slowly (docs/benchmarks.md, Why LSTM lab)
            torch.set_flush_denormal(True)
            for kind, cell in cells.items():
                loss = task.loss(cell(x), y)
                optimisers[kind].zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(cell.parameters(), config.clip)
                optimisers[kind].step()
                cell.pin()
                sums[kind] += float(loss.detach())
            step += 1
            pending += 1
            spent = time.perf_counter() - loop_started
            if steps_estimate is None and spent > 1.0:
                steps_estimate = int(step * train_budget / spent)
            if pending >= max(1, (steps_estimate or 10**9) // CURVE_POINTS) or spent >= train_budget:
                for kind in cells:
                    record[kind]["curve"].append({"step": step, "seconds": round(time.perf_counter() - started, 2),
                                                  "loss": sums[kind] / pending})
                if time.perf_counter() - last_emit >= EMIT_EVERY or spent >= train_budget:
                    last_emit = time.perf_counter()
                    emit({"step": step, "steps": steps_estimate, "seconds": round(last_emit - started, 2),
                          "loss": {k: sums[k] / pending for k in cells}})
                sums, pending = {k: 0.0 for k in cells}, 0
            if spent >= next_checkpoint and spent < train_budget:
                checkpoint(step)  # its time counts against the budget: the budget is wall time
                next_checkpoint += every
    except KeyboardInterrupt:
        interrupted = True
    if pending:  # the steps since the last curve point (a cancelled run)
        for kind in cells:
            record[kind]["curve"].append({"step": step, "seconds": round(time.perf_counter() - started, 2),
                                          "loss": sums[kind] / pending})
    final, baseline = {}, None
    try:
        if not record[kinds[0]]["gradients"] or record[kinds[0]]["gradients"][-1]["step"] != step:
            checkpoint(step)
        eval_x, eval_y = task.sample(config.eval_size, torch.Generator().manual_seed(20_000 + config.seed))
        baseline = task.baseline(eval_y)
        with torch.no_grad():
            for kind, cell in cells.items():
                final[kind] = float(task.loss(cell(eval_x), eval_y))
    except KeyboardInterrupt:  # a second Ctrl-C: keep what there is
        interrupted = True
    reference = baseline if baseline is not None else task.baseline(val_y)
    for kind in cells:
        last = record[kind]["gradients"][-1] if record[kind]["gradients"] else {"ratio": None, "floored": False}
        loss = final.get(kind, record[kind]["val"][-1]["loss"] if record[kind]["val"] else None)
        record[kind].update(loss=loss, baseline=reference, learned=loss is not None and loss < LEARNED * reference,
                            log10_grad_ratio=last["ratio"], ratio_floored=last["floored"])
    return {"config": {k: v for k, v in asdict(config).items() if k != "corpus"},
            "task": {"name": task.name, "length": task.length, "loss_name": task.loss_name,
                     "input_size": task.input_size, "output_size": task.output_size},
            "steps": step, "seconds": round(time.perf_counter() - started, 2), "interrupted": interrupted,
            "cells": record, "_models": cells}


def summary_line(name: str, length: int, cell: dict) -> str:
    """The CLI's line for one cell: cell=NAME T=T loss=X baseline=B log10_grad_ratio=R."""
    def shown(value, digits):
        return "nan" if value is None else f"{value:.{digits}f}"

    return (f"cell={name} T={length} loss={shown(cell['loss'], 4)} baseline={shown(cell['baseline'], 4)} "
            f"log10_grad_ratio={shown(cell['log10_grad_ratio'], 2)}")


def sweep(config: LabConfig, lengths=SWEEP_LENGTHS, on_progress=None, should_stop=None) -> dict:
    """One run per T, each with an equal share of config.minutes; the table: per cell the longest T
    it learned (held-out loss below a tenth of the baseline), and every run's numbers."""
    lengths = sorted({int(n) for n in lengths})
    share = float(config.minutes) / len(lengths)
    rows, interrupted = [], False
    for length in lengths:
        if interrupted or (should_stop and should_stop()):
            break

        def tagged(line, length=length):
            if on_progress:
                on_progress({**line, "T": length})

        result = run(LabConfig(**{**asdict(config), "length": length, "minutes": share, "corpus": config.corpus}),
                     tagged, should_stop)
        result.pop("_models")
        interrupted = result["interrupted"]
        rows.append({"T": length, "steps": result["steps"], "interrupted": interrupted,
                     "cells": {k: {key: c[key] for key in ("loss", "baseline", "learned", "log10_grad_ratio")}
                               for k, c in result["cells"].items()}})
    kinds = lab_cells.parse_cells(config.cells)
    longest = {k: max([r["T"] for r in rows if r["cells"][k]["learned"]], default=None) for k in kinds}
    return {"config": {k: v for k, v in asdict(config).items() if k != "corpus"}, "lengths": lengths,
            "minutes_each": share, "longest": longest, "runs": rows, "interrupted": interrupted}


def save(result: dict, path) -> Path:
    """The result as JSON at `path`, and the trained cells' weights beside it (PATH without .json +
    .safetensors, keys "CELL.PARAMETER") for the trace viewer."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    models = result.get("_models") or {}
    if models:
        weights = {f"{kind}.{name}": p.detach().float().contiguous() for kind, cell in models.items()
                   for name, p in cell.state_dict().items()}
        save_file(weights, str(weights_path(path)))
    plain = {k: v for k, v in result.items() if k != "_models"}
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(json.dumps(plain) + "\n", encoding="utf-8")
    temporary.replace(path)  # whoever polls never reads half a file
    return path


def weights_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.name.removesuffix(".json") + ".safetensors")


def load_cell(path, kind: str) -> lab_cells.LabCell:
    """A trained cell back from a saved run (save's JSON and weights); ValueError with a sentence."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        weights = load_file(str(weights_path(path)))
    except (OSError, ValueError) as error:
        raise ValueError(f"The lab run {path.name} cannot be read ({error}).") from None
    if kind not in result.get("cells", {}):
        raise ValueError(f"The run trained no {kind}.")
    task = result["task"]
    cell = lab_cells.LabCell(kind, task["input_size"], result["cells"][kind]["hidden"], task["output_size"])
    cell.load_state_dict({k.split(".", 1)[1]: v for k, v in weights.items() if k.split(".", 1)[0] == kind})
    return cell
