"""A word-level PyTorch model (pytorch/examples word_language_model's layout) opened in the studio:
the probe's features are per word and find a unit, from the CLI and the experiments panel's
handlers; interventions and compare (two word models with the same vocabulary) run. And "ask why"
on a window-sampled generation explains what the window sampler computed at that step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from studio import explain, import_cli, reference
from studio.__main__ import main
from studio.domains import by_name
from studio.domains.text.codec import TokenText
from studio.sampling import SamplingConfig

TEXT = ('The cat said "hello there" ( quietly ) .\nthe dog sat on the mat .\n'
        'A bird flew over "the old mat" .\nthe cat ( and the dog ) sat .\n') * 20
HIDDEN = 12
text = by_name("text")


class RNNModel(torch.nn.Module):
    """word_language_model's layout: encoder Embedding, rnn LSTM, decoder Linear."""

    def __init__(self, vocab, embed, hidden, layers):
        super().__init__()
        self.encoder = torch.nn.Embedding(vocab, embed)
        self.rnn = torch.nn.LSTM(embed, hidden, layers)
        self.decoder = torch.nn.Linear(hidden, vocab)


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    """(two opened word models with the same vocabulary (stems), the text file)."""
    folder = tmp_path_factory.mktemp("words")
    path = folder / "input.txt"
    path.write_text(TEXT)
    words = import_cli.read_vocabulary(vocab_text=path, tokens="words")
    stems = []
    for seed, layers in ((0, 2), (1, 1)):
        torch.manual_seed(seed)
        torch.save(RNNModel(len(words), 8, HIDDEN, layers).state_dict(), folder / f"w{seed}.pt")
        stems.append(import_cli.import_file(text, folder / f"w{seed}.pt", "torch", folder / f"opened{seed}",
                                            vocab_text=path, tokens="words"))
    return stems, path


def test_features_are_per_word(opened):
    loaded = text.load(opened[0][0])
    scored = text.score(loaded, 'The cat said "hello there" ( quietly ) .\nthe dog\n')
    labels = scored.trace.labels
    assert labels[:4] == ["The ", "cat ", "said ", '"hello ']
    read = scored.sequence  # a TokenText: its length and slices count tokens, its string is the text
    assert len(read) == scored.trace.steps and read[2:4] == 'said "hello ' and read[2:4].labels == ("said ", '"hello ')
    tracks = text.features(scored.sequence, scored)
    assert all(len(track) == scored.trace.steps for track in tracks.values())
    on = {name: [labels[k] for k in np.flatnonzero(track > 0)] for name, track in tracks.items()}
    assert on["newline"] == ["\n", "\n"] and on["uppercase"] == ["The "]
    assert on["inside quotes"] == ['"hello ', 'there" '] and on["inside parentheses"] == ["( ", "quietly ", ") "]
    assert on["punctuation"] == ["( ", ") ", ". "]
    assert tracks["position in line"][:3].tolist() == [0, 1, 2] and tracks["position in line"][10] == 0  # "the"
    regex = text.custom_feature(scored.sequence, r"\bsa\w+")  # a regex over the text, on for the tokens it touches
    assert [labels[k] for k in np.flatnonzero(regex)] == ["said "]
    with pytest.raises(ValueError, match="reads words"):
        text.custom_feature(scored.sequence, "vowel")


def test_probe_from_the_command_line(opened, capsys):
    stem, path = opened[0][0], opened[1]
    for exact in ([], ["--exact"]):
        assert main(["probe", "text", "--model", str(stem), "--feature", "newline", "--input", str(path), *exact]) == 0
        out = capsys.readouterr().out
        steps = int(out.split()[0])
        assert steps == len(TEXT.split()) + TEXT.count("\n")  # one step per word and line end
        best = float(out.strip().rsplit(" ", 1)[1])
        assert best > 0.95, out  # the line end is an input of its own: some unit sees it
    with pytest.raises(SystemExit, match="reads words"):
        main(["probe", "text", "--model", str(stem), "--feature", "space", "--input", str(path)])


def test_probe_intervene_and_compare_through_the_panel(opened):
    from studio.ui.experiments_panel import comparison, intervention

    (first, second), path = opened
    loaded, other = text.load(first), text.load(second)
    generation = text.generate(loaded, text.Settings(prompt="the cat sat", length=40))
    assert isinstance(text.sequence_of(generation), TokenText)
    for choice, file in (("output", None), ("file", str(path))):
        found = reference.sources(text, loaded, generation, choice, file)
        answer = reference.probe(text, loaded, found, "inside quotes" if choice == "file" else "newline")
        assert answer["hits"] and answer["hits"][0]["strength"] > 0.5, answer["hits"][:1]
        window = answer["window"]
        assert len(window["labels"]) == len(window["track"]) == len(window["series"][0])
        assert all(label.endswith((" ", "\n")) for label in window["labels"])  # words, not characters
    changed = intervention(text, loaded, generation, "0:1, 1:3", "h=0", 0, 3)
    assert changed["kind"] == "intervene" and len(changed["outputs"]) == 2 and not changed["joined"]
    answer, _ = comparison(text, {"a": loaded, "b": other}, loaded, generation, "b")
    assert answer["steps"] == generation.trace.steps and len(answer["cka"]) == 2 * 1
    assert all(0 <= pair["cka"] <= 1 + 1e-9 for pair in answer["cka"])


def test_intervene_and_compare_from_the_command_line(opened, capsys):
    (first, second), path = opened
    assert main(["intervene", "text", "--model", str(first), "--ablate", "0:1,1:2", "--prompt", "the cat", "--length",
                 "10"]) == 0
    assert "first_divergence" in capsys.readouterr().out
    assert main(["compare", "text", "--model", str(first), "--model-b", str(second), "--input", str(path)]) == 0
    assert capsys.readouterr().out.count("cka ") == 2


WINDOW = 4


@pytest.fixture(scope="module")
def windowed(opened):
    loaded = text.load(opened[0][0])
    settings = text.Settings(prompt="the cat sat on the", length=12, window=WINDOW, seed=3,
                             sampling=SamplingConfig(temperature=1.0))
    return loaded, text.generate(loaded, settings)


def test_a_window_sampled_generation_is_read_again_as_it_was_sampled(windowed):
    loaded, generation = windowed
    scored, ex = text.explainable(loaded, text.sequence_of(generation))
    assert scored.trace.labels == generation.trace.labels
    assert np.abs(scored.distributions["logits"] - generation.distributions["logits"]).max() < 1e-5
    for a, b in zip(scored.trace.layers, generation.trace.layers, strict=True):
        assert max(np.abs(a[name] - b[name]).max() for name in a) < 1e-5
    following = text.sequence_of(generation)
    ids = loaded.codec.encode(following)[0]
    logits = torch.tensor(generation.distributions["logits"])
    expected = -torch.log_softmax(logits, -1)[torch.arange(len(ids) - 1), ids[1:]].numpy()
    assert np.abs(explain.surprise(ex)[:-1] - expected).max() < 1e-5  # the sampler's own log-likelihoods
    with torch.no_grad():  # and the differentiable reading of every window (saliency over the whole sequence)
        again = -ex.log_likelihood(ex.inputs.clone())[0, :-1].numpy()
    assert np.abs(again - expected).max() < 1e-5


@pytest.mark.parametrize("step", [1, 6, 15])
def test_ask_why_on_a_window_step_explains_the_window(windowed, step):
    """Top guesses are the distribution the sampler drew from; saliency covers the window's tokens
    only; the equations' previous state is the window's, read from zero."""
    from studio.ui.explain_panel import explanation

    loaded, generation = windowed
    scored, ex = text.explainable(loaded, text.sequence_of(generation))
    answer = explain.explain(scored.trace, ex, step, layer=1, unit=2)
    drawn = torch.softmax(torch.tensor(generation.distributions["logits"][step]), -1).numpy()
    for guess in answer["topk"]:
        assert abs(guess["p"] - drawn[loaded.codec.index[guess["token"]]]) < 1e-5
    start = max(0, step - WINDOW + 1)
    assert answer["window"] == {"start": start, "end": step}
    saliency = np.array(answer["saliency"])
    assert len(saliency) == step + 1 and not saliency[:start].any() and np.abs(saliency[start:]).max() > 0
    anatomy = answer["anatomy"]
    assert anatomy["step"] == step and abs(anatomy["h"] - generation.trace.layers[1]["h"][step, 2]) < 1e-5
    ids = loaded.codec.encode(text.sequence_of(generation))[0]
    with torch.no_grad():  # the window read from zero: its state before the step's token
        gates = loaded.model.trace(torch.tensor([ids[start : step + 1]]))[2]
    c_prev = float(gates[1]["c"][0, -2, 2]) if step > start else 0.0
    assert abs(anatomy["c_prev"] - c_prev) < 1e-5
    clicked = explanation(text, loaded, generation, {"step": step, "layer": 1, "unit": 2})  # the trace click
    assert clicked["window"] == answer["window"] and clicked["topk"] == answer["topk"]


def test_ask_why_on_a_window_step_from_the_command_line(opened, tmp_path):
    out = tmp_path / "why.json"
    assert main(["explain", "text", "--model", str(opened[0][0]), "--prompt", "the cat sat on the", "--length", "6",
                 "--window", str(WINDOW), "--step", "7", "--json", str(out)]) == 0
    answer = json.loads(out.read_text())
    assert answer["window"] == {"start": 7 - WINDOW + 1, "end": 7} and not any(answer["saliency"][: 7 - WINDOW + 1])


class FakeProgress:
    """Stands in for gr.Progress: keeps every (fraction, desc) it is told."""

    def __init__(self):
        self.told = []

    def __call__(self, fraction, desc=None):
        self.told.append((fraction, desc))


def test_the_panel_offers_the_features_of_the_model_on_screen(opened, tiny_text):
    from studio.ui.experiments_panel import fill_features, probe_answer

    words, characters = text.load(opened[0][0]), tiny_text(0)
    models = {"chars": characters, words.name: words}  # a tab whose first model reads characters
    before = fill_features(text, models, None, None)
    assert "space" in before["choices"] and "punctuation" not in before["choices"]
    generation = text.generate(words, text.Settings(prompt="the cat sat", length=20))
    after = fill_features(text, models, generation, "space")  # "space" means nothing to a word model
    assert after["choices"] == text.feature_names(words) and after["value"] == after["choices"][0]
    assert "punctuation" in after["choices"] and "space" not in after["choices"] and "vowel" not in after["choices"]
    assert fill_features(text, models, generation, "punctuation")["value"] == "punctuation"
    assert fill_features(text, models, generation, r"\bsa\w+")["value"] == r"\bsa\w+"  # a typed regex stays
    # the probe from the panel: "read at most" counts the model's steps (words), and its progress rises to 1
    progress = FakeProgress()
    answer = probe_answer(text, models, generation, "file", str(opened[1]), 150, "punctuation", progress)
    assert answer["kind"] == "probe" and answer["steps"] == 150 and answer["hits"]
    fractions = [fraction for fraction, _ in progress.told]
    assert progress.told[0][1].startswith("Probing 'punctuation' over 150 steps: about ")
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions) and len(set(fractions)) > 2


@pytest.mark.parametrize("exact", [False, True])
def test_the_probe_counts_steps_and_tells_its_progress(opened, exact):
    from studio import cli_experiments

    loaded = text.load(opened[0][0])
    told = []
    track, steps, hits = cli_experiments.probe(text, loaded, TEXT * 3, "newline", limit=1000, exact=exact,
                                               progress=told.append)
    assert steps == len(track) == 1000 and hits  # 1,000 words and line ends, not 1,000 characters
    assert told[-1] == 1.0 and told == sorted(told) and all(0 < f <= 1 for f in told)
