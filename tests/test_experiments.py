"""Experiments on units (studio/experiments.py) with tiny text models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio import experiments, probe_stream
from studio.domains import text
from studio.domains.text.generate import TextSettings

SENTENCE = 'He said "to be (or not)"\nand "left" at once.\nThen "no".\n'


@pytest.fixture
def loaded(tiny_text):
    return tiny_text(2)


def test_a_unit_wired_to_copy_a_feature_ranks_first(loaded):
    """Unit 9 of layer 0 is made to open its input gate on spaces only: the probe for 'space' finds it."""
    model, codec = loaded.model, loaded.codec
    with torch.no_grad():
        model.embed.weight[:, 0] = 0.0  # embedding feature 0: 1 for a space, 0 for every other character
        model.embed.weight[codec.index[" "], 0] = 1.0
        layer = model.core.layers[0]  # row 9 of the weights is unit 9's input gate
        layer.weight_hh_l0[9].zero_()
        layer.weight_ih_l0[9].zero_()
        layer.weight_ih_l0[9, 0] = 12.0
        layer.bias_ih_l0[9], layer.bias_hh_l0[9] = -6.0, 0.0  # sigmoid(+6) on a space, sigmoid(-6) elsewhere
    scored = text.score(loaded, SENTENCE)
    track = text.features(SENTENCE)["space"]
    best = experiments.probe(scored.trace, track, top=3)[0]
    assert (best.layer, best.unit, best.quantity) == (0, 9, "i") and best.score > 0.99


def test_probe_scores_are_auc_and_correlation():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 3))
    labels = (values[:, 0] > 0).astype(float)  # column 0 separates perfectly
    auc = experiments.roc_auc(values, labels)
    assert auc[0] == 1.0 and abs(auc[1] - 0.5) < 0.15
    assert experiments.roc_auc(-values, labels)[0] == 0.0
    r = experiments.correlation(values, 2 * values[:, 2] + 1)
    assert r[2] == pytest.approx(1.0) and abs(r[0]) < 0.2
    with pytest.raises(ValueError, match="everywhere or nowhere"):
        experiments.roc_auc(values, np.zeros(200))


def test_an_empty_intervention_changes_nothing_and_an_ablation_only_from_its_step(loaded):
    settings = TextSettings("He said", 30, seed=5)
    plain = text.generate(loaded, settings)
    empty = text.generate(loaded, settings, hooks=experiments.intervention_hooks())
    assert empty.result.text == plain.result.text
    assert np.array_equal(empty.distributions["logits"], plain.distributions["logits"])
    at = 15
    changed = text.generate(loaded, settings, hooks=experiments.intervention_hooks(ablate="1:0,1:1,1:2", from_step=at))
    # against a hook that changes nothing (the same stepped arithmetic): exactly equal before the step
    stepped = text.generate(loaded, settings, hooks=[lambda *_: None])
    assert stepped.result.text == plain.result.text
    kl = experiments.kl_per_step(stepped.distributions["logits"], changed.distributions["logits"])
    assert np.all(kl[:at] == 0) and kl[at] > 1e-6
    clamp = experiments.intervention_hooks(clamp="0:3:f=1,1:2:i=0", from_step=at)
    held = text.generate(loaded, settings, hooks=clamp)
    assert np.all(held.trace.layers[0]["f"][at:, 3] == 1.0) and np.all(held.trace.layers[1]["i"][at:, 2] == 0.0)
    assert experiments.first_divergence(list("abcd"), list("abXd")) == 2
    assert experiments.first_divergence(list("ab"), list("ab")) is None


def test_cka_of_a_layer_with_itself_is_one(loaded):
    trace = text.score(loaded, SENTENCE).trace
    h0, h1 = trace.layers[0]["h"].astype(np.float64), trace.layers[1]["h"].astype(np.float64)
    assert experiments.cka(h0, h0) == pytest.approx(1.0, abs=1e-6)
    assert experiments.cka(h0, h0 @ np.linalg.qr(np.random.default_rng(1).normal(size=(16, 16)))[0]) == pytest.approx(1.0, abs=1e-6)
    assert 0 <= experiments.cka(h0, h1) < 1


def test_pattern_match_finds_the_selection_and_its_repeats(loaded):
    trace = text.score(loaded, SENTENCE).trace
    units, matches = experiments.pattern(trace, 1, 5, 7, threshold=0.0)
    assert units and (5, 7) in [(a, b) for a, b, _ in matches] or any(a <= 5 and b >= 7 for a, b, _ in matches)
    assert all(np.all(trace.layers[1]["h"][a : b + 1][:, units] > 0.0) for a, b, _ in matches)


def test_the_streaming_probe_agrees_with_the_exact_one(loaded):
    scored = text.score(loaded, SENTENCE * 3)
    for name in ("space", "position in line"):
        track = text.features(scored.sequence)[name]
        exact = experiments.probe(scored.trace, track, top=5)
        accumulator = probe_stream.ProbeAccumulator(scored.trace.num_layers, scored.trace.hidden_size,
                                                   experiments.is_binary(track))
        half = scored.trace.steps // 2  # fed in two chunks
        for part in (slice(0, half), slice(half, None)):
            chunk = scored.trace.with_layers([{k: v[part] for k, v in layer.items()} for layer in scored.trace.layers],
                                             scored.trace.labels[part])
            accumulator.add(chunk, track[part])
        streamed = accumulator.top(5)
        assert streamed[0].score == pytest.approx(exact[0].score, abs=5e-3)
        assert streamed[0].strength == pytest.approx(exact[0].strength, abs=1e-2)


def test_the_stepped_trace_is_the_exact_trace(loaded):
    """LSTMCore.trace_stepped (the fast probe's trace) gives trace's gates and state within rounding."""
    core = loaded.model.core
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(3, 9, core.config.input_size, generator=generator)
    shape = (core.config.num_layers, 3, core.config.hidden_size)
    state = (0.5 * torch.randn(shape, generator=generator), torch.randn(shape, generator=generator))
    _, (h, c), gates = core.trace(x, state)
    blocks, (h_stepped, c_stepped) = core.trace_stepped(x.transpose(0, 1), state)
    for layer, block in enumerate(blocks):
        for q, name in enumerate(experiments.QUANTITIES):
            assert torch.allclose(block[:, :, q].transpose(0, 1), gates[layer][name], atol=1e-5), (layer, name)
    assert torch.allclose(h_stepped, h, atol=1e-5) and torch.allclose(c_stepped, c, atol=1e-5)
    # bfloat16 products: z to ~3 significant digits, so every gate within 0.02 (and not exact)
    approximate, _ = core.trace_stepped(x.transpose(0, 1), state, gemm_dtype=torch.bfloat16)
    errors = [float((a - b).abs().max()) for a, b in zip(approximate, blocks, strict=True)]
    assert 0 < max(errors) < 0.02, errors


def test_a_looked_up_first_layer_input_is_the_multiplied_one(loaded):
    """trace_stepped's z0 (LSTMCore.input_table's rows for the characters, as the probe reads a
    text) gives the gates that multiplying the embedded characters does."""
    core = loaded.model.core
    ids = torch.randint(0, loaded.model.embed.num_embeddings, (7, 3), generator=torch.Generator().manual_seed(5))
    multiplied, state = core.trace_stepped(loaded.model.embed(ids), None)
    looked_up, state_b = core.trace_stepped(None, None, z0=core.input_table(loaded.model.embed.weight)[ids])
    for a, b in zip(multiplied, looked_up, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(state, state_b, strict=True))


@pytest.mark.parametrize("name", ["space", "position in line"])
def test_the_fast_probe_agrees_with_the_exact_one(loaded, name):
    """The default probe of a text (parallel streams from a burn-in, in threads, bfloat16 products
    where the CPU has them) against exact=True (one float32 stream from the start): every (layer,
    quantity, unit)'s score within 1e-3 in float32 and 5e-3 with bfloat16, the best the same."""
    from studio.cli_experiments import probe
    from studio.domains.text.evaluate import trace_streams

    words = SENTENCE.split(" ")
    rng = np.random.default_rng(0)
    long_text = " ".join(rng.choice(words, 600)) + "\n"  # ~3,500 characters: 35 streams of 100
    every = 2 * len(experiments.QUANTITIES) * loaded.model.core.config.hidden_size
    track, steps, exact = probe(text, loaded, long_text, name, top=every, exact=True)
    scores = {(h.layer, h.quantity, h.unit): h.score for h in exact}
    _, fast_steps, fast = probe(text, loaded, long_text, name, top=every)
    # two threads (merged accumulators) whatever torch's thread count here
    config = loaded.model.core.config
    threaded = probe_stream.accumulate_parts(trace_streams(loaded, long_text, parts=2), track, config.num_layers,
                                            config.hidden_size).top(every)
    bfloat16 = probe_stream.accumulate_parts(trace_streams(loaded, long_text, parts=2, gemm_dtype=torch.bfloat16),
                                            track, config.num_layers, config.hidden_size).top(every)
    for hits, tolerance in ((fast, 5e-3), (threaded, 1e-3), (bfloat16, 5e-3)):
        assert len(hits) == every and fast_steps == steps
        assert max(abs(h.score - scores[(h.layer, h.quantity, h.unit)]) for h in hits) < tolerance
        assert (hits[0].layer, hits[0].quantity, hits[0].unit) == (exact[0].layer, exact[0].quantity, exact[0].unit)


def test_the_threaded_probe_tells_its_progress_in_the_calling_thread(loaded, monkeypatch):
    """accumulate_parts' progress (what the panel's gr.Progress hears): shares of the steps read, rising
    to 1.0, always told in the thread that called it (gr.Progress finds its page through context
    variables a pool thread lacks); the same hits as without a listener."""
    import threading

    from studio.domains.text.evaluate import trace_streams

    monkeypatch.setattr(probe_stream, "PROGRESS_EVERY", 0.001)
    long_text = (SENTENCE * 200)[:8000]
    track = text.features(long_text)["newline"]
    config = loaded.model.core.config
    told, threads = [], set()

    def progress(fraction):
        told.append(fraction)
        threads.add(threading.get_ident())

    heard = probe_stream.accumulate_parts(trace_streams(loaded, long_text, parts=4), track, config.num_layers,
                                          config.hidden_size, progress).top(5)
    silent = probe_stream.accumulate_parts(trace_streams(loaded, long_text, parts=4), track, config.num_layers,
                                           config.hidden_size).top(5)
    assert told[-1] == 1.0 and told == sorted(told) and all(0 <= f <= 1 for f in told)
    assert threads == {threading.get_ident()}
    assert [vars(h) for h in heard] == [vars(h) for h in silent]
