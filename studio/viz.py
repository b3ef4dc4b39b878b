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
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

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
HEATMAP_LABELS = {"i": "input i", "f": "forget f", "g": "candidate g", "o": "output o", "tanh_c": "tanh(cell c)",
                  "h": "hidden h"}
HEATMAP_GAP = 2  # blank rows between the quantities' blocks
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
    unit: int | None = None,
) -> Figure:
    """i, f, g, o, tanh(c) and h of one layer as one picture: six stacked blocks of units x steps.

    The six blocks are coloured in numpy and shown as a single image on one axes (with one
    colorbar per scale): six separate axes with their own tick labels cost several times
    more to draw, and drawing is most of a Text-tab click. With `unit`, a panel on top plots
    that unit's six quantities as lines over the same steps, and its rows are marked.
    """
    check_layer(trace, layer)
    start, end = _window(trace, start, end)
    units = _select_units(trace, units, max_units)
    rows_per_block = len(units) + HEATMAP_GAP
    blocks = []
    for name in HEATMAP_QUANTITIES:
        values = np.nan_to_num(trace.quantity(layer, name)[start:end, units].T)  # (units, steps)
        if name in SIGMOID_GATES:
            blocks.append(matplotlib.colormaps[SEQUENTIAL_CMAP](np.clip(values, 0.0, 1.0)))
        else:
            blocks.append(matplotlib.colormaps[DIVERGING_CMAP]((np.clip(values, -1.0, 1.0) + 1.0) / 2.0))
        blocks.append(np.ones((HEATMAP_GAP, end - start, 4)))  # a white gap between quantities
    image = np.concatenate(blocks[:-1])  # (6 * units + 5 * gap, steps, RGBA)

    heat_height = float(np.clip(1.2 + 0.075 * image.shape[0], 3.0, 8.0))
    line_height = 2.2 if unit is not None else 0.0
    height = heat_height + line_height + 0.9
    fig = Figure(figsize=(FIGURE_WIDTH, height), dpi=DPI)
    left, right, bottom, top = 0.075, 0.86, 0.55 / height, 1 - 0.35 / height
    heat_top = bottom + (top - bottom) * heat_height / (heat_height + line_height)
    ax = fig.add_axes((left, bottom, right - left, heat_top - bottom))
    # extent puts step t at x = t, so ticks read as absolute steps of the trace
    ax.imshow(image, aspect="auto", interpolation="nearest", extent=(start - 0.5, end - 0.5, image.shape[0] - 0.5, -0.5))
    centres = [k * rows_per_block + (len(units) - 1) / 2 for k in range(len(HEATMAP_QUANTITIES))]
    ax.set_yticks(centres, [HEATMAP_LABELS[name] for name in HEATMAP_QUANTITIES], fontsize=8)
    ax.tick_params(axis="y", length=0)
    shown = ", ".join(str(u) for u in units[:8]) + (", …" if len(units) > 8 else "")
    ax.set_title(f"rows of each block: units {shown}", loc="right", fontsize=8)
    if unit is not None:
        _check_unit(trace, unit)
        for row in np.flatnonzero(units == unit):  # mark the plotted unit's row in every block
            for k in range(len(HEATMAP_QUANTITIES)):
                ax.axhline(k * rows_per_block + row, color="black", linewidth=0.6, alpha=0.6)
        lines_ax = fig.add_axes((left, heat_top + 0.25 / height, right - left, top - heat_top - 0.3 / height), sharex=ax)
        steps = np.arange(start, end)
        for name in ("i", "f", "o", "g", "tanh_c", "h"):
            values = np.nan_to_num(trace.quantity(layer, name)[start:end, unit])
            lines_ax.plot(steps, values, color=COLORS["c" if name == "tanh_c" else name], linewidth=1.1,
                          label=HEATMAP_LABELS[name])
        lines_ax.set_ylim(-1.05, 1.05)
        lines_ax.axhline(0.0, color="0.7", linewidth=0.6)
        lines_ax.legend(loc="upper left", ncol=6, fontsize=7, framealpha=0.8)
        lines_ax.tick_params(axis="x", bottom=False, labelbottom=False)  # the heatmap below labels the steps
        lines_ax.set_title(f"Layer {layer}, unit {unit}", loc="left", fontsize=10)
    else:
        ax.set_title(f"Layer {layer}: {len(units)} units over steps {start}..{end - 1}", loc="left", fontsize=10)
    for k, (cmap, vmin, vmax, label) in enumerate(
        ((SEQUENTIAL_CMAP, 0.0, 1.0, "i, f, o"), (DIVERGING_CMAP, -1.0, 1.0, "g, tanh c, h"))
    ):
        bar_ax = fig.add_axes((0.872 + 0.055 * k, bottom, 0.011, heat_top - bottom))
        fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), cax=bar_ax)
        bar_ax.set_ylabel(label, fontsize=8)
        bar_ax.tick_params(labelsize=7)
    _step_ticks(ax, trace.labels, start, end)
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
    fig = _saturation_axes(trace.num_layers)
    _saturation_points(fig, trace, start)
    return fig


def _saturation_axes(num_layers: int) -> Figure:
    """saturation_plot's figure with every scatter empty."""
    fig = Figure(figsize=(min(FIGURE_WIDTH, 4.0 * num_layers + 0.5), 4.4), dpi=DPI)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.14, wspace=0.25)
    axes = fig.subplots(1, num_layers, squeeze=False)[0]
    for layer, ax in enumerate(axes):
        for gate in SIGMOID_GATES:
            ax.scatter([], [], s=12, alpha=0.6, color=COLORS[gate], edgecolors="none", label=QUANTITY_TITLES[gate])
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


def _saturation_points(fig: Figure, trace: Trace, start: int) -> None:
    for layer, ax in enumerate(fig.axes):
        for gate, points in zip(SIGMOID_GATES, ax.collections, strict=True):
            points.set_offsets(np.column_stack(saturation_fractions(trace, layer, gate, start)))


# One colour range per quantity, for every picture and painted output: gates 0..1, squashed
# values -1..1; the raw cell c (unbounded) gets a range symmetric around 0 from its values.
QUANTITY_RANGES = {"i": (0.0, 1.0), "f": (0.0, 1.0), "o": (0.0, 1.0), "g": (-1.0, 1.0), "h": (-1.0, 1.0),
                   "tanh_c": (-1.0, 1.0)}


def value_range(quantity: str, values: np.ndarray) -> tuple[float, float]:
    """(vmin, vmax) for colouring `values` of `quantity`."""
    if quantity in QUANTITY_RANGES:
        return QUANTITY_RANGES[quantity]
    bound = float(np.nanmax(np.abs(values))) if np.size(values) else 0.0
    bound = bound if np.isfinite(bound) and bound > 0 else 1.0
    return -bound, bound


def unit_values(trace: Trace, layer: int, quantity: str, unit: int) -> tuple[np.ndarray, float, float]:
    """(values of one unit over the shown steps, vmin, vmax) with the quantity's colour range."""
    values = trace.quantity(layer, quantity)[trace.shown_from :, unit]
    return (values, *value_range(quantity, values))


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


def heatmap_html(matrix: np.ndarray, row_labels: Sequence[str], title: str, x_label: str, legend: str,
                 cmap: str = SEQUENTIAL_CMAP, marker: float | None = None, x_scale: float = 1.0) -> str:
    """A (rows, columns) matrix as an HTML figure: one PNG with a pixel per value, stretched by the
    browser, row labels beside it, a colour legend and the x axis's extent. For the attention
    pictures of every generation: a matplotlib figure of the same (colorbar, tick labels, layout)
    costs far more to draw and encode, most of a speech request's time under load (docs/benchmarks.md,
    Load and requests).
    `marker`: a column to draw a red line at (where a primer ends); `x_scale`: the x axis's units
    per column (frames per decoder step)."""
    import base64
    import html
    import io

    from PIL import Image

    values = np.nan_to_num(np.asarray(matrix, np.float32))
    rows, columns = values.shape
    low, high = float(values.min(initial=0.0)), float(values.max(initial=1.0))
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    table = (matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    rgb = table[np.clip((scaled * 255).round(), 0, 255).astype(np.int64)][::-1]  # row 0 at the bottom
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    row_height = max(8, min(16, 320 // max(rows, 1)))
    labels = "".join(f"<div>{html.escape(label)}</div>" for label in reversed(list(row_labels)[:rows])) \
        if rows <= 80 else ""
    line = (f'<div style="position:absolute;top:0;bottom:0;left:{100 * marker / max(columns, 1):.3f}%;'
            'border-left:2px solid #d62728"></div>') if marker is not None else ""
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in table[::32])
    return (f'<figure class="lv-heatmap" style="margin:0;font:12px sans-serif">'
            f'<figcaption style="font-weight:600;margin-bottom:4px">{html.escape(title)}</figcaption>'
            f'<div style="display:flex;gap:4px"><div style="display:grid;grid-auto-rows:{row_height}px;'
            f'font:{min(row_height, 12) - 1}px monospace;text-align:right;line-height:{row_height}px">{labels}</div>'
            f'<div style="position:relative;flex:1"><img alt="{html.escape(title)}" src="data:image/png;base64,{image}" '
            f'style="display:block;width:100%;height:{rows * row_height}px;image-rendering:pixelated">{line}</div></div>'
            f'<div style="display:flex;justify-content:space-between;margin-left:24px">'
            f'<span>0</span><span>{html.escape(x_label)}</span><span>{columns * x_scale:g}</span></div>'
            f'<div style="display:flex;align-items:center;gap:6px;margin-top:4px"><span>{html.escape(legend)}</span>'
            f'<span>{low:.2g}</span><span style="width:160px;height:10px;background:linear-gradient(to right, {stops})">'
            f'</span><span>{high:.2g}</span></div></figure>')


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
        # Plain text artists under each column, not tick labels: a matplotlib Tick carries two
        # lines, two labels and bounding-box bookkeeping, and 100 of them were a third of a
        # Text-tab click's drawing time.
        ax.set_xticks([])
        under = blended_transform_factory(ax.transData, ax.transAxes)
        for x, label in zip(range(start, end), shown, strict=True):
            ax.text(x, -0.004, display_label(label), transform=under, ha="center", va="top", fontsize=fontsize)
        ax.set_xlabel("step (what the model read)", fontsize=8, labelpad=12)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
        ax.set_xlabel("step", fontsize=8)
