"""Asking a handwriting model why (studio.explain over hw.explainable), for both kinds on tiny
random models: the anatomy of a step against the trace, gradient x input against finite
differences, the guesses against the mixture, causality, named targets, and a generation read
again through sequence_of. (Kept apart from test_handwriting.py, which is near 400 lines.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio import explain
from studio.domains import handwriting as hw
from studio.domains.base import LoadedModel
from studio.domains.handwriting.codec import Handwriting, HandwritingCodec
from studio.domains.handwriting.evaluate import make_batch, nll_per_point
from studio.domains.handwriting.generate import HandwritingSettings
from studio.domains.handwriting.model import PREDICTION, SYNTHESIS, PredictionConfig, PredictionModel, layer_names


def loaded_of(kind: str) -> LoadedModel:
    if kind == SYNTHESIS:
        model, codec = hw.tiny(seed=3)
    else:
        torch.manual_seed(3)
        model, codec = PredictionModel(PredictionConfig(16, 2, 3)).eval(), HandwritingCodec(2.0)
    return LoadedModel("tiny", model, codec, {"kind": kind, "metrics": {}}, layer_names(model))


def written(loaded: LoadedModel) -> Handwriting:
    """A generation of the tiny model read again: the example's primer and 24 written points
    (synthesis), or 30 scribbled points."""
    _, settings = hw.example()
    settings.max_points = 30
    return hw.sequence_of(hw.generate(loaded, settings))


KINDS = [SYNTHESIS, PREDICTION]


@pytest.mark.parametrize("kind", KINDS)
def test_anatomy_rebuilds_every_gate_of_the_trace(kind):
    loaded = loaded_of(kind)
    scored, ex = hw.explainable(loaded, written(loaded))
    trace = scored.trace
    assert len(ex.layer_inputs) == len(ex.weights) == trace.num_layers and ex.labels == trace.labels
    for layer in range(trace.num_layers):
        assert ex.layer_inputs[layer].shape == (trace.steps, ex.weights[layer][0].shape[1])
        for unit in (0, 7, 15):
            for step in (0, 1, 13, trace.steps - 1):
                a = explain.anatomy(trace, ex, layer, unit, step)
                total = {gate: part["total"] for gate, part in a["pre"].items()}
                assert total == pytest.approx({gate: part["input"] + part["recurrent"] + part["bias"]
                                               for gate, part in a["pre"].items()}, abs=1e-9)
                # the pre-activations through sigmoid (tanh for g) are the trace's gates
                rebuilt = {gate: float(np.tanh(z) if gate == "g" else 1 / (1 + np.exp(-z))) for gate, z in total.items()}
                assert rebuilt == pytest.approx({gate: a[gate] for gate in explain.GATES}, abs=1e-5), (layer, unit, step)
                assert a["f"] * a["c_prev"] + a["i"] * a["g"] == pytest.approx(a["c"], abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_x_input_equals_finite_differences(kind):
    loaded = loaded_of(kind)
    sequence = written(loaded)
    loaded.model.double()
    _, ex = hw.explainable(loaded, sequence)
    assert ex.inputs.dtype == torch.float64
    step, eps = 20, 1e-3
    for target in (None, "end of stroke", "component 1"):
        attributions = explain.saliency(ex, step, target)
        assert attributions.shape == (step + 1,)

        def value(x, target=target):
            return ex.log_likelihood(x)[0, step] if target is None else ex.target_log_prob(x, step, target)[0]

        with torch.no_grad():
            for s in (0, 2, 9, 15, 19, step):
                # d/d(alpha) at alpha = 1 of the output with input s scaled by alpha is exactly
                # input s . gradient: gradient x input summed over the features
                up, down = ex.inputs.clone(), ex.inputs.clone()
                up[0, s] *= 1 + eps
                down[0, s] *= 1 - eps
                estimate = float((value(up) - value(down)) / (2 * eps))
                assert abs(attributions[s] - estimate) <= 1e-3 * max(abs(estimate), 1e-9), (target, s, attributions[s], estimate)


@pytest.mark.parametrize("kind", KINDS)
def test_guesses_are_the_mixture_and_the_likelihood_is_the_nll(kind):
    loaded = loaded_of(kind)
    sequence = written(loaded)
    scored, ex = hw.explainable(loaded, sequence)
    model, step = loaded.model, 11
    batch = make_batch([sequence.offsets()], [scored.sequence.text] if kind == SYNTHESIS else None,
                          loaded.codec.alphabet, loaded.codec.offset_scale)
    with torch.no_grad():
        raw = model(batch.points, batch.chars, batch.char_mask)[0] if kind == SYNTHESIS else model(batch.points)[0]
    raw = raw[0, step].double()
    m = model.config.mixtures
    weights = torch.softmax(raw[1 : 1 + m], -1).numpy()
    guesses = ex.guesses(step)
    order = np.argsort(-weights)
    assert [g["p"] for g in guesses["topk"]] == pytest.approx(weights[order].tolist(), abs=1e-6)
    assert [int(g["token"].split()[1]) for g in guesses["topk"]] == order.tolist()
    assert guesses["entropy"] == pytest.approx(float(-(weights * np.log(weights)).sum()), abs=1e-6)
    assert guesses["end_of_stroke"] == pytest.approx(float(torch.sigmoid(raw[0])), abs=1e-6)
    if kind == SYNTHESIS:
        peak = int(np.argmax(scored.distributions["phi"][step]))
        assert guesses["window_peak"]["index"] == peak and guesses["window_peak"]["char"] in ("o", "k", "h", "i", "␣")
    else:
        assert "window_peak" not in guesses
    # the per-step log-likelihood is the held-out NLL's own terms, the last step included
    surprise = explain.surprise(ex)
    assert surprise[-1] != 0
    nll = nll_per_point(model, [scored.sequence.text], [sequence.offsets()], loaded.codec)
    assert surprise.mean() == pytest.approx(nll, abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_likelihood_is_causal_and_targets_are_named(kind):
    loaded = loaded_of(kind)
    _, ex = hw.explainable(loaded, written(loaded))
    changed = ex.inputs.clone()
    t = 12
    changed[0, t + 1 :] = torch.randn_like(changed[0, t + 1 :])
    with torch.no_grad():
        before, after = ex.log_likelihood(ex.inputs), ex.log_likelihood(changed)
        assert torch.equal(before[:, : t + 1], after[:, : t + 1])
        assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :])
        up, down = ex.target_log_prob(ex.inputs, t, "end of stroke"), ex.target_log_prob(ex.inputs, t, "Pen down")
        assert float(up.exp() + down.exp()) == pytest.approx(1, abs=1e-6)
        assert float(up.exp()) == pytest.approx(ex.guesses(t)["end_of_stroke"], abs=1e-6)
        top = ex.guesses(t)["topk"][0]
        assert float(ex.target_log_prob(ex.inputs, t, top["token"]).exp()) == pytest.approx(top["p"], abs=1e-6)
    for bad in ("C4", "component 3", 7):
        with pytest.raises(ValueError, match="end of stroke"):
            explain.saliency(ex, t, target=bad)


def test_sequence_of_gives_the_generation_trace_again():
    for kind in KINDS:
        loaded = loaded_of(kind)
        _, settings = hw.example()  # synthesis: the example's primer, then 24 written points
        settings.max_points = 30
        generation = hw.generate(loaded, settings)
        scored = hw.score(loaded, hw.sequence_of(generation))
        assert scored.trace.steps == generation.trace.steps
        for k in range(generation.trace.num_layers):
            for name in ("i", "f", "g", "o", "c", "h"):
                np.testing.assert_allclose(scored.trace.layers[k][name], generation.trace.layers[k][name], atol=1e-5)
        shown = generation.trace.shown_from
        assert scored.trace.labels[shown:] == generation.trace.labels[shown:]
    # several lines: each written from a fresh state; read again in one pass, the steps still line up
    loaded = loaded_of(SYNTHESIS)
    generation = hw.generate(loaded, HandwritingSettings(text="a few words that need two lines", fixed_points=12))
    assert generation.trace.detail.lines == 2
    assert hw.score(loaded, hw.sequence_of(generation)).trace.steps == generation.trace.steps


def test_explain_answer_for_a_synthesis_step():
    loaded = loaded_of(SYNTHESIS)
    scored, ex = hw.explainable(loaded, written(loaded))
    answer = explain.explain(scored.trace, ex, step=14, layer=1, unit=2, target="end of stroke",
                             method="integrated_gradients")
    assert len(answer["saliency"]) == 15 and answer["anatomy"]["layer_name"] == "layer 1"
    assert set(answer) >= {"topk", "entropy", "end_of_stroke", "window_peak", "surprise"}
