"""Handwriting styles (a one-hot cursive / print signal the synthesis model reads): saved and loaded
with the checkpoint, absent from older checkpoints (which behave as before), the primer's style
picked by analysis by synthesis, unprimed writing in the default style (cursive).

Tiny models only; the two "hands" are made by the test: cursive moves right with the pen down,
print lifts the pen every third point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio import checkpoint
from studio.domains import handwriting as hw
from studio.domains.base import LoadedModel
from studio.domains.handwriting.codec import Handwriting, offsets_to_strokes
from studio.domains.handwriting.evaluate import batch_nll, make_batch
from studio.domains.handwriting.generate import HandwritingSettings, pick_style
from studio.domains.handwriting.model import SYNTHESIS, layer_names

TEXT = "hello"


def hand_offsets(style: int, points: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((points, 3), np.float32)
    if style == 0:  # cursive: steady moves right and up, the pen down until the end
        out[:, 0], out[:, 1] = 2.0 + rng.normal(0, 0.1, points), -1.0 + rng.normal(0, 0.1, points)
    else:  # print: short moves left and down, a pen lift every third point
        out[:, 0], out[:, 1] = -1.0 + rng.normal(0, 0.1, points), 2.0 + rng.normal(0, 0.1, points)
        out[2::3, 2] = 1
    out[-1, 2] = 1
    return out


def to_strokes(offsets: np.ndarray) -> list[np.ndarray]:
    return offsets_to_strokes(offsets)


@pytest.fixture(scope="module")
def trained():
    """A tiny styled model taught the two hands for a few steps (seconds)."""
    torch.set_num_threads(1)
    model, codec = hw.tiny(seed=3, styles=2)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    offsets = [hand_offsets(k % 2, seed=k) for k in range(8)]
    batch = make_batch(offsets, [TEXT] * 8, codec.alphabet, codec.offset_scale, styles=[k % 2 for k in range(8)])
    for _ in range(60):
        total, count = batch_nll(model, batch)
        optimizer.zero_grad()
        (total / count).backward()
        optimizer.step()
    model.eval()
    return _loaded(model, codec)


def _loaded(model, codec):
    return LoadedModel("tiny-styled", model, codec, {"kind": SYNTHESIS, "metrics": {}}, layer_names(model))


def test_the_style_is_saved_and_loaded(tmp_path, trained):
    hw.save(tmp_path / "styled", trained.model, trained.codec, {"data": {"source": "made by the test", "licence": "none"}})
    loaded = hw.load(tmp_path / "styled")
    assert loaded.card["config"]["styles"] == 2 and loaded.model.config.styles == 2
    assert "styles cursive / print" in loaded.summary
    points = torch.randn(2, 7, 3)
    chars = trained.codec.alphabet.one_hot(TEXT)[None].expand(2, -1, -1)
    mask = torch.ones(2, len(TEXT))
    for style in (None, torch.tensor([0, 1])):
        torch.testing.assert_close(loaded.model(points, chars, mask, style)[0], trained.model(points, chars, mask, style)[0])
    # the style changes what the model predicts; None is style 0
    raw0 = trained.model(points, chars, mask, torch.tensor([0, 0]))[0]
    torch.testing.assert_close(trained.model(points, chars, mask)[0], raw0)
    assert (trained.model(points, chars, mask, torch.tensor([1, 1]))[0] - raw0).abs().max() > 1e-3


def test_a_checkpoint_without_styles_loads_and_reads_as_before(tmp_path):
    model, codec = hw.tiny(seed=1)
    assert model.config.styles == 0
    assert model.attention.layers[0].weight_ih_l0.shape[1] == 3 + codec.alphabet.size
    hw.save(tmp_path / "plain", model, codec, {"data": {"source": "made by the test", "licence": "none"}})
    card = checkpoint.read_card(tmp_path / "plain")
    del card["config"]["styles"]  # as every card written before styles existed
    checkpoint.write_card(tmp_path / "plain", card)
    loaded = hw.load(tmp_path / "plain")
    settings = HandwritingSettings(text="hi", seed=2, fixed_points=12)
    plain = hw.generate(loaded, settings).result
    asked = hw.generate(loaded, HandwritingSettings(text="hi", seed=2, fixed_points=12, hand="print")).result
    np.testing.assert_array_equal(plain.offsets, asked.offsets)
    assert any("no styles" in n for n in asked.notes)


def test_the_primer_picks_the_style_that_explains_it(trained):
    for style in (0, 1):
        primer = hand_offsets(style, seed=40 + style)
        primer[0, :2] = 0
        best, nll = pick_style(trained, primer, TEXT)
        assert best == style and nll[style] < nll[1 - style]
    print_primer = to_strokes(hand_offsets(1, seed=50))
    result = hw.generate(trained, HandwritingSettings(text="hi", seed=0, fixed_points=10, primer_strokes=print_primer,
                                                         primer_text=TEXT, normalize_primer=False)).result
    assert any(n.startswith("Hand: print") for n in result.notes)


def test_unprimed_writing_uses_the_default_style(trained):
    def written(**kw):
        return hw.generate(trained, HandwritingSettings(text="hi", seed=5, fixed_points=15, **kw)).result.offsets

    unprimed = written()
    np.testing.assert_array_equal(unprimed, written(hand="cursive"))
    assert not np.array_equal(unprimed, written(hand="print"))
    with pytest.raises(ValueError, match="hand"):
        written(hand="gothic")


def test_a_generation_in_print_is_read_again_in_print(trained):
    generation = hw.generate(trained, HandwritingSettings(text="hi", seed=1, fixed_points=12, hand="print"))
    assert generation.result.hand == "print"
    sample = hw.sequence_of(generation)
    assert sample.hand == "print"
    scored = hw.score(trained, sample)
    for written, read in zip(generation.trace.layers, scored.trace.layers, strict=True):
        np.testing.assert_allclose(read["h"], written["h"], atol=1e-5)
    cursive = hw.score(trained, Handwriting(sample.strokes, sample.text, from_origin=True))
    assert np.abs(cursive.trace.layers[0]["h"] - scored.trace.layers[0]["h"]).max() > 1e-4
    fused = hw.fused(trained, sample)
    np.testing.assert_allclose(fused["eos"], scored.distributions["eos"], atol=1e-5)


def test_the_anatomy_reads_the_style_too(trained):
    sample = Handwriting(to_strokes(hand_offsets(1, points=12, seed=9)), TEXT, hand="print")
    scored, ex = hw.explainable(trained, sample)
    for layer in (0, 1):  # what each layer read, times its weights, gives its gates' pre-activations
        w_ih, w_hh, bias = ex.weights[layer]
        h = scored.trace.layers[layer]["h"]
        before = np.vstack([np.zeros_like(h[:1]), h[:-1]])
        z = ex.layer_inputs[layer] @ w_ih.T + before @ w_hh.T + bias
        forget = 1 / (1 + np.exp(-z[:, h.shape[1] : 2 * h.shape[1]]))
        np.testing.assert_allclose(forget, scored.trace.layers[layer]["f"], atol=1e-4)
