"""What a library record holds, built from any domain's generation through the contract alone.

- settings: the Settings dataclass as tagged JSON (`encode_settings`). Arrays in it (a primer's
  strokes, a recording) are kept as .npy input files named by their sha256 and put back on replay;
  a field named in `input_files` (a style file, an uploaded MIDI) is kept as that file.
- seed: `settings.seed` (or a nested dataclass's `seed`, for settings that keep it there).
- prompt: what the user typed: the first string field of the settings in the dataclass's order.
- output: the generated steps' labels (the trace's labels from max(shown_from, prompt_length) on),
  joined without a space when each is one character, else with one; labels that repeat for most
  steps are an alignment (the character a pen point or a frame attends to) and are collapsed to runs;
  a visible-space glyph ␣ is read as a space.
- content hash: "reproduces exactly" means the same domain, the same output sequence
  (`sequence_of(generation)`: every string, integer and float array bit for bit) and the same
  output labels. Files are rendered from those, so they are not part of the hash (a PNG's bytes
  change with the renderer's version, the output does not).
- embedding: the top layer's mean hidden state over the output steps, unit length ("more like this").
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import studio

ARRAY_TAG, TUPLE_TAG, DATACLASS_TAG, LIST_TAG, PATH_TAG, FILE_TAG = ("__array__", "__tuple__", "__dataclass__",
                                                                    "__list__", "__path__", "__file__")
SETTINGS_MODULES = "studio."  # settings classes are rebuilt only from the studio's own modules


@dataclass
class Record:
    """One generation as the store keeps it (the store adds id, owner, rating, tags, note, count)."""

    domain: str
    model: str  # the model's name
    model_stem: str  # where its checkpoint was loaded from (STEM.safetensors + STEM.json)
    weights_sha256: str  # of STEM.safetensors
    settings_type: str  # module.QualName of the settings dataclass
    settings: str  # encode_settings JSON
    seed: int | None
    prompt: str
    output: str
    content_hash: str
    duration: float | None  # seconds the generation took, when the caller measured it
    version: str = studio.__version__
    embedding: np.ndarray | None = None  # (H,) float32 unit vector, or None
    blobs: dict[str, bytes] = dataclasses.field(default_factory=dict)  # sha256 -> .npy bytes of arrays in the settings
    inputs: dict[str, Path] = dataclasses.field(default_factory=dict)  # field -> an input file the settings named
    kind: str = "generation"  # schema.KINDS: a generation, a trained model or a lab run


# ---------------------------------------------------------------- settings <-> JSON
def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def encode_settings(settings, input_files: dict[str, Any] | None = None) -> tuple[str, dict[str, bytes]]:
    """(JSON, {sha256: npy bytes}) for a settings dataclass. A top-level field named in input_files
    is written as a reference to that kept file instead of its value."""
    blobs: dict[str, bytes] = {}
    input_files = input_files or {}

    def encode(value):
        if isinstance(value, (bool, int, float, str)) or value is None:
            return value
        if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
            value = value.detach().cpu().numpy()
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            data = _npy(value)
            sha = hashlib.sha256(data).hexdigest()
            blobs[sha] = data
            return {ARRAY_TAG: sha, "dtype": str(value.dtype), "shape": list(value.shape)}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {DATACLASS_TAG: _qualname(type(value)),
                    "fields": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
        if isinstance(value, Path):
            return {PATH_TAG: str(value)}
        if isinstance(value, tuple):
            return {TUPLE_TAG: [encode(v) for v in value]}
        if isinstance(value, list):
            items = [encode(v) for v in value]
            if type(value) is list:
                return items
            # a list subclass (a primer that also keeps its source and notes): items and attributes
            return {LIST_TAG: _qualname(type(value)), "items": items,
                    "attrs": {k: encode(v) for k, v in sorted(vars(value).items())}}
        if isinstance(value, dict):
            return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
        raise TypeError(f"cannot keep a setting of type {type(value).__name__}")

    fields = {}
    for f in dataclasses.fields(settings):
        if f.name in input_files and getattr(settings, f.name) is not None:
            fields[f.name] = {FILE_TAG: f.name}
        else:
            fields[f.name] = encode(getattr(settings, f.name))
    tree = {DATACLASS_TAG: _qualname(type(settings)), "fields": fields}
    return json.dumps(tree, sort_keys=True, ensure_ascii=False, allow_nan=True), blobs


def _qualname(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _class(name: str):
    module, _, qualname = name.partition(":")
    if not module.startswith(SETTINGS_MODULES):
        raise ValueError(f"the record names a settings class outside the studio ({name})")
    target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def decode_settings(text: str, read_blob, input_paths: dict[str, Path] | None = None) -> tuple[Any, list[str]]:
    """(settings, notes) from encode_settings' JSON. read_blob(sha) -> npy bytes; input_paths: field ->
    where its kept file is now. A stored field the class no longer has moves up to the enclosing
    settings when that has a field of the name (a seed moved from a nested config to the top), else
    it is dropped with a note; a field the class has gained keeps its default."""
    notes: list[str] = []
    input_paths = input_paths or {}

    def decode(value, top_field=None):
        if isinstance(value, list):
            return [decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if ARRAY_TAG in value:
            return np.load(io.BytesIO(read_blob(value[ARRAY_TAG])), allow_pickle=False)
        if FILE_TAG in value:
            return str(input_paths[value[FILE_TAG]])
        if PATH_TAG in value:
            return Path(value[PATH_TAG])
        if TUPLE_TAG in value:
            return tuple(decode(v) for v in value[TUPLE_TAG])
        if "__dict__" in value:
            return {decode(k): decode(v) for k, v in value["__dict__"]}
        if LIST_TAG in value:
            cls = _class(value[LIST_TAG])
            obj = cls.__new__(cls)
            list.__init__(obj, [decode(v) for v in value["items"]])
            obj.__dict__.update({k: decode(v) for k, v in value["attrs"].items()})
            return obj
        if DATACLASS_TAG in value:
            return build(_class(value[DATACLASS_TAG]), value["fields"])[0]
        return {k: decode(v) for k, v in value.items()}

    def build(cls, stored: dict) -> tuple[Any, dict]:
        """(instance, stored fields it has no place for) of dataclass cls."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        kwargs, leftover = {}, {}
        for name, raw in stored.items():
            if isinstance(raw, dict) and DATACLASS_TAG in raw and name in names:
                kwargs[name], extra = build(_class(raw[DATACLASS_TAG]), raw["fields"])
                leftover.update(extra)
            elif name in names:
                kwargs[name] = decode(raw)
            else:
                leftover[name] = decode(raw)
        for name in list(leftover):
            if name in names and name not in stored:
                kwargs[name] = leftover.pop(name)
        return cls(**kwargs), leftover

    tree = json.loads(text)
    settings, leftover = build(_class(tree[DATACLASS_TAG]), tree["fields"])
    notes += [f"the setting '{name}' no longer exists and was left out" for name in leftover]
    return settings, notes


def plain_settings(text: str):
    """encode_settings' JSON as plain JSON for people and datasets: a dataclass as its fields, an array
    as {"array": sha256, "shape": [...]}, a kept file as {"file": field}."""

    def plain(value):
        if isinstance(value, list):
            return [plain(v) for v in value]
        if not isinstance(value, dict):
            return value
        if ARRAY_TAG in value:
            return {"array": value[ARRAY_TAG], "shape": value["shape"], "dtype": value["dtype"]}
        if FILE_TAG in value:
            return {"file": value[FILE_TAG]}
        if PATH_TAG in value:
            return value[PATH_TAG]
        if TUPLE_TAG in value:
            return [plain(v) for v in value[TUPLE_TAG]]
        if LIST_TAG in value:
            return [plain(v) for v in value["items"]]
        if "__dict__" in value:
            return {str(plain(k)): plain(v) for k, v in value["__dict__"]}
        if DATACLASS_TAG in value:
            return {name: plain(v) for name, v in value["fields"].items()}
        return {k: plain(v) for k, v in value.items()}

    return plain(json.loads(text))


def seed_of(settings) -> int | None:
    """settings.seed, else the seed of a nested settings dataclass (None when there is none)."""
    if hasattr(settings, "seed"):
        return int(settings.seed)
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value) and hasattr(value, "seed"):
            return int(value.seed)
    return None


def prompt_of(settings, input_files=None) -> str:
    """The first string field of the settings (what the user typed), "" when there is none."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, str) and f.name not in (input_files or {}):
            return value
    return ""


# ---------------------------------------------------------------- output, hash, embedding
def output_start(trace) -> int:
    return min(max(trace.shown_from, trace.prompt_length), trace.steps)


def output_text(trace) -> str:
    # "␣" (U+2423) is the usual glyph for a space shown as a label; as a space again it splits words for search
    labels = [str(label).replace("\u2423", " ") for label in trace.labels[output_start(trace):]]
    if not labels:
        return ""
    repeats = sum(a == b for a, b in zip(labels, labels[1:], strict=False))
    if repeats * 2 > len(labels):  # an alignment, one label per point or frame: runs
        labels = [label for k, label in enumerate(labels) if k == 0 or label != labels[k - 1]]
    if all(len(label) == 1 for label in labels):
        return "".join(labels)
    return " ".join(labels)


def output_of(domain, generation) -> str:
    """The output as text: the domain's summary_of where it has one (a forecast in words and numbers),
    else the generated steps' labels (output_text)."""
    from studio.domains import member

    summary = member(domain, "summary_of")
    return summary(generation) if summary is not None else output_text(generation.trace)


def _canonical(value, out: list) -> None:
    """Append an unambiguous byte form of value (type tag, length, content) to out."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()
    if value is None:
        out.append(b"N")
    elif isinstance(value, bool):
        out.append(b"B1" if value else b"B0")
    elif isinstance(value, (int, np.integer)):
        out.append(b"I" + str(int(value)).encode() + b";")
    elif isinstance(value, (float, np.floating)):
        out.append(b"F" + struct.pack("<d", float(value)))
    elif isinstance(value, str):
        data = value.encode()
        out.append(b"S%d:" % len(data) + data)
    elif isinstance(value, bytes):
        out.append(b"Y%d:" % len(value) + value)
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        header = f"A{array.dtype.str}{array.shape}:".encode()
        out.append(header + array.tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        out.append(b"D" + type(value).__name__.encode() + b"{")
        for f in dataclasses.fields(value):
            _canonical(f.name, out)
            _canonical(getattr(value, f.name), out)
        out.append(b"}")
    elif isinstance(value, (list, tuple)):  # a list subclass counts as its items
        out.append(b"L%d[" % len(value))
        for item in value:
            _canonical(item, out)
        out.append(b"]")
    elif isinstance(value, dict):
        out.append(b"M%d{" % len(value))
        for key in sorted(value, key=str):
            _canonical(str(key), out)
            _canonical(value[key], out)
        out.append(b"}")
    else:
        raise TypeError(f"cannot hash an output of type {type(value).__name__}")


def content_hash(domain, generation) -> str:
    """sha256 of the domain's name, the output sequence and the output labels (see the module doc)."""
    parts: list[bytes] = []
    _canonical(domain.NAME, parts)
    _canonical(domain.sequence_of(generation), parts)
    _canonical([str(label) for label in generation.trace.labels[output_start(generation.trace):]], parts)
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def embedding_of(trace) -> np.ndarray | None:
    """The top layer's mean hidden state over the output steps, unit length (None without steps)."""
    if not trace.layers or "h" not in trace.layers[-1]:
        return None
    hidden = np.asarray(trace.layers[-1]["h"], dtype=np.float32)
    start = output_start(trace)
    hidden = hidden[start:] if start < len(hidden) else hidden
    if hidden.size == 0:
        return None
    vector = hidden.reshape(len(hidden), -1).mean(axis=0)
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else None


# ---------------------------------------------------------------- weights
_WEIGHT_HASHES: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256: a model file is hashed once


def weights_path(stem) -> Path:
    from studio import checkpoint

    return checkpoint.paths(stem)[0]


def weights_sha256(stem) -> str:
    path = weights_path(stem)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _WEIGHT_HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        _WEIGHT_HASHES[key] = digest.hexdigest()
    return _WEIGHT_HASHES[key]


def find_stem(domain, loaded) -> Path:
    """Where a loaded model came from, when the caller did not say (ValueError when no folder holds it)."""
    name = loaded.name or loaded.card.get("name", "")
    stem = stem_by_name(domain, name)
    if stem is None:
        raise ValueError(f"cannot tell which checkpoint the model {name!r} was loaded from; pass its stem")
    return stem


def stem_by_name(domain, name: str) -> Path | None:
    """The checkpoint named `name` in the shipped models folder, the user models folder or beside the
    domain's default, else None."""
    from studio import checkpoint, owners

    for folder in (checkpoint.MODELS_DIR, owners.user_models_dir(), Path(domain.DEFAULT_MODEL).parent):
        stem = Path(folder) / name
        if name and weights_path(stem).exists():
            return stem
    return None


def build_record(domain, loaded, settings, generation, stem=None, input_files=None, duration=None) -> Record:
    """The record of one generation (no files yet: the store copies them in)."""
    stem = Path(stem) if stem is not None else find_stem(domain, loaded)
    input_files = {name: Path(path) for name, path in (input_files or {}).items() if path is not None}
    settings_json, blobs = encode_settings(settings, input_files)
    return Record(
        domain=domain.NAME, model=loaded.name or loaded.card.get("name", ""), model_stem=str(Path(stem).resolve()),
        weights_sha256=weights_sha256(stem), settings_type=_qualname(type(settings)), settings=settings_json,
        seed=seed_of(settings), prompt=prompt_of(settings, input_files), output=output_of(domain, generation),
        content_hash=content_hash(domain, generation), duration=duration, embedding=embedding_of(generation.trace),
        blobs=blobs, inputs=input_files)
