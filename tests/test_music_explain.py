"""Asking a music model why (studio.explain over music.explainable) on the tiny random model: the
anatomy of a step against the trace, gradient x input against finite differences, the guesses
against the masked softmax the sampler draws from, causality, named targets, and a generation read
again through sequence_of. (Kept apart from test_music.py, which is near 400 lines.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio import explain
from studio.domains import music
from studio.domains.base import LoadedModel
from studio.domains.music.codec import masked_log_probs
from studio.domains.music.model import make_card


def tiny_loaded(seed: int = 0) -> LoadedModel:
    model, codec = music.tiny(seed)
    return LoadedModel("tiny", model, codec, make_card(model), ["layer 0", "layer 1"], "")


@pytest.fixture
def explained():
    loaded = tiny_loaded()
    frames, _ = music.example()
    scored, ex = music.explainable(loaded, frames)
    return loaded, scored, ex


def test_inputs_are_what_the_lstm_reads(explained):
    loaded, scored, ex = explained
    tokens = loaded.codec.encode(scored.sequence)
    assert ex.labels == scored.trace.labels == [loaded.codec.label(t) for t in tokens]
    assert ex.inputs.shape == (1, len(tokens), 4 + 2 * loaded.codec.num_pitches)
    assert np.array_equal(ex.layer_inputs[0], loaded.model.inputs(torch.tensor([tokens]))[0].detach().numpy())


def test_anatomy_rebuilds_every_gate_of_the_trace(explained):
    _, scored, ex = explained
    trace = scored.trace
    for layer in range(trace.num_layers):
        for unit in (0, 7, 15):
            for step in (0, 1, 5, 12, trace.steps - 1):
                a = explain.anatomy(trace, ex, layer, unit, step)
                for gate in explain.GATES:
                    part = a["pre"][gate]
                    assert part["input"] + part["recurrent"] + part["bias"] == pytest.approx(part["total"], abs=1e-9)
                    squashed = np.tanh(part["total"]) if gate == "g" else 1 / (1 + np.exp(-part["total"]))
                    assert squashed == pytest.approx(a[gate], abs=1e-5), (layer, unit, step, gate)
                assert a["f"] * a["c_prev"] + a["i"] * a["g"] == pytest.approx(a["c"], abs=1e-5)
                assert a["o"] * np.tanh(a["c"]) == pytest.approx(a["h"], abs=1e-5)


def test_gradient_x_input_equals_finite_differences():
    loaded = tiny_loaded(seed=2)
    loaded.model.double()
    frames, _ = music.example()
    _, ex = music.explainable(loaded, frames)
    assert ex.inputs.dtype == torch.float64
    eps = 1e-3
    for step in (9, ex.steps - 2):
        attributions = explain.saliency(ex, step)
        assert attributions.shape == (step + 1,)
        with torch.no_grad():
            for s in sorted({0, 1, step // 2, step - 1, step}):
                # d/d(alpha) of the log-likelihood when input s is scaled by alpha, at alpha = 1,
                # is exactly input s . gradient: gradient x input summed over the features
                up, down = ex.inputs.clone(), ex.inputs.clone()
                up[0, s] *= 1 + eps
                down[0, s] *= 1 - eps
                estimate = float((ex.log_likelihood(up)[0, step] - ex.log_likelihood(down)[0, step]) / (2 * eps))
                assert abs(attributions[s] - estimate) <= 1e-3 * max(abs(estimate), 1e-8), (step, s, attributions[s], estimate)


def test_guesses_are_the_masked_softmax_the_sampler_draws_from(explained):
    loaded, scored, ex = explained
    codec = loaded.codec
    tokens = codec.encode(scored.sequence)
    logits = torch.tensor(scored.distributions["logits"], dtype=torch.float64)
    for step in range(len(tokens)):
        allowed = np.array([k == codec.end or (k < codec.num_pitches and (tokens[step] >= codec.num_pitches or k > tokens[step]))
                            for k in range(codec.size)])  # the codec's rule, by hand
        probs = torch.softmax(logits[step].masked_fill(~torch.tensor(allowed), float("-inf")), -1).numpy()
        order = np.argsort(-probs, kind="stable")[: min(5, allowed.sum())]  # impossible tokens are not guesses
        guesses = ex.guesses(step)
        assert [g["token"] for g in guesses["topk"]] == [codec.label(k) for k in order]
        assert [g["p"] for g in guesses["topk"]] == pytest.approx(probs[order].tolist(), abs=1e-6)
        assert all(g["token"] in ("end", *(codec.label(k) for k in np.flatnonzero(allowed))) for g in guesses["topk"])
        nonzero = probs[probs > 0]
        assert guesses["entropy"] == pytest.approx(float(-(nonzero * np.log(nonzero)).sum()), abs=1e-6)
        assert guesses["end_of_frame"] == pytest.approx(float(probs[codec.end]), abs=1e-6)
        if step + 1 < len(tokens):
            assert explain.surprise(ex)[step] == pytest.approx(-np.log(probs[tokens[step + 1]]), abs=1e-4)
    assert explain.surprise(ex)[-1] == 0


def test_log_likelihood_is_causal(explained):
    _, _, ex = explained
    with torch.no_grad():
        base = ex.log_likelihood(ex.inputs)
        for t in (0, 4, 11, ex.steps - 3):
            changed = ex.inputs.clone()
            changed[0, t + 1 :] += torch.randn_like(changed[0, t + 1 :], generator=torch.Generator().manual_seed(t))
            rows = ex.log_likelihood(changed)
            assert torch.equal(rows[0, : t + 1], base[0, : t + 1]), t
            assert not torch.allclose(rows[0, t + 1 : -1], base[0, t + 1 : -1])


def test_named_targets(explained):
    loaded, scored, ex = explained
    codec = loaded.codec
    step = scored.trace.labels.index("E4")  # inside the first chord C4 E4 G4: only above E4 or end
    with torch.no_grad():
        masked = masked_log_probs(loaded.model.trace(torch.tensor([codec.encode(scored.sequence)]))[0],
                                  torch.tensor([codec.encode(scored.sequence)]), codec)[0, step]
        for name, token in (("G4", codec.token_of("G4")), ("Ab4", 68 - codec.min_pitch), ("end", codec.end)):
            assert float(ex.target_log_prob(ex.inputs, step, name)[0]) == pytest.approx(float(masked[token]), abs=1e-5)
    assert explain.saliency(ex, step, target="G4").shape == (step + 1,)
    for bad, words in (("C4", "cannot come after E4"), ("C9", "outside the model's range"), ("la", "not a note")):
        with pytest.raises(ValueError, match=words):
            explain.saliency(ex, step, target=bad)


def test_a_generation_read_again_gives_its_trace():
    loaded = tiny_loaded(seed=1)
    _, settings = music.example()
    generation = music.generate(loaded, settings)
    sequence = music.sequence_of(generation)
    scored, ex = music.explainable(loaded, sequence)
    assert scored.trace.labels == generation.trace.labels and scored.trace.detail.tokens == generation.trace.detail.tokens
    assert scored.trace.detail.primer_source == "example"
    for again, made in zip(scored.trace.layers, generation.trace.layers, strict=True):
        for name in ("i", "f", "g", "o", "c", "h"):
            assert np.abs(again[name] - made[name]).max() < 1e-5, name
    assert np.abs(scored.distributions["logits"] - generation.distributions["logits"]).max() < 1e-4
    answer = explain.explain(scored.trace, ex, step=ex.steps - 2, layer=1, unit=3, target="end")
    assert 1 <= len(answer["topk"]) <= 5 and len(answer["saliency"]) == ex.steps - 1 and answer["anatomy"]["layer"] == 1
