"""Pictures of a Trace: arrays in, matplotlib Figure out.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so nothing is
registered globally: a figure handed to ``gr.Plot`` needs no closing and cannot leak
between requests. Nothing here shows or saves anything.

Colour conventions shared by every picture: sigmoid gates (i, f, o) on a sequential 0..1
map; signed values (g, tanh(c), h) on a diverging -1..1 map, red positive, blue negative,
matching ``activation_colors`` for the text painted under them.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from studio.analysis import SIGMOID_GATES, check_layer, display_label, saturation_fractions
from studio.trace import QUANTITY_TITLES, Trace

# matplotlib.figure never touches the backend, so this may come after the imports; it keeps
# any pyplot use elsewhere in the process from trying to open a window on a headless server.
matplotlib.use("Agg")

FIGURE_WIDTH = 12.0  # inches; fills a Gradio column without horizontal scrolling
# Encoding the picture for the page costs time in proportion to its pixels (it was most of a
# Text-tab click), so figures use a modest dpi and a fixed layout instead of "constrained".
DPI = 80
MAX_LABELED_STEPS = 120  # beyond this, one character per tick no longer fits the width
MAX_LABEL_CHARS = 3  # longer labels (frame numbers, chords) collide even when few; use numbers
SEQUENTIAL_CMAP = "viridis"
DIVERGING_CMAP = "RdBu_r"  # red positive, blue negative, white at 0
# The heatmap shows tanh(c) rather than c: it is what h actually sees (h = o * tanh(c)), and
# it shares the -1..1 scale of g and h where the raw cell is unbounded.
HEATMAP_QUANTITIES = ("i", "f", "g", "o", "tanh_c", "h")
HEATMAP_TITLES = {**QUANTITY_TITLES, "tanh_c": "tanh(cell state c), the cell as h sees it"}
COLORS = {"i": "tab:blue", "f": "tab:green", "g": "tab:purple", "o": "tab:red", "c": "tab:orange", "h": "black"}
POSITIVE_RGB = (178, 24, 43)  # the red and blue ends of RdBu, so text and heatmaps agree
NEGATIVE_RGB = (33, 102, 172)


def gate_heatmaps(
    trace: Trace,
    layer: int,
    units: Sequence[int] | np.ndarray | None = None,
    max_units: int = 64,
    start: int = 0,
    end: int | None = None,
) -> Figure:
    """Six stacked units x steps heatmaps (i, f, g, o, tanh(c), h) of one layer, with colorbars."""
    check_layer(trace, layer)
    start, end = _window(trace, start, end)
    units = _select_units(trace, units, max_units)
    panel_height = float(np.clip(0.4 + 0.02 * len(units), 0.9, 1.6))
    fig = Figure(figsize=(FIGURE_WIDTH, 6 * panel_height + 0.8), dpi=DPI)
    fig.subplots_adjust(left=0.06, right=0.97, top=1 - 0.45 / (6 * panel_height + 0.8),
                        bottom=0.5 / (6 * panel_height + 0.8), hspace=0.35)
    axes = fig.subplots(len(HEATMAP_QUANTITIES), 1, sharex=True)
    # extent puts step t at x = t, so ticks read as absolute steps of the trace
    extent = (start - 0.5, end - 0.5, len(units) - 0.5, -0.5)
    for ax, name in zip(axes, HEATMAP_QUANTITIES, strict=True):
        values = np.nan_to_num(trace.quantity(layer, name)[start:end, units].T)  # (units, steps)
        if name in SIGMOID_GATES:
            cmap, vmin, vmax = SEQUENTIAL_CMAP, 0.0, 1.0
        else:
            cmap, vmin, vmax = DIVERGING_CMAP, -1.0, 1.0
        image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax, extent=extent)
        fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
        ax.set_title(HEATMAP_TITLES[name], loc="left", fontsize=9)
        ax.set_ylabel("unit", fontsize=8)
        _unit_ticks(ax, units)
    _step_ticks(axes[-1], trace.labels, start, end)
    fig.suptitle(f"Layer {layer}: {len(units)} units over steps {start}..{end - 1}", fontsize=11)
    return fig


def unit_plot(trace: Trace, layer: int, unit: int, start: int = 0, end: int | None = None) -> Figure:
    """One unit's six quantities over time: gates i, f, o on top; g, c, h below."""
    check_layer(trace, layer)
    start, end = _window(trace, start, end)
    _check_unit(trace, unit)
    fig = Figure(figsize=(FIGURE_WIDTH, 4.5), dpi=DPI)
    fig.subplots_adjust(left=0.06, right=0.98, top=0.93, bottom=0.12, hspace=0.15)
    gates_ax, values_ax = fig.subplots(2, 1, sharex=True)
    steps = np.arange(start, end)
    marker = "." if end - start <= 60 else None  # visible points when lines are short (or one step)
    for ax, names in ((gates_ax, ("i", "f", "o")), (values_ax, ("g", "c", "h"))):
        for name in names:
            values = np.nan_to_num(trace.quantity(layer, name)[start:end, unit])
            ax.plot(steps, values, color=COLORS[name], marker=marker, linewidth=1.2, label=QUANTITY_TITLES[name])
        ax.legend(loc="upper left", ncol=3, fontsize=8, framealpha=0.8)
        ax.grid(axis="y", color="0.9")
    for threshold in (0.1, 0.9):  # Karpathy's saturation thresholds
        gates_ax.axhline(threshold, color="0.6", linewidth=0.8, linestyle=":")
    gates_ax.set_ylim(-0.05, 1.05)
    values_ax.axhline(0.0, color="0.6", linewidth=0.8)
    cell = np.nan_to_num(trace.quantity(layer, "c")[start:end, unit])
    # the raw cell is unbounded; keep the -1..1 frame of g and h, grow only if c leaves it
    values_ax.set_ylim(min(-1.05, float(cell.min()) - 0.05), max(1.05, float(cell.max()) + 0.05))
    gates_ax.set_title(f"Layer {layer}, unit {unit}", loc="left", fontsize=10)
    _step_ticks(values_ax, trace.labels, start, end)
    return fig


def saturation_plot(trace: Trace, start: int = 0) -> Figure:
    """Per layer, each unit's gate saturation: x = fraction of steps < 0.1, y = fraction > 0.9."""
    if trace.num_layers == 0:
        raise ValueError("this trace has no layers to plot")
    num_layers = trace.num_layers
    fig = Figure(figsize=(min(FIGURE_WIDTH, 4.0 * num_layers + 0.5), 4.4), dpi=DPI)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.14, wspace=0.25)
    axes = fig.subplots(1, num_layers, squeeze=False)[0]
    for layer, ax in enumerate(axes):
        for gate in SIGMOID_GATES:
            left, right = saturation_fractions(trace, layer, gate, start)
            ax.scatter(left, right, s=12, alpha=0.6, color=COLORS[gate], edgecolors="none", label=QUANTITY_TITLES[gate])
        # every unit lies in the triangle x + y <= 1: a step cannot be both < 0.1 and > 0.9
        ax.plot([0, 1, 0, 0], [0, 0, 1, 0], color="0.5", linewidth=0.8)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_aspect("equal")
        ax.set_title(f"layer {layer}", fontsize=10)
        ax.set_xlabel("fraction of steps < 0.1 (left-saturated)", fontsize=8)
    axes[0].set_ylabel("fraction of steps > 0.9 (right-saturated)", fontsize=8)
    axes[0].legend(loc="upper right", fontsize=8)
    return fig


def activation_colors(values, vmin: float = -1.0, vmax: float = 1.0) -> list[str]:
    """CSS rgba() per value: blue below the middle of [vmin, vmax], red above, transparent at it."""
    if not vmax > vmin:
        raise ValueError(f"need vmin < vmax, got vmin={vmin}, vmax={vmax}")
    values = np.asarray(values, dtype=np.float64).ravel()
    strength = 2.0 * (values - vmin) / (vmax - vmin) - 1.0  # -1 at vmin, 0 mid-range, +1 at vmax
    strength = np.clip(np.nan_to_num(strength, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    colors = []
    for s in strength:
        red, green, blue = POSITIVE_RGB if s > 0 else NEGATIVE_RGB
        colors.append(f"rgba({red}, {green}, {blue}, {abs(s):.3f})")
    return colors


def _window(trace: Trace, start: int, end: int | None) -> tuple[int, int]:
    end = trace.steps if end is None else min(end, trace.steps)
    if start < 0 or start >= end:
        raise ValueError(f"no steps to show in [{start}, {end}): this trace has {trace.steps} step(s)")
    return start, end


def _check_unit(trace: Trace, unit: int) -> None:
    if not 0 <= unit < trace.hidden_size:
        raise ValueError(f"unit {unit} is out of range: this layer has {trace.hidden_size} units, 0..{trace.hidden_size - 1}")


def _select_units(trace: Trace, units, max_units: int) -> np.ndarray:
    if max_units < 1:
        raise ValueError(f"max_units must be >= 1, got {max_units}")
    if units is None:
        return np.arange(min(max_units, trace.hidden_size))
    units = np.asarray(units, dtype=int).ravel()[:max_units]  # e.g. the top of order_units(...)
    if len(units) == 0:
        raise ValueError("units is empty: pass at least one unit index")
    for unit in units:
        _check_unit(trace, int(unit))
    return units


def _unit_ticks(ax, units: np.ndarray) -> None:
    # rows may be reordered, so ticks name the unit in that row, not the row number
    every = max(1, int(np.ceil(len(units) / 8)))  # ~8 ticks fit the shortest panel
    rows = np.arange(0, len(units), every)
    ax.set_yticks(rows, [str(units[row]) for row in rows], fontsize=7)


def _step_ticks(ax, labels: list[str], start: int, end: int) -> None:
    shown = labels[start:end]
    if len(shown) <= MAX_LABELED_STEPS and all(len(label) <= MAX_LABEL_CHARS for label in shown):
        fontsize = 8 if len(shown) <= 60 else 6
        ax.set_xticks(np.arange(start, end), [display_label(label) for label in shown], fontsize=fontsize)
        ax.set_xlabel("step (what the model read)", fontsize=8)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
        ax.set_xlabel("step", fontsize=8)
