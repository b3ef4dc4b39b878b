"""The helpers every tab uses to read numbers from UI fields and API calls."""

from __future__ import annotations

import math

import pytest

from studio.ui.common import clamp_int, number_or


@pytest.mark.parametrize("value, expected", [
    (7, 7), ("12", 12), (3.9, 3), (-5, 0), (10**12, 100),  # in range, text, truncated, clamped
    (None, 42), ("", 42), ("abc", 42), (math.nan, 42),  # blank or garbage: the default
    (math.inf, 100), (-math.inf, 0), ("1e400", 100),  # infinities: the nearer end, no OverflowError
])
def test_clamp_int(value, expected):
    assert clamp_int(value, 0, 100, 42) == expected


@pytest.mark.parametrize("value, expected", [
    (0.25, 0.25), ("1.5", 1.5), (-3, -3.0), (0, 0.0),  # zero is a number, not blank
    (None, 0.8), ("", 0.8), ("warm", 0.8), (math.nan, 0.8), (math.inf, 0.8), ("-inf", 0.8),
])
def test_number_or(value, expected):
    assert number_or(value, 0.8) == expected


def test_outputs_are_pruned_oldest_first_past_the_cap(tmp_path, monkeypatch):
    import os
    import time

    from studio.ui import common

    monkeypatch.setattr(common, "OUTPUT_ROOT", tmp_path)
    monkeypatch.setattr(common, "KEEP_SECONDS", 60)
    now = time.time()
    for k in range(5):  # five 1 kB outputs, k hours old... the last one just made
        folder = tmp_path / f"request{k}"
        folder.mkdir()
        (folder / "trace.npz").write_bytes(b"x" * 1000)
        age = (4 - k) * 3600
        os.utime(folder / "trace.npz", (now - age, now - age))
    assert common.prune_outputs(limit=2500) == 3000  # the three oldest go; 2,000 bytes stay
    assert sorted(p.parent.name for p in tmp_path.rglob("*.npz")) == ["request3", "request4"]
    assert common.prune_outputs(limit=0) == 1000  # the newest is younger than KEEP_SECONDS: kept


def test_the_owner_key_reaches_a_handler_with_a_defaulted_parameter_after_its_inputs():
    """A shared server adds the browser key as the last input. Gradio fills a defaulted parameter that no
    input fills (the lab's `on_start(..., is_sweep=False)`) with its default before the key: the key must
    still be read as the key and the default stay the default (the lab's Start once ran a sweep and kept
    the run for nobody)."""
    import gradio as gr
    from gradio.helpers import special_args

    from studio import user_models
    from studio.ui.common import _session_aware

    seen = []

    def on_start(chosen, is_sweep=False, progress=gr.Progress()):  # noqa: B008 (gradio reads the default)
        seen.append((chosen, is_sweep, user_models.current_owner.get()))

    with gr.Blocks():
        chosen, key = gr.Textbox(), gr.BrowserState()
    inputs = [chosen]
    wrapped = _session_aware(on_start, inputs, [], key)
    assert inputs == [chosen, key]
    args, *_ = special_args(wrapped, ["adding", "k" + "a" * 32])  # what gradio hands the handler
    wrapped(*args)
    assert seen == [("adding", False, user_models.owner_or_none("k" + "a" * 32))]
