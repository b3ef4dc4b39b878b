"""Speech: text -> log-mel frames with an attention LSTM decoder, audio via Griffin-Lim; and a frame
LSTM that continues a recording. The package exposes the contract (studio.domains.base) and
DEFAULT_FRAME_MODEL (the frame LSTM `generate --continue` uses); internals are imported from their
modules: codec.py (log-mel features, the text alphabet, the trace format), model.py (SpeechModel,
FrameModel, load/save), data.py (recordings, the espeak-ng corpus, read_input), train.py (the
training tasks), evaluate.py (MCD, score, fused, features, the frames divergence, the tiny model
and example), generate.py (speak / continue), render.py (spectrogram and alignment figures,
files), cli.py and tab.py (imported by the CLI and the app only).

`generate(loaded, settings)` goes by the model's kind: a text-to-mel model takes SpeechSettings
(`Settings`), a frame LSTM takes ContinueSettings (with the recording)."""

from studio import checkpoint
from studio.domains.speech.data import read_input
from studio.domains.speech.evaluate import example, explainable, features, fused, score, step_divergence, tiny
from studio.domains.speech.generate import SpeechSettings, generate
from studio.domains.speech.model import NAME, load, save
from studio.domains.speech.render import sequence_of, track, write_files
from studio.domains.speech.train import TRAINING

TITLE = "Speech"
DEFAULT_MODEL = checkpoint.MODELS_DIR / "espeak-tts"
DEFAULT_FRAME_MODEL = checkpoint.MODELS_DIR / "espeak-frames"
Settings = SpeechSettings

# the contract: studio.domains.base.REQUIRED and the OPTIONAL members this domain has
__all__ = ["NAME", "TITLE", "DEFAULT_MODEL", "Settings", "TRAINING", "load", "save", "read_input", "score", "generate",
           "features", "write_files", "fused", "tiny", "example", "explainable", "track", "sequence_of",
           "step_divergence", "DEFAULT_FRAME_MODEL"]
