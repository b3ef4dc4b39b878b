"""Music: an LSTM over piano-roll frames written as pitch tokens (Bach chorales). The contract
(studio.domains.base) in one place: codec.py (frames <-> tokens, the valid-next rule), model.py
(the network, load/save), data.py (MIDI / score / corpus primers, the JSB JSON),
train.py (the training task), evaluate.py (NLL per frame, score, features), generate.py (sampling),
render.py (piano roll, MIDI, audio), cli.py and tab.py (imported by the CLI and the app only)."""

from studio import checkpoint
from studio.domains.music.codec import MusicTraceDetail, PitchCodec, note_name
from studio.domains.music.data import (
    CORPUS_CHORALES,
    JSB_SPLITS,
    MAX_PRIMER_BARS,
    MIDI_SUFFIXES,
    SCORE_SUFFIXES,
    MusicInputError,
    Primer,
    corpus_primer,
    read_input,
    read_jsb,
    read_primer,
)
from studio.domains.music.evaluate import explainable, features, fused, nll_per_frame, score
from studio.domains.music.generate import MAX_BARS, MusicResult, MusicSettings, clean_settings, example, generate
from studio.domains.music.model import NAME, MusicModel, MusicModelConfig, load, make_card, save, tiny
from studio.domains.music.render import (
    frame_trace,
    frames_to_midi,
    render,
    sequence_of,
    synthesize,
    track,
    write_files,
    write_music,
)
from studio.domains.music.train import TRAINING, MusicTask

TITLE = "Music (MIDI)"
DEFAULT_MODEL = checkpoint.MODELS_DIR / "jsb-chorales-quarter"
Settings = MusicSettings

__all__ = ["TRAINING", "NAME", "TITLE", "DEFAULT_MODEL", "Settings", "MAX_BARS", "MAX_PRIMER_BARS", "CORPUS_CHORALES", "JSB_SPLITS",
           "MIDI_SUFFIXES", "SCORE_SUFFIXES", "PitchCodec", "MusicTraceDetail", "MusicModel", "MusicModelConfig",
           "MusicSettings", "MusicResult", "MusicTask", "MusicInputError", "Primer", "note_name", "load", "save",
           "make_card", "read_input", "read_primer", "corpus_primer", "read_jsb", "score", "fused", "nll_per_frame",
           "generate", "clean_settings", "features", "render", "track", "frame_trace", "frames_to_midi", "synthesize",
           "write_files", "write_music", "tiny", "example", "explainable", "sequence_of"]
