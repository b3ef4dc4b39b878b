"""analysis.py (which units to look at) and viz.py (figures of a Trace), on tiny made-up traces."""

import re
import warnings

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from studio import analysis, viz
from studio.lstm import LSTMConfig, LSTMCore
from studio.trace import QUANTITY_TITLES, Trace

TEXT = 'the cat sat on the mat.\n"a hat" said the rat, then ran on.\n'


def random_trace(labels, hidden=12, num_layers=2, seed=0) -> Trace:
    """Gates uniform in their ranges, cells wider than [-1, 1] as real cells are."""
    rng = np.random.default_rng(seed)
    steps = len(labels)
    layers = []
    for _ in range(num_layers):
        layer = {name: rng.uniform(0, 1, (steps, hidden)).astype(np.float32) for name in ("i", "f", "o")}
        layer.update({name: rng.uniform(-1, 1, (steps, hidden)).astype(np.float32) for name in ("g", "h")})
        layer["c"] = rng.normal(0, 1.5, (steps, hidden)).astype(np.float32)
        layers.append(layer)
    return Trace(layers, list(labels), {"domain": "test"})


def image_axes(fig: Figure):
    return [ax for ax in fig.axes if ax.images]


def rgba(color: str) -> tuple[float, ...]:
    return tuple(float(x) for x in re.fullmatch(r"rgba\((.*)\)", color).group(1).split(","))


# ---------------------------------------------------------------- analysis


def test_saturation_fractions_by_hand():
    trace = random_trace("abcd", hidden=2, num_layers=1)
    # thresholds are strict: exactly 0.1 or 0.9 is not saturated
    trace.layers[0]["f"] = np.array([[0.05, 0.1], [0.5, 0.9], [0.95, 0.0], [0.95, 1.0]], dtype=np.float32)
    left, right = analysis.saturation_fractions(trace, 0, "f")
    np.testing.assert_allclose(left, [0.25, 0.25])
    np.testing.assert_allclose(right, [0.5, 0.25])
    left, right = analysis.saturation_fractions(trace, 0, "f", start=2)
    np.testing.assert_allclose(left, [0.0, 0.5])
    np.testing.assert_allclose(right, [1.0, 0.5])
    with pytest.raises(ValueError, match="sigmoid gates"):
        analysis.saturation_fractions(trace, 0, "g")


def test_order_units():
    trace = random_trace(TEXT, hidden=16)
    by_variance = analysis.order_units(trace, 1, by="variance")
    variance = np.tanh(trace.layers[1]["c"]).var(axis=0)
    assert sorted(by_variance) == list(range(16))
    assert np.all(np.diff(variance[by_variance]) <= 0)
    by_h = analysis.order_units(trace, 0, by="variance", quantity="h")
    assert np.all(np.diff(trace.layers[0]["h"].var(axis=0)[by_h]) <= 0)

    left, right = analysis.saturation_fractions(trace, 0, "f")
    by_saturation = analysis.order_units(trace, 0, by="saturation")
    assert np.all(np.diff(np.maximum(left, right)[by_saturation]) <= 0)
    np.testing.assert_array_equal(analysis.order_units(trace, 0), np.arange(16))
    with pytest.raises(ValueError, match="unknown unit ordering"):
        analysis.order_units(trace, 0, by="loudness")


def test_interesting_units_finds_planted_units():
    trace = random_trace(TEXT, hidden=24, seed=1)
    spaces = np.array([ch.isspace() for ch in TEXT])
    trace.layers[0]["c"][:, 17] = np.where(spaces, 3.0, -3.0)  # tanh -> about +1 on spaces, -1 elsewhere
    trace.layers[0]["f"][:, 5] = 0.97  # forget gate always open: long memory

    notes = analysis.interesting_units(trace, 0, k=5)
    units = [note.unit for note in notes]
    assert len(notes) == 5 and len(set(units)) == 5
    assert all(isinstance(note, analysis.UnitNote) and np.isfinite(note.score) for note in notes)
    space_note = next(note for note in notes if note.unit == 17)
    assert "spaces" in space_note.reason and "high" in space_note.reason
    memory_note = next(note for note in notes if note.unit == 5)
    assert "forget gate" in memory_note.reason
    assert analysis.interesting_units(trace, 0, k=2) == notes[:2]
    assert analysis.interesting_units(trace, 0, k=0) == []


def test_interesting_units_start_skips_the_prompt():
    trace = random_trace(TEXT, hidden=10, seed=2)
    trace.layers[0]["c"] *= 0.2  # calm cells everywhere, so the planted swing stands out
    trace.layers[0]["c"][:20, 3] = np.where(np.arange(20) % 2, 5.0, -5.0)  # wild only in the prompt
    trace.layers[0]["c"][20:, 3] = 0.0

    def variance_units(start):
        notes = analysis.interesting_units(trace, 0, k=10, start=start)
        return [note.unit for note in notes if "swings the most" in note.reason]

    assert variance_units(0) == [3]
    assert variance_units(20) != [3]


def test_one_step_and_bad_layer():
    trace = random_trace("x", hidden=4)
    assert analysis.interesting_units(trace, 0) == []  # one step is no evidence of anything
    assert sorted(analysis.order_units(trace, 0, by="variance")) == [0, 1, 2, 3]
    for call in (
        lambda: analysis.saturation_fractions(trace, 2, "f"),
        lambda: analysis.order_units(trace, -1),
        lambda: analysis.interesting_units(trace, 5),
        lambda: viz.gate_heatmaps(trace, 2),
        lambda: viz.unit_plot(trace, 2, 0),
    ):
        with pytest.raises(ValueError, match="out of range"):
            call()


# ---------------------------------------------------------------- viz


def block(fig, k: int, units: int) -> np.ndarray:
    """Rows of quantity k (i, f, g, o, tanh c, h) in the one composite heatmap image."""
    image = np.asarray(image_axes(fig)[0].images[0].get_array())
    first = k * (units + viz.HEATMAP_GAP)
    return image[first : first + units]


def step_labels(ax) -> list[str]:
    """The characters written under an axes' columns (text artists, not tick labels: cheaper to draw)."""
    return [t.get_text() for t in ax.texts]


def test_gate_heatmaps_short_trace_labels_steps_with_characters():
    trace = random_trace(TEXT, hidden=12)
    units = analysis.order_units(trace, 0, by="variance")[:5]
    fig = viz.gate_heatmaps(trace, 0, units=units)
    assert isinstance(fig, Figure)
    axes = image_axes(fig)
    assert len(axes) == 1  # one composite image (colorbars aside)
    image = np.asarray(axes[0].images[0].get_array())
    assert image.shape == (6 * 5 + 5 * viz.HEATMAP_GAP, len(TEXT), 4) and np.isfinite(image).all()
    assert step_labels(axes[0]) == [viz.display_label(ch) for ch in TEXT]
    assert "⏎" in step_labels(axes[0])
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["input i", "forget f", "candidate g", "output o",
                                                                 "tanh(cell c)", "hidden h"]
    # the colours are the values: gates on viridis 0..1, tanh(c) on RdBu -1..1, rows in `units` order
    forget = trace.quantity(0, "f")[:, units].T
    np.testing.assert_allclose(block(fig, 1, 5), matplotlib.colormaps["viridis"](forget), atol=1e-6)
    squashed = trace.quantity(0, "tanh_c")[:, units].T
    np.testing.assert_allclose(block(fig, 4, 5), matplotlib.colormaps["RdBu_r"]((squashed + 1) / 2), atol=1e-6)


def test_gate_heatmaps_window_long_trace_and_unit_panel():
    trace = random_trace("ab" * 150, hidden=80)
    fig = viz.gate_heatmaps(trace, 1)
    assert np.asarray(image_axes(fig)[0].images[0].get_array()).shape[:2] == (6 * 64 + 5 * viz.HEATMAP_GAP, 300)
    assert "a" not in [t.get_text() for t in image_axes(fig)[0].get_xticklabels()]  # numeric ticks
    fig = viz.gate_heatmaps(trace, 1, units=[7, 3], start=10, end=20, unit=3)
    assert np.asarray(image_axes(fig)[0].images[0].get_array()).shape[:2] == (6 * 2 + 5 * viz.HEATMAP_GAP, 10)
    lines = fig.axes[1]
    assert len(lines.lines) == 7  # six quantities + the zero line
    np.testing.assert_allclose(lines.lines[1].get_ydata(), trace.quantity(1, "f")[10:20, 3])
    with pytest.raises(ValueError, match="out of range"):
        viz.gate_heatmaps(trace, 0, units=[80])
    with pytest.raises(ValueError, match="out of range"):
        viz.gate_heatmaps(trace, 0, unit=80)
    with pytest.raises(ValueError, match="no steps"):
        viz.gate_heatmaps(trace, 0, start=300)


def test_unit_plot_has_all_six_quantities():
    trace = random_trace(TEXT, hidden=6)
    fig = viz.unit_plot(trace, 1, 4, start=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    labels = {line.get_label() for ax in fig.axes for line in ax.lines}
    assert {QUANTITY_TITLES[name] for name in "ifgoch"} <= labels
    assert step_labels(fig.axes[1]) == [viz.display_label(ch) for ch in TEXT[3:]]
    with pytest.raises(ValueError, match="unit 6 is out of range"):
        viz.unit_plot(trace, 0, 6)


def test_saturation_plot_one_panel_per_layer():
    trace = random_trace(TEXT, hidden=9, num_layers=3)
    fig = viz.saturation_plot(trace)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert len(ax.collections) == 3  # one scatter per gate i, f, o
        assert all(len(points.get_offsets()) == 9 for points in ax.collections)
        np.testing.assert_allclose(ax.lines[0].get_xydata(), [[0, 0], [1, 0], [0, 1], [0, 0]])  # x + y <= 1


def test_activation_colors():
    blue, neutral, red, missing = map(rgba, viz.activation_colors([-1.0, 0.0, 1.0, np.nan]))
    assert blue[2] > blue[0] and blue[3] == 1.0
    assert red[0] > red[2] and red[3] == 1.0
    assert neutral[3] == 0.0 and missing[3] == 0.0
    assert rgba(viz.activation_colors([0.5, 7.0], vmin=0.0, vmax=1.0)[0])[3] == 0.0  # mid-range of a gate
    assert rgba(viz.activation_colors([7.0])[0])[3] == 1.0  # clipped, never beyond opaque
    with pytest.raises(ValueError):
        viz.activation_colors([0.0], vmin=1.0, vmax=1.0)


def test_real_lstm_trace_end_to_end():
    torch.manual_seed(0)
    core = LSTMCore(LSTMConfig(input_size=3, hidden_size=8, num_layers=2))
    labels = list("hello world\n" * 2)
    _, _, gates = core.trace(torch.randn(1, len(labels), 3))
    trace = Trace.from_sequence(gates, labels)
    for layer in range(2):
        for gate in ("i", "f", "o"):
            left, right = analysis.saturation_fractions(trace, layer, gate)
            assert np.all((left >= 0) & (right >= 0) & (left + right <= 1))
        notes = analysis.interesting_units(trace, layer, k=4, start=2)
        assert len({note.unit for note in notes}) == len(notes) <= 4
    figures = [viz.gate_heatmaps(trace, 1), viz.unit_plot(trace, 0, 7), viz.saturation_plot(trace)]
    assert all(isinstance(fig, Figure) for fig in figures)


def test_one_step_trace_and_glyphs_draw():
    one_step = random_trace("\n", hidden=3, num_layers=1)
    figures = [viz.gate_heatmaps(one_step, 0), viz.unit_plot(one_step, 0, 2), viz.saturation_plot(one_step)]
    assert len(image_axes(figures[0])) == 1 and len(figures[1].axes) == 2 and len(figures[2].axes) == 1
    # Drawing is slow, so only the smallest figure that carries ⏎ and ␣ as tick labels is drawn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when a font lacks a glyph
        FigureCanvasAgg(viz.unit_plot(random_trace("a b\n", hidden=3, num_layers=1), 0, 1)).draw()


def test_heatmap_html_has_a_pixel_per_value_labels_and_the_marker():
    import base64
    import io
    import re

    from PIL import Image

    matrix = np.zeros((3, 50), np.float32)
    matrix[0, :10] = 1.0  # row 0 (the bottom row) bright at the start
    page = viz.heatmap_html(matrix, ["a", "<", "c"], "Attention", "frame", "weight", marker=20, x_scale=2)
    png = base64.b64decode(re.search(r"base64,([^\"]+)", page).group(1))
    image = np.asarray(Image.open(io.BytesIO(png)))
    assert image.shape[:2] == (3, 50)
    assert not np.array_equal(image[2, 0], image[2, 40])  # drawn bottom-up: row 0 is the image's last
    assert np.array_equal(image[0, 0], image[0, 40])
    assert "&lt;" in page and "left:40.000%" in page and ">100<" in page  # escaped label, marker, 50 x 2 frames
