"""The contract every domain implements, so the app, the CLI, the benches and the analyses to come
(saliency, probes, interventions) treat text, music, handwriting and speech alike.

A domain is a package `studio/domains/<name>/` with the same files in each (codec, model, data,
train, evaluate, generate, render, cli, tab); its `__init__` exposes the module-level surface
below (`Domain`), and never imports `tab.py` (gradio) or `cli.py`.

The two pictures of a sequence that every analysis needs:
- `score(loaded, sequence) -> Scored`: the model read over a sequence in the domain's own format
  (text, MIDI frames, pen strokes with their transcript, log-mel frames), teacher-forced, with the
  exact Trace and per step the model's prediction of the next step.
- `generate(loaded, settings, hooks) -> Generation`: sampling through the model's own `step`, with
  the same per-step predictions, and hooks that may read or replace any layer's gates, c or h
  (studio.lstm's Hook; the layer numbers are the Trace's).

Per-step predictions (`distributions`) are named arrays whose first axis is the trace's steps:
row t is what the model predicted for step t+1 after reading step t (text and music: "logits";
handwriting: the mixture's parameters; speech: the next frames and the stop probability).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from studio import experiments
from studio.lstm import Hook
from studio.trace import Trace

# What every caller relies on; tests/test_contract.py checks every domain provides each.
REQUIRED = ("NAME", "TITLE", "DEFAULT_MODEL", "Settings", "TRAINING", "load", "save", "read_input", "score", "generate",
            "features", "write_files", "fused", "tiny", "example", "explainable", "track", "sequence_of")

# What a domain may do differently, with the default every other domain gets (module attribute ->
# default). `studio.domains.member(domain, name)` reads a member through this table, so shared code
# never asks which domain it holds and never loses a feature silently to a missing attribute.
#   custom_feature(sequence, name) -> per-step track or None: a feature named by the user (text: a regex)
#   CUSTOM_FEATURE_HINT: how the experiments panel invites a custom feature ("" = only the listed ones)
#   references(loaded) -> [Reference]: long inputs of the model's own (text: its validation text)
#   step_divergence(plain, changed) -> (per-step values or None, what they measure): two generations'
#       next-step predictions (their `distributions`) compared (default: KL of the softmax over "logits")
#   TOKENS: outputs are discrete tokens (an intervention's first divergence is where sampled tokens
#       differ; otherwise where the prediction first moves)
#   trace_chunks(loaded, sequence) -> (the sequence as the model reads it, iterator of (Trace, part)): a
#       long input read in pieces, the state carried over (None: read whole)
#   fast_probe(loaded, read, track, top, progress=None) -> hits: a probe over trace_chunks' reading faster
#       than the exact chunked one (None: the exact one); progress(fraction) hears the steps read so far
#   feature_names(loaded) -> [names]: the feature tracks `features` gives for what this model reads (text:
#       a word model's differ from a character model's); None: those of the domain's example
#   sequence_from_text(text) -> sequence, or None: an API call's plain-text input (text: the text itself)
#   generate_batch(loaded, [settings]) -> [Generation], or None: several requests stepped together
#   WORKER_LANE: worker processes of its own for batched generation (0 = the shared pool)
OPTIONAL = {
    "custom_feature": None,
    "CUSTOM_FEATURE_HINT": "",
    "references": None,
    "step_divergence": experiments.step_divergence,
    "TOKENS": False,
    "trace_chunks": None,
    "fast_probe": None,
    "feature_names": None,
    "sequence_from_text": None,
    "generate_batch": None,
    "WORKER_LANE": 0,
    # from_network(network, vocabulary, tokens) -> (model, codec, card fields): the domain's model of a
    # network read from a Keras or PyTorch file (studio.importer); None: the tab opens no outside models
    "from_network": None,
    # summary_of(generation) -> str: the output in words for the library (search, the Library tab) where
    # the trace's labels are not the output (a forecast's labels are dates); None: the labels
    "summary_of": None,
}


@dataclass(frozen=True)
class Reference:
    """A long input a model offers for the probe and the pattern match (a text model's validation text)."""

    label: str  # what the menu shows
    value: str  # the menu's value
    read: Callable[[], Any]  # -> the sequence (read when chosen: it may be a large file)


@dataclass(frozen=True)
class Training:
    """How a domain trains from a user's files: what `python -m studio train DOMAIN --data ...`, the
    Train tab and studio.jobs rely on (studio.jobs keeps no list of its own)."""

    suffixes: frozenset[str]  # file types the user's data may be, lower case with the dot (zips are opened)
    what: str  # the data in words, for messages and the tab ("text files", "stroke files with transcripts")
    prepare: Callable[[list[Path], Path], tuple[list[Path], list[dict]]]  # (files, work folder) ->
    #   (what --data is given, {"name", "bytes", "sha256"} per file read); ValueError with a sentence
    shape_flags: Callable[[tuple[int, int, int]], list[str]]  # (hidden, layers, embed) of a size preset -> CLI flags
    corpora: tuple[str, ...] = ()  # shipped corpus files (in the data folder) the tab offers
    hint: str = ""  # the Train tab's upload label: what to upload, in words (default: `what`)
    drawn: Callable[[Any, Path], Path] | None = None  # (drawing pad value, folder) -> a data file: the tab offers the
                                                      # pad
    recorded: Callable[[Any, str, Path], list[Path]] | None = None  # ((rate, samples), transcript, folder) -> data
    #   files: the tab offers the microphone


def describe(path: Path) -> dict:
    """{"name", "bytes", "sha256"} of a file a model learnt from (its card lists them)."""
    data = Path(path).read_bytes()
    return {"name": Path(path).name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@dataclass
class LoadedModel:
    """A model ready to run: the module (eval mode, on its device), its codec and its card."""

    name: str  # the checkpoint's stem name, as the model lists show it
    model: torch.nn.Module
    codec: Any  # the domain's codec object, rebuilt from the card
    card: dict  # the model card (studio.checkpoint.CARD_FIELDS)
    layer_names: list[str] = field(default_factory=list)  # the trace's layers, bottom first ("layer 0", "attention")
    summary: str = ""  # one line for the model header: shape, vocabulary, headline metric
    stem: Path | None = None  # the checkpoint it was read from, where the caller knows it (the library records it)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@dataclass
class Scored:
    """A teacher-forced pass over a sequence."""

    trace: Trace  # exact gates of every layer at every step
    distributions: dict[str, np.ndarray]  # per step (first axis = trace.steps) the prediction of the next step
    sequence: Any = None  # the sequence as the model read it (after the codec dropped what it cannot read)
    notes: list[str] = field(default_factory=list)  # what was adjusted, in plain words


@dataclass
class Generation:
    """What `generate` made."""

    result: Any  # the domain's result record: the output in its own format plus `notes` for the user
    trace: Trace
    distributions: dict[str, np.ndarray]  # per step of the trace, as in Scored
    settings: Any = None  # what it was made with (an experiment makes it again, changed)


@dataclass
class View:
    """What the viewer shows of a trace: one layer, one unit painted on the output by one quantity,
    heatmap rows in one order. Every tab reads the same record."""

    layer: int = 0
    unit: int = 0
    quantity: str = "tanh_c"  # a key of studio.trace.QUANTITY_TITLES
    order: str = "variance"  # studio.analysis.ORDERINGS


@runtime_checkable
class Domain(Protocol):
    """What `studio.domains.<name>` exposes (a module satisfies it; tests check every entry of ALL)."""

    NAME: str  # "text": the CLI's word and the card's domain
    TITLE: str  # the tab's title
    DEFAULT_MODEL: Path  # the shipped checkpoint stem the CLI uses when --model is not given
    Settings: type  # the generation settings dataclass (defaults = the tab's defaults), with one `seed` field
    TRAINING: Training  # how it trains from a user's files

    def load(self, stem, device="cpu") -> LoadedModel: ...

    def save(self, stem, model: torch.nn.Module, codec: Any, card: dict) -> Path: ...

    def read_input(self, path, loaded: LoadedModel) -> Any:
        """A file in the domain's format -> the sequence `score` reads (raises ValueError with a
        sentence for the user when the file cannot be read)."""

    def score(self, loaded: LoadedModel, sequence: Any) -> Scored: ...

    def generate(self, loaded: LoadedModel, settings: Any, hooks: Sequence[Hook] | None = None) -> Generation: ...

    def features(self, sequence: Any, scored: Scored | None = None) -> dict[str, np.ndarray]:
        """Named per-step tracks, one value per step of score(loaded, sequence).trace. Tracks that
        need the model (a window position) come from `scored` and are left out without it."""

    def write_files(self, generation: Generation, folder: Path) -> dict[str, Path]:
        """The downloads of one generation ({label: path}; the trace .npz is written by the caller)."""

    def fused(self, loaded: LoadedModel, sequence: Any) -> dict[str, np.ndarray]:
        """score's distributions computed by the model's training forward (no trace), to check score."""

    def tiny(self, seed: int = 0) -> tuple[torch.nn.Module, Any]:
        """(model, codec): a small random model of the domain's main kind, for tests."""

    def example(self) -> tuple[Any, Any]:
        """(sequence, settings): a short input for score and short settings for generate (tests, docs)."""

    def explainable(self, loaded: LoadedModel, sequence: Any) -> tuple[Scored, Any]:
        """(scored, studio.explain's view of the model over `sequence`): what "ask why" needs."""

    def track(self, generation: Generation) -> dict:
        """The viewer's strip for a generation (kind "text", "roll", "pen", ... and its data)."""

    def sequence_of(self, generation: Generation) -> Any:
        """A generation's output as the sequence `score` reads (to read it again, teacher-forced)."""


def missing_parts(domain) -> list[str]:
    """The names of REQUIRED that a domain module lacks (empty when it keeps the contract)."""
    return [name for name in REQUIRED if not hasattr(domain, name)]
