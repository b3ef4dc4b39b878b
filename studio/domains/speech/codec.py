"""Speech codec: audio <-> log-mel frames, and the text alphabet the text-to-mel model reads.

Feature format (one block, used everywhere: corpus, model, tab, CLI, evaluation):
    audio        mono float32 at SAMPLE_RATE = 22,050 Hz; any other rate is resampled, stereo is
                 mixed down, uploads are read for at most data.MAX_UPLOAD_SECONDS
    STFT         n_fft = 1024, win_length = 1024 (Hann), hop = 256 samples (11.6 ms, ~86 frames/s)
    mel          80 bins, fmin = 0, fmax = 8,000 Hz, Slaney mel scale, magnitude (power 1) spectrogram
    log-mel      natural log of max(mel, 1e-5), shape (frames, 80) float32 -- "frames" first, like
                 every other sequence in the studio
    audio length frames = 1 + len(audio) // hop (centred STFT); inversion gives frames x hop samples
    inversion    Griffin-Lim (librosa), GRIFFIN_LIM_ITERS iterations, seeded phase guess
    pitch        librosa.pyin (65-500 Hz) on the same hop, for display only
The models see log-mels normalised per bin with the corpus mean/std stored in their config.

Text format (SpeechAlphabet): lower-cased characters from CHARS (unknown ones dropped and
reported), runs of white space collapsed to one space, an end mark "~" appended so attention has
somewhere to finish. Token 0 pads, token 1 is the end mark.

Trace format: step t of a speech trace covers R = `reduction` frames, t*R .. t*R+R-1 (the models
read and write groups of R frames). Text-to-speech steps are labelled with the character the
attention window weighed most ("■" for the end mark); continue-mode steps with "p<k>" (primer,
read from the recording) and "g<k>" (generated). SpeechDetail is the trace's `detail`.

Input files (data.read_input, behind `python -m studio trace speech`): a recording (WAV, FLAC or
OGG); a text-to-mel model also reads its transcript, a UTF-8 file of the same name with .txt
beside it (clip.wav + clip.txt). The sequence score() reads is a data.Utterance (text, log-mel,
voice); steps are whole groups of R frames (trailing frames that do not fill one are left out).

The card's "codec" holds the feature parameters above, CHARS and the voices (SpeechCodec.card);
loading refuses a card whose parameters differ from this code's.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 22_050
N_FFT = 1024
HOP = 256
N_MELS = 80
FMIN, FMAX = 0.0, 8000.0
LOG_FLOOR = 1e-5  # log-mel floor: about -100 dB below a full-scale sine
GRIFFIN_LIM_ITERS = 32  # time per sentence: docs/benchmarks.md, Speech
CHARS = "_~ abcdefghijklmnopqrstuvwxyz'.,;:!?-"  # token 0 pads, token 1 ends the text
PAD, END = 0, 1
END_LABEL = "■"  # how the end mark is shown in labels and plots
VOICES = ("en-us", "en-us+f3")  # espeak-ng voice + variant per speaker id


class AudioError(ValueError):
    """An upload or a signal the speech codec cannot use; the message says why in plain words."""


# ---------------------------------------------------------------- log-mel features
def _librosa():
    import librosa  # imported lazily: its import is slow (docs/benchmarks.md, App start-up) and it JIT-compiles on
                    # first use

    return librosa


def mel_basis() -> np.ndarray:
    return _librosa().filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)


@functools.cache
def _mel_pseudo_inverse() -> np.ndarray:
    """(1 + N_FFT / 2, N_MELS) float64: the mel filter bank's pseudo-inverse, made once."""
    return np.linalg.pinv(mel_basis().astype(np.float64))


def mel_centres() -> np.ndarray:
    """(N_MELS,) each mel bin's centre frequency in Hz."""
    return _librosa().mel_frequencies(N_MELS + 2, fmin=FMIN, fmax=FMAX)[1:-1]


def encode_audio(audio: np.ndarray) -> np.ndarray:
    """Mono float audio at SAMPLE_RATE -> log-mel (frames, N_MELS) float32."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise AudioError("expected a non-empty mono signal")
    spectrum = np.abs(_librosa().stft(audio, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, center=True))
    mel = mel_basis() @ spectrum  # (80, frames)
    return np.log(np.maximum(mel, LOG_FLOOR)).T.astype(np.float32)


def decode_audio(log_mel: np.ndarray, n_iter: int = GRIFFIN_LIM_ITERS, seed: int = 0) -> np.ndarray:
    """Log-mel (frames, N_MELS) -> audio of frames * HOP samples via Griffin-Lim (seeded)."""
    log_mel = np.asarray(log_mel, dtype=np.float32)
    if log_mel.ndim != 2 or log_mel.shape[1] != N_MELS or log_mel.shape[0] == 0:
        raise AudioError(f"expected log-mel frames of shape (frames, {N_MELS}), got {log_mel.shape}")
    frames = log_mel.shape[0]
    mel = np.exp(log_mel.T.astype(np.float64))
    # mel -> linear magnitude by the filter bank's pseudo-inverse, negatives clipped (Tacotron's
    # inversion). librosa's mel_to_stft solves a non-negative least squares problem instead, far
    # slower (docs/benchmarks.md, Speech), and the audio of both, analysed again, is the
    # same to 1e-7 (mean |log-mel error| 0.1699 each). Then Griffin-Lim with a seeded phase guess.
    magnitude = np.maximum(_mel_pseudo_inverse() @ mel, 0.0)
    audio = griffin_lim(magnitude, n_iter, seed)
    # istft gives (frames - 1) * HOP samples; pad to the documented frames * HOP (librosa's own
    # `length=` re-analyses that signal into frames + 1 frames and fails)
    audio = np.pad(audio, (0, max(0, frames * HOP - len(audio))))[: frames * HOP]
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0.99:  # Griffin-Lim's phase guess can overshoot; keep the wav unclipped
        audio = audio * (0.99 / peak)
    return audio.astype(np.float32)


def griffin_lim(magnitude: np.ndarray, n_iter: int = GRIFFIN_LIM_ITERS, seed: int = 0) -> np.ndarray:
    """Audio whose STFT magnitude approaches `magnitude` (N_FFT // 2 + 1, frames): librosa.griffinlim's
    algorithm (the fast Griffin-Lim of Perraudin et al. 2013, momentum 0.99, a seeded uniform random
    phase to start, centred frames, zero padding) in torch float32. Not librosa's own: under load
    its float64 numpy FFTs held the GIL, so every other request in the app waited on a speech
    request's inversion (most of its time); torch releases it. The STFT pair is written out (frames
    by rows, one batched real FFT, overlap-add by four slices for the 4x overlap, the window's
    envelope computed once) and the phase normalised by `torch.sgn`: torch.istft recomputes the
    envelope at every call and a complex division by `abs` is slower than `sgn`, so this is several
    times faster than torch.stft / istft (docs/benchmarks.md, Speech; tests check it against both)."""
    import torch

    if magnitude.shape[1] < 2:  # one centred frame spans no samples (librosa gives none either)
        return np.zeros(0, np.float32)
    rng = np.random.default_rng(seed)
    # (frames, bins) from here on: each frame's FFT is a contiguous row
    angles = torch.from_numpy(np.exp(2j * np.pi * rng.random(magnitude.shape)).astype(np.complex64).T.copy())
    target = torch.from_numpy(np.ascontiguousarray(np.asarray(magnitude, np.float32).T))
    frames, overlap = target.shape[0], N_FFT // HOP
    window = torch.hann_window(N_FFT)
    length = (frames - 1) * HOP  # what torch.istft(center=True) gives

    def overlap_add(rows):  # (frames, N_FFT) -> the centred signal, `length` samples
        blocks = rows.view(frames, overlap, HOP)
        out = torch.zeros(frames + overlap - 1, HOP)
        for j in range(overlap):
            out[j : j + frames] += blocks[:, j]
        return out.view(-1)[N_FFT // 2 : N_FFT // 2 + length]

    envelope = overlap_add(window.square().expand(frames, N_FFT).contiguous())

    def istft(spectrum):
        return overlap_add(torch.fft.irfft(spectrum, n=N_FFT, dim=1) * window) / envelope

    def stft(signal):
        padded = torch.nn.functional.pad(signal, (N_FFT // 2, N_FFT // 2))
        return torch.fft.rfft(padded.unfold(0, N_FFT, HOP) * window, dim=1)

    rebuilt = torch.zeros_like(angles)
    with torch.no_grad():
        for _ in range(n_iter):
            previous = rebuilt
            rebuilt = stft(istft(target * angles))
            angles = torch.sgn(rebuilt - (0.99 / 1.99) * previous)  # the momentum step, then unit phases
        return istft(target * angles).numpy()


def pitch(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f0 in Hz with NaN where unvoiced, voiced probability), one value per frame (display only)."""
    f0, _, voiced_prob = _librosa().pyin(
        np.asarray(audio, dtype=np.float32), fmin=65.0, fmax=500.0, sr=SAMPLE_RATE, frame_length=N_FFT, hop_length=HOP
    )
    return f0.astype(np.float32), voiced_prob.astype(np.float32)


# ---------------------------------------------------------------- text
def normalize_text(text: str) -> str:
    text = text.lower().replace("\n", " ")
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class SpeechAlphabet:
    """The characters the text-to-mel model reads; character k of `chars` is token k."""

    chars: str = CHARS

    def __post_init__(self):
        if self.chars != CHARS:  # the model's embedding has one row per character of CHARS
            raise ValueError(f"the alphabet {self.chars!r} is not this code's {CHARS!r}")
        self.index = {ch: k for k, ch in enumerate(self.chars)}

    def readable(self, ch: str) -> bool:
        """True for a character the model reads (not padding, not the end mark)."""
        return self.index.get(ch, PAD) > END

    def encode(self, text: str) -> tuple[list[int], str]:
        """(token ids ending with END, the distinct characters that were dropped)."""
        ids, dropped = [], []
        for ch in normalize_text(text):
            if self.readable(ch):
                ids.append(self.index[ch])
            elif ch not in dropped:
                dropped.append(ch)
        return ids + [END], "".join(dropped)

    def decode(self, ids) -> str:
        """The readable characters of `ids` (padding and the end mark left out)."""
        return "".join(self.chars[int(k)] for k in ids if int(k) > END)

    def label(self, token: int) -> str:
        """A token as a trace label: its character, the end mark as END_LABEL."""
        return self.chars[int(token)].replace("~", END_LABEL)


@dataclass
class SpeechCodec:
    """Everything a speech model's card says about its data: the feature parameters (fixed, see
    the module docstring), the alphabet and the voices (espeak-ng voices, one per speaker id)."""

    voices: list[str] = field(default_factory=lambda: list(VOICES))
    alphabet: SpeechAlphabet = field(default_factory=SpeechAlphabet)

    def card(self) -> dict:
        return {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "fmin": FMIN, "fmax": FMAX,
                "log_floor": LOG_FLOOR, "chars": self.alphabet.chars, "voices": list(self.voices)}

    @classmethod
    def from_card(cls, codec: dict) -> SpeechCodec:
        """ValueError naming the parameter when the card's features are not this code's."""
        expected = cls().card()
        for name in ("sample_rate", "n_fft", "hop", "n_mels", "fmin", "fmax", "log_floor"):
            if codec[name] != expected[name]:
                raise ValueError(f"codec {name} is {codec[name]!r}, this code computes features with {expected[name]!r}")
        return cls(list(codec["voices"]), SpeechAlphabet(codec["chars"]))


@dataclass
class SpeechDetail:
    """A speech trace's own description (Trace.detail)."""

    mode: str  # "text-to-speech" (text-to-mel model) or "continue" (frame LSTM)
    reduction: int  # frames per trace step (R)
    text: str = ""  # text-to-speech: the characters the window reads, the end mark last
    position: list[int] = field(default_factory=list)  # text-to-speech: per step, the character weighed most
