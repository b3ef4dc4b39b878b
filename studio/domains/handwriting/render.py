"""Handwriting drawing, all of it here: the SVG (plain, coloured per segment, or animated) and the
matplotlib figure / PNG, both along the same smooth curve through the pen points; a unit's values
as ink colours; the attention window picture; a generation's figure (`render`) and the contract's `write_files`.

Pen points are about ten per letter, so straight segments look like a polygon; every picture
draws a Catmull-Rom curve through every stored point instead (cubic Bézier segments; the points
themselves are untouched, and `svg_to_strokes` reads them back).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from studio.domains.base import Generation, View
from studio.domains.handwriting.codec import Handwriting, bounds, offsets_to_strokes
from studio.viz import activation_colors, heatmap_html, unit_values

PER_SEGMENT = 5  # curve samples per pen segment in the figure


# ---------------------------------------------------------------- curves
def _curve_controls(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cubic Bezier control points (c1, c2), each (N-1, 2), of a Catmull-Rom curve through `points`."""
    padded = np.vstack([points[:1], points, points[-1:]])  # the ends repeat: no overshoot there
    c1 = points[:-1] + (padded[2:-1] - padded[:-3]) / 6.0
    c2 = points[1:] - (padded[3:] - padded[1:-2]) / 6.0
    return c1, c2


def _smooth(points: np.ndarray, per_segment: int = PER_SEGMENT) -> np.ndarray:
    """The Catmull-Rom curve sampled `per_segment` times per segment: ((N-1) * per_segment + 1, 2)."""
    if len(points) < 3:
        return points
    c1, c2 = _curve_controls(points)
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None, None]  # (S, 1, 1)
    a, b = points[:-1][None], points[1:][None]
    curve = (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * c1[None] + 3 * (1 - t) * t**2 * c2[None] + t**3 * b  # (S, N-1, 2)
    return np.vstack([curve.transpose(1, 0, 2).reshape(-1, 2), points[-1:]])


def _drawable(strokes) -> list[np.ndarray]:
    """Non-empty strokes as (N, 2) float64; a single point becomes a tiny segment so round caps draw it."""
    out = []
    for s in strokes:
        s = np.asarray(s, dtype=np.float64).reshape(-1, 2)
        if len(s):
            out.append(np.vstack([s, s + [1e-3, 0]]) if len(s) == 1 else s)
    return out


# ---------------------------------------------------------------- SVG
def strokes_to_svg(strokes, colors: list[list[str]] | None = None, width_px: float = 800, stroke_width: float = 0.0035,
                   margin: float = 0.04, animate_seconds: float | None = None) -> str:
    """An SVG document: one smooth path per stroke through its points (cubic Bezier segments).
    colors: per stroke, per segment (N-1) CSS colours (one path per segment then).
    animate_seconds: draw the pen moving, each segment appearing at its turn (SMIL, no script)."""
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    x0, y0, x1, y1 = bounds(strokes)
    span = max(x1 - x0, y1 - y0, 1e-6)
    pad = margin * span
    vb = (x0 - pad, y0 - pad, (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad)
    height_px = width_px * vb[3] / max(vb[2], 1e-6)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{vb[0]:.3f} {vb[1]:.3f} {vb[2]:.3f} {vb[3]:.3f}" '
             f'width="{width_px:.0f}" height="{height_px:.0f}" style="max-width:100%;height:auto" class="handwriting">',
             f'<rect x="{vb[0]:.3f}" y="{vb[1]:.3f}" width="{vb[2]:.3f}" height="{vb[3]:.3f}" fill="white"/>',
             f'<g fill="none" stroke-linecap="round" stroke-linejoin="round" stroke-width="{stroke_width * span:.4f}">']
    total_segments = sum(max(len(s) - 1, 1) for s in strokes)
    done = 0
    for k, s in enumerate(_drawable(strokes)):
        c1, c2 = _curve_controls(s)
        segments = [f"C {a[0]:.3f},{a[1]:.3f} {b[0]:.3f},{b[1]:.3f} {p[0]:.3f},{p[1]:.3f}"
                    for a, b, p in zip(c1, c2, s[1:], strict=True)]
        if colors is None and animate_seconds is None:
            parts.append(f'<path stroke="black" d="M {s[0, 0]:.3f},{s[0, 1]:.3f} {" ".join(segments)}"/>')
            continue
        for j, segment in enumerate(segments):
            colour = colors[k][min(j, len(colors[k]) - 1)] if colors is not None and len(colors[k]) else "black"
            path = f'<path stroke="{colour}" d="M {s[j, 0]:.3f},{s[j, 1]:.3f} {segment}"'
            if animate_seconds:
                begin = animate_seconds * done / max(total_segments, 1)
                path += f' opacity="0"><set attributeName="opacity" to="1" begin="{begin:.3f}s" fill="freeze"/></path>'
            else:
                path += "/>"
            parts.append(path)
            done += 1
    parts.append("</g></svg>")
    return "\n".join(parts)


def svg_to_strokes(svg: str) -> list[np.ndarray]:
    """Read back the strokes of an SVG written by strokes_to_svg (uncoloured form): the points
    each path passes through (its start, then the end of every curve segment)."""
    strokes = []
    for d in re.findall(r'<path[^>]*\sd="([^"]*)"', svg):
        numbers = [[float(v) for v in pair.split(",")] for pair in re.findall(r"-?[\d.]+,-?[\d.]+", d)]
        strokes.append(np.array([numbers[0]] + numbers[3::3], dtype=np.float32))
    return strokes


def animated_svg(result, colors=None, seconds: float | None = None) -> str:
    """The pen drawing the handwriting, in the page (SMIL animation; replays on each render)."""
    seconds = seconds or float(np.clip(len(result.offsets) / 120, 1.5, 8))
    return strokes_to_svg(result.strokes, colors, width_px=900, animate_seconds=seconds)


# ---------------------------------------------------------------- figure and PNG
def _css_to_rgba(colour: str):
    m = re.match(r"rgba?\(([^)]*)\)", colour)
    if not m:
        return colour
    vals = [float(v) for v in m.group(1).split(",")]
    r, g, b = (v / 255 for v in vals[:3])
    return (r, g, b, vals[3] if len(vals) > 3 else 1.0)


def render_figure(strokes, colors=None, title: str = "", width: float = 10.0):
    """Matplotlib Figure of the strokes (y down, aspect kept), drawn along the same smooth curves
    as the SVG; colors as in strokes_to_svg."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    x0, y0, x1, y1 = bounds(strokes)
    aspect = (y1 - y0 + 1e-6) / (x1 - x0 + 1e-6)
    fig = Figure(figsize=(width, float(np.clip(width * aspect, 1.2, 8)) + 0.3), dpi=80)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.9 if title else 0.98))
    for k, s in enumerate(_drawable(strokes)):
        curve = _smooth(s)
        segments = np.stack([curve[:-1], curve[1:]], axis=1)
        if colors is None:
            ax.add_collection(LineCollection(segments, colors="black", linewidths=2, capstyle="round"))
        else:
            cols = colors[k] if len(colors[k]) else ["black"]
            step = PER_SEGMENT if len(s) >= 3 else 1  # sub-segments of segment j share its colour
            cols = [cols[min(j // step, len(cols) - 1)] for j in range(len(segments))]
            ax.add_collection(LineCollection(segments, colors=[_css_to_rgba(c) for c in cols], linewidths=2.5, capstyle="round"))
    pad = 0.03 * max(x1 - x0, y1 - y0, 1e-6)
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y1 + pad, y0 - pad)  # y grows downwards
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def write_png(strokes, path, colors=None) -> Path:
    """The strokes as a PNG (800 px wide, as render_figure at its 80 dpi). Black ink is drawn with PIL
    at twice the size and scaled down (smooth edges): a fraction of the matplotlib figure's time
    (docs/benchmarks.md, Handwriting); coloured ink goes through render_figure."""
    if colors is not None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = render_figure(strokes, colors)
        FigureCanvasAgg(fig)
        fig.savefig(str(path), format="png", facecolor="white")
        return Path(path)
    from PIL import Image, ImageDraw

    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    x0, y0, x1, y1 = bounds(strokes)
    width = 800
    height = int(width * float(np.clip((y1 - y0 + 1e-6) / (x1 - x0 + 1e-6), 0.15, 1.0))) + 24
    pad = 0.03 * max(x1 - x0, y1 - y0, 1e-6)
    scale = 2 * min(width / (x1 - x0 + 2 * pad), height / (y1 - y0 + 2 * pad))  # x2: drawn big, then scaled down
    left = (2 * width - scale * (x1 - x0)) / 2 - scale * x0
    top = (2 * height - scale * (y1 - y0)) / 2 - scale * y0
    image = Image.new("L", (2 * width, 2 * height), 255)
    draw = ImageDraw.Draw(image)
    for stroke in _drawable(strokes):
        curve = _smooth(stroke) * scale + (left, top)
        draw.line([tuple(point) for point in curve], fill=0, width=4, joint="curve")
    image.resize((width, height), Image.Resampling.LANCZOS).save(path, format="PNG")
    return Path(path)


# ---------------------------------------------------------------- a unit as ink
def _over_grey(colour: str, grey: int = 150) -> str:
    """An rgba() colour laid over grey ink, as an opaque rgb()."""
    r, g, b, a = _css_to_rgba(colour)
    return "rgb({}, {}, {})".format(*(round(255 * a * v + (1 - a) * grey) for v in (r, g, b)))


def unit_colors(result, trace, view: View) -> list[list[str]]:
    """Per stroke, per segment: the colour of one unit's value at the point that ends the segment."""
    values, vmin, vmax = unit_values(trace, view.layer, view.quantity, view.unit)
    # opaque: a value near the middle gives grey ink, not invisible ink, so the writing stays legible
    colours = [_over_grey(colour) for colour in activation_colors(values, vmin, vmax)]
    out, k = [], 0
    for s in result.strokes:
        out.append([colours[min(k + j + 1, len(colours) - 1)] for j in range(max(len(s) - 1, 1))])
        k += len(s)
    return out


def strokes_figure(generation: Generation, view: View, colors=None):
    """The strokes coloured by the view's unit (`colors`: unit_colors already computed)."""
    colors = colors if colors is not None else unit_colors(generation.result, generation.trace, view)
    title = f"{generation.trace.layer_name(view.layer)}, unit {view.unit}: {view.quantity}"
    return render_figure(generation.result.strokes, colors, title)


def attention_html(result) -> str:
    """Characters x pen steps: where the soft window looked while writing (Graves fig. 13), as HTML
    (viz.heatmap_html: far cheaper than a matplotlib figure per request, docs/benchmarks.md, Handwriting)."""
    if result.phi is None or not len(result.phi):
        return "<p>No attention window: free scribble has no text.</p>"
    return heatmap_html(result.phi.T, [c if c != " " else "␣" for c in result.chars],
                            "Attention window: which character the network was writing at each pen step",
                            "pen step", "window weight φ", cmap="Greys", marker=result.primer_points or None)


# ---------------------------------------------------------------- the contract
def render(generation: Generation, view: View):
    """The generated strokes with the view's unit painted on them (a matplotlib Figure)."""
    return strokes_figure(generation, view)


def sequence_of(generation: Generation) -> Handwriting:
    """What `score` reads to give this generation's trace again (teacher-forced, from a fresh
    state): the style primer's offsets (read first, as they were), then the written points, from
    the pen at the origin (the first written move is read as sampled, not zeroed), with every
    character the window read (the primer's transcript, a space, the text). Exact up to float
    rounding, except for a text written in several lines: each line was written from a fresh
    state (primed again, off the trace), but score reads the stacked lines (their first move
    zeroed) in one pass under one window over the whole text: the steps line up one to one, the
    states do not."""
    result = generation.result
    if getattr(generation.trace.detail, "lines", 1) > 1:
        return Handwriting(result.strokes, result.text, hand=result.hand)
    offsets = result.offsets if result.primer is None else np.vstack([result.primer, result.offsets])
    return Handwriting(offsets_to_strokes(offsets, np.float64), result.chars or result.text, from_origin=True,
                       hand=result.hand)


def track(generation: Generation) -> dict:
    """The viewer's pen (kind "pen"): per trace step the point written there (x right, y down, as
    the strokes are drawn) and whether the pen lifts after it. Steps before `shown_from` read the
    primer and repeat the first written point with the pen up, so they draw nothing."""
    trace, strokes = generation.trace, [np.asarray(s, np.float64) for s in generation.result.strokes if len(s)]
    points = np.concatenate(strokes)[:, :2] if strokes else np.zeros((1, 2))
    lifts = np.concatenate([np.arange(len(s)) == len(s) - 1 for s in strokes]) if strokes else np.ones(1, bool)
    shown = trace.steps - trace.shown_from
    # one point per shown step (a line break's re-read primer is not in the trace): pad or cut to fit
    points = np.vstack([points, np.repeat(points[-1:], max(0, shown - len(points)), 0)])[:shown]
    lifts = np.concatenate([lifts, np.ones(max(0, shown - len(lifts)), bool)])[:shown]
    x = np.concatenate([np.full(trace.shown_from, points[0, 0]), points[:, 0]])
    y = np.concatenate([np.full(trace.shown_from, points[0, 1]), points[:, 1]])
    pen_up = np.concatenate([np.ones(trace.shown_from, bool), lifts])
    return {"kind": "pen", "x": np.round(x, 4).tolist(), "y": np.round(y, 4).tolist(),
            "pen_up": pen_up.astype(int).tolist()}


def write_files(generation: Generation, folder) -> dict[str, Path]:
    """The downloads of one generation: the handwriting as SVG and as PNG."""
    folder = Path(folder)
    svg = folder / "handwriting.svg"
    svg.write_text(strokes_to_svg(generation.result.strokes), encoding="utf-8")
    return {"svg": svg, "png": write_png(generation.result.strokes, folder / "handwriting.png")}
