"""Handwriting: Graves (2013) pen-stroke LSTMs, a synthesis network that writes a text through a
soft attention window and a prediction network that scribbles. The package exposes the contract
(studio.domains.base) and nothing else; internals are imported from their modules: codec.py
(strokes <-> offsets, the alphabet, the sample and trace records), model.py (mixture density
output, PredictionModel, SynthesisModel, load/save), data.py (stroke-file importers, the
Hershey-font corpus, read_input), train.py (the training task), evaluate.py (NLL per point,
finishing rate, score, fused, features, the mixture divergence, the tiny model and example),
generate.py (writing and scribbling), render.py (SVG, PNG, figures), cli.py and tab.py (imported
by the CLI and the app only).

`score` reads a `Handwriting(strokes, text)` sample teacher-forced; `generate` takes
HandwritingSettings (`Settings`) and goes by the model's kind (card `kind`: "synthesis" or
"prediction")."""

from studio import checkpoint
from studio.domains.handwriting.data import read_input
from studio.domains.handwriting.evaluate import example, explainable, features, fused, score, step_divergence, tiny
from studio.domains.handwriting.generate import HandwritingSettings, generate
from studio.domains.handwriting.model import NAME, load, save
from studio.domains.handwriting.render import sequence_of, track, write_files
from studio.domains.handwriting.train import TRAINING

TITLE = "Handwriting"
DEFAULT_MODEL = checkpoint.MODELS_DIR / "print-cursive-styled"  # the rule: docs/handwriting.md
Settings = HandwritingSettings

# the contract: studio.domains.base.REQUIRED and the OPTIONAL members this domain has
__all__ = ["NAME", "TITLE", "DEFAULT_MODEL", "Settings", "TRAINING", "load", "save", "read_input", "score", "generate",
           "features", "write_files", "fused", "tiny", "example", "explainable", "track", "sequence_of",
           "step_divergence"]
