"""The contract (studio.domains.base) held by every domain of studio.domains.ALL, with tiny models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from studio import checkpoint
from studio.domains import ALL, member
from studio.domains.base import OPTIONAL, Generation, LoadedModel, Reference, Scored, missing_parts
from studio.lstm import set_units


@pytest.fixture(params=ALL, ids=lambda domain: domain.NAME)
def domain(request):
    return request.param


@pytest.fixture
def loaded(domain, tmp_path) -> LoadedModel:
    model, codec = domain.tiny(seed=0)
    domain.save(tmp_path / "tiny", model, codec, {"name": "tiny"})
    return domain.load(tmp_path / "tiny")


def test_every_domain_has_every_part(domain):
    assert missing_parts(domain) == []
    assert dataclasses.is_dataclass(domain.Settings)
    assert "seed" in {field.name for field in dataclasses.fields(domain.Settings)}  # the one seed


def test_save_load_round_trip(domain, tmp_path):
    model, codec = domain.tiny(seed=1)
    domain.save(tmp_path / "m", model, codec, {"name": "m"})
    loaded = domain.load(tmp_path / "m")
    card = checkpoint.read_card(tmp_path / "m")  # the one schema, checked
    assert card["domain"] == domain.NAME and card["name"] == "m" and loaded.name == "m"
    original, restored = model.state_dict(), loaded.model.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert loaded.layer_names and loaded.summary


def _check_cell_recurrence(trace) -> None:
    for layer in trace.layers:
        c_prev = np.vstack([np.zeros_like(layer["c"][:1]), layer["c"][:-1]])
        np.testing.assert_allclose(layer["c"], layer["f"] * c_prev + layer["i"] * layer["g"], atol=1e-5)
        np.testing.assert_allclose(layer["h"], layer["o"] * np.tanh(layer["c"]), atol=1e-5)


def test_score_equals_the_fused_forward(domain, loaded):
    sequence, _ = domain.example()
    scored = domain.score(loaded, sequence)
    assert isinstance(scored, Scored) and scored.trace.domain == domain.NAME
    expected = domain.fused(loaded, sequence)
    assert expected.keys() <= scored.distributions.keys()
    for key, values in expected.items():
        assert scored.distributions[key].shape[0] == scored.trace.steps
        np.testing.assert_allclose(scored.distributions[key], values, atol=1e-5, rtol=0)
    _check_cell_recurrence(scored.trace)


def test_features_are_as_long_as_the_trace(domain, loaded):
    sequence, _ = domain.example()
    scored = domain.score(loaded, sequence)
    tracks = domain.features(sequence, scored)
    assert tracks
    for name, track in tracks.items():
        assert len(track) == scored.trace.steps, name
        assert np.all(np.isfinite(track)), name


def _same_generation(a: Generation, b: Generation) -> None:
    assert a.trace.steps == b.trace.steps and a.trace.labels == b.trace.labels
    for layer_a, layer_b in zip(a.trace.layers, b.trace.layers, strict=True):
        for name in layer_a:
            assert np.array_equal(layer_a[name], layer_b[name]), name
    for key in a.distributions:
        assert np.array_equal(a.distributions[key], b.distributions[key]), key


def test_generate_without_hooks_equals_an_empty_hook_list(domain, loaded):
    _, settings = domain.example()
    plain = domain.generate(loaded, settings)
    assert isinstance(plain, Generation) and plain.trace.domain == domain.NAME
    _same_generation(plain, domain.generate(loaded, settings, hooks=[]))
    _same_generation(plain, domain.generate(loaded, settings))  # and the seed decides everything


def test_a_hook_zeroing_one_unit_changes_the_prediction_from_its_step_on(domain, loaded):
    _, settings = domain.example()
    plain = domain.generate(loaded, settings)
    layer = plain.trace.num_layers - 1  # the layer the output head reads
    at = max(plain.trace.prompt_length, plain.trace.steps // 2)
    assert at < plain.trace.steps - 1
    hooked = domain.generate(loaded, settings, hooks=[set_units(layer, [0, 1], "h", 0.0, from_step=at)])
    for key, before in plain.distributions.items():
        after = hooked.distributions[key]
        np.testing.assert_allclose(after[:at], before[:at], atol=1e-5, rtol=0, err_msg=f"{key} changed before step {at}")
        assert not np.allclose(after[at], before[at], atol=1e-6, rtol=0), f"{key} unchanged at step {at}"
    assert np.allclose(hooked.trace.layers[layer]["h"][at:, :2], 0.0)


def test_optional_members_keep_their_defaults_shape(domain, loaded):
    """What a domain does differently is an OPTIONAL member of the default's kind, and works on its example."""
    for name, default in OPTIONAL.items():
        own = member(domain, name)
        if callable(default) or default is None:
            assert own is None or callable(own), name
        else:
            assert isinstance(own, type(default)), name
    sequence, settings = domain.example()
    generation = domain.generate(loaded, settings)
    values, measure = member(domain, "step_divergence")(generation.distributions, generation.distributions)
    assert values is not None and np.allclose(values, 0, atol=1e-9) and measure
    if member(domain, "references") is not None:
        assert all(isinstance(found, Reference) for found in member(domain, "references")(loaded))
    if member(domain, "trace_chunks") is not None:
        read, chunks = member(domain, "trace_chunks")(loaded, sequence)
        whole = domain.score(loaded, sequence).trace
        parts = [trace for trace, _ in chunks]
        assert sum(trace.steps for trace in parts) == whole.steps == len(read)


def test_write_files(domain, loaded, tmp_path):
    _, settings = domain.example()
    files = domain.write_files(domain.generate(loaded, settings), tmp_path)
    assert files and all(path.exists() and path.stat().st_size > 0 for path in files.values())
