"""The viewer's payload (studio/ui/payload.py): what the browser draws from, to a known precision."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from studio.domains.base import LoadedModel
from studio.domains.text import TextSettings, generate
from studio.sampling import SamplingConfig
from studio.ui.payload import LEVELS, SENT, pack, pack_image, trace_payload, unpack


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 30), st.integers(1, 9)),
              elements=st.floats(-1, 1, width=32, allow_nan=False)))
def test_pack_round_trips_to_the_payload_precision(values):
    back = unpack(pack(values, -1.0, 1.0), -1.0, 1.0, values.shape[1])
    assert back.shape == values.shape
    assert np.abs(back - values).max() <= 1.0 / (LEVELS - 1) + 1e-6  # half a level each way, and rounding


def test_payload_of_a_generation(text_model, codec):
    generation = generate(LoadedModel("t", text_model, codec, {}), TextSettings("Twinkle", 40, SamplingConfig(seed=2)))
    trace = generation.trace
    payload = json.loads(json.dumps(trace_payload(trace, {"kind": "text"}, "title")))  # JSON-ready
    assert payload["steps"] == trace.steps and payload["units"] == trace.hidden_size
    assert payload["labels"] == trace.labels and payload["prompt_length"] == len("Twinkle")
    assert len(payload["layers"]) == trace.num_layers
    for layer, sent in zip(trace.layers, payload["layers"], strict=True):
        assert set(sent["quantities"]) == set(SENT)  # h and c are rebuilt by the browser
        for name, q in sent["quantities"].items():
            back = unpack(q["data"], q["lo"], q["hi"], trace.hidden_size)
            expected = np.tanh(layer["c"]) if name == "tanh_c" else layer[name]
            assert np.abs(back - expected).max() <= (q["hi"] - q["lo"]) / (LEVELS - 1) / 2 + 1e-6, name
        o = unpack(sent["quantities"]["o"]["data"], 0, 1, trace.hidden_size)
        rebuilt_h = o * unpack(sent["quantities"]["tanh_c"]["data"], -1, 1, trace.hidden_size)
        assert np.abs(rebuilt_h - layer["h"]).max() <= 1.5 / (LEVELS - 1)


def test_image_strip_is_packed_over_its_own_range():
    image = np.linspace(-5, 3, 80 * 7, dtype=np.float32).reshape(80, 7)
    packed = pack_image(image)
    assert packed["rows"] == 80 and packed["lo"] == -5 and packed["hi"] == 3
    assert np.abs(unpack(packed["data"], -5, 3, 80).T - image).max() <= 8 / (LEVELS - 1)
