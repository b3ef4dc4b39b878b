"""Text domain: codec, request cleaning (bad input), trace alignment, nats_per_char, batches."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from studio.domains import text
from studio.domains.text.codec import TextCodec
from studio.domains.text.data import split_train_val
from studio.domains.text.evaluate import nats_per_char
from studio.domains.text.generate import MAX_LENGTH, TextSettings, clean_settings
from studio.domains.text.model import TextModel, TextModelConfig
from studio.domains.text.train import TextTask
from studio.lstm import GATE_NAMES
from studio.sampling import SamplingConfig

# the module, not the function the package exports under the same name
GENERATE = importlib.import_module("studio.domains.text.generate")


def settings(prompt="Twinkle", length=30, seed=0, temperature=1.0) -> TextSettings:
    return TextSettings(prompt=prompt, length=length, sampling=SamplingConfig(temperature=temperature), seed=seed)


def run(loaded, request, **options):
    """(result, trace) of text.generate."""
    generation = text.generate(loaded, request, **options)
    return generation.result, generation.trace


# ---------------------------------------------------------------- codec
def test_codec_round_trip_and_dropped_characters(corpus, codec):
    assert codec.chars == "".join(sorted(set(corpus)))
    assert codec.size == len(set(corpus))
    ids, dropped = codec.encode(corpus[:200])
    assert dropped == "" and codec.decode(ids) == corpus[:200]
    assert all(0 <= k < codec.size for k in ids)
    ids, dropped = codec.encode("a€bé€d")
    assert codec.decode(ids) == "abd"
    assert dropped == "€é"  # distinct, first-seen order


# ---------------------------------------------------------------- bad input
def test_empty_prompt_is_a_fresh_start(text_model, codec, text_loaded):
    result, trace = run(text_loaded, settings(prompt="", length=25))
    assert result.prompt == ""
    assert len(result.text) == 25
    assert any("Empty prompt" in note for note in result.notes)
    assert trace.shown_from == 1 and trace.prompt_length == 1
    assert trace.labels[0] == "\n"
    assert trace.steps == len(result.prompt + result.text) + trace.shown_from
    assert "".join(trace.labels[1:]) == result.text


def test_unknown_characters_dropped_with_a_note(text_model, codec, text_loaded):
    assert "€" not in codec.index and "Z" not in codec.index
    result, trace = run(text_loaded, settings(prompt="Tw€inkZle"))
    assert result.prompt == "Twinkle"
    notes = " ".join(result.notes)
    assert "'€'" in notes and "'Z'" in notes
    assert trace.shown_from == 0
    assert "".join(trace.labels) == result.prompt + result.text


def test_prompt_of_only_unknown_characters(text_model, codec, text_loaded):
    result, trace = run(text_loaded, settings(prompt="€€ZZ"))
    assert result.prompt == ""
    assert any("'€'" in note for note in result.notes)
    assert any("fresh state" in note for note in result.notes)
    assert trace.shown_from == 1


@pytest.mark.parametrize("length", [0, -7])
def test_length_below_one_gives_one_character(text_model, codec, length, text_loaded):
    result, trace = run(text_loaded, settings(length=length))
    assert len(result.text) == 1
    assert any(str(length) in note and "below 1" in note for note in result.notes)
    assert trace.steps == len("Twinkle") + 1


def test_huge_length_is_clamped(codec):
    ids, fresh, length, notes = clean_settings(settings(length=10**9), codec)
    assert length == MAX_LENGTH and not fresh and codec.decode(ids) == "Twinkle"
    assert any(f"{MAX_LENGTH:,}" in note for note in notes)


def test_huge_length_is_clamped_end_to_end(text_model, codec, monkeypatch, text_loaded):
    monkeypatch.setattr(GENERATE, "MAX_LENGTH", 40)  # the real cap (5,000) is slow to generate in a test
    result, trace = run(text_loaded, settings(length=1000))
    assert len(result.text) == 40
    assert any("cap of 40" in note for note in result.notes)
    assert trace.steps == len("Twinkle") + 40


def test_long_prompt_keeps_its_end(text_model, codec, monkeypatch, text_loaded):
    monkeypatch.setattr(GENERATE, "MAX_PROMPT", 10)
    result, _ = run(text_loaded, settings(prompt="How I wonder what you are", length=5))
    assert result.prompt == "at you are"
    assert any("longer than 10" in note for note in result.notes)


def test_clean_request_has_no_notes(text_model, codec, text_loaded):
    result, _ = run(text_loaded, settings())
    assert result.notes == []


# ---------------------------------------------------------------- trace alignment
def test_trace_aligns_with_shown_text(text_model, codec, text_loaded):
    result, trace = run(text_loaded, settings(length=33))
    shown = result.prompt + result.text
    assert trace.steps == len(shown) + trace.shown_from
    assert "".join(trace.labels) == shown
    assert trace.domain == "text" and trace.prompt_length == len("Twinkle")
    assert trace.num_layers == text_model.config.num_layers
    assert trace.hidden_size == text_model.config.hidden_size
    for layer in trace.layers:
        for name in GATE_NAMES:
            assert layer[name].shape == (trace.steps, text_model.config.hidden_size)
            assert layer[name].dtype == np.float32


def test_generation_trace_equals_teacher_forced_trace(text_model, codec, text_loaded):
    """Prompt gates come from the batched trace, generated ones from step: together they must
    equal one teacher-forced trace over everything the model read."""
    result, trace = run(text_loaded, settings(length=70, seed=3))
    ids = codec.encode(result.prompt + result.text)[0]
    _, _, gates = text_model.trace(torch.tensor([ids]))
    for k, layer in enumerate(trace.layers):
        for name in GATE_NAMES:
            assert np.abs(layer[name] - gates[k][name][0].numpy()).max() <= 1e-5, (k, name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_traced_and_untraced_generate_the_same_text(text_model, codec, seed, text_loaded):
    traced, trace = run(text_loaded, settings(length=50, seed=seed), traced=True)
    plain, no_trace = run(text_loaded, settings(length=50, seed=seed), traced=False)
    assert trace is not None and no_trace is None
    assert traced.text == plain.text and traced.prompt == plain.prompt and traced.notes == plain.notes


def test_trace_npz_round_trip(tmp_path, text_model, codec, text_loaded):
    from studio.trace import Trace

    _, trace = run(text_loaded, settings(prompt="", length=12))
    loaded = Trace.load_npz(trace.save_npz(tmp_path / "t.npz"))
    assert loaded.labels == trace.labels and loaded.description() == trace.description()
    for a, b in zip(loaded.layers, trace.layers, strict=True):
        for name in GATE_NAMES:
            assert np.array_equal(a[name], b[name])


# ---------------------------------------------------------------- nats_per_char
def cross_entropy_sum(model, ids) -> tuple[float, int]:
    ids = torch.tensor(ids)
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
    return float(F.cross_entropy(logits[0], ids[1:], reduction="sum")), len(ids) - 1


def test_nats_per_char_single_stream_equals_full_forward(text_model, codec, corpus):
    ids = codec.encode(corpus[:41])[0]
    total, count = cross_entropy_sum(text_model, ids)
    expected = total / count
    assert math.isclose(nats_per_char(text_model, ids, streams=1), expected, rel_tol=1e-5)
    # the state is carried across chunks: chunking changes nothing
    assert math.isclose(nats_per_char(text_model, ids, streams=1, chunk=7), expected, rel_tol=1e-5)
    # by hand too, from softmax probabilities
    ids_t = torch.tensor(ids)
    with torch.no_grad():
        probs = torch.softmax(text_model(ids_t[None, :-1])[0][0], dim=-1)
    by_hand = -sum(math.log(float(probs[t, ids[t + 1]])) for t in range(len(ids) - 1)) / (len(ids) - 1)
    assert math.isclose(nats_per_char(text_model, ids, streams=1), by_hand, rel_tol=1e-4)


def test_nats_per_char_streams_score_each_piece(text_model, codec, corpus):
    ids = codec.encode(corpus[:83])[0]  # 82 predictions, 4 streams of 20: 2 left out
    piece = (len(ids) - 1) // 4
    total, count = 0.0, 0
    for k in range(4):
        t, c = cross_entropy_sum(text_model, ids[k * piece : k * piece + piece + 1])
        total, count = total + t, count + c
    assert count == 80
    assert math.isclose(nats_per_char(text_model, ids, streams=4, chunk=6), total / count, rel_tol=1e-5)


def test_nats_per_char_uniform_model_is_log_vocab(codec):
    model = TextModel(TextModelConfig(codec.size, 4, 8, 1, 0.0)).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    assert math.isclose(nats_per_char(model, list(range(codec.size)) * 3), math.log(codec.size), rel_tol=1e-6)


# ---------------------------------------------------------------- training batches
def test_split_train_val(corpus):
    train, val = split_train_val(corpus)
    assert train + val == corpus and len(train) == int(len(corpus) * 0.9)


def test_text_task_batches_are_shifted_windows_of_disjoint_streams(codec, corpus):
    ids = codec.encode(corpus)[0]
    task = TextTask(ids, ids[:100], batch_size=3, seq_len=8)
    data = torch.tensor(ids)
    seen = []
    for rank in range(2):
        batch = task.train_batch(step=0, rank=rank, world_size=2, device="cpu")
        assert batch.inputs.shape == batch.targets.shape == (3, 8)
        assert batch.fresh and batch.num_tokens == 24
        for row_in, row_out in zip(batch.inputs, batch.targets, strict=True):
            start = int(np.flatnonzero([torch.equal(data[s : s + 8], row_in) for s in range(len(ids) - 8)])[0])
            assert torch.equal(data[start + 1 : start + 9], row_out)
        seen.append(batch.inputs)
    assert not torch.equal(seen[0], seen[1])  # ranks read different streams
    # the next window continues each stream where the previous one ended, state carried
    first = task.train_batch(0, 0, 1, "cpu")
    second = task.train_batch(1, 0, 1, "cpu")
    assert not second.fresh
    assert torch.equal(first.targets[:, -1], second.inputs[:, 0])


# ---------------------------------------------------------------- numpy codec and features against plain loops
_ALPHABET = 'ab "()\nXÉé€\ud800)(("'


def _reference_encode(codec, text):
    ids, dropped = [], []
    for ch in text:
        if ch in codec.index:
            ids.append(codec.index[ch])
        elif ch not in dropped:
            dropped.append(ch)
    return ids, "".join(dropped)


def _reference_inside(text, opening, closing):
    track, depth = [], 0
    for ch in text:
        if ch == opening and (opening != closing or depth == 0):
            depth += 1
            track.append(1)
            continue
        track.append(int(depth > 0))
        if ch == closing and depth > 0:
            depth -= 1
    return track


@examples(max_examples=300, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=80))
def test_codec_and_features_in_numpy_match_plain_loops(sample):
    from studio.domains.text.evaluate import features

    codec = TextCodec.from_text('ab "()\n')
    assert codec.encode(sample) == _reference_encode(codec, sample)
    ids, _ = codec.encode(sample)
    assert codec.decode(ids) == "".join(codec.chars[k] for k in ids)
    tracks = features(sample)
    assert tracks["inside quotes"].tolist() == _reference_inside(sample, '"', '"')
    assert tracks["inside parentheses"].tolist() == _reference_inside(sample, "(", ")")
    columns, column = [], 0
    for ch in sample:
        columns.append(column)
        column = 0 if ch == "\n" else column + 1
    assert tracks["position in line"].tolist() == columns
    assert tracks["uppercase"].tolist() == [float(ch.isupper()) for ch in sample]
    assert tracks["vowel"].tolist() == [float(ch.lower() in "aeiou") for ch in sample]
    assert tracks["space"].tolist() == [float(ch == " ") for ch in sample]
    assert all(track.dtype == np.float32 and len(track) == len(sample) for track in tracks.values())
