"""Sampling: temperature / top-k / top-p on hand-made logits, and seeded reproducibility of
text generation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from studio.domains import text
from studio.domains.text.generate import TextSettings
from studio.lstm import GATE_NAMES
from studio.sampling import SamplingConfig, filtered_probs, make_generator, sample_next

# Probabilities deliberately out of order, so a filter that forgets to undo its sort fails.
PROBS = torch.tensor([0.15, 0.5, 0.05, 0.3])
LOGITS = PROBS.log() + 3.0  # a shift changes nothing after softmax


def config(**kwargs) -> SamplingConfig:
    return SamplingConfig(**{"temperature": 1.0, **kwargs})


def test_plain_softmax_and_temperature():
    assert torch.allclose(filtered_probs(LOGITS, config()), PROBS, atol=1e-6)
    hot = filtered_probs(LOGITS, config(temperature=2.0))
    assert torch.allclose(hot, torch.softmax(LOGITS / 2, dim=-1), atol=1e-6)
    assert hot.max() < PROBS.max()  # flatter
    cold = filtered_probs(LOGITS, config(temperature=0.25))
    assert torch.allclose(cold, torch.softmax(LOGITS * 4, dim=-1), atol=1e-6)
    assert cold[1] > 0.85  # 0.5**4 / (0.5**4 + 0.3**4 + 0.15**4 + 0.05**4) = 0.879: sharper


@pytest.mark.parametrize(
    "top_p, kept",
    [
        (0.4, [1]),  # the most likely token alone already reaches p
        (0.5, [1]),  # ... exactly
        (0.7, [1, 3]),  # 0.5 + 0.3 = 0.8 >= 0.7
        (0.9, [1, 3, 0]),  # 0.8 + 0.15 = 0.95 >= 0.9
        (0.99, [1, 3, 0, 2]),
        (1.0, [1, 3, 0, 2]),
    ],
)
def test_top_p_keeps_smallest_set_reaching_p(top_p, kept):
    probs = filtered_probs(LOGITS, config(top_p=top_p))
    expected = torch.zeros(4)
    expected[kept] = PROBS[kept] / PROBS[kept].sum()
    assert torch.allclose(probs, expected, atol=1e-6), (probs, expected)
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("top_p", [0.0, -1.0])
def test_top_p_at_most_zero_keeps_the_most_likely_token(top_p):
    # the UI's slider starts at 0.05, but the API takes any number
    assert torch.allclose(filtered_probs(LOGITS, config(top_p=top_p)), torch.tensor([0.0, 1.0, 0.0, 0.0]))


@pytest.mark.parametrize("top_k, kept", [(1, [1]), (2, [1, 3]), (3, [1, 3, 0]), (4, [0, 1, 2, 3]), (0, [0, 1, 2, 3]), (9, [0, 1, 2, 3])])
def test_top_k(top_k, kept):
    probs = filtered_probs(LOGITS, config(top_k=top_k))
    expected = torch.zeros(4)
    expected[kept] = PROBS[kept] / PROBS[kept].sum()
    assert torch.allclose(probs, expected, atol=1e-6)


def test_top_k_then_top_p():
    # top-k=3 leaves 0.5, 0.3, 0.15 -> renormalised 0.526, 0.316, 0.158; top-p 0.8 keeps two
    probs = filtered_probs(LOGITS, config(top_k=3, top_p=0.8))
    assert torch.allclose(probs, torch.tensor([0.0, 0.625, 0.0, 0.375]), atol=1e-6)


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_temperature_at_most_zero_is_greedy(temperature):
    generator = make_generator(0)
    picks = {sample_next(LOGITS, config(temperature=temperature), generator) for _ in range(20)}
    assert picks == {1}


def test_top_k_one_is_greedy():
    generator = make_generator(123)
    picks = {sample_next(LOGITS, config(top_k=1, temperature=1.5), generator) for _ in range(50)}
    assert picks == {1}


def test_seeded_draws_repeat_and_follow_the_distribution():
    first_draw = sample_next(LOGITS, config(), make_generator(7))
    gen_a, gen_b, gen_c = make_generator(7), make_generator(7), make_generator(8)
    a = [sample_next(LOGITS, config(), gen_a) for _ in range(400)]
    b = [sample_next(LOGITS, config(), gen_b) for _ in range(400)]
    c = [sample_next(LOGITS, config(), gen_c) for _ in range(400)]
    assert a == b and a != c and a[0] == first_draw
    counts = np.bincount(a, minlength=4) / len(a)
    assert np.allclose(counts, PROBS.numpy(), atol=0.08)
    # top-p 0.7 can never pick tokens 0 or 2
    gen = make_generator(1)
    assert {sample_next(LOGITS, config(top_p=0.7), gen) for _ in range(200)} == {1, 3}


# ---------------------------------------------------------------- seeded text generation
def generate(model, codec, traced=True, **sampling):
    """(result, trace) of one seeded generation."""
    from studio.domains.base import LoadedModel

    seed = sampling.pop("seed", 0)
    settings = TextSettings(prompt="Twinkle", length=60, sampling=SamplingConfig(**{"temperature": 1.0, **sampling}), seed=seed)
    generation = text.generate(LoadedModel("t", model, codec, {}), settings, traced=traced)
    return generation.result, generation.trace


def assert_same_trace(a, b):
    assert a.labels == b.labels and a.description() == b.description() and a.num_layers == b.num_layers
    for la, lb in zip(a.layers, b.layers, strict=True):
        for name in GATE_NAMES:
            assert np.array_equal(la[name], lb[name]), name


def test_same_seed_same_text_and_trace(text_model, codec):
    first, trace_1 = generate(text_model, codec, seed=5)
    second, trace_2 = generate(text_model, codec, seed=5)
    assert first.text == second.text and len(first.text) == 60
    assert_same_trace(trace_1, trace_2)
    other, trace_3 = generate(text_model, codec, seed=6)
    assert other.text != first.text
    assert not np.array_equal(trace_3.layers[-1]["h"], trace_1.layers[-1]["h"])


def test_greedy_has_a_note_and_ignores_seed(text_model, codec):
    greedy_a, _ = generate(text_model, codec, temperature=0.0, seed=1)
    greedy_b, _ = generate(text_model, codec, temperature=-0.5, seed=2, top_k=3)
    assert greedy_a.text == greedy_b.text
    assert any("greedy" in note.lower() for note in greedy_a.notes)
    assert any("greedy" in note.lower() for note in greedy_b.notes)
    top_1, _ = generate(text_model, codec, top_k=1, seed=3)
    assert top_1.text == greedy_a.text
    assert not any("greedy" in note.lower() for note in top_1.notes)
