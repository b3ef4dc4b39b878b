"""Text: a character-level LSTM (char-rnn). The contract (studio.domains.base) in one place:
codec.py (characters <-> tokens), model.py (the network, load/save), data.py (files, split,
features), train.py (the training task), evaluate.py (nats/char, score), generate.py (sampling),
render.py (painted characters), cli.py and tab.py (imported by the CLI and the app only)."""

from studio import checkpoint
from studio.domains.text.codec import TextCodec
from studio.domains.text.data import example, features, read_input, split_train_val, tiny
from studio.domains.text.evaluate import explainable, fused, nats_per_char, score, trace_chunks
from studio.domains.text.generate import (
           MAX_LENGTH,
           MAX_PROMPT,
           TextResult,
           TextSettings,
           clean_settings,
           generate,
           generate_batch,
)
from studio.domains.text.model import NAME, TextModel, TextModelConfig, load, make_card, save
from studio.domains.text.render import render, render_html, sequence_of, track, write_files
from studio.domains.text.train import TRAINING, TextBatch, TextTask

TITLE = "Text"
DEFAULT_MODEL = checkpoint.MODELS_DIR / "shakespeare-char"
Settings = TextSettings

__all__ = ["TRAINING", "NAME", "TITLE", "DEFAULT_MODEL", "Settings", "TextCodec", "TextModel", "TextModelConfig", "TextSettings",
           "TextResult", "TextBatch", "TextTask", "MAX_LENGTH", "MAX_PROMPT", "load", "save", "make_card", "read_input",
           "score", "generate", "generate_batch", "features", "render", "render_html", "track", "write_files", "nats_per_char", "split_train_val",
           "clean_settings", "tiny", "example", "fused", "explainable", "sequence_of", "trace_chunks"]
