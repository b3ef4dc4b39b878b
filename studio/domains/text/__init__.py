"""Text: a character-level LSTM (char-rnn). The package exposes the contract
(studio.domains.base) and nothing else; internals are imported from their modules: codec.py
(characters <-> tokens), model.py (the network, load/save), data.py (files, the split, the model's
own references), train.py (the training task), evaluate.py (nats/char, score, features, the tiny
model and example), generate.py (sampling), render.py (painted characters, files), cli.py and
tab.py (imported by the CLI and the app only)."""

from studio import checkpoint
from studio.domains.text.data import read_input, references, sequence_from_text
from studio.domains.text.evaluate import (
    CUSTOM_FEATURE_HINT,
    custom_feature,
    example,
    explainable,
    fast_probe,
    feature_names,
    features,
    fused,
    score,
    tiny,
    trace_chunks,
)
from studio.domains.text.generate import TOKENS, WORKER_LANE, TextSettings, generate, generate_batch
from studio.domains.text.model import NAME, from_network, load, save
from studio.domains.text.render import sequence_of, track, write_files
from studio.domains.text.train import TRAINING

TITLE = "Text"
DEFAULT_MODEL = checkpoint.MODELS_DIR / "shakespeare-char"
Settings = TextSettings

# the contract: studio.domains.base.REQUIRED and the OPTIONAL members this domain has
__all__ = ["NAME", "TITLE", "DEFAULT_MODEL", "Settings", "TRAINING", "load", "save", "read_input", "score", "generate",
           "features", "write_files", "fused", "tiny", "example", "explainable", "track", "sequence_of",
           "CUSTOM_FEATURE_HINT", "custom_feature", "references", "TOKENS", "trace_chunks", "fast_probe",
           "feature_names", "sequence_from_text", "generate_batch", "WORKER_LANE", "from_network"]
