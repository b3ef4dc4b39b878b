"""The lab's pictures (matplotlib; the tab shows them in gr.Plot, the docs save them as PNG): the loss
curves, and the measured gradient against k on a log axis with the LSTM's forget-gate product.

Both read the same records: a saved run (run.py's result) or the progress lines gathered so far
(`from_progress`), so the live tab and the finished run draw alike.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from studio.lab.cells import ALL_CELLS, TITLES  # noqa: E402

COLOURS = {"rnn": "#d62728", "gru": "#2ca02c", "lstm": "#1f77b4", "lstm-nof": "#9467bd", "lstm-fb0": "#17becf"}


def from_progress(lines: list[dict]) -> dict:
    """A run-like record from progress lines: {"cells": {kind: {"curve", "val", "gradients"}}, "task"?}.
    A sweep's lines (with "T") keep only the latest T's."""
    if any("T" in line for line in lines):
        latest = max(line["T"] for line in lines if "T" in line)
        lines = [line for line in lines if line.get("T") == latest]
    cells: dict = {}
    for line in lines:
        if "checkpoint" in line:
            for kind, point in line.get("gradients", {}).items():
                cell = cells.setdefault(kind, {"curve": [], "val": [], "gradients": []})
                cell["gradients"].append(point)
                cell["val"].append({"step": line["step"], "loss": line["val"][kind]})
        elif isinstance(line.get("loss"), dict):
            for kind, loss in line["loss"].items():
                cells.setdefault(kind, {"curve": [], "val": [], "gradients": []})["curve"].append(
                    {"step": line["step"], "loss": loss})
    return {"cells": {k: cells[k] for k in ALL_CELLS if k in cells}}


def loss_figure(record: dict, baseline: float | None = None, loss_name: str = "loss"):
    """Training loss (thin) and held-out loss at checkpoints (dots) per cell, log scale, with the
    baseline (predicting the mean) and the 'learned' line at a tenth of it."""
    figure, axes = plt.subplots(figsize=(7, 3.6), layout="constrained")
    drawn = False
    for kind, cell in record.get("cells", {}).items():
        colour = COLOURS.get(kind, "k")
        if cell.get("curve"):
            steps = [p["step"] for p in cell["curve"]]
            axes.plot(steps, np.maximum([p["loss"] for p in cell["curve"]], 1e-8), color=colour, lw=1.6,
                      label=TITLES.get(kind, kind))
            drawn = True
        if cell.get("val"):
            axes.plot([p["step"] for p in cell["val"]], np.maximum([p["loss"] for p in cell["val"]], 1e-8), "o",
                      color=colour, ms=4, label=None if cell.get("curve") else TITLES.get(kind, kind))
            drawn = True
    if baseline:
        axes.axhline(baseline, color="0.4", ls="--", lw=1, label="predict the mean (baseline)")
        axes.axhline(baseline / 10, color="0.4", ls=":", lw=1, label="learned: below a tenth of it")
    axes.set_yscale("log")
    axes.set_xlabel("training step (every cell sees the same batches)")
    axes.set_ylabel(loss_name)
    axes.set_title("Loss: lines while training, dots on held-out sequences")
    if drawn or baseline:
        axes.legend(fontsize=8, loc="lower left")
    axes.grid(alpha=0.3, which="both")
    plt.close(figure)  # out of pyplot's list of open figures (kept there for ever otherwise); still drawable
    return figure


def gradient_figure(record: dict, checkpoint: int | None = None):
    """Three panels against k (steps back from T), log y: ||dL_T/dh_{T-k}||, ||dL_T/dx_{T-k}|| and the
    LSTMs' mean forget-gate product; faint dashed: at initialisation; solid: at `checkpoint` (None: the
    latest). Zeros (below float64's range) are left out of the line."""
    figure, panels = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    titles = ("‖∂L_T/∂h_{T−k}‖ (the state)", "‖∂L_T/∂x_{T−k}‖ (the input)", "LSTM: mean of f_T ⋯ f_{T−k+1}")
    shown_step = None
    for kind, cell in record.get("cells", {}).items():
        points = cell.get("gradients") or []
        if not points:
            continue
        index = len(points) - 1 if checkpoint is None else min(max(int(checkpoint), 0), len(points) - 1)
        now, first = points[index], points[0]
        shown_step = now["step"]
        colour = COLOURS.get(kind, "k")
        for axes, key in zip(panels, ("h", "x", "forget_product"), strict=True):
            for point, style in ((first, dict(ls="--", lw=1, alpha=0.45)), (now, dict(ls="-", lw=1.8))):
                values = point.get(key)
                if values is None or (point is first and index == 0):
                    continue
                values = np.asarray(values, dtype=np.float64)
                values = np.where(values > 0, values, np.nan)
                axes.plot(np.arange(len(values)), values, color=colour, **style,
                          label=TITLES.get(kind, kind) if point is now else None)
    for axes, title in zip(panels, titles, strict=True):
        axes.set_yscale("log")
        axes.set_xlabel("k (steps back from T)")
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3, which="both")
        if axes.get_lines():
            axes.legend(fontsize=8)
        else:
            axes.text(0.5, 0.5, "no LSTM in this run" if title.startswith("LSTM") else "no measurement yet",
                      ha="center", va="center", transform=axes.transAxes, color="0.5")
    label = ("at initialisation" if shown_step in (None, 0)
             else f"at step {shown_step} (solid) and at initialisation (dashed)")
    figure.suptitle(f"Measured gradient reaching k steps back, {label}", fontsize=11)
    plt.close(figure)  # out of pyplot's list of open figures (kept there for ever otherwise); still drawable
    return figure
