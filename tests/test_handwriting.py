"""Handwriting domain: codec, importers, mixture density, window, sampling, scoring, rendering, CLI.

Tiny random models only; every file is written by the test (no ../shared data)."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest
import torch

from studio.domains import handwriting as hw
from studio.domains.base import LoadedModel, View
from studio.domains.handwriting.codec import (
    MAX_TEXT,
    HandwritingAlphabet,
    HandwritingCodec,
    bounds,
    normalize_strokes,
    offsets_to_strokes,
    strokes_to_offsets,
)
from studio.domains.handwriting.data import (
    DataConfig,
    StrokeFileError,
    build_dataset,
    load_dataset,
    load_stroke_file,
    render_phrase,
)
from studio.domains.handwriting.evaluate import batch_nll, make_batch
from studio.domains.handwriting.generate import LINE_CHARS, HandwritingSettings, max_steps_for
from studio.domains.handwriting.model import (
    PREDICTION,
    SYNTHESIS,
    PredictionConfig,
    PredictionModel,
    SynthesisConfig,
    SynthesisModel,
    layer_names,
    mdn_log_likelihood,
    mdn_split,
)
from studio.domains.handwriting.render import (
    _smooth,
    animated_svg,
    attention_html,
    strokes_figure,
    strokes_to_svg,
    svg_to_strokes,
    unit_colors,
    write_png,
)
from studio.lstm import set_units

STROKES = [np.array([[0, 0], [1, 2], [3, 2.5]], np.float32), np.array([[5, 1], [6, 0]], np.float32)]


def tiny_synthesis(seed=0, kappa_step=None, eos_bias=None) -> SynthesisModel:
    torch.manual_seed(seed)
    model = SynthesisModel(SynthesisConfig(HandwritingAlphabet().size, hidden_size=8, num_layers=1, mixtures=3,
                                                 window_gaussians=2)).eval()
    with torch.no_grad():
        if kappa_step is not None:  # the window moves kappa_step characters per point, whatever the input
            model.window.weight[4:].zero_()
            model.window.bias[4:] = math.log(kappa_step)
        if eos_bias is not None:
            model.head.bias[0] = eos_bias
    return model


def as_loaded(model, scale: float = 2.0) -> LoadedModel:
    """A model ready for generate/score, as hw.load would hand it out (no files)."""
    synthesis = isinstance(model, SynthesisModel)
    codec = HandwritingCodec(scale, HandwritingAlphabet() if synthesis else None)
    card = {"kind": SYNTHESIS if synthesis else PREDICTION, "metrics": {}}
    return LoadedModel("tiny", model, codec, card, layer_names(model))


def write(model, settings):
    generation = hw.generate(as_loaded(model), settings)
    return generation.result, generation.trace


def test_strokes_offsets_round_trip():
    offsets = strokes_to_offsets(STROKES)
    assert offsets.shape == (5, 3)
    assert offsets[:, 2].tolist() == [0, 0, 1, 0, 1]
    np.testing.assert_allclose(offsets[3], [2, -1.5, 0])  # pen-up travel from (3, 2.5) to (5, 1)
    back = offsets_to_strokes(offsets)
    assert len(back) == 2
    for a, b in zip(back, STROKES, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_svg_round_trip_and_animation():
    svg = strokes_to_svg(STROKES)
    assert svg.startswith("<svg") and svg.count("<path") == 2
    for a, b in zip(svg_to_strokes(svg), STROKES, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    animated = strokes_to_svg(STROKES, animate_seconds=2.0)
    assert animated.count("<set ") == 3  # one per segment


def test_smooth_curve_passes_through_every_point():
    points = np.array([[0, 0], [1, 2], [3, 2], [4, 0], [6, 1]], dtype=np.float64)
    curve = _smooth(points, per_segment=5)
    assert curve.shape == (4 * 5 + 1, 2)
    np.testing.assert_allclose(curve[::5], points, atol=1e-12)  # on every stored point
    # between points it bends (not the straight chord), but stays near it
    chord_mid = (points[1] + points[2]) / 2
    assert 0 < np.linalg.norm(curve[5 + 2] - chord_mid) < 0.5
    assert len(_smooth(points[:2])) == 2  # a single segment stays a line
    coloured = strokes_to_svg(STROKES, colors=[["red", "blue"], ["rgba(1,2,3,0.5)"]])
    assert 'stroke="blue"' in coloured and "rgba(1,2,3,0.5)" in coloured


def test_normalize_and_png(tmp_path):
    norm = normalize_strokes([s * 10 + 7 for s in STROKES])
    x0, y0, x1, y1 = bounds(norm)
    assert (x0, y0) == pytest.approx((0, 0)) and y1 == pytest.approx(1.0)
    path = write_png(STROKES, tmp_path / "out.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mdn_log_likelihood_matches_hand_computation():
    m = 2
    raw = torch.zeros(1 + 6 * m)
    # eos logit 0.3; pi logits [0, ln 3] -> weights 1/4, 3/4; mu; log sigma; atanh-ish rho
    raw[0] = 0.3
    raw[1:3] = torch.tensor([0.0, math.log(3.0)])
    raw[3:7] = torch.tensor([0.1, -0.2, 1.0, 0.5])
    raw[7:11] = torch.tensor([0.0, math.log(2.0), math.log(0.5), 0.0])
    raw[11:13] = torch.tensor([0.0, 0.5])
    params = mdn_split(raw, m)
    x, y, lift = 0.4, 0.1, 1.0
    log_p = float(mdn_log_likelihood(params, torch.tensor([x, y, lift])))

    def gauss(x, y, mx, my, sx, sy, rho):
        zx, zy = (x - mx) / sx, (y - my) / sy
        z = zx**2 + zy**2 - 2 * rho * zx * zy
        return math.exp(-z / (2 * (1 - rho**2))) / (2 * math.pi * sx * sy * math.sqrt(1 - rho**2))

    rho2 = math.tanh(0.5) * 0.999
    density = 0.25 * gauss(x, y, 0.1, -0.2, 1.0, 2.0, 0.0) + 0.75 * gauss(x, y, 1.0, 0.5, 0.5, 1.0, rho2)
    p_lift = 1 / (1 + math.exp(-0.3))
    assert log_p == pytest.approx(math.log(density) + math.log(p_lift), abs=1e-5)


def test_bias_sharpens_the_mixture():
    raw = torch.randn(1 + 6 * 3)
    plain, biased = mdn_split(raw, 3), mdn_split(raw, 3, bias=2.0)
    assert torch.allclose(biased.log_sigma, plain.log_sigma - 2.0)
    assert biased.log_pi.exp().max() >= plain.log_pi.exp().max()


def test_window_and_teacher_forced_shapes():
    codec = HandwritingAlphabet()
    model = tiny_synthesis()
    rng = np.random.default_rng(0)
    texts = ["hello", "to be or"]
    offsets = [strokes_to_offsets(render_phrase(t, rng)) for t in texts]
    batch = make_batch(offsets, texts, codec, 5.0)
    raw, phi = model(batch.points, batch.chars, batch.char_mask)
    steps = max(len(o) for o in offsets)
    assert raw.shape == (2, steps, 1 + 6 * 3)
    assert phi.shape == (2, steps, len("to be or"))
    assert float(phi.detach()[0, :, len("hello"):].abs().max()) == 0.0  # padding characters get no weight
    total, count = batch_nll(model, batch)
    assert count == sum(len(o) for o in offsets) and torch.isfinite(total)
    total.backward()
    assert model.attention.layers[0].weight_hh_l0.grad is not None


def test_training_step_matches_sampling_step():
    """The stepped training path (LSTMCore.cell) and LSTMCore.step agree on the first outputs."""
    codec = HandwritingAlphabet()
    model = tiny_synthesis(seed=3)
    offsets = [strokes_to_offsets(STROKES)]
    batch = make_batch(offsets, ["ab"], codec, 2.0)
    raw, phi = model(batch.points, batch.chars, batch.char_mask)
    state = model.initial_state(1)
    chars = codec.one_hot("ab")[None]
    for t in range(3):
        params, state, gates, step_phi = model.step(batch.points[:, t], chars, state)
        ref = mdn_split(raw[0, t], 3)
        assert torch.allclose(params.mu, ref.mu, atol=1e-5)
        assert torch.allclose(step_phi[:-1], phi[0, t], atol=1e-5)
    assert len(gates) == 2 and gates[0]["c"].shape == (1, 8)


def test_sampling_stops_when_window_passes_the_end():
    model = tiny_synthesis(kappa_step=1.0, eos_bias=5.0)
    result, trace = write(model, HandwritingSettings(text="abc", seed=1))
    assert result.finished
    assert len(result.offsets) < max_steps_for("abc")
    assert result.phi.shape == (len(result.offsets), 3)
    assert trace.steps == len(result.offsets) and trace.num_layers == 2
    # a window that never moves never finishes, and the cap is said in a note
    stuck = tiny_synthesis(kappa_step=1e-6, eos_bias=-5.0)
    result, _ = write(stuck, HandwritingSettings(text="ab", seed=1))
    assert not result.finished and len(result.offsets) == max_steps_for("ab")
    assert any("did not reach the end" in n for n in result.notes)


def test_long_text_is_written_line_by_line():
    model = tiny_synthesis(kappa_step=1.0, eos_bias=5.0)
    text = "the first line is here and the second line follows it, then a third"
    result, trace = write(model, HandwritingSettings(text=text, seed=2))
    lines = textwrap.wrap(text, LINE_CHARS)
    assert len(lines) == 3 and result.text == " ".join(lines) and result.finished
    assert any("3 lines" in note for note in result.notes)
    assert trace.steps == len(result.offsets) == sum(len(s) for s in result.strokes)
    assert trace.detail.lines == 3 and result.phi.shape == (trace.steps, len(result.text))
    # each line's window weight stays on that line's characters
    first_rows = result.phi[: trace.steps // 4]
    assert first_rows[:, len(lines[0]) + 1 :].max() == 0 and first_rows[:, : len(lines[0])].max() > 0
    # lines are stacked downwards (the last line's first stroke lies below the first line's
    # first stroke) and start at the left margin
    assert bounds(result.strokes)[0] == pytest.approx(0.0, abs=1e-4)
    assert result.strokes[-1][:, 1].min() > result.strokes[0][:, 1].max()
    again, _ = write(model, HandwritingSettings(text=text, seed=2))
    np.testing.assert_array_equal(again.offsets, result.offsets)  # still seeded


def test_generation_is_seeded_and_bad_text_is_explained():
    model = tiny_synthesis(kappa_step=0.5, eos_bias=2.0)
    a, _ = write(model, HandwritingSettings(text="Café “ok” €", seed=4))
    b, _ = write(model, HandwritingSettings(text="Café “ok” €", seed=4))
    np.testing.assert_array_equal(a.offsets, b.offsets)
    assert a.text == "Cafe 'ok'"
    notes = " ".join(a.notes)
    assert "Mapped" in notes and "Dropped" in notes and "'€'" in notes
    long, _ = write(model, HandwritingSettings(text="word " * 40, seed=0))
    assert len(long.text) <= MAX_TEXT and any("longer than" in n for n in long.notes)
    with pytest.raises(ValueError, match="nothing to write"):
        write(model, HandwritingSettings(text="  €€ "))


def test_priming_reads_the_style_sample_first():
    model = tiny_synthesis(kappa_step=0.5, eos_bias=2.0)
    settings = HandwritingSettings(text="hi", seed=0, primer_strokes=STROKES, primer_text="ok", normalize_primer=False)
    result, trace = write(model, settings)
    assert result.primer_points == 5 and result.chars == "ok hi"
    assert trace.shown_from == 5 == trace.prompt_length and trace.steps == 5 + len(result.offsets)


def test_free_scribble_and_renders():
    torch.manual_seed(0)
    model = PredictionModel(PredictionConfig(hidden_size=8, num_layers=2, mixtures=3)).eval()
    generation = hw.generate(as_loaded(model), HandwritingSettings(text="ignored", max_points=40, seed=2))
    result, trace = generation.result, generation.trace
    assert len(result.offsets) == 40 and trace.steps == 40 and result.offsets[-1, 2] == 1
    assert any("free-scribble" in n for n in result.notes)
    colors = unit_colors(result, trace, View(layer=1, unit=3, quantity="tanh_c"))
    assert [len(c) for c in colors] == [max(len(s) - 1, 1) for s in result.strokes]
    assert strokes_figure(generation, View(layer=0, unit=0, quantity="i")).axes
    assert "No attention window" in attention_html(result)
    assert "<set " in animated_svg(result, colors)
    points = make_batch([result.offsets], None, None, 2.0)
    assert batch_nll(model, points)[1] == 40


def test_hooks_see_the_trace_layers_and_steps():
    """The attention layer is layer 0 and the core's layers follow; steps are the trace's, primer
    included; a hook on the attention layer moves the window from its step on."""
    model = tiny_synthesis(kappa_step=0.5, eos_bias=2.0)
    settings = HandwritingSettings(text="hi", seed=0, primer_strokes=STROKES, primer_text="ok", fixed_points=12,
                                      normalize_primer=False)
    seen = set()
    plain = hw.generate(as_loaded(model), settings, hooks=[lambda step, layer, name, value: seen.add((step, layer))])
    assert plain.trace.steps == 5 + 12 and plain.trace.layer_names == ["attention", "layer 1"]
    assert seen == {(t, k) for t in range(plain.trace.steps) for k in range(2)}
    at = 8
    hooked = hw.generate(as_loaded(model), settings, hooks=[set_units(0, list(range(8)), "h", 0.0, from_step=at)])
    np.testing.assert_array_equal(hooked.result.phi[:at], plain.result.phi[:at])  # phi rows: trace steps
    assert not np.allclose(hooked.result.phi[at], plain.result.phi[at])
    np.testing.assert_array_equal(hooked.distributions["mu"][:at], plain.distributions["mu"][:at])


def test_score_reads_a_stroke_file_with_its_transcript(tmp_path, run_cli):
    """score: teacher-forced, as training reads a phrase; the trace CLI goes through read_input + score."""
    model = tiny_synthesis(seed=3)
    loaded = as_loaded(model)
    path = tmp_path / "sample.json"
    path.write_text(json.dumps({"text": "a’b", "strokes": [s.tolist() for s in STROKES]}))
    sample = hw.read_input(path, loaded)
    scored = hw.score(loaded, sample)
    assert scored.trace.steps == 5 and scored.sequence.text == "a'b" and any("Mapped" in n for n in scored.notes)
    assert scored.distributions["phi"].shape == (5, 3) and scored.distributions["mu"].shape == (5, 3, 2)
    np.testing.assert_allclose(scored.distributions["pi"].sum(-1), 1.0, atol=1e-5)
    # the same numbers as the training loss over that phrase (its first move zeroed, as read)
    offsets = sample.offsets()
    batch = make_batch([offsets], ["a'b"], HandwritingAlphabet(), 2.0)
    raw, _ = model(batch.points, batch.chars, batch.char_mask)
    np.testing.assert_allclose(scored.distributions["eos"], torch.sigmoid(raw[0, :, 0]).detach().numpy(), atol=1e-5)
    tracks = hw.features(sample, scored)
    assert tracks["pen up"].tolist() == [0, 0, 1, 0, 1] and tracks["pen-up travel"].tolist() == [0, 0, 0, 1, 0]
    assert tracks["pen speed"][0] == 0 and set(tracks["character under the window"]) <= {0, 1, 2}
    # a synthesis model needs the transcript; a prediction model ignores it
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([s.tolist() for s in STROKES]))
    with pytest.raises(StrokeFileError, match="no transcript"):
        hw.read_input(bare, loaded)
    torch.manual_seed(0)
    scribbler = as_loaded(PredictionModel(PredictionConfig(hidden_size=8, num_layers=2, mixtures=3)).eval())
    scored = hw.score(scribbler, sample)
    assert "phi" not in scored.distributions and any("ignored" in n for n in scored.notes)
    assert "character under the window" not in hw.features(sample, scored)
    stem = tmp_path / "tiny-hw"
    hw.save(stem, model, loaded.codec)
    done = run_cli("trace", "handwriting", "--model", stem, "--input", path, "--out", tmp_path / "t.npz")
    assert done.returncode == 0, done.stderr
    assert "5 steps x 2 layers x 8 units" in done.stdout
    done = run_cli("trace", "handwriting", "--model", stem, "--input", bare, "--out", tmp_path / "t.npz")
    assert done.returncode != 0 and "no transcript" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- importers
def test_loaders_read_small_files(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text('<WhiteboardCaptureSession><StrokeSet><Stroke><Point x="1" y="2" time="0"/><Point x="3" y="4"/>'
                   '</Stroke><Stroke><Point x="5" y="6"/></Stroke></StrokeSet></WhiteboardCaptureSession>')
    strokes, _ = load_stroke_file(xml)
    assert [len(s) for s in strokes] == [2, 1] and strokes[0][1].tolist() == [3, 4]

    nd = tmp_path / "cat.ndjson"
    nd.write_text(json.dumps({"word": "cat", "drawing": [[[0, 10, 20], [0, 5, 0]], [[3, 4], [9, 9]]]}) + "\n")
    strokes, _ = load_stroke_file(nd)
    assert [len(s) for s in strokes] == [3, 2] and strokes[0][1].tolist() == [10, 5]

    npz = tmp_path / "sketch.npz"
    np.savez(npz, train=strokes_to_offsets(STROKES)[None])
    strokes, _ = load_stroke_file(npz)
    np.testing.assert_allclose(strokes[1], STROKES[1], atol=1e-5)

    js = tmp_path / "style.json"
    js.write_text(json.dumps({"text": "ok", "strokes": [s.tolist() for s in STROKES]}))
    strokes, text = load_stroke_file(js)
    assert text == "ok" and len(strokes) == 2
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([[[0, 0], [1, 1]]]))
    assert len(load_stroke_file(plain)[0]) == 1


@pytest.mark.parametrize("name, content, message", [
    ("bad.xml", "<StrokeSet><Stroke>", "not well-formed XML"),
    ("empty.xml", "<StrokeSet></StrokeSet>", "no <Stroke>"),
    ("nox.xml", '<StrokeSet><Stroke><Point y="1"/></Stroke></StrokeSet>', "numeric x and y"),
    ("bad.ndjson", "{\"word\": 1}\n", "not QuickDraw ndjson"),
    ("bad.json", "{nope", "not valid JSON"),
    ("shape.json", "[[1, 2, 3]]", r"list of \[x, y\]"),
    ("empty.json", "[]", "no pen points"),
    ("nan.json", "[[[0, NaN]]]", "not finite"),
    ("notes.txt", "hello", "unknown extension"),
])
def test_malformed_files_give_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(StrokeFileError, match=message) as caught:
        load_stroke_file(path)
    assert name in str(caught.value)


def test_pickled_npz_is_refused(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((3, 3)), np.zeros((2, 3))
    path = tmp_path / "ragged.npz"
    np.savez(path, train=ragged)
    with pytest.raises(StrokeFileError, match="pickled"):
        load_stroke_file(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(StrokeFileError, match="not a readable"):
        load_stroke_file(tmp_path / "junk.npz")


# ---------------------------------------------------------------- data and checkpoints
def test_build_dataset_holds_out_phrases(tmp_path):
    corpus = " ".join(f"word{k % 7} and more text here, said he." for k in range(200)).replace("0", "o")
    config = DataConfig(samples=12, held_out=3, seed=1)
    alphabet = HandwritingAlphabet()
    corpus = "".join(c for c in corpus if c in alphabet.index or c == " ")
    summary = build_dataset(corpus, tmp_path, config, alphabet)
    texts, offsets = load_dataset(tmp_path / "train.npz")
    held, _ = load_dataset(tmp_path / "held_out.npz")
    assert len(texts) == 12 and len(held) == 3 and not set(held) & set(texts)
    assert summary["offset_scale"] > 0 and all(o.shape[1] == 3 for o in offsets)


def test_save_load_and_cli_generate(tmp_path, run_cli):
    alphabet = HandwritingAlphabet()
    model = tiny_synthesis(kappa_step=0.5, eos_bias=2.0)
    stem = tmp_path / "tiny-hw"
    hw.save(stem, model, HandwritingCodec(2.0, alphabet))
    loaded = hw.load(stem)
    assert isinstance(loaded.model, SynthesisModel) and loaded.codec.alphabet.chars == alphabet.chars
    assert loaded.card["kind"] == "synthesis" and loaded.layer_names == ["attention", "layer 1"]
    out = tmp_path / "out.svg"
    done = run_cli("generate", "handwriting", "--model", stem, "--text", "hi there", "--bias", "1", "--out", out,
                   timeout=240)
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("<svg") and "finished: True" in done.stdout
    from studio.__main__ import main

    with pytest.raises(SystemExit, match="nothing to write"):  # a message, not a traceback
        main(["generate", "handwriting", "--model", str(stem), "--text", "€", "--out", str(out)])


def test_cli_train_then_eval_records_metrics(tmp_path, run_cli):
    """train (building a tiny synthetic set) -> eval --record: the last line and the card agree."""
    from studio import checkpoint

    corpus = tmp_path / "corpus.txt"
    words = ["cat", "sat", "mat", "dog", "ran", "far", "sun", "hat", "big", "red", "old", "new", "fox", "owl"]
    rng = np.random.default_rng(0)
    corpus.write_text(" ".join(rng.choice(words, 3000)))  # hundreds of distinct phrases, 50 held out
    too_small = tmp_path / "small.txt"
    too_small.write_text("the cat sat on the mat")
    done = run_cli("train", "handwriting", "--corpus", too_small, "--data-dir", tmp_path / "none", "--out", tmp_path / "x")
    assert done.returncode != 0 and "distinct phrases" in done.stderr and "Traceback" not in done.stderr
    data, stem = tmp_path / "data", tmp_path / "tiny-synthesis"
    done = run_cli("train", "handwriting", "--corpus", corpus, "--data-dir", data, "--samples", "16", "--out", stem,
                   "--steps", "2", "--batch-size", "4", "--hidden-size", "8", "--layers", "1", "--mixtures", "2",
                   "--window-gaussians", "2", "--eval-every", "2", "--device", "cpu", timeout=300)
    assert done.returncode == 0, done.stderr
    done = run_cli("eval", "handwriting", "--model", stem, "--data-dir", data, "--limit", "2", "--record", timeout=300)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("finished_fraction: ")
    metrics = checkpoint.read_card(stem)["metrics"]
    assert metrics["finished_fraction"] == pytest.approx(float(last.split()[1]), abs=1e-3)
    assert metrics["held_out_phrases"] == 2 and "eval handwriting" in metrics["eval_command"]
