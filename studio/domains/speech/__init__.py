"""Speech: text -> log-mel frames with an attention LSTM decoder, audio via Griffin-Lim; and a frame
LSTM that continues a recording. The contract (studio.domains.base) in one place: codec.py
(log-mel features, the text alphabet, the trace format), model.py (SpeechModel, FrameModel,
load/save), data.py (recordings, the espeak-ng corpus, read_input, features), train.py (the
training tasks), evaluate.py (MCD, score, fused), generate.py (speak / continue), render.py
(spectrogram and alignment figures, files), cli.py and tab.py (imported by the CLI and the app only).

`generate(loaded, settings)` goes by the model's kind: a text-to-mel model takes SpeechSettings
(`Settings`), a frame LSTM takes ContinueSettings (with the recording)."""

from studio import checkpoint
from studio.domains.speech.codec import (
    END,
    GRIFFIN_LIM_ITERS,
    HOP,
    LOG_FLOOR,
    N_MELS,
    PAD,
    SAMPLE_RATE,
    VOICES,
    AudioError,
    SpeechAlphabet,
    SpeechCodec,
    SpeechDetail,
    decode_audio,
    encode_audio,
    pitch,
)
from studio.domains.speech.data import (
    HELD_OUT,
    Corpus,
    LoadedAudio,
    Utterance,
    band_note,
    build_corpus,
    example,
    features,
    prepare_audio,
    read_audio,
    read_input,
    tiny,
)
from studio.domains.speech.evaluate import (
    MCD_BANDS,
    MCD_NOISE_FLOOR,
    alignment_report,
    explainable,
    fused,
    held_out_mcd,
    mcd_bands,
    mcd_between,
    mcd_db,
    score,
)
from studio.domains.speech.generate import (
    MAX_CONTINUE_SECONDS,
    MAX_TEXT,
    ContinueResult,
    ContinueSettings,
    SpeechResult,
    SpeechSettings,
    clean_text,
    generate,
)
from studio.domains.speech.model import (
    FRAME_KIND,
    NAME,
    TTS_KIND,
    FrameModel,
    FrameModelConfig,
    SpeechModel,
    SpeechModelConfig,
    group_frames,
    load,
    make_card,
    save,
)
from studio.domains.speech.render import (
    alignment_html,
    features_npz,
    mel_figure,
    render,
    sequence_of,
    track,
    write_files,
)
from studio.domains.speech.train import TRAINING, FrameTask, SpeechBatch, SpeechTask, make_speech_batch, speech_loss

TITLE = "Speech"
DEFAULT_MODEL = checkpoint.MODELS_DIR / "espeak-tts"
DEFAULT_FRAME_MODEL = checkpoint.MODELS_DIR / "espeak-frames"
Settings = SpeechSettings

__all__ = ["TRAINING", "NAME", "TITLE", "DEFAULT_MODEL", "DEFAULT_FRAME_MODEL", "Settings", "load", "save", "make_card",
           "read_input", "score", "generate", "features", "render", "track", "write_files", "fused", "tiny", "example",
           "SAMPLE_RATE", "HOP", "N_MELS", "LOG_FLOOR", "GRIFFIN_LIM_ITERS", "PAD", "END", "VOICES", "HELD_OUT",
           "MAX_TEXT", "MAX_CONTINUE_SECONDS", "MCD_BANDS", "MCD_NOISE_FLOOR", "TTS_KIND", "FRAME_KIND",
           "AudioError", "SpeechAlphabet", "SpeechCodec", "SpeechDetail", "Utterance", "LoadedAudio", "Corpus",
           "SpeechModel", "SpeechModelConfig", "FrameModel", "FrameModelConfig", "SpeechSettings", "SpeechResult",
           "ContinueSettings", "ContinueResult", "SpeechBatch", "SpeechTask", "FrameTask",
           "encode_audio", "decode_audio", "pitch", "prepare_audio", "read_audio", "build_corpus", "group_frames", "band_note",
           "make_speech_batch", "speech_loss", "clean_text", "mcd_bands", "mcd_between", "mcd_db", "held_out_mcd",
           "alignment_report", "mel_figure", "alignment_html", "features_npz", "explainable", "sequence_of"]
