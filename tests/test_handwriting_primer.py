"""Handwriting style primers: transcripts from every importer (or given), normalisation to the
training data's statistics, the primer's end kept out of the output, scribble primed, Omniglot
print lines composed from drawings the test makes, warm start onto a wider alphabet.

Tiny random models only; every file is written by the test (no ../shared data)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from studio.domains import handwriting as hw
from studio.domains.base import LoadedModel
from studio.domains.handwriting.codec import (
    DEFAULT_CHARS,
    TRAINING_STATS,
    HandwritingAlphabet,
    HandwritingCodec,
    curvature_of,
    expected_height,
    normalize_primer,
    slant_of,
    stroke_stats,
)
from studio.domains.handwriting.data import StrokeFileError, load_dataset, load_stroke_file
from studio.domains.handwriting.generate import HandwritingSettings
from studio.domains.handwriting.model import (
    PREDICTION,
    SYNTHESIS,
    PredictionConfig,
    PredictionModel,
    SynthesisConfig,
    SynthesisModel,
    layer_names,
)
from studio.domains.handwriting.train import (
    EXTRA_CHARS,
    Hand,
    build_mixed_dataset,
    compose_line,
    load_omniglot,
    warm_start,
)

STROKES = [np.array([[0, 0], [1, 2], [3, 2.5]], np.float32), np.array([[5, 1], [6, 0]], np.float32)]


def tiny(kind=SYNTHESIS, seed=0, kappa_step=None, chars=None, eos_bias=None):
    torch.manual_seed(seed)
    alphabet = HandwritingAlphabet(chars or DEFAULT_CHARS)
    if kind == SYNTHESIS:
        model = SynthesisModel(SynthesisConfig(alphabet.size, hidden_size=8, num_layers=1, mixtures=3,
                                                     window_gaussians=2)).eval()
        if kappa_step is not None:  # the window moves kappa_step characters per point, whatever the input
            with torch.no_grad():
                model.window.weight[4:].zero_()
                model.window.bias[4:] = math.log(kappa_step)
        if eos_bias is not None:  # the pen lifts often
            with torch.no_grad():
                model.head.bias[0] = eos_bias
        codec = HandwritingCodec(2.0, alphabet)
    else:
        model, codec = PredictionModel(PredictionConfig(8, 1, 3)).eval(), HandwritingCodec(2.0)
    return LoadedModel("tiny", model, codec, {"kind": kind, "metrics": {}}, layer_names(model))


def pixel_word(scale=37.0, tilt=0.2, slant=0.6, density=0.3):
    """A word as a mouse gives it: big, tilted, slanted far, a point every `density` units."""
    rng = np.random.default_rng(0)
    strokes = []
    for k in range(5):  # five upright strokes of a word, x-height 1 (ascenders 2)
        top = -2.0 if k % 2 else -1.0
        n = int(abs(top) / density) + 2
        ys = np.linspace(top, 0, n)
        strokes.append(np.stack([k * 1.2 - slant * ys, ys], 1) + rng.normal(0, 0.01, (n, 2)))
    cos, sin = math.cos(tilt), math.sin(tilt)
    return [(s @ np.array([[cos, sin], [-sin, cos]])) * scale for s in strokes]


def test_every_importer_reads_a_transcript_and_a_given_one_overrides_it(tmp_path):
    xml = tmp_path / "line.xml"
    xml.write_text('<WhiteboardCaptureSession><Transcription><TextLine text="a  move"/></Transcription>'
                   '<StrokeSet><Stroke><Point x="1" y="2"/><Point x="3" y="4"/></Stroke></StrokeSet>'
                   "</WhiteboardCaptureSession>")
    ndjson = tmp_path / "drawing.ndjson"
    ndjson.write_text(json.dumps({"word": "cat", "text": "ok", "drawing": [[[0, 5, 9], [0, 3, 1]]]}) + "\n")
    npz = tmp_path / "sketch.npz"
    np.savez(npz, train=np.array([[[0, 0, 0], [2, 1, 0], [1, 1, 1]]], float), text=np.array(["hi there"]))
    pad = tmp_path / "pad.json"
    pad.write_text(json.dumps({"strokes": [[[0, 0, 0], [3, 4, 16], [5, 1, 33]]], "text": "me"}))
    bare = tmp_path / "bare.ndjson"
    bare.write_text(json.dumps({"drawing": [[[0, 5], [0, 3]]]}) + "\n")
    expected = {xml: "a move", ndjson: "ok", npz: "hi there", pad: "me", bare: ""}
    for path, text in expected.items():
        strokes, transcript = load_stroke_file(path)
        assert transcript == text and all(s.shape[1] == 2 for s in strokes), path.name
    loaded = tiny()
    assert hw.read_input(bare, loaded, text="typed").text == "typed"
    assert hw.read_input(xml, loaded, text=" given ").text == "given"
    with pytest.raises(StrokeFileError, match="has no transcript"):
        hw.read_input(bare, loaded)
    # a sample without a transcript primes once one is given, and the notes say so
    no_text = hw.generate(loaded, HandwritingSettings(text="hi", style=str(bare), fixed_points=5)).result.notes
    assert any("--style-text" in n for n in no_text)
    given = hw.generate(loaded, HandwritingSettings(text="hi", style=str(bare), primer_text="ok", fixed_points=5))
    assert given.result.primer_points > 0 and any("Primed with the style sample of 'ok'" in n for n in given.result.notes)


def test_the_cli_takes_a_transcript_for_any_style_file(tmp_path, run_cli):
    loaded = tiny(kappa_step=0.5)
    stem = tmp_path / "tiny"
    hw.save(stem, loaded.model, loaded.codec, {"data": {"source": "made by the test", "licence": "none"}})
    style_file = tmp_path / "drawing.ndjson"
    style_file.write_text(json.dumps({"drawing": [[[0, 50, 90], [0, 30, 10]], [[100, 120], [40, 0]]]}) + "\n")
    out = tmp_path / "out.svg"
    done = run_cli("generate", "handwriting", "--model", stem, "--text", "hi", "--style", style_file,
                   "--style-text", "ok", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "Primed with the style sample of 'ok'" in done.stdout + done.stderr and out.read_text().startswith("<svg")
    missing = run_cli("generate", "handwriting", "--model", stem, "--text", "hi", "--style", style_file, "--out", out)
    assert missing.returncode == 0 and "--style-text" in missing.stdout + missing.stderr


def test_a_primer_is_brought_to_the_training_statistics():
    stats = TRAINING_STATS
    strokes, notes = normalize_primer(pixel_word(), "hl hl")
    points = np.vstack(strokes)
    assert np.ptp(points[:, 1]) == pytest.approx(expected_height("hl hl"), rel=0.15)
    assert abs(np.polyfit(points[:, 0], points[:, 1], 1)[0]) < 0.2  # the tilt is gone
    low, high = stats["slant_range"]
    assert slant_of(pixel_word()) > high + 0.2
    assert low - 0.1 <= slant_of(strokes) <= high + 0.1  # slanted far: brought to the range's edge
    gaps = np.concatenate([np.hypot(*np.diff(s, axis=0).T) for s in strokes if len(s) > 1])
    assert np.median(gaps) == pytest.approx(stats["spacing"], rel=0.35)
    text = " ".join(notes)
    assert "levelled" in text and "scaled by" in text and "slant" in text and "resampled" in text
    # a slant inside the range is the writer's style: kept
    upright, _ = normalize_primer(pixel_word(tilt=0.0, slant=0.1), "hl hl")
    assert slant_of(upright) == pytest.approx(0.1, abs=0.05)
    # the same word at any scale gives the same primer
    small, _ = normalize_primer(pixel_word(scale=0.5), "hl hl")
    assert np.ptp(np.vstack(small)[:, 1]) == pytest.approx(np.ptp(points[:, 1]), rel=0.05)


def test_stroke_statistics_of_known_shapes():
    upright = [np.array([[0, 0], [0, 10]], float), np.array([[5, 0], [5, 10]], float)]
    stats = stroke_stats(upright, characters=2)
    assert stats["slant"] == pytest.approx(0) and stats["pen lifts per character"] == 1 and stats["curvature"] == 0
    assert stats["height/width"] == pytest.approx(2.0)
    leaning = [np.array([[5, 0], [0, 10]], float)]  # drawn downwards, leaning right
    assert slant_of(leaning) == pytest.approx(0.5) and slant_of([leaning[0][::-1]]) == pytest.approx(0.5)
    square = [np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)]
    assert curvature_of(square) == pytest.approx(math.pi / 2)


def test_the_end_of_the_primer_word_never_starts_the_output():
    """A window that lags (a tenth of a character a point) is still on the primer's word when the
    primer ends: the strokes finished there join the prompt, in the trace but not in the output,
    and the generation read again gives its trace exactly."""
    loaded = tiny(kappa_step=0.1, eos_bias=1.0)
    settings = HandwritingSettings(text="hi", seed=0, primer_strokes=STROKES, primer_text="word", normalize_primer=False,
                                      fixed_points=120)
    generation = hw.generate(loaded, settings)
    result, trace = generation.result, generation.trace
    lag = result.primer_points - 5
    assert lag > 0 and any(f"Left out {lag} points" in n for n in result.notes)
    assert trace.shown_from == result.primer_points and len(result.offsets) == 120 - lag
    assert trace.labels[trace.shown_from - 1] in "word␣"  # the last point left out: on the primer or the space
    scored = hw.score(loaded, hw.sequence_of(generation))
    np.testing.assert_allclose(scored.trace.layers[1]["h"], trace.layers[1]["h"], atol=1e-5)
    # a window already past the primer: nothing is left out
    quick = hw.generate(tiny(kappa_step=2.0, eos_bias=1.0), settings).result
    assert quick.primer_points == 5 and not any("Left out" in n for n in quick.notes)


def test_free_scribble_is_primed_too():
    loaded = tiny(PREDICTION)
    generation = hw.generate(loaded, HandwritingSettings(primer_strokes=pixel_word(), max_points=20, seed=1))
    result, trace = generation.result, generation.trace
    assert result.primer_points > 5 and trace.shown_from == result.primer_points and len(result.offsets) == 20
    assert any("Primed with the style sample (" in n for n in result.notes)
    plain = hw.generate(loaded, HandwritingSettings(max_points=20, seed=1)).result
    assert not np.allclose(plain.offsets, result.offsets)  # the primer changed what came next


def test_the_mapping_note_says_what_each_character_became():
    _, notes = HandwritingAlphabet().clean("Quixotic zebras é")
    assert "'Q' to 'q'" in notes[0] and "'é' to 'e'" in notes[0]
    wide = HandwritingAlphabet(DEFAULT_CHARS + EXTRA_CHARS)
    assert wide.clean("Quixotic 42") == ("Quixotic 42", [])


def fake_omniglot(path, drawers=("01", "02", "03", "04")):
    """Every letter a-z as two strokes of [x, y, t] in a 105 x 105 box (y down), per drawer."""
    rng = np.random.default_rng(0)
    drawings = {}
    for d in drawers:
        drawings[d] = {}
        for k, letter in enumerate("abcdefghijklmnopqrstuvwxyz"):
            top = 10 + (k % 3) * 10
            first = [[20 + rng.uniform(0, 5), top, 0], [25, 90, 120]]
            second = [[40, 50, 300], [70 + rng.uniform(0, 10), 60, 380], [60, 90, 450]]
            drawings[d][letter] = [first, second]
    path.write_text(json.dumps({"drawings": drawings}))
    return path


def test_print_lines_are_composed_from_one_drawer_at_a_time(tmp_path):
    letters = load_omniglot(fake_omniglot(tmp_path / "omniglot.json"))
    rng = np.random.default_rng(1)
    hand = Hand(size=1.0, gap=2.0, space=9.0, slant=0.0, spacing=5.0, jitter=0.0)
    for word, (top, bottom) in {"ace": (0, 9), "bd": (-8.5, 9), "gp": (0, 17)}.items():
        points = np.vstack(compose_line(letters["01"], word, rng, hand))
        tolerance = 0.06 * (bottom - top)  # each letter's size wavers by up to 5%
        assert points[:, 1].min() == pytest.approx(top, abs=tolerance)
        assert points[:, 1].max() == pytest.approx(bottom, abs=tolerance)
    strokes = compose_line(letters["02"], "ab cd", rng, hand)
    assert len(strokes) == 8  # two strokes a letter, pen lifted between them
    xs = [s[:, 0].mean() for s in strokes]
    assert xs[4] - xs[3] > xs[2] - xs[1]  # the word space is wider than the letter gap
    summary = build_mixed_dataset("the quick brown fox jumps over the lazy dog " * 40, tmp_path / "data",
                                           tmp_path / "omniglot.json", hershey=12, printed=12, held_out=3,
                                           held_drawers=("04",))
    assert summary["train_drawers"] == ["01", "02", "03"] and summary["held_drawers"] == ["04"]
    texts, offsets = load_dataset(tmp_path / "data" / "train.npz")
    assert len(texts) == summary["samples"] and all(len(o) > 5 for o in offsets)
    assert summary["chars"].endswith(EXTRA_CHARS)


def test_warm_start_copies_each_character_and_starts_new_ones_at_zero(tmp_path):
    old = tiny(seed=4)
    hw.save(tmp_path / "old", old.model, old.codec, {"data": {"source": "made by the test", "licence": "none"}})
    chars = DEFAULT_CHARS + EXTRA_CHARS
    new = tiny(seed=5, chars=chars).model
    added = warm_start(new, tmp_path / "old", chars)
    assert "".join(added) == EXTRA_CHARS
    text = "hello"
    points = torch.randn(1, 6, 3)
    for model, alphabet in ((old.model, HandwritingAlphabet()), (new, HandwritingAlphabet(chars))):
        chars_in = alphabet.one_hot(text)[None]
        raw, _ = model(points, chars_in, torch.ones(1, len(text)))
        if model is old.model:
            before = raw
    torch.testing.assert_close(raw, before)  # the same text gives the same output
    assert new.attention.layers[0].weight_ih_l0[:, 3 + len(DEFAULT_CHARS) :].abs().sum() == 0
