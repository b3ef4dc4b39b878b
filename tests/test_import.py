"""Opening models made elsewhere (studio.importer): real Keras 3 models (on its torch backend) and
PyTorch modules are built, saved in their own formats and imported; the studio's next-token
distribution equals the framework's own on windows of the training length, and the trace's h of
every layer over a 1,000-step sequence equals the framework's LSTM outputs (return_sequences=True),
both within 1e-5. Bad files are refused in one sentence."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no TensorFlow here

import numpy as np
import pytest
import torch

from studio import import_cli, importer
from studio.domains import by_name

keras = pytest.importorskip("keras")

TEXT = "the quick brown fox jumps over the lazy dog\nand the cat sat on the mat\n" * 30
CHARS = sorted(set(TEXT))
WINDOW, HIDDEN = 12, 16
TOL = 1e-5


def keras_model(embedding: bool, layers: int, recurrent="sigmoid", seed=0):
    keras.utils.set_random_seed(seed)
    v = len(CHARS)
    stack = [keras.Input((WINDOW,)), keras.layers.Embedding(v, 8)] if embedding else [keras.Input((WINDOW, v))]
    for k in range(layers):
        stack.append(keras.layers.LSTM(HIDDEN, return_sequences=k < layers - 1, recurrent_activation=recurrent))
        stack.append(keras.layers.Dropout(0.1))
    stack.append(keras.layers.Dense(v, activation="softmax"))
    model = keras.Sequential(stack)
    # weights away from their initialisation (biases too), as after training
    model.set_weights([w + np.random.default_rng(seed).normal(0, 0.3, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def windows_of(text, count=5):
    ids = np.array([CHARS.index(ch) for ch in text])
    starts = np.random.default_rng(1).integers(0, len(ids) - WINDOW, count)
    return np.stack([ids[s : s + WINDOW] for s in starts])


def keras_input(ids, embedding):
    return ids if embedding else np.eye(len(CHARS), dtype=np.float32)[ids]


def twin_outputs(model, ids, embedding):
    """Every LSTM layer's output sequence over `ids` (1, T): a twin of `model` with return_sequences=True
    everywhere and the same weights."""
    v = len(CHARS)
    inputs = keras.Input((ids.shape[1],) if embedding else (ids.shape[1], v))
    x = inputs
    outputs = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Embedding):
            twin = keras.layers.Embedding(v, layer.output_dim)
        elif isinstance(layer, keras.layers.LSTM):
            twin = keras.layers.LSTM(layer.units, return_sequences=True, recurrent_activation=layer.recurrent_activation)
        else:
            continue
        x = twin(x)
        twin.set_weights(layer.get_weights())
        if isinstance(layer, keras.layers.LSTM):
            outputs.append(x)
    return [np.asarray(o) for o in keras.Model(inputs, outputs).predict(keras_input(ids, embedding), verbose=0)]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "input.txt"
    path.write_text(TEXT)
    return path


CASES = [  # (embedding, layers, recurrent activation, file suffix)
    (False, 1, "sigmoid", ".keras"),
    (True, 2, "sigmoid", ".keras"),
    (False, 2, "hard_sigmoid", ".h5"),
    (True, 1, "hard_sigmoid", ".keras"),
]


@pytest.mark.parametrize("embedding, layers, recurrent, suffix", CASES)
def test_keras_model_opens_with_its_own_predictions(tmp_path, text_file, embedding, layers, recurrent, suffix):
    model = keras_model(embedding, layers, recurrent)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    stem = import_cli.import_file(by_name("text"), path, "keras", tmp_path / "opened", vocab_text=text_file)
    domain = by_name("text")
    loaded = domain.load(stem)
    assert loaded.card["imported"]["sha256"] == importer.sha256(path)
    assert loaded.card["training"]["window"] == WINDOW
    ids = windows_of(TEXT)
    expected = np.asarray(model.predict(keras_input(ids, embedding), verbose=0))  # (N, V) after the window
    with torch.no_grad():
        logits = loaded.model.trace(torch.as_tensor(ids))[0][:, -1]
    assert np.abs(torch.softmax(logits, -1).numpy() - expected).max() < TOL
    # the trace over 1,000 steps, every layer's h, against the twin's return_sequences outputs
    long = np.array([CHARS.index(ch) for ch in TEXT[:1000]])[None]
    twins = twin_outputs(model, long, embedding)
    with torch.no_grad():
        gates = loaded.model.trace(torch.as_tensor(long))[2]
    assert len(gates) == layers
    for k, twin in enumerate(twins):
        assert np.abs(gates[k]["h"].numpy() - twin).max() < TOL, k
    # the scored trace a user sees is the same path
    scored = domain.score(loaded, TEXT[:200])
    assert scored.trace.steps > 0


class RunsCode:
    """A pickle that would run a command when loaded (never loaded here: weights_only refuses it)."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/studio-import-pwned",))


def bad_files(tmp_path, text_file):
    """{what: (file, format, vocab flags)} of files the import must refuse."""
    keras.utils.set_random_seed(0)
    gru = keras.Sequential([keras.Input((WINDOW, len(CHARS))), keras.layers.GRU(8), keras.layers.Dense(len(CHARS), activation="softmax")])
    gru.save(tmp_path / "gru.keras")
    good = keras_model(False, 1)
    good.save(tmp_path / "good.keras")
    data = (tmp_path / "good.keras").read_bytes()
    (tmp_path / "truncated.keras").write_bytes(data[: len(data) // 2])
    torch.save({"weight": torch.zeros(2), "payload": RunsCode()}, tmp_path / "code.pt")
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "short.json").write_text('["a", "b", "c"]')
    vocab_text = ["--vocab-text", str(text_file)]
    return {
        "GRU": (tmp_path / "gru.keras", "keras", vocab_text, "GRU"),
        "wrong vocabulary size": (tmp_path / "good.keras", "keras", ["--vocab", str(tmp_path / "short.json")], "3 tokens"),
        "truncated zip": (tmp_path / "truncated.keras", "keras", vocab_text, "truncated"),
        "pickle that runs code": (tmp_path / "code.pt", "torch", vocab_text, "will not do"),
        "random binary (keras)": (tmp_path / "random.bin", "keras", vocab_text, "neither"),
        "random binary (torch)": (tmp_path / "random.bin", "torch", vocab_text, "not a PyTorch file"),
    }


def test_bad_files_get_one_sentence_from_the_command_line(tmp_path, text_file, capsys):
    from studio.__main__ import main

    for what, (path, fmt, flags, words) in bad_files(tmp_path, text_file).items():
        with pytest.raises(SystemExit) as exit_:
            main(["import", "text", str(path), "--format", fmt, *flags, "--out", str(tmp_path / "out")])
        message = str(exit_.value.code)
        assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message, (what, message)
        assert words in message, (what, message)
    assert not os.path.exists("/tmp/studio-import-pwned")
    assert not (tmp_path / "out.json").exists()


class RNNModel(torch.nn.Module):
    """pytorch/examples word_language_model's layout: encoder Embedding, rnn LSTM, decoder Linear."""

    def __init__(self, vocab, embed, hidden, layers, tie=False, batch_first=False):
        super().__init__()
        self.encoder = torch.nn.Embedding(vocab, embed)
        self.rnn = torch.nn.LSTM(embed, hidden, layers, batch_first=batch_first)
        self.decoder = torch.nn.Linear(hidden, vocab)
        if tie:
            self.decoder.weight = self.encoder.weight
        self.batch_first = batch_first

    def forward(self, ids):  # ids (T, B), or (B, T) with batch_first
        out, _ = self.rnn(self.encoder(ids))
        return self.decoder(out)


@pytest.mark.parametrize("layers, tie, batch_first, suffix", [(2, False, False, ".pt"), (1, True, True, ".safetensors"),
                                                            (2, True, False, ".pth")])
def test_pytorch_state_dict_opens_with_its_own_outputs(tmp_path, text_file, layers, tie, batch_first, suffix):
    torch.manual_seed(0)
    v = len(CHARS)
    model = RNNModel(v, HIDDEN if tie else 8, HIDDEN, layers, tie, batch_first).eval()
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_model

        save_model(model, str(path))  # drops one name of a tied pair
    else:
        torch.save(model.state_dict(), path)
    (tmp_path / "vocab.json").write_text(__import__("json").dumps(CHARS))
    stem = import_cli.import_file(by_name("text"), path, "torch", tmp_path / "opened", vocab=tmp_path / "vocab.json")
    loaded = by_name("text").load(stem)
    ids = torch.as_tensor(np.array([CHARS.index(ch) for ch in TEXT[:1000]]))[None]
    with torch.no_grad():
        expected = model(ids if batch_first else ids.t())
        expected = expected[0] if batch_first else expected[:, 0]
        logits, _, gates = loaded.model.trace(ids)
        assert (torch.softmax(logits[0], -1) - torch.softmax(expected, -1)).abs().max() < TOL
        x = model.encoder(ids)
        for k in range(layers):  # each layer's outputs from a one-layer twin with that layer's weights
            twin = torch.nn.LSTM(x.shape[-1], HIDDEN, batch_first=True)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(twin, f"{name}_l0").copy_(getattr(model.rnn, f"{name}_l{k}"))
            x, _ = twin(x)
            assert (gates[k]["h"] - x).abs().max() < TOL, k


def test_a_whole_pickled_module_is_refused_with_the_line_that_fixes_it(tmp_path, text_file):
    model = RNNModel(len(CHARS), 8, HIDDEN, 1)
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(importer.ImportRefused, match=r"torch.save\(model.state_dict\(\), 'model.pt'\)"):
        importer.read(tmp_path / "whole.pt", "torch")
    gru = {"encoder.weight": torch.zeros(len(CHARS), 8), "rnn.weight_ih_l0": torch.zeros(48, 8),
           "rnn.weight_hh_l0": torch.zeros(48, 16), "decoder.weight": torch.zeros(len(CHARS), 16), "decoder.bias": torch.zeros(len(CHARS))}
    torch.save(gru, tmp_path / "gru.pt")
    with pytest.raises(importer.ImportRefused, match="GRU"):
        importer.read(tmp_path / "gru.pt", "torch")


def test_a_word_model_opens_with_a_word_vocabulary(tmp_path, text_file):
    """word_language_model's vocabulary: words in first-occurrence order, <eos> ending each line; the
    trace's labels, "ask why"'s guesses and generation are words."""
    words = import_cli.read_vocabulary(vocab_text=text_file, tokens="words")
    assert words[:5] == ["the", "quick", "brown", "fox", "jumps"] and "<eos>" in words
    torch.manual_seed(0)
    model = RNNModel(len(words), 8, HIDDEN, 2).eval()
    torch.save(model.state_dict(), tmp_path / "words.pt")
    domain = by_name("text")
    stem = import_cli.import_file(domain, tmp_path / "words.pt", "torch", tmp_path / "opened", vocab_text=text_file, tokens="words")
    loaded = domain.load(stem)
    assert loaded.codec.words and loaded.card["codec"] == {"words": words}
    scored = domain.score(loaded, "the cat sat on the mat\nthe dog\n")
    assert scored.trace.labels[:3] == ["the ", "cat ", "sat "] and scored.trace.labels[6] == "\n"
    ids = torch.tensor([loaded.codec.encode("the cat sat on the mat\nthe dog\n")[0]])
    with torch.no_grad():
        assert (torch.tensor(scored.distributions["logits"]) - model(ids.t())[:, 0]).abs().max() < TOL
    generation = domain.generate(loaded, domain.Settings(prompt="the cat", length=5))
    assert len(generation.trace.labels) == 2 + 5 and all(label.endswith((" ", "\n")) for label in generation.trace.labels)


def test_window_sampling_reads_the_last_tokens_from_zero(tmp_path, text_file):
    """The tutorial's way to sample: each step's distribution is Keras's predict on the window of the
    last WINDOW characters; the trace holds the gates at each window's last position."""
    model = keras_model(False, 1)
    model.save(tmp_path / "m.keras")
    domain = by_name("text")
    loaded = domain.load(import_cli.import_file(domain, tmp_path / "m.keras", "keras", tmp_path / "o", vocab_text=text_file))
    prompt = TEXT[:WINDOW]
    generation = domain.generate(loaded, domain.Settings(prompt=prompt, length=6, window=WINDOW))
    read = prompt + generation.result.text
    ids = np.array([CHARS.index(ch) for ch in read])
    windows = np.stack([ids[end - WINDOW : end] for end in range(WINDOW, len(ids) + 1)])
    expected = np.asarray(model.predict(keras_input(windows, False), verbose=0))
    got = torch.softmax(torch.tensor(generation.distributions["logits"][WINDOW - 1 :]), -1).numpy()
    assert np.abs(got - expected).max() < TOL
    assert generation.trace.steps == len(read)
    with torch.no_grad():  # the last step's gates: those at the end of its window, read from zero
        h = loaded.model.trace(torch.as_tensor(windows[-1:]))[2][0]["h"][0, -1].numpy()
    assert np.abs(generation.trace.layers[0]["h"][-1] - h).max() < TOL


def test_an_opened_model_exports_to_onnx_and_fine_tunes(tmp_path, text_file):
    """The hard-sigmoid gates export as ONNX HardSigmoid (onnxruntime agrees within 1e-4 over 500
    steps); fine-tuning from the opened model runs (its stepped core trains too)."""
    from studio import onnx_export
    from studio.__main__ import main

    pytest.importorskip("onnxruntime")
    model = keras_model(True, 2, "hard_sigmoid")
    model.save(tmp_path / "m.keras")
    domain = by_name("text")
    stem = import_cli.import_file(domain, tmp_path / "m.keras", "keras", tmp_path / "o", vocab_text=text_file)
    loaded = domain.load(stem)
    path = onnx_export.export(loaded.model, tmp_path / "m.onnx")
    ids = [CHARS.index(ch) for ch in TEXT[:500]]
    assert onnx_export.check(loaded.model, path, tokens=ids) < 1e-4
    out = tmp_path / "tuned"
    assert main(["train", "text", "--data", str(text_file), "--init", stem, "--steps", "3", "--seq-len", "16",
                 "--batch-size", "2", "--out", str(out)]) == 0
    assert domain.load(out).model.core.hard_sigmoid == loaded.model.core.hard_sigmoid


def test_a_word_model_fine_tunes_on_text_with_new_words(tmp_path, text_file):
    from studio.__main__ import main

    torch.manual_seed(0)
    words = import_cli.read_vocabulary(vocab_text=text_file, tokens="words")
    torch.save(RNNModel(len(words), 8, HIDDEN, 1).state_dict(), tmp_path / "w.pt")
    domain = by_name("text")
    stem = import_cli.import_file(domain, tmp_path / "w.pt", "torch", tmp_path / "o", vocab_text=text_file, tokens="words")
    (tmp_path / "more.txt").write_text(TEXT + "a new bird flew over the mat\n" * 20)
    assert main(["train", "text", "--data", str(tmp_path / "more.txt"), "--init", stem, "--steps", "2", "--seq-len", "8",
                 "--batch-size", "2", "--out", str(tmp_path / "tuned")]) == 0
    tuned = domain.load(tmp_path / "tuned")
    assert list(tuned.codec.words) == words + ["a", "new", "bird", "flew"]


def test_a_keras_2_file_uses_keras_2s_hard_sigmoid(tmp_path, text_file):
    """A legacy .h5 whose keras_version says 2.x: hard_sigmoid is clip(0.2 x + 0.5, 0, 1) there (Keras 3's
    is relu6(x + 3) / 6); the studio's h equals a plain numpy LSTM with Keras 2's definition."""
    import h5py

    model = keras_model(False, 1, "hard_sigmoid")
    model.save(tmp_path / "k2.h5")
    with h5py.File(tmp_path / "k2.h5", "r+") as file:
        file.attrs["keras_version"] = "2.15.0"
    network = importer.read(tmp_path / "k2.h5", "keras")
    assert network.hard_sigmoid == (0.2, 0.5)
    loaded = by_name("text").load(import_cli.import_file(by_name("text"), tmp_path / "k2.h5", "keras", tmp_path / "o",
                                                          vocab_text=text_file))
    kernel, recurrent, bias = model.layers[0].get_weights()
    ids = [CHARS.index(ch) for ch in TEXT[:300]]
    h, c, hs = np.zeros(HIDDEN), np.zeros(HIDDEN), []
    for token in ids:
        z = kernel[token] + h @ recurrent + bias
        i, f, g, o = np.split(z, 4)
        hard = lambda v: np.clip(0.2 * v + 0.5, 0, 1)  # noqa: E731
        c = hard(f) * c + hard(i) * np.tanh(g)
        h = hard(o) * np.tanh(c)
        hs.append(h)
    with torch.no_grad():
        traced = loaded.model.trace(torch.tensor([ids]))[2][0]["h"][0].numpy()
    assert np.abs(traced - np.array(hs)).max() < TOL


def keras2_h5(path, case: str, vocab: int, window: int, hidden: int, seed: int = 0):
    """A file in Keras 2's HDF5 layout, written with h5py as Keras 2's own saving code writes it
    (keras/engine/saving.py and tf.keras' hdf5_format.py: save_model, save_weights_to_hdf5_group,
    save_attributes_to_hdf5_group): root attributes keras_version, backend and model_config (utf-8
    bytes; the config JSON with batch_input_shape), a model_weights group with layer_names, and per
    layer a group whose weight_names attribute lists its datasets by their variable names. No Keras 2
    wrote it (none is installed here): a reproduction of its layout. Returns the weights as numpy
    arrays: [embedding or None, (kernel, recurrent_kernel, bias) per LSTM, (dense kernel, bias)].

    case "keras-2.2.4": standalone Keras 2.2, one-hot input, LSTM 'lstm_1' (weights 'lstm_1/kernel:0'),
      recurrent_activation hard_sigmoid (its default then), Dense 'dense_1' then Activation softmax.
    case "keras-2.1.6": its Sequential config is the bare list of layers, the LSTM's implementation 0
      and no recurrent_activation in its config (Keras < 2.3's default: hard_sigmoid), weight_names cut
      into weight_names0 / weight_names1 as save_attributes_to_hdf5_group does for a long list.
    case "tf.keras-2.4.0": TensorFlow's Keras 2, an InputLayer, Embedding 'embedding', two LSTMs named
      'lstm', 'lstm_1' (weights 'lstm/lstm_cell/kernel:0', 'lstm_1/lstm_cell_1/kernel:0'), sigmoid,
      Dense softmax."""
    import json

    import h5py

    rng = np.random.default_rng(seed)
    tf_keras = case.startswith("tf.")
    embed = 6 if tf_keras else None
    stacked = 2 if tf_keras else 1
    embedding = rng.normal(0, 0.5, (vocab, embed)).astype(np.float32) if embed else None
    lstms, width = [], embed or vocab
    for _ in range(stacked):
        lstms.append((rng.normal(0, 0.4, (width, 4 * hidden)).astype(np.float32),
                      rng.normal(0, 0.4, (hidden, 4 * hidden)).astype(np.float32),
                      rng.normal(0, 0.4, 4 * hidden).astype(np.float32)))
        width = hidden
    dense = (rng.normal(0, 0.5, (hidden, vocab)).astype(np.float32), rng.normal(0, 0.1, vocab).astype(np.float32))
    layers, weights = [], {}  # config layers; layer name -> [(weight name, value)]
    if tf_keras:
        layers.append({"class_name": "InputLayer", "config": {"batch_input_shape": [None, window], "dtype": "float32",
                                                              "sparse": False, "ragged": False, "name": "embedding_input"}})
        layers.append({"class_name": "Embedding", "config": {"name": "embedding", "trainable": True,
                                                             "batch_input_shape": [None, window], "input_dim": vocab,
                                                             "output_dim": embed, "mask_zero": False,
                                                             "input_length": window}})
        weights["embedding"] = [("embedding/embeddings:0", embedding)]
    for k, (kernel, recurrent, bias) in enumerate(lstms):
        name = "lstm" + (f"_{k}" if k else "") if tf_keras else f"lstm_{k + 1}"
        cell = f"{name}/lstm_cell" + (f"_{k}" if k else "") if tf_keras else name
        config = {"name": name, "trainable": True, "return_sequences": k < stacked - 1, "return_state": False,
                  "go_backwards": False, "stateful": False, "unroll": False, "units": hidden, "activation": "tanh",
                  "recurrent_activation": "sigmoid" if tf_keras else "hard_sigmoid", "use_bias": True,
                  "unit_forget_bias": True, "dropout": 0.0, "recurrent_dropout": 0.0, "implementation": 2 if tf_keras else 1}
        if not tf_keras:
            config["batch_input_shape"] = [None, window, vocab]
        if case == "keras-2.1.6":
            del config["recurrent_activation"]
            config["implementation"] = 0
        layers.append({"class_name": "LSTM", "config": config})
        weights[name] = [(f"{cell}/kernel:0", kernel), (f"{cell}/recurrent_kernel:0", recurrent), (f"{cell}/bias:0", bias)]
    dense_name = "dense" if tf_keras else "dense_1"
    layers.append({"class_name": "Dense", "config": {"name": dense_name, "trainable": True, "units": vocab,
                                                     "activation": "softmax" if tf_keras else "linear", "use_bias": True}})
    weights[dense_name] = [(f"{dense_name}/kernel:0", dense[0]), (f"{dense_name}/bias:0", dense[1])]
    if not tf_keras:
        layers.append({"class_name": "Activation", "config": {"name": "activation_1", "trainable": True,
                                                              "activation": "softmax"}})
        weights["activation_1"] = []
    version = case.split("-")[-1]
    model_config = {"class_name": "Sequential",
                    "config": layers if case == "keras-2.1.6" else {"name": "sequential_1", "layers": layers}}
    with h5py.File(path, "w") as file:
        file.attrs["keras_version"] = version.encode("utf8")
        file.attrs["backend"] = b"tensorflow"
        file.attrs["model_config"] = json.dumps(model_config).encode("utf8")
        group = file.create_group("model_weights")
        group.attrs["layer_names"] = [layer["config"]["name"].encode("utf8") for layer in layers
                                      if layer["class_name"] != "InputLayer"]
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = version.encode("utf8")
        for name in sorted(weights):
            layer_group = group.create_group(name)
            names = [weight_name.encode("utf8") for weight_name, _ in weights[name]]
            if case == "keras-2.1.6" and len(names) > 1:  # as a list too long for one attribute is saved
                layer_group.attrs["weight_names0"], layer_group.attrs["weight_names1"] = names[:1], names[1:]
            else:
                layer_group.attrs["weight_names"] = names
            for weight_name, value in weights[name]:
                layer_group.create_dataset(weight_name, value.shape, dtype=value.dtype)[:] = value
    return [embedding, lstms, dense]


def numpy_lstm_stack(weights, ids, hard: bool):
    """Keras 2's forward in plain numpy: every layer's h over `ids` from a zero state, and the softmax
    after each step. Keras 2's hard_sigmoid is clip(0.2 x + 0.5, 0, 1)."""
    embedding, lstms, (dense_kernel, dense_bias) = weights
    vocab = dense_kernel.shape[1]
    x = embedding[ids] if embedding is not None else np.eye(vocab)[ids]
    gate = (lambda v: np.clip(0.2 * v + 0.5, 0, 1)) if hard else (lambda v: 1 / (1 + np.exp(-v)))
    outputs = []
    for kernel, recurrent, bias in lstms:
        hidden = recurrent.shape[0]
        h, c, hs = np.zeros(hidden), np.zeros(hidden), []
        for row in x:
            i, f, g, o = np.split(row @ kernel + h @ recurrent + bias, 4)
            c = gate(f) * c + gate(i) * np.tanh(g)
            h = gate(o) * np.tanh(c)
            hs.append(h)
        x = np.array(hs)
        outputs.append(x)
    logits = x @ dense_kernel + dense_bias
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return outputs, probs / probs.sum(-1, keepdims=True)


@pytest.mark.parametrize("case", ["keras-2.2.4", "keras-2.1.6", "tf.keras-2.4.0"])
def test_keras_2_hdf5_layouts_open_and_match_a_numpy_forward(tmp_path, text_file, case):
    """Standalone Keras 2 and tf.keras 2 name their weights differently; both open, with Keras 2's
    hard_sigmoid where the config says so (or leaves it to Keras < 2.3's default), and the studio's
    next-token distribution on windows and h of every layer over 1,000 steps equal numpy's within 1e-5."""
    weights = keras2_h5(tmp_path / "k2.h5", case, len(CHARS), WINDOW, HIDDEN)
    hard = not case.startswith("tf.")
    network = importer.read(tmp_path / "k2.h5", "keras")
    assert network.hard_sigmoid == ((0.2, 0.5) if hard else None) and network.window == WINDOW
    domain = by_name("text")
    loaded = domain.load(import_cli.import_file(domain, tmp_path / "k2.h5", "keras", tmp_path / "o", vocab_text=text_file))
    assert loaded.card["imported"]["keras_version"] == case.split("-")[-1]
    for window in windows_of(TEXT):  # Keras's predict on a training-length window: from a zero state
        _, expected = numpy_lstm_stack(weights, window, hard)
        scored = domain.score(loaded, "".join(CHARS[k] for k in window))
        got = torch.softmax(torch.tensor(scored.distributions["logits"][-1]), -1).numpy()
        assert np.abs(got - expected[-1]).max() < TOL
    ids = [CHARS.index(ch) for ch in TEXT[:1000]]
    outputs, _ = numpy_lstm_stack(weights, ids, hard)
    with torch.no_grad():
        gates = loaded.model.trace(torch.tensor([ids]))[2]
    for k, expected in enumerate(outputs):
        assert np.abs(gates[k]["h"][0].numpy() - expected).max() < TOL, k
