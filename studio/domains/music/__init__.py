"""Music: an LSTM over piano-roll frames written as pitch tokens (Bach chorales). The package
exposes the contract (studio.domains.base) and nothing else; internals are imported from their
modules: codec.py (frames <-> tokens, the valid-next rule), model.py (the network, load/save),
data.py (MIDI / score / corpus primers, the JSB JSON), train.py (the training task), evaluate.py
(NLL per frame, score, features, the tiny model and example), generate.py (sampling), render.py
(piano roll, MIDI, audio), cli.py and tab.py (imported by the CLI and the app only)."""

from studio import checkpoint
from studio.domains.music.data import read_input
from studio.domains.music.evaluate import example, explainable, features, fused, score, tiny
from studio.domains.music.generate import TOKENS, MusicSettings, generate
from studio.domains.music.model import NAME, load, save
from studio.domains.music.render import sequence_of, track, write_files
from studio.domains.music.train import TRAINING

TITLE = "Music (MIDI)"
DEFAULT_MODEL = checkpoint.MODELS_DIR / "jsb-chorales-quarter"
Settings = MusicSettings

# the contract: studio.domains.base.REQUIRED and the OPTIONAL members this domain has
__all__ = ["NAME", "TITLE", "DEFAULT_MODEL", "Settings", "TRAINING", "load", "save", "read_input", "score", "generate",
           "features", "write_files", "fused", "tiny", "example", "explainable", "track", "sequence_of", "TOKENS"]
