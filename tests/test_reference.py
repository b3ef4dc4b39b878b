"""The experiments panel's work for every domain (studio/reference.py, the intervention and the
comparison of studio/ui/experiments_panel.py), with tiny models; and the per-step divergences."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from studio import experiments, reference
from studio.domains import ALL, handwriting, speech
from studio.ui import experiments_panel as xp


@pytest.fixture(params=ALL, ids=lambda domain: domain.NAME)
def domain(request):
    return request.param


@pytest.fixture
def setup(domain, tmp_path):
    """(loaded, a generation of the example settings)."""
    model, codec = domain.tiny(seed=0)
    domain.save(tmp_path / "tiny", model, codec, {"name": "tiny"})
    loaded = domain.load(tmp_path / "tiny")
    _, settings = domain.example()
    return loaded, domain.generate(loaded, settings)


def test_generations_keep_their_settings_and_more_seeds_differ(domain, setup):
    loaded, generation = setup
    assert generation.settings is not None
    found = reference.sources(domain, loaded, generation, "generations")
    assert len(found) == 1 + reference.MORE_GENERATIONS and found[0].trace is generation.trace
    assert len({tuple(map(str, s.trace.labels)) if domain.NAME == "text" else s.trace.quantity(0, "h").tobytes() for s in found}) > 1


def test_probe_over_generations_ranks_units_and_draws_the_top_ones(domain, setup):
    loaded, generation = setup
    found = reference.sources(domain, loaded, generation, "generations")
    feature = xp.feature_names(domain, {loaded.name: loaded})[0]
    answer = reference.probe(domain, loaded, found, feature, top=7)
    assert answer["steps"] == sum(s.trace.steps for s in found) and len(answer["hits"]) == 7
    strengths = [hit["strength"] for hit in answer["hits"]]
    assert strengths == sorted(strengths, reverse=True)
    window = answer["window"]
    assert 0 < len(window["track"]) <= reference.WINDOW and all(len(s) == len(window["track"]) for s in window["series"])


def test_pattern_finds_the_selection_and_every_copy_of_it(domain, setup):
    """The selected steps are among the matches; a second source identical to the output gives the
    same runs (read again teacher-forced where the domain's score reproduces the generation)."""
    loaded, generation = setup
    trace = generation.trace
    start = trace.shown_from + 2
    answer = reference.pattern(domain, loaded, trace, 0, start, start + 2, 0.0, "h",
                               [reference.Source("this output", None, trace), reference.Source("copy", None, dataclasses.replace(trace))])
    if not answer["units"]:
        pytest.skip("no unit of the tiny model stays above 0 there")
    selected = [m for m in answer["matches"] if m["selection"]]
    assert len(selected) == 1 and selected[0]["start"] <= start and selected[0]["end"] >= start + 2
    mine = sorted((m["start"], m["end"]) for m in answer["matches"] if m["source"] == "this output")
    copy = sorted((m["start"], m["end"]) for m in answer["matches"] if m["source"] == "copy")
    assert mine == copy
    on = trace.quantity(0, "h")[:, answer["units"]] > 0
    for m in answer["matches"]:
        assert on[m["start"] : m["end"] + 1].all()


def test_intervention_changes_nothing_before_its_step(domain, setup):
    loaded, generation = setup
    start = generation.trace.shown_from + 3
    answer = xp.intervention(domain, loaded, generation, "0:0, 0:1, 0:2, 1:3", "h=0", 0, start)
    assert [o["name"] for o in answer["outputs"]] == ["original", "changed"]
    first = answer["first"]
    if answer["kl"] is not None:
        assert max(answer["kl"][: start - first], default=0) == 0 and max(answer["kl"][start - first :]) > 0
    if answer["first_divergence"] is not None:
        assert answer["first_divergence"] >= start - first
    with pytest.raises(ValueError, match="does not exist"):
        xp.intervention(domain, loaded, generation, "0:9999", "h=0", 0, start)
    with pytest.raises(ValueError, match="layer:unit"):
        xp.intervention(domain, loaded, generation, "zero", "h=0", 0, start)


def test_comparison_of_a_model_with_itself(domain, setup):
    loaded, generation = setup
    answer, viewer = xp.comparison(domain, {loaded.name: loaded}, loaded, generation, xp.SAME_MODEL)
    same = [pair["cka"] for pair in answer["cka"] if pair["a"] == pair["b"]]
    assert len(same) == generation.trace.num_layers
    assert all(abs(value - 1) < 1e-6 for value in same)
    assert viewer["blob"]


def test_step_divergence_is_zero_for_the_same_predictions_and_right_for_known_ones():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 6))
    assert np.allclose(experiments.step_divergence({"logits": logits}, {"logits": logits})[0], 0)
    assert experiments.step_divergence({"frames": logits}, {"frames": logits})[0] is None  # the default knows only logits
    frames = rng.normal(size=(3, 2, 5))
    values, _ = speech.step_divergence({"frames": frames}, {"frames": frames + 1})
    assert np.allclose(values, 0.5 * 2 * 5)  # 1/2 |delta|^2 over R x 80 -> here 2 x 5 ones
    one = {"pi": np.ones((1, 1)), "mu": np.zeros((1, 1, 2)), "sigma": np.ones((1, 1, 2)), "rho": np.zeros((1, 1)),
           "eos": np.array([0.3])}
    moved = {**one, "mu": np.ones((1, 1, 2))}
    assert handwriting.step_divergence(one, one)[0][0] == pytest.approx(0, abs=1e-12)
    # two unit Gaussians a distance sqrt(2) apart: KL = |delta mu|^2 / 2 = 1 (sampled: within a few %)
    assert handwriting.step_divergence(one, moved, samples=20_000)[0][0] == pytest.approx(1.0, rel=0.05)


def test_steps_are_read_from_what_a_user_types():
    assert reference.parse_steps("120-140") == (120, 140)
    assert reference.parse_steps("140–120") == (120, 140)
    assert reference.parse_steps(" 7 ") == (7, 7)
    assert reference.parse_steps("") is None and reference.parse_steps(None) is None
