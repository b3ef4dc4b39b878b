"""The viewer's payload (studio/ui/payload.py): what the browser draws from, to a known precision."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from studio.domains.base import LoadedModel
from studio.domains.text import generate
from studio.domains.text.generate import TextSettings
from studio.ui.payload import LEVELS, SENT, chunk, codes, trace_payload, values


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 30), st.integers(1, 9)),
              elements=st.floats(-1, 1, width=32, allow_nan=False)))
def test_codes_round_trip_to_the_payload_precision(array):
    back = values(codes(array, -1.0, 1.0), -1.0, 1.0, array.shape[1])
    assert back.shape == array.shape
    assert np.abs(back - array).max() <= 1.0 / (LEVELS - 1) + 1e-6  # half a level each way, and rounding


def test_payload_of_a_generation(text_model, codec):
    generation = generate(LoadedModel("t", text_model, codec, {}), TextSettings("Twinkle", 40, seed=2))
    trace = generation.trace
    description, blob = trace_payload(trace, {"kind": "labels"}, "title")
    description = json.loads(json.dumps(description))  # JSON-ready
    assert description["steps"] == trace.steps and description["units"] == trace.hidden_size
    assert description["labels"] == trace.labels and description["prompt_length"] == len("Twinkle")
    assert len(description["layers"]) == trace.num_layers
    for layer, sent in zip(trace.layers, description["layers"], strict=True):
        assert set(sent["quantities"]) == set(SENT)  # h and c are rebuilt by the browser
        for name, q in sent["quantities"].items():
            back = values(chunk(blob, q), q["lo"], q["hi"], trace.hidden_size)
            expected = np.tanh(layer["c"]) if name == "tanh_c" else layer[name]
            assert np.abs(back - expected).max() <= (q["hi"] - q["lo"]) / (LEVELS - 1) / 2 + 1e-6, name
        o = values(chunk(blob, sent["quantities"]["o"]), 0, 1, trace.hidden_size)
        rebuilt_h = o * values(chunk(blob, sent["quantities"]["tanh_c"]), -1, 1, trace.hidden_size)
        assert np.abs(rebuilt_h - layer["h"]).max() <= 1.5 / (LEVELS - 1)


def test_an_image_strip_travels_in_the_blob_over_its_own_range(text_model, codec):
    trace = generate(LoadedModel("t", text_model, codec, {}), TextSettings("Tw", 5, seed=2)).trace
    image = np.linspace(-5, 3, 80 * trace.steps, dtype=np.float32).reshape(80, trace.steps)
    description, blob = trace_payload(trace, {"kind": "spectrogram", "image": image})
    sent = description["track"]["image"]
    assert sent["rows"] == 80 and sent["lo"] == -5 and sent["hi"] == 3
    assert np.abs(values(chunk(blob, sent), -5, 3, 80).T - image).max() <= 8 / (LEVELS - 1)
