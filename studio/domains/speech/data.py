"""Speech data: reading and preparing recordings, the espeak-ng corpus (built offline) and its
reader, the contract's input reader, per-step feature tracks, and the tiny model and example."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.domains.speech.codec import (
    HOP,
    N_FFT,
    SAMPLE_RATE,
    VOICES,
    AudioError,
    SpeechAlphabet,
    SpeechCodec,
    _librosa,
    encode_audio,
    mel_centres,
    normalize_text,
)

MAX_UPLOAD_SECONDS = 30.0  # uploads are cut here (a 2-hour recording is never read whole)
SILENCE_PEAK = 1e-3  # a recording whose peak never reaches this is treated as silence
HELD_OUT = 50  # sentences kept out of training for the MCD evaluation (voice 0)
REDUCTION = 3  # frames per step of both model kinds' defaults: features() groups by it without a trace
VOICED_BELOW_HZ = 1000.0  # features(): a frame is "voiced" when most of its energy lies below this...
VOICED_MIN_DB = -40.0  # ...and it is no more than 40 dB below the loudest frame
BAND_EDGE_HZ = 4000.0  # a telephone's band ends here (8 kHz sampling)...
BAND_EMPTY_SHARE = 1e-5  # ...and a recording with less than this share of its energy above it is band-limited
# (espeak-ng's held-out sentences: 0.1% to 3% of their energy lies above 4 kHz; the same sentences through
# 8 kHz sampling: 1e-10; measured in runs/scratch by the speech session of issue 15)


# ---------------------------------------------------------------- recordings
@dataclass
class LoadedAudio:
    audio: np.ndarray  # mono float32 at SAMPLE_RATE
    notes: list[str]  # what was changed on the way in (resampled, mixed down, cut)


def prepare_audio(audio, sample_rate: int, max_seconds: float = MAX_UPLOAD_SECONDS) -> LoadedAudio:
    """Any rate, any channel layout (samples first, as soundfile reads, or channels first, as
    gradio hands back int16) -> mono float32 at SAMPLE_RATE, capped. Raises AudioError on silence."""
    notes = []
    audio = np.asarray(audio)
    if audio.size == 0:
        raise AudioError("the recording is empty")
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio.astype(np.float32) / float(np.iinfo(audio.dtype).max)
    audio = audio.astype(np.float32)
    if audio.ndim == 2:
        channel_axis = 0 if audio.shape[0] < audio.shape[1] else 1
        if audio.shape[channel_axis] > 1:
            notes.append(f"Mixed {audio.shape[channel_axis]} channels down to mono.")
        audio = audio.mean(axis=channel_axis)
    elif audio.ndim != 1:
        raise AudioError(f"cannot read audio with shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise AudioError("the recording contains invalid (NaN or infinite) samples")
    sample_rate = int(sample_rate)
    if sample_rate < 1000 or sample_rate > 400_000:
        raise AudioError(f"a sample rate of {sample_rate} Hz is not plausible for audio")
    limit = int(max_seconds * sample_rate)
    if audio.size > limit:
        notes.append(f"The recording is {audio.size / sample_rate:,.1f} s long; only its first {max_seconds:g} s were used.")
        audio = audio[:limit]
    if sample_rate != SAMPLE_RATE:
        audio = _librosa().resample(audio, orig_sr=sample_rate, target_sr=SAMPLE_RATE).astype(np.float32)
        notes.append(f"Resampled from {sample_rate:,} Hz to {SAMPLE_RATE:,} Hz.")
    if audio.size < N_FFT:
        raise AudioError(f"the recording is too short ({audio.size / SAMPLE_RATE * 1000:.0f} ms); give at least 0.1 s")
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise AudioError("the recording is silent (its loudest sample is below -60 dB of full scale)")
    return LoadedAudio(audio, notes)


def read_audio(path, max_seconds: float = MAX_UPLOAD_SECONDS) -> LoadedAudio:
    """Read an audio file (WAV, FLAC, OGG, ... whatever libsndfile reads), at most max_seconds of
    it, without loading the rest. Raises AudioError with a plain message for anything else."""
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as handle:
            rate, total = handle.samplerate, handle.frames
            data = handle.read(frames=int(max_seconds * rate), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as error:
        # libsndfile's own reason, without the temporary path the upload was stored under
        reason = getattr(error, "error_string", None) or getattr(error, "strerror", None) or "unreadable"
        raise AudioError(f"{Path(path).name} is not an audio file this studio can read (WAV, FLAC or OGG): "
                         f"{reason.rstrip('.').lower()}.") from None
    loaded = prepare_audio(data, rate, max_seconds=max_seconds)
    if total > data.shape[0]:
        loaded.notes.insert(0, f"The recording is {total / rate:,.1f} s long; only its first {max_seconds:g} s were used.")
    return loaded


def energy_above(audio: np.ndarray, edge_hz: float = BAND_EDGE_HZ) -> float:
    """The share of a recording's spectral energy (STFT power, n_fft 1024) above edge_hz."""
    audio = np.asarray(audio, np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(audio, (0, max(0, N_FFT - len(audio)))), N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1)) ** 2
    above = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE) > edge_hz
    total = float(power.sum())
    return float(power[:, above].sum()) / total if total > 0 else 0.0


def band_note(audio: np.ndarray) -> str | None:
    """A note when a recording (mono at SAMPLE_RATE) has next to nothing above 4 kHz, as a telephone's
    does: the models learned speech with energy up to 8 kHz, so they fill in what is missing."""
    share = energy_above(audio)
    if share >= BAND_EMPTY_SHARE:
        return None
    level = f"{10 * np.log10(share):.0f} dB" if share > 0 else "none"
    return (f"The recording has almost nothing above {BAND_EDGE_HZ / 1000:g} kHz (the share of its energy there: "
            f"{level}; espeak-ng's speech has 0.1% to 3% there), like a telephone (8 kHz) recording. The models "
            "learned speech with energy up to 8 kHz: a continuation may fill in the upper bands the recording lacks.")


# ---------------------------------------------------------------- the contract's input
@dataclass
class Utterance:
    """What `score` reads: a recording's log-mel and, for a text-to-mel model, what it says."""

    text: str  # the transcript ("" for the frame LSTM, which reads no text)
    log_mel: np.ndarray  # (frames, 80)
    voice: int = 0  # the voice (speaker id) the text-to-mel model imitates while reading
    notes: list[str] = field(default_factory=list)  # what reading the recording changed
    seed: int = 0  # seeds the text-to-mel prenet's dropout masks while reading (a generation's seed redraws its masks)


def read_input(path, loaded=None) -> Utterance:
    """A recording (WAV, FLAC or OGG). A text-to-mel model also needs its transcript: a UTF-8 .txt
    file of the same name beside it (clip.wav + clip.txt). ValueError with a sentence otherwise."""
    path = Path(path)
    recording = read_audio(path)
    text = ""
    if loaded is None or loaded.card.get("kind") != "frame-lstm":
        transcript = path.with_suffix(".txt")
        if not transcript.is_file():
            raise ValueError(f"a text-to-mel model reads a recording with its transcript: put the text of {path.name} "
                             f"in {transcript.name} beside it (or give a frame-lstm model)")
        text = transcript.read_text(encoding="utf-8", errors="replace")
    return Utterance(text, encode_audio(recording.audio), notes=recording.notes)


# ---------------------------------------------------------------- corpus (espeak-ng, offline)
def corpus_sentences(text: str, count: int, min_words: int = 3, max_words: int = 12) -> list[str]:
    """Distinct normalised phrases from a text (lines of play text, cut at punctuation)."""
    alphabet = SpeechAlphabet()
    seen, sentences = set(), []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.endswith(":") or line.isupper():  # speaker names
            continue
        for piece in re.split(r"(?<=[.!?;:])\s+", line):
            sentence = "".join(ch for ch in normalize_text(piece) if alphabet.readable(ch)).strip()
            if min_words <= len(sentence.split()) <= max_words and sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(sentences))[:count]
    return [sentences[k] for k in order]


def espeak(text: str, voice: str, path) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)


def reference_audio(text: str, voice: int = 0) -> np.ndarray:
    """espeak-ng's rendering of a sentence, trimmed and padded exactly as the corpus builder does."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        espeak(text, VOICES[voice], wav)
        audio, _ = _librosa().effects.trim(read_audio(wav, max_seconds=20).audio, top_db=40)
    return np.pad(audio, (HOP * 4, HOP * 4))


def build_corpus(source, out_dir, count: int = 3000, progress=None) -> dict:
    """Synthesize `count` sentences of `source` with espeak-ng (voices alternate), extract
    log-mels, and write OUT_DIR/corpus.npz (mels concatenated + offsets, text, voice, split)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sentences = corpus_sentences(Path(source).read_text(encoding="utf-8", errors="replace"), count)
    mels, texts, voices, lengths = [], [], [], []
    for k, sentence in enumerate(sentences):
        voice = 0 if k < HELD_OUT else k % len(VOICES)
        mel = encode_audio(reference_audio(sentence, voice))  # a little silence at both ends, as in use
        mels.append(mel)
        texts.append(sentence)
        voices.append(voice)
        lengths.append(len(mel))
        if progress and (k + 1) % 100 == 0:
            progress(k + 1, len(sentences))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    split = np.array(["test" if k < HELD_OUT else "train" for k in range(len(sentences))])
    np.savez(out_dir / "corpus.npz", mels=np.concatenate(mels), offsets=offsets, texts=np.array(texts),
             voices=np.array(voices, dtype=np.int64), split=split)
    return {"sentences": len(sentences), "frames": int(offsets[-1]), "held_out": HELD_OUT}


@dataclass
class Corpus:
    mels: list[np.ndarray]  # per utterance (frames, N_MELS) log-mel
    texts: list[str]
    voices: list[int]
    split: list[str]  # "train" or "test"

    @classmethod
    def load(cls, path) -> Corpus:
        path = Path(path)
        if path.is_dir():
            path = path / "corpus.npz"
        with np.load(path, allow_pickle=False) as data:
            # Read each array once: every data["mels"] access decompresses the whole array again
            # (a 3,000-utterance corpus filled 22 GB before this).
            offsets, all_mels = data["offsets"], data["mels"]
            mels = [all_mels[offsets[k] : offsets[k + 1]] for k in range(len(offsets) - 1)]
            return cls(mels, [str(t) for t in data["texts"]], [int(v) for v in data["voices"]],
                       [str(s) for s in data["split"]])

    def indices(self, split: str) -> list[int]:
        return [k for k, s in enumerate(self.split) if s == split]

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        frames = np.concatenate([self.mels[k] for k in self.indices("train")])
        return frames.mean(0).astype(np.float32), np.maximum(frames.std(0), 1e-3).astype(np.float32)

    def value_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin least and greatest log-mel of the training split."""
        frames = np.concatenate([self.mels[k] for k in self.indices("train")])
        return frames.min(0).astype(np.float32), frames.max(0).astype(np.float32)


# ---------------------------------------------------------------- features, tiny, example
def features(sequence, scored=None) -> dict[str, np.ndarray]:
    """Per trace step (R frames; R from the scored trace, else REDUCTION): "energy" (ln of the
    frames' total mel magnitude, averaged over the step), "voiced" (the share of the step's frames
    that look voiced: most energy below 1 kHz and within 40 dB of the loudest frame, a rough
    stand-in for pyin that needs only the mel) and, with `scored` of a text-to-mel model,
    "attention position" (the character the window weighed most)."""
    log_mel = np.asarray(sequence.log_mel if isinstance(sequence, Utterance) else sequence, np.float64)
    detail = scored.trace.detail if scored is not None else None
    r = detail.reduction if detail is not None else REDUCTION
    steps = len(log_mel) // r
    mel = np.exp(log_mel[: steps * r])  # (steps*R, 80) magnitudes
    total = mel.sum(1)
    energy = np.log(total)
    low = mel[:, mel_centres() < VOICED_BELOW_HZ].sum(1) / total
    loud = 20 * np.log10(total / total.max(initial=1e-30)) > VOICED_MIN_DB
    voiced = (low > 0.5) & loud
    tracks = {"energy": energy.reshape(steps, r).mean(1).astype(np.float32),
              "voiced": voiced.reshape(steps, r).mean(1).astype(np.float32)}
    if detail is not None and detail.position:
        tracks["attention position"] = np.asarray(detail.position[:steps], np.float32)
    return tracks


def tiny(seed: int = 0):
    """(model, codec): a small random text-to-mel model for tests (no training, no files)."""
    import torch

    from studio.domains.speech.model import SpeechModel, SpeechModelConfig

    torch.manual_seed(seed)
    config = SpeechModelConfig(hidden_size=16, embed_size=8, prenet_size=8, voice_size=4, mixtures=2)
    return SpeechModel(config).eval(), SpeechCodec()


def example_mel(seconds: float = 0.4) -> np.ndarray:
    """A vowel-like test signal's log-mel: 150 Hz with its harmonics, swelling and fading."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8)) * np.sin(np.pi * t / seconds) * 0.3
    return encode_audio(audio.astype(np.float32))


def example():
    """(Utterance, settings): a short input for `score`, short settings for `generate` (tests,
    docs, benches). The settings stop at 30 steps, never by the stop token (threshold 1), so a
    random model runs long enough to be hooked in the middle."""
    from studio.domains.speech.generate import SpeechSettings

    return Utterance("hi there.", example_mel()), SpeechSettings(text="hi there.", stop_threshold=1.0, max_steps=30,
                                                          griffin_lim_iters=4)
