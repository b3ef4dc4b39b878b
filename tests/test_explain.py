"""Asking the model why (studio/explain.py) on tiny text models: saliency against finite
differences and against a model that copies the token k steps back, the anatomy of a step against
the trace, top guesses against the softmax."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from studio import explain
from studio.domains import text
from studio.domains.base import LoadedModel
from studio.domains.text.codec import TextCodec
from studio.domains.text.model import TextModel, TextModelConfig

SENTENCE = 'He said "to be (or not)"\nand left.'


@pytest.fixture
def tiny_loaded(tiny_text):
    return tiny_text(4)


def test_gradient_x_input_equals_finite_differences(tiny_loaded):
    tiny_loaded.model.double()
    scored, ex = text.explainable(tiny_loaded, SENTENCE)
    ex.inputs = ex.inputs.double()
    step = 20
    attributions = explain.saliency(ex, step)
    assert attributions.shape == (step + 1,)
    eps = 1e-4
    with torch.no_grad():
        for s in (0, 7, 15, step):
            # d/d(alpha) of the log-likelihood when input s is scaled by alpha, at alpha = 1,
            # is exactly input s . gradient: gradient x input summed over the features
            up, down = ex.inputs.clone(), ex.inputs.clone()
            up[0, s] *= 1 + eps
            down[0, s] *= 1 - eps
            estimate = float((ex.log_likelihood(up)[0, step] - ex.log_likelihood(down)[0, step]) / (2 * eps))
            assert abs(attributions[s] - estimate) <= 1e-3 * max(abs(estimate), 1e-8), (s, attributions[s], estimate)


def test_saliency_peaks_k_steps_back_on_a_model_that_copies(codec_size=6, lag=3):
    """A tiny model trained to output the token it read `lag` steps earlier: integrated gradients
    of its prediction at step t peak at the input t + 1 - lag (the token it copies), for the token
    it produced and for one it did not ("why not x?"). (Gradient x input is a local slope: in a
    model this confident the log-probabilities saturate and it picks the copied step in only
    ~60-85% of steps, so it is checked against finite differences above instead.)"""
    torch.manual_seed(0)
    codec = TextCodec("abcdef")
    model = TextModel(TextModelConfig(codec_size, 8, 32, 1, 0.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(300):
        tokens = torch.randint(0, codec_size, (32, 24))
        logits, _ = model(tokens[:, :-1])
        # the prediction after reading t is the token read at t + 1 - lag
        loss = F.cross_entropy(logits[:, lag - 1 :].reshape(-1, codec_size), tokens[:, : 24 - lag].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, loss.item()  # it learned to copy
    model.eval()
    draws = torch.randint(0, codec_size, (40,), generator=torch.Generator().manual_seed(1))
    sequence = "".join(codec.chars[int(k)] for k in draws)
    _, ex = text.explainable(LoadedModel("copy", model, codec, {}, ["layer 0"], ""), sequence)
    for step in (8, 13, 17, 25, 33, 38):
        copied = sequence[step + 1 - lag]
        other = codec.chars[(codec.index[copied] + 1) % codec_size]
        for target in (None, other):
            attributions = explain.saliency(ex, step, target=target, method="integrated_gradients")
            assert int(np.argmax(np.abs(attributions))) == step + 1 - lag, (step, target, attributions.round(2))


def test_anatomy_rebuilds_every_gate_of_the_trace(tiny_loaded):
    scored, ex = text.explainable(tiny_loaded, SENTENCE)
    trace = scored.trace
    for layer in range(trace.num_layers):
        for unit in (0, 5, 15):
            for step in (0, 1, 12, trace.steps - 1):
                a = explain.anatomy(trace, ex, layer, unit, step)
                for gate in explain.GATES:
                    part = a["pre"][gate]
                    assert part["input"] + part["recurrent"] + part["bias"] == pytest.approx(part["total"], abs=1e-9)
                    named = sum(c["contribution"] for c in part["recurrent_top"])
                    assert named + part["recurrent_rest"] == pytest.approx(part["recurrent"], abs=1e-9)
                    squashed = np.tanh(part["total"]) if gate == "g" else 1 / (1 + np.exp(-part["total"]))
                    assert squashed == pytest.approx(a[gate], abs=1e-5), (layer, unit, step, gate)
                assert a["f"] * a["c_prev"] + a["i"] * a["g"] == pytest.approx(a["c"], abs=1e-5)
                assert a["o"] * np.tanh(a["c"]) == pytest.approx(a["h"], abs=1e-5)
                assert a["c"] == pytest.approx(float(trace.layers[layer]["c"][step, unit]), abs=1e-6)


def test_top_guesses_are_the_softmax_of_the_logits(tiny_loaded):
    scored, ex = text.explainable(tiny_loaded, SENTENCE)
    logits = torch.tensor(scored.distributions["logits"][9], dtype=torch.float64)
    probs = torch.softmax(logits, -1).numpy()
    guesses = ex.guesses(9)
    order = np.argsort(-probs)[:5]
    assert [g["p"] for g in guesses["topk"]] == pytest.approx(probs[order].tolist(), abs=1e-9)
    assert guesses["entropy"] == pytest.approx(float(-(probs * np.log(probs)).sum()), abs=1e-9)
    assert explain.surprise(ex)[9] == pytest.approx(-np.log(probs[tiny_loaded.codec.index[SENTENCE[10]]]), abs=1e-4)


def test_trajectory_and_explain_json(tiny_loaded):
    scored, ex = text.explainable(tiny_loaded, SENTENCE)
    coords, share = explain.trajectory(scored.trace, 1)
    assert coords.shape == (scored.trace.steps, 2) and 0 <= share[1] <= share[0] <= 1
    answer = explain.explain(scored.trace, ex, step=12, layer=1, unit=3, target="e")
    assert answer["label"] == SENTENCE[12] and len(answer["saliency"]) == 13 and len(answer["topk"]) == 5
    assert answer["anatomy"]["layer"] == 1 and answer["anatomy"]["unit"] == 3
    with pytest.raises(ValueError, match="one character"):
        explain.saliency(ex, 12, target="€")
    with pytest.raises(ValueError, match="outside"):
        explain.anatomy(scored.trace, ex, 0, 0, 999)
