"""Open a model made elsewhere: a Keras `.keras` / `.h5` file or a PyTorch `state_dict`, read into
the one network shape the studio knows (an embedding or one-hot input, a stack of LSTM layers, a
linear head), which a domain then turns into its own model (the optional contract member
`from_network`).

Nothing here runs code from the file: Keras files are read with `h5py` and the archive's JSON
config (no TensorFlow or Keras at run time), PyTorch files with safetensors or
`torch.load(weights_only=True)`. Whatever does not fit (a GRU, a bidirectional layer, attention,
a truncated file, a whole pickled module) is refused with one sentence naming the layer or field.

Weight layouts. Keras keeps kernel (X, 4H), recurrent_kernel (H, 4H) and one bias (4H), columns
in gate order i, f, c, o: the order of torch's rows i, f, g, o, so torch's W_ih is the kernel
transposed and its two biases are Keras's bias and zeros. A recurrent activation `hard_sigmoid`
is the file's Keras version's: Keras 2 clip(0.2 x + 0.5, 0, 1), Keras 3 relu6(x + 3) / 6 =
clip(x / 6 + 0.5, 0, 1); both are (slope, offset) pairs for studio.lstm_hard.HardSigmoidCore.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# the (slope, offset) of hard_sigmoid as each Keras major version defines it
HARD_SIGMOID = {2: (0.2, 0.5), 3: (1 / 6, 0.5)}
FORMATS = ("keras", "torch")
SUPPORTED = "an Embedding or one-hot input, LSTM layers, Dropout and a Dense head"


class ImportRefused(Exception):
    """The file cannot be opened as a studio model; the message says why in one sentence."""


@dataclass
class Network:
    """A model read from a file, in torch's layout: what a domain builds its model from."""

    embedding: np.ndarray | None  # (V, E); None: the input is one-hot over `input_size` tokens
    input_size: int  # the first LSTM layer's input width (E, or V for one-hot)
    layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per layer (W_ih (4H, X), W_hh (4H, H), b (4H,))
    head_weight: np.ndarray  # (V, H)
    head_bias: np.ndarray  # (V,)
    hard_sigmoid: tuple[float, float] | None = None  # the recurrent activation's (slope, offset); None: sigmoid
    window: int | None = None  # the training window (the input's time steps) when the file says it
    source: dict = field(default_factory=dict)  # format, framework version, file name, sha256

    @property
    def hidden_size(self) -> int:
        return self.layers[0][1].shape[1]

    @property
    def output_size(self) -> int:
        return self.head_weight.shape[0]


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read(path, fmt: str) -> Network:
    """The network in `path` (fmt: keras or torch), or ImportRefused in one sentence."""
    path = Path(path)
    if not path.is_file():
        raise ImportRefused(f"There is no file {path}.")
    if fmt not in FORMATS:
        raise ImportRefused(f"The format {fmt!r} is not one the studio opens; give keras or torch.")
    network = read_keras(path) if fmt == "keras" else read_torch(path)
    network.source.update(file=path.name, sha256=sha256(path))
    check_stack(network)
    return network


def check_stack(network: Network) -> None:
    """Every layer as wide as the first, each reading the one below: the studio's stack has one width."""
    hidden = network.hidden_size
    width = network.input_size
    for k, (w_ih, w_hh, bias) in enumerate(network.layers):
        if w_hh.shape != (4 * hidden, hidden) or w_ih.shape != (4 * hidden, width) or bias.shape != (4 * hidden,):
            raise ImportRefused(f"LSTM layer {k} has {w_hh.shape[1]} units reading {w_ih.shape[1]} values, where the "
                                f"studio's stack needs {hidden} units reading {width}: every layer must be as wide as "
                                "the first.")
        width = hidden
    if network.head_weight.shape[1] != hidden:
        raise ImportRefused(f"The head reads {network.head_weight.shape[1]} values, not the top LSTM layer's "
                            f"{hidden} units.")


# ---------------------------------------------------------------- Keras
def _snake(name: str) -> str:
    """Keras 3's naming.to_snake_case, which names a layer's group in model.weights.h5."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def read_keras(path: Path) -> Network:
    try:
        if zipfile.is_zipfile(path):
            return _read_keras3(path)
        import h5py

        if h5py.is_hdf5(path):
            return _read_keras_h5(path)
    except ImportRefused:
        raise
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, json.JSONDecodeError,
            UnicodeDecodeError) as error:
        raise ImportRefused(f"{path.name} is truncated or is not a Keras model file ({first_line(error)}).") from None
    raise ImportRefused(f"{path.name} is neither a Keras .keras archive nor an HDF5 .h5 file.")


def first_line(error) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]


def _read_keras3(path: Path) -> Network:
    import h5py

    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        for needed in ("config.json", "model.weights.h5"):
            if needed not in names:
                raise ImportRefused(f"{path.name} is not a complete .keras archive: it has no {needed}.")
        config = json.loads(archive.read("config.json"))
        metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    version = str(metadata.get("keras_version", "3"))
    layers = _config_layers(config)
    root = weights["layers"] if "layers" in weights else weights
    seen: dict[str, int] = {}

    def tensors(layer):
        base = _snake(layer["class_name"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        group_name = base if count == 0 else f"{base}_{count}"
        name = layer["config"].get("name", "")
        group = root[group_name] if group_name in root else root[name] if name in root else None
        if group is None:
            raise ImportRefused(f"The weights of layer '{name}' are missing from {path.name}.")
        holder = group["cell"] if "cell" in group else group
        values = holder["vars"]
        return [np.asarray(values[str(k)]) for k in range(len(values))]

    with weights:
        return _network(layers, tensors, version, "keras", path.name)


def _read_keras_h5(path: Path) -> Network:
    import h5py

    with h5py.File(path, "r") as file:
        if "model_config" not in file.attrs:
            raise ImportRefused(f"{path.name} holds only weights (model.save_weights); save the whole model with "
                                "model.save.")
        config = json.loads(file.attrs["model_config"])
        version = file.attrs.get("keras_version", "2")
        version = version.decode() if isinstance(version, bytes) else str(version)
        root = file["model_weights"]

        def tensors(layer):
            name = layer["config"]["name"]
            if name not in root:
                raise ImportRefused(f"The weights of layer '{name}' are missing from {path.name}.")
            group = root[name]
            return [np.asarray(group[n]) for n in _name_list(group, "weight_names")]

        return _network(_config_layers(config), tensors, version, "keras-h5", path.name)


def _name_list(group, attribute: str) -> list[str]:
    """A list of names Keras 2 saved as an attribute (save_attributes_to_hdf5_group): utf-8 bytes, cut
    into `weight_names0`, `weight_names1`, ... where one attribute would pass HDF5's 64 KB header."""
    if attribute in group.attrs:
        values = list(group.attrs[attribute])
    else:
        values, chunk = [], 0
        while f"{attribute}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{attribute}{chunk}"])
            chunk += 1
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in values]


def _config_layers(config) -> list[dict]:
    if isinstance(config, dict) and isinstance(config.get("config"), list):  # Keras 2.0-2.1's Sequential: the list
                                                                             # itself
        return [layer for layer in config["config"] if isinstance(layer, dict)]
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict) or "layers" not in config["config"]:
        kind = config.get("class_name", "?") if isinstance(config, dict) else "?"
        raise ImportRefused(f"The model is a {kind} without a list of layers; the studio opens a Sequential or "
                            "functional model of " + SUPPORTED + ".")
    return [layer for layer in config["config"]["layers"] if isinstance(layer, dict)]


def _network(layers: list[dict], tensors, version: str, fmt: str, file_name: str) -> Network:
    """The network of Keras config layers, reading each layer's weights with `tensors(layer)`."""
    major = 3 if version.startswith("3") else 2
    embedding, input_size, window, stack, head = None, None, None, [], None
    hard = None
    for layer in layers:
        kind, config = layer.get("class_name"), layer.get("config", {})
        name = config.get("name", kind)
        shape = config.get("batch_shape") or config.get("batch_input_shape")
        if shape and len(shape) >= 2 and window is None:
            window = shape[1]
        if kind == "InputLayer":
            if shape and len(shape) == 3:
                input_size = shape[2]
            continue
        if kind == "Dropout":
            continue
        if kind == "Activation" and head is not None and config.get("activation") in ("softmax", "linear"):
            continue  # Keras 2's examples: Dense(len(chars)) then Activation('softmax')
        if head is not None:
            raise ImportRefused(f"The layer '{name}' ({kind}) comes after the Dense head; the studio opens "
                                f"{SUPPORTED}.")
        if kind == "Embedding":
            if stack:
                raise ImportRefused(f"The Embedding '{name}' comes after an LSTM layer.")
            if config.get("mask_zero"):
                raise ImportRefused(f"The Embedding '{name}' masks token 0 (mask_zero), so its LSTM skips steps the "
                                    "studio would read; save the model without mask_zero.")
            (embedding,) = tensors(layer)
            input_size = embedding.shape[1]
        elif kind == "LSTM":
            config = {"recurrent_activation": _default_recurrent(version), **config}
            _check_lstm(name, config, major)
            if config["recurrent_activation"] == "hard_sigmoid":
                hard = HARD_SIGMOID[major]
            if stack and not stack[-1][3]:
                raise ImportRefused(f"The LSTM layer below '{name}' does not return sequences, so '{name}' does not "
                                    "read a sequence.")
            values = tensors(layer)
            kernel, recurrent = values[0], values[1]
            bias = values[2] if len(values) > 2 else np.zeros(kernel.shape[1], kernel.dtype)
            stack.append((kernel.T, recurrent.T, bias, bool(config.get("return_sequences", False))))
        elif kind == "Dense":
            if not stack:
                raise ImportRefused(f"The Dense layer '{name}' comes before any LSTM layer.")
            activation = config.get("activation", "linear")
            if activation not in ("softmax", "linear", None):
                raise ImportRefused(f"The Dense head '{name}' has activation {activation!r}; the studio opens a "
                                    "softmax or linear head.")
            values = tensors(layer)
            head = (values[0].T, values[1] if len(values) > 1 else np.zeros(values[0].shape[1], values[0].dtype))
        else:
            raise ImportRefused(f"The layer '{name}' is a {kind}, which the studio does not open; it opens "
                                f"{SUPPORTED}.")
    if not stack:
        raise ImportRefused(f"{file_name} has no LSTM layer.")
    if head is None:
        raise ImportRefused(f"{file_name} has no Dense head after its LSTM layers.")
    if input_size is None:
        input_size = stack[0][0].shape[1]
    return Network(embedding, input_size, [(w_ih, w_hh, b) for w_ih, w_hh, b, _ in stack], head[0], head[1], hard,
                   window if isinstance(window, int) else None, {"format": fmt, "keras_version": version})


def _default_recurrent(version: str) -> str:
    """The LSTM's recurrent activation when its config does not name one: hard_sigmoid in standalone
    Keras before 2.3 (and Keras 1), sigmoid since."""
    numbers = [int(n) for n in re.findall(r"\d+", version)[:2]] + [0, 0]
    return "hard_sigmoid" if tuple(numbers[:2]) < (2, 3) else "sigmoid"


def _check_lstm(name: str, config: dict, major: int) -> None:
    if config.get("activation", "tanh") != "tanh":
        raise ImportRefused(f"The LSTM layer '{name}' has activation {config['activation']!r}; the studio's cell "
                            "uses tanh.")
    if config.get("recurrent_activation", "sigmoid") not in ("sigmoid", "hard_sigmoid"):
        raise ImportRefused(f"The LSTM layer '{name}' has recurrent activation {config['recurrent_activation']!r}; "
                            "the studio opens sigmoid or hard_sigmoid.")
    if config.get("go_backwards"):
        raise ImportRefused(f"The LSTM layer '{name}' reads its input backwards (go_backwards), which the studio "
                            "does not.")
    if config.get("implementation") not in (None, 0, 1, 2) and major == 2:  # 0: Keras 2.0-2.1's default
        raise ImportRefused(f"The LSTM layer '{name}' has an unknown implementation {config['implementation']!r}.")


# ---------------------------------------------------------------- PyTorch
WHOLE_MODULE = ("this file is a whole pickled module, which the studio will not unpickle (it runs code); "
                "save its weights instead: torch.save(model.state_dict(), 'model.pt')")


def read_torch(path: Path) -> Network:
    tensors = _torch_tensors(path)
    return torch_network(tensors, path.name)


def _torch_tensors(path: Path) -> dict:
    import torch

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise ImportRefused(f"{path.name} is truncated or is not a safetensors file "
                                f"({first_line(error)}).") from None
    with open(path, "rb") as file:
        head = file.read(2)
    # torch.save writes a zip archive (or, with the legacy format, a pickle: protocol byte 0x80)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":
        raise ImportRefused(f"{path.name} is not a PyTorch file (neither torch.save's archive nor a pickle).")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many kinds; every one means "not a state_dict we may read"
        found = re.search(r"(?i)unsupported (?:global: )?GLOBAL ([\w.]+)", str(error))
        if found:
            name = found.group(1)
            if name.startswith("torch.nn.modules") or name.rsplit(".", 1)[-1][:1].isupper():
                raise ImportRefused(f"{path.name}: {WHOLE_MODULE}.") from None
            raise ImportRefused(f"{path.name} would call {name} when unpickled, which the studio will not do (loading "
                                "it could run code); save the model's state_dict instead.") from None
        if "Weights only load failed" in str(error):
            raise ImportRefused(f"{path.name} holds Python objects besides tensors, which the studio will not unpickle "
                                "(loading them could run code); save the model's state_dict instead.") from None
        raise ImportRefused(f"{path.name} is truncated or is not a PyTorch state_dict ({first_line(error)}).") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ImportRefused(f"{path.name} is not a state_dict (a dict of tensors); save model.state_dict().")
    return {k: v.detach().float().numpy() for k, v in loaded.items()}


def torch_network(tensors: dict, file_name: str = "the file") -> Network:
    """Embedding + nn.LSTM + Linear from a state_dict's tensors, whatever the modules are called."""
    if any(re.search(r"weight_hr_l\d+$", key) for key in tensors):
        raise ImportRefused("The LSTM projects its output (proj_size, 'weight_hr' weights), which the studio does "
                            "not open.")
    if any(key.endswith("_reverse") for key in tensors):
        raise ImportRefused("The LSTM is bidirectional (it has '_reverse' weights), which the studio does not open.")
    lstm = {}
    for key in tensors:
        match = re.fullmatch(r"(.*?)(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)", key)
        if match:
            lstm.setdefault(match.group(1), {})[(match.group(2), int(match.group(3)))] = tensors[key]
    if len(lstm) != 1:
        raise ImportRefused(f"{file_name} has {'no' if not lstm else len(lstm)} nn.LSTM modules; the studio opens "
                            "one Embedding, one nn.LSTM and one Linear.")
    (prefix, weights), = lstm.items()
    count = max(layer for _, layer in weights) + 1
    layers = []
    for k in range(count):
        w_ih, w_hh = weights.get(("weight_ih", k)), weights.get(("weight_hh", k))
        if w_ih is None or w_hh is None:
            raise ImportRefused(f"Layer {k} of the LSTM '{prefix.rstrip('.')}' lacks its weights.")
        hidden = w_hh.shape[1]
        if w_hh.shape[0] != 4 * hidden:
            gates = w_hh.shape[0] / hidden
            kind = "a GRU" if gates == 3 else "not an LSTM"
            raise ImportRefused(f"The recurrent layer '{prefix.rstrip('.')}' has {gates:g} gate blocks per unit "
                                f"({kind}); "
                                "the studio opens LSTM layers.")
        bias = (weights.get(("bias_ih", k), np.zeros(4 * hidden, np.float32))
                + weights.get(("bias_hh", k), np.zeros(4 * hidden, np.float32)))
        layers.append((w_ih, w_hh, bias))
    hidden = layers[0][1].shape[1]
    others = {k: v for k, v in tensors.items() if not k.startswith(prefix) or prefix == ""}
    others = {k: v for k, v in others.items() if not re.fullmatch(r".*(weight_ih|weight_hh|bias_ih|bias_hh)_l\d+", k)}
    heads = [k[: -len("weight")] for k, v in others.items()
             if k.endswith("weight") and v.ndim == 2 and v.shape[1] == hidden
             and k[: -len("weight")] + "bias" in others]
    embeddings = [k for k, v in others.items() if k.endswith("weight") and v.ndim == 2
                  and v.shape[1] == layers[0][0].shape[1]
                  and k[: -len("weight")] + "bias" not in others]
    if not embeddings and len(heads) == 1 and others[heads[0] + "weight"].shape[1] == layers[0][0].shape[1]:
        embeddings = [heads[0] + "weight"]  # tied weights saved under the decoder's name only (safetensors' save_model)
    if len(embeddings) != 1:
        raise ImportRefused(f"{file_name} has {len(embeddings) or 'no'} embedding tables of width "
                            f"{layers[0][0].shape[1]}; "
                            "the studio opens one Embedding feeding the LSTM.")
    embedding = others[embeddings[0]]
    if heads:
        head_weight, head_bias = others[heads[0] + "weight"], others[heads[0] + "bias"]
    else:  # tied weights: a saved module whose decoder.weight is the encoder's writes only the bias
        biases = [k for k, v in others.items() if k.endswith("bias") and v.shape == (embedding.shape[0],)]
        if not biases or embedding.shape[1] != hidden:
            raise ImportRefused(f"{file_name} has no Linear head reading the LSTM's {hidden} units.")
        head_weight, head_bias = embedding, others[biases[0]]
    return Network(embedding, embedding.shape[1], layers, head_weight, head_bias, None, None, {"format": "torch"})
