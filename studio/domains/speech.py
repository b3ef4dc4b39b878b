"""Speech domain: text -> log-mel frames with an attention LSTM decoder, audio via Griffin-Lim.

Feature codec (one block, used everywhere: corpus, model, tab, CLI, evaluation):
    audio        mono float32 at SAMPLE_RATE = 22,050 Hz; any other rate is resampled, stereo is
                 mixed down, uploads are read for at most MAX_UPLOAD_SECONDS
    STFT         n_fft = 1024, win_length = 1024 (Hann), hop = 256 samples (11.6 ms, ~86 frames/s)
    mel          80 bins, fmin = 0, fmax = 8,000 Hz, Slaney mel scale, magnitude (power 1) spectrogram
    log-mel      natural log of max(mel, 1e-5), shape (frames, 80) float32 -- "frames" first, like
                 every other sequence in the studio
    audio length frames = 1 + len(audio) // hop (centred STFT); inversion gives frames x hop samples
    inversion    librosa.feature.inverse.mel_to_audio (Griffin-Lim, GRIFFIN_LIM_ITERS iterations)
    pitch        librosa.pyin (65-500 Hz) on the same hop, for display only
The models see log-mels normalised per bin with the corpus mean/std stored in their card.

Text codec: lower-cased characters from CHARS (unknown ones dropped and reported), runs of
spaces collapsed, an end mark "~" appended so attention has somewhere to finish.

Models
    SpeechModel (text -> mel): character embedding -> 3 conv layers (encoder, 13-character
    receptive field); decoder per step of R frames: prenet(last frame) -> attention LSTM (layer 0)
    -> Graves GMM window over the encoded characters (kappa only moves forward, so the alignment
    is monotonic) -> decoder LSTM (layers 1..) fed [attention h, context] -> R mel frames + a stop
    logit. The attention LSTM reads the previous step's context (what it was just looking at) next
    to the previous frame, as in Graves (2013) and Tacotron: without it the window can only guess
    its speed from the sound, and drifts off the text on spellings like "th" or silent letters. So
    teacher-forced training steps the attention layer (torch.lstm_cell, the same math as
    LSTMCore.step) and runs the decoder LSTM fused over all steps; generation runs LSTMCore.step
    for both and so traces itself.
    FrameModel (continue mode): an unconditional LSTM over groups of R frames that predicts the
    next group; primed with an uploaded recording's frames.

Trace alignment: step t of a speech trace produced frames t*R .. t*R+R-1; its label is the
character the attention window weighed most at that step.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from studio import checkpoint
from studio.lstm import LSTMConfig, LSTMCore
from studio.trace import Trace

DOMAIN = "speech"
SAMPLE_RATE = 22_050
N_FFT = 1024
HOP = 256
N_MELS = 80
FMIN, FMAX = 0.0, 8000.0
LOG_FLOOR = 1e-5  # log-mel floor: about -100 dB below a full-scale sine
GRIFFIN_LIM_ITERS = 32  # 2 s of audio inverts in ~0.5 s on one core
MAX_UPLOAD_SECONDS = 30.0  # uploads are cut here (a 2-hour recording is never read whole)
MAX_TEXT = 300  # characters of text per request; longer text is cut (with a note)
SILENCE_PEAK = 1e-3  # a recording whose peak never reaches this is treated as silence
CHARS = "_~ abcdefghijklmnopqrstuvwxyz'.,;:!?-"  # token 0 pads, token 1 ends the text
PAD, END = 0, 1


class AudioError(ValueError):
    """An upload or a signal the speech codec cannot use; the message says why in plain words."""


# ---------------------------------------------------------------- feature codec
def _librosa():
    import librosa  # imported lazily: it takes ~1 s and JIT-compiles on first use

    return librosa


def mel_basis() -> np.ndarray:
    return _librosa().filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)


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
    librosa = _librosa()
    mel = np.exp(log_mel.T.astype(np.float64))
    # librosa.feature.inverse.mel_to_audio's two steps, so the phase guess can be seeded
    magnitude = librosa.feature.inverse.mel_to_stft(mel, sr=SAMPLE_RATE, n_fft=N_FFT, power=1.0, fmin=FMIN, fmax=FMAX)
    audio = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=HOP, win_length=N_FFT, n_fft=N_FFT,
                               random_state=seed)
    # istft gives (frames - 1) * HOP samples; pad to the documented frames * HOP (librosa's own
    # `length=` re-analyses that signal into frames + 1 frames and fails)
    audio = np.pad(audio, (0, max(0, frames * HOP - len(audio))))[: frames * HOP]
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0.99:  # Griffin-Lim's phase guess can overshoot; keep the wav unclipped
        audio = audio * (0.99 / peak)
    return audio.astype(np.float32)


def pitch(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f0 in Hz with NaN where unvoiced, voiced probability), one value per frame (display only)."""
    f0, _, voiced_prob = _librosa().pyin(
        np.asarray(audio, dtype=np.float32), fmin=65.0, fmax=500.0, sr=SAMPLE_RATE, frame_length=N_FFT, hop_length=HOP
    )
    return f0.astype(np.float32), voiced_prob.astype(np.float32)


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


def write_wav(path, audio: np.ndarray) -> Path:
    import soundfile

    soundfile.write(str(path), np.asarray(audio, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")
    return Path(path)


# ---------------------------------------------------------------- text codec
_INDEX = {ch: k for k, ch in enumerate(CHARS)}


def normalize_text(text: str) -> str:
    text = text.lower().replace("\n", " ")
    return re.sub(r"\s+", " ", text).strip()


def encode_text(text: str) -> tuple[list[int], str]:
    """(token ids ending with END, the distinct characters that were dropped)."""
    ids, dropped = [], []
    for ch in normalize_text(text):
        if ch in _INDEX and _INDEX[ch] > END:
            ids.append(_INDEX[ch])
        elif ch not in dropped:
            dropped.append(ch)
    return ids + [END], "".join(dropped)


def decode_text(ids) -> str:
    return "".join(CHARS[int(k)] for k in ids if int(k) > END)


# ---------------------------------------------------------------- corpus (espeak-ng, offline)
VOICES = ("en-us", "en-us+f3")  # espeak-ng voice + variant per speaker id
HELD_OUT = 50  # sentences kept out of training for the MCD evaluation (voice 0)


def corpus_sentences(text: str, count: int, min_words: int = 3, max_words: int = 12) -> list[str]:
    """Distinct normalised phrases from a text (lines of play text, cut at punctuation)."""
    seen, sentences = set(), []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.endswith(":") or line.isupper():  # speaker names
            continue
        for piece in re.split(r"(?<=[.!?;:])\s+", line):
            sentence = normalize_text(piece)
            sentence = "".join(ch for ch in sentence if ch in _INDEX and _INDEX[ch] > END).strip()
            if min_words <= len(sentence.split()) <= max_words and sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(sentences))[:count]
    return [sentences[k] for k in order]


def espeak(text: str, voice: str, path) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)


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


# ---------------------------------------------------------------- models
@dataclass
class SpeechModelConfig:
    num_voices: int = len(VOICES)  # speaker ids the voice embedding knows
    reduction: int = 3  # mel frames produced per decoder step (R)
    embed_size: int = 128  # character embedding and encoder width
    voice_size: int = 16  # voice embedding width (appended to both LSTMs' inputs)
    prenet_size: int = 128  # prenet width; its dropout stays on when generating (Tacotron 2)
    prenet_dropout: float = 0.5
    hidden_size: int = 256  # units of the attention LSTM and of each decoder LSTM layer
    decoder_layers: int = 1  # decoder LSTM layers after the attention LSTM
    mixtures: int = 5  # Gaussians in the Graves attention window
    mel_mean: list = field(default_factory=lambda: [0.0] * N_MELS)  # corpus log-mel mean per bin
    mel_std: list = field(default_factory=lambda: [1.0] * N_MELS)  # corpus log-mel std per bin


class SpeechModel(nn.Module):
    def __init__(self, config: SpeechModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(len(CHARS), c.embed_size, padding_idx=PAD)
        self.encoder = nn.ModuleList(nn.Conv1d(c.embed_size, c.embed_size, 5, padding=2) for _ in range(3))
        self.encoder_norms = nn.ModuleList(nn.BatchNorm1d(c.embed_size) for _ in range(3))
        self.voice = nn.Embedding(c.num_voices, c.voice_size)
        self.prenet = nn.Sequential(nn.Linear(N_MELS, c.prenet_size), nn.ReLU(), nn.Linear(c.prenet_size, c.prenet_size), nn.ReLU())
        # reads [prenet(previous frame), voice, previous context]
        self.attention_rnn = LSTMCore(LSTMConfig(c.prenet_size + c.voice_size + c.embed_size, c.hidden_size, 1))
        self.window = nn.Linear(c.hidden_size, 3 * c.mixtures)  # -> weight, width, step per Gaussian
        self.decoder_rnn = LSTMCore(LSTMConfig(c.hidden_size + c.embed_size + c.voice_size, c.hidden_size, c.decoder_layers))
        self.frames = nn.Linear(c.hidden_size + c.embed_size, c.reduction * N_MELS)
        self.stop = nn.Linear(c.hidden_size + c.embed_size, 1)
        with torch.no_grad():  # start the window moving ~0.4 characters a step, ~1 character wide
            self.window.bias[2 * c.mixtures :].fill_(math.log(math.expm1(0.4)))
            self.window.bias[c.mixtures : 2 * c.mixtures].fill_(0.0)
        self.register_buffer("mel_mean", torch.tensor(c.mel_mean, dtype=torch.float32))
        self.register_buffer("mel_std", torch.tensor(c.mel_std, dtype=torch.float32))

    def normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        return (log_mel - self.mel_mean) / self.mel_std

    def denormalize(self, frames: torch.Tensor) -> torch.Tensor:
        return frames * self.mel_std + self.mel_mean

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, U) -> encoded characters (B, U, E)."""
        x = self.embed(tokens).transpose(1, 2)  # (B, E, U)
        for conv, norm in zip(self.encoder, self.encoder_norms, strict=True):
            x = F.dropout(F.relu(norm(conv(x))), 0.1, self.training)
        return x.transpose(1, 2)

    def _prenet(self, frames: torch.Tensor, generator=None) -> torch.Tensor:
        x = frames
        for layer in self.prenet:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                keep = 1 - self.config.prenet_dropout
                mask = torch.rand(x.shape, generator=generator, device=x.device) < keep
                x = x * mask / keep
        return x

    def _window(self, h: torch.Tensor, kappa_prev: torch.Tensor | None):
        """h (B, T, H) -> weights, widths, positions (B, T, K): kappa is cumulative over T
        (T = 1 when stepping: pass the previous position as kappa_prev)."""
        weight, width, step = self.window(h).chunk(3, dim=-1)
        step = F.softplus(step)
        kappa = torch.cumsum(step, dim=1)
        if kappa_prev is not None:
            kappa = kappa + kappa_prev[:, None]
        return torch.softmax(weight, -1), F.softplus(width) + 0.05, kappa

    @staticmethod
    def _attend(weights, widths, kappa, encoded, text_mask):
        """GMM window: phi (B, T, U) = sum_k w_k exp(-width_k (kappa_k - u)^2); context (B, T, E)."""
        u = torch.arange(encoded.shape[1], device=encoded.device, dtype=encoded.dtype)
        distance = kappa[..., None] - u  # (B, T, K, U)
        phi = (weights[..., None] * torch.exp(-widths[..., None] * distance**2)).sum(2)
        phi = phi * text_mask[:, None, :]
        return phi, phi @ encoded

    def forward(self, tokens, voices, mel_in, state=None):
        """Teacher-forced. tokens (B, U), voices (B,), mel_in (B, T, 80) normalised frames that
        precede each step -> frames (B, T, R*80), stop logits (B, T), alignment (B, T, U)."""
        encoded = self.encode(tokens)  # (B, U, E)
        text_mask = (tokens != PAD).float()
        batch, steps = mel_in.shape[:2]
        voice = self.voice(voices)[:, None].expand(-1, steps, -1)
        frames_in = torch.cat([self._prenet(mel_in), voice], -1)  # (B, T, P+V)
        layer = self.attention_rnn.layers[0]
        h = mel_in.new_zeros(batch, self.config.hidden_size)
        c = torch.zeros_like(h)
        kappa = mel_in.new_zeros(batch, self.config.mixtures)
        context = mel_in.new_zeros(batch, 1, self.config.embed_size)
        hs, phis, contexts = [], [], []
        for t in range(steps):  # the attention layer reads the context it produced a step ago
            h, c = torch.lstm_cell(torch.cat([frames_in[:, t], context[:, 0]], -1), (h, c), layer.weight_ih_l0,
                                   layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0)
            weights, widths, kappa_t = self._window(h[:, None], kappa)
            kappa = kappa_t[:, 0]
            phi, context = self._attend(weights, widths, kappa_t, encoded, text_mask)  # (B, 1, U), (B, 1, E)
            hs.append(h)
            phis.append(phi)
            contexts.append(context)
        h_att, phi, context = torch.stack(hs, 1), torch.cat(phis, 1), torch.cat(contexts, 1)
        h_dec, _ = self.decoder_rnn(torch.cat([h_att, context, voice], -1))
        out = torch.cat([h_dec, context], -1)
        return self.frames(out), self.stop(out).squeeze(-1), phi


@dataclass
class FrameModelConfig:
    reduction: int = 3  # frames per step
    hidden_size: int = 256
    num_layers: int = 2
    mel_mean: list = field(default_factory=lambda: [0.0] * N_MELS)
    mel_std: list = field(default_factory=lambda: [1.0] * N_MELS)


class FrameModel(nn.Module):
    """Continue mode: groups of R normalised frames in, the next group out."""

    def __init__(self, config: FrameModelConfig):
        super().__init__()
        self.config = config
        size = config.reduction * N_MELS
        self.inp = nn.Linear(size, config.hidden_size)
        self.core = LSTMCore(LSTMConfig(config.hidden_size, config.hidden_size, config.num_layers))
        self.head = nn.Linear(config.hidden_size, size)
        self.register_buffer("mel_mean", torch.tensor(config.mel_mean, dtype=torch.float32))
        self.register_buffer("mel_std", torch.tensor(config.mel_std, dtype=torch.float32))

    def forward(self, groups, state=None):
        out, state = self.core(torch.relu(self.inp(groups)), state)
        return groups + self.head(out), state  # predicts the change from the current group

    def trace(self, groups, state=None):
        out, state, gates = self.core.trace(torch.relu(self.inp(groups)), state)
        return groups + self.head(out), state, gates

    @torch.no_grad()
    def step(self, group, state):
        out, state, gates = self.core.step(torch.relu(self.inp(group)), state)
        return group + self.head(out), state, gates


def group_frames(frames: torch.Tensor, r: int) -> torch.Tensor:
    """(B, T, 80) -> (B, T // r, r*80); trailing frames that do not fill a group are dropped."""
    b, t, n = frames.shape
    t = t // r * r
    return frames[:, :t].reshape(b, t // r, r * n)


def load_model(stem, device="cpu"):
    """(model, card) for a SpeechModel or FrameModel checkpoint (card['kind'] says which)."""
    tensors, card = checkpoint.load(stem, domain=DOMAIN)
    try:
        if card.get("kind") == "frame-lstm":
            model = FrameModel(FrameModelConfig(**card["config"]))
        else:
            model = SpeechModel(SpeechModelConfig(**card["config"]))
        model.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError) as error:
        raise checkpoint.CheckpointError(f"{checkpoint.paths(stem)[0]} does not match its card: {error}") from None
    return model.to(device).eval(), card


def make_card(model, extra: dict) -> dict:
    kind = "frame-lstm" if isinstance(model, FrameModel) else "text-to-mel"
    codec = {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "fmin": FMIN, "fmax": FMAX,
             "log_floor": LOG_FLOOR, "chars": CHARS, "voices": list(VOICES)}
    return {"domain": DOMAIN, "kind": kind, "config": asdict(model.config), "codec": codec, **extra}


def save_model(stem, model, extra: dict) -> None:
    checkpoint.save(stem, model.state_dict(), make_card(model, extra))


# ---------------------------------------------------------------- training
@dataclass
class SpeechBatch:
    tokens: torch.Tensor  # (B, U)
    voices: torch.Tensor  # (B,)
    mel_in: torch.Tensor  # (B, T, 80): the last frame of the previous group (zeros first)
    targets: torch.Tensor  # (B, T, R*80) normalised
    mask: torch.Tensor  # (B, T) 1 where a step is real
    stop: torch.Tensor  # (B, T) 1 on the last real step
    num_tokens: int = 0


def make_speech_batch(model_config: SpeechModelConfig, mels, texts, voices, device="cpu") -> SpeechBatch:
    r = model_config.reduction
    mean, std = np.array(model_config.mel_mean, np.float32), np.array(model_config.mel_std, np.float32)
    ids = [encode_text(t)[0] for t in texts]
    steps = [math.ceil(len(m) / r) for m in mels]
    b, u, t = len(mels), max(map(len, ids)), max(steps)
    tokens = torch.zeros(b, u, dtype=torch.long)
    targets = torch.zeros(b, t * r, N_MELS)
    mask, stop = torch.zeros(b, t), torch.zeros(b, t)
    silence = torch.from_numpy((np.log(LOG_FLOOR) - mean) / std)
    for k, (m, i, s) in enumerate(zip(mels, ids, steps, strict=True)):
        tokens[k, : len(i)] = torch.tensor(i)
        targets[k] = silence  # padding frames are silence, so a late stop still sounds right
        targets[k, : len(m)] = torch.from_numpy((m - mean) / std)
        mask[k, :s] = 1
        stop[k, s - 1 :] = 1
    grouped = targets.reshape(b, t, r * N_MELS)
    mel_in = torch.cat([torch.zeros(b, 1, N_MELS), grouped[:, :-1, -N_MELS:]], 1)
    return SpeechBatch(tokens.to(device), torch.tensor(voices).to(device), mel_in.to(device), grouped.to(device),
                       mask.to(device), stop.to(device), num_tokens=int(sum(steps)))


def speech_loss(model, batch: SpeechBatch) -> torch.Tensor:
    frames, stop_logits, _ = model(batch.tokens, batch.voices, batch.mel_in)
    mask = batch.mask[..., None]
    error = (frames - batch.targets) * mask
    mel_loss = (error.abs().sum() + (error**2).sum()) / (mask.sum() * frames.shape[-1])
    stop_loss = F.binary_cross_entropy_with_logits(stop_logits, batch.stop, pos_weight=torch.tensor(5.0, device=stop_logits.device))
    return mel_loss + stop_loss


class SpeechTask:
    """Teacher-forced batches of whole utterances, similar lengths together (less padding)."""

    def __init__(self, corpus: Corpus, model_config: SpeechModelConfig, batch_size: int = 32, val_count: int = 64):
        self.corpus, self.config, self.batch_size = corpus, model_config, batch_size
        train = corpus.indices("train")
        self.val = train[:val_count]
        self.train = sorted(train[val_count:], key=lambda k: len(corpus.mels[k]))
        if len(self.train) < batch_size:
            raise ValueError(f"the corpus has {len(self.train)} training utterances, fewer than the batch size {batch_size}")

    def _batch(self, index, device):
        c = self.corpus
        return make_speech_batch(self.config, [c.mels[k] for k in index], [c.texts[k] for k in index],
                                 [c.voices[k] for k in index], device)

    def train_batch(self, step, rank, world_size, device) -> SpeechBatch:
        rng = np.random.default_rng(step * world_size + rank)
        start = int(rng.integers(0, len(self.train) - self.batch_size + 1))
        return self._batch(self.train[start : start + self.batch_size], device)

    def loss(self, model, batch):
        return speech_loss(model, batch)

    def evaluate(self, model) -> float:
        total = 0.0
        chunks = [self.val[k : k + self.batch_size] for k in range(0, len(self.val), self.batch_size)]
        device = next(model.parameters()).device
        for chunk in chunks:
            total += float(speech_loss(model, self._batch(chunk, device))) * len(chunk)
        return total / len(self.val)


class FrameTask:
    """Random crops of `crop` frames from the training utterances, grouped by R."""

    def __init__(self, corpus: Corpus, model_config: FrameModelConfig, batch_size: int = 32, crop: int = 240):
        self.corpus, self.config, self.batch_size, self.crop = corpus, model_config, batch_size, crop
        self.mean, self.std = np.array(model_config.mel_mean, np.float32), np.array(model_config.mel_std, np.float32)
        train = corpus.indices("train")
        self.val, self.train = train[:64], train[64:]
        self.stream = (np.concatenate([corpus.mels[k] for k in self.train]) - self.mean) / self.std
        self.val_stream = (np.concatenate([corpus.mels[k] for k in self.val]) - self.mean) / self.std
        # a small corpus gets shorter crops rather than an error; at least two groups are needed
        self.crop = min(crop, len(self.stream) - 2)
        if self.crop < 2 * model_config.reduction:
            raise ValueError(f"the training frames ({len(self.stream)}) are too few for the frame LSTM")

    def train_batch(self, step, rank, world_size, device):
        rng = np.random.default_rng(step * world_size + rank)
        starts = rng.integers(0, len(self.stream) - self.crop - 1, self.batch_size)
        crops = np.stack([self.stream[s : s + self.crop] for s in starts])
        return group_frames(torch.from_numpy(crops), self.config.reduction).to(device)

    def loss(self, model, groups):
        predicted, _ = model(groups[:, :-1])
        return F.l1_loss(predicted, groups[:, 1:]) + F.mse_loss(predicted, groups[:, 1:])

    def evaluate(self, model):
        groups = group_frames(torch.from_numpy(self.val_stream[None]), self.config.reduction)
        return float(self.loss(model, groups.to(next(model.parameters()).device)))


# ---------------------------------------------------------------- evaluation
# Mel-cepstral distance as Kubichek (1993) defines it, with the defaults of the mel-cepstral-distance
# package (v0.0.4), whose README gives 7.45 for Tacotron 2 against ground truth: the yardstick.
MCD_FRAME_MS, MCD_HOP_MS, MCD_BANDS, MCD_FIRST, MCD_LAST = 32, 8, 20, 2, 16
# One departure from those defaults: both signals get the same seeded white noise at -60 dB below
# their peak, a recording's noise floor. espeak-ng writes exact digital silence (16% of its samples),
# whose log10 energy is log10(eps) = -15.7; without the floor those frames alone decide the score
# (Griffin-Lim's own round trip of espeak audio scored 24.6, worse than a different sentence: 12.5).
MCD_NOISE_FLOOR = 1e-3


def mcd_bands(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(frames, MCD_BANDS) log10 mel energies: peak-normalised signal plus the noise floor, Hann
    frames without padding, power spectrum, triangular bands evenly spaced on the HTK mel scale from
    0 Hz to sample_rate / 2. Compute once per recording when comparing it with many (mcd_between)."""
    audio = np.asarray(audio, np.float64)
    audio = audio / max(np.abs(audio).max(), 1e-12)
    audio = audio + MCD_NOISE_FLOOR * np.random.default_rng(0).standard_normal(len(audio))
    size, hop = int(MCD_FRAME_MS / 1000 * sample_rate), int(MCD_HOP_MS / 1000 * sample_rate)
    starts = np.arange(0, max(len(audio) - size, 0), hop)
    if len(starts) == 0:
        raise AudioError(f"audio of {len(audio)} samples is shorter than one {MCD_FRAME_MS} ms MCD frame")
    frames = np.stack([audio[k : k + size] for k in starts]) * np.hanning(size)
    power = np.abs(np.fft.rfft(frames, n=size)) ** 2  # (frames, size // 2 + 1)
    mel_points = np.linspace(0, 2595 * np.log10(1 + sample_rate / 2 / 700), MCD_BANDS + 2)
    bins = np.floor((size + 1) * 700 * (10 ** (mel_points / 2595) - 1) / sample_rate).astype(int)
    bank = np.zeros((MCD_BANDS, size // 2 + 1))
    for n in range(MCD_BANDS):
        left, centre, right = bins[n], bins[n + 1], bins[n + 2]
        bank[n, left:centre] = (np.arange(left, centre) - left) / max(centre - left, 1)
        bank[n, centre:right] = (right - np.arange(centre, right)) / max(right - centre, 1)
    return np.log10(power @ bank.T + np.finfo(float).eps)


def mcd_db(audio: np.ndarray, reference: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Mean mel-cepstral distance between two recordings after DTW alignment of their log-mel bands.

    Cepstrum MC_i = sum_n X_n cos(i (n - 1/2) pi / M), i = 1..M (M = 20 bands); the distance per
    aligned frame pair is the Euclidean norm over coefficients MCD_FIRST..MCD_LAST (the package's
    s = 1, D = 16), with no 10 sqrt(2) / ln 10 factor (Kubichek used none). Called "dB" as the
    literature does."""
    return mcd_between(mcd_bands(audio, sample_rate), mcd_bands(reference, sample_rate))


def mcd_between(a: np.ndarray, b: np.ndarray) -> float:
    """mcd_db of two recordings' mcd_bands."""
    _, path = _librosa().sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    n = np.arange(1, MCD_BANDS + 1)
    cosines = np.cos(np.arange(MCD_FIRST, MCD_LAST + 1)[:, None] * (n - 0.5) * np.pi / MCD_BANDS)  # (D, M)
    diff = (a[path[:, 0]] - b[path[:, 1]]) @ cosines.T
    return float(np.mean(np.linalg.norm(diff, axis=1)))


def reference_audio(text: str, voice: int = 0) -> np.ndarray:
    """espeak-ng's rendering of a sentence, trimmed and padded exactly as the corpus builder does."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        espeak(text, VOICES[voice], wav)
        audio, _ = _librosa().effects.trim(read_audio(wav, max_seconds=20).audio, top_db=40)
    return np.pad(audio, (HOP * 4, HOP * 4))


# ---------------------------------------------------------------- generation
MAX_SECONDS_OUT = 20.0  # generated audio per request; the stop token usually ends far sooner
MAX_CONTINUE_SECONDS = 10.0


@dataclass
class SpeechSettings:
    text: str = "hello world, this is a speaking machine."
    voice: int = 0  # index into the card's voices
    seed: int = 0  # seeds the prenet dropout (the only randomness when generating)
    stop_threshold: float = 0.5  # generation ends when the stop probability passes this
    griffin_lim_iters: int = GRIFFIN_LIM_ITERS


@dataclass
class SpeechResult:
    text: str  # the text as the model read it (normalised, capped)
    log_mel: np.ndarray  # (frames, 80)
    audio: np.ndarray  # frames * HOP samples at SAMPLE_RATE
    alignment: np.ndarray  # (steps, U) attention weights over the characters (END included)
    stop_probs: np.ndarray  # (steps,)
    stopped: bool  # True when the stop token ended generation (False: the length cap did)
    notes: list[str]


def clean_text(settings: SpeechSettings, num_voices: int) -> tuple[list[int], int, list[str]]:
    notes = []
    text = normalize_text(settings.text or "")
    if len(text) > MAX_TEXT:
        cut = text[:MAX_TEXT].rsplit(" ", 1)[0] or text[:MAX_TEXT]
        notes.append(f"The text has {len(text):,} characters; only the first {len(cut)} (up to a word boundary) were spoken (cap {MAX_TEXT}).")
        text = cut
    ids, dropped = encode_text(text)
    if dropped:
        notes.append("Dropped characters the model does not read: " + ", ".join(repr(ch) for ch in dropped[:20]) + ".")
    if len(ids) <= 1:
        notes.append("No text to speak: spoke a default sentence instead." if not text else
                     "Nothing in the text was readable: spoke a default sentence instead.")
        ids, _ = encode_text(SpeechSettings.text)
    voice = int(settings.voice)
    if not 0 <= voice < num_voices:
        notes.append(f"Voice {voice} does not exist; used voice 0.")
        voice = 0
    return ids, voice, notes


@torch.no_grad()
def generate(model: SpeechModel, settings: SpeechSettings, griffin_lim: bool = True) -> tuple[SpeechResult, Trace]:
    """Text -> mel frames step by step (R frames a step) with LSTMCore.step, so the gates of the
    attention LSTM (trace layer 0) and of the decoder LSTM (layers 1..) are recorded as it runs."""
    c = model.config
    ids, voice_id, notes = clean_text(settings, c.num_voices)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(int(settings.seed))
    tokens = torch.tensor([ids], device=device)
    encoded = model.encode(tokens)  # (1, U, E)
    text_mask = torch.ones(1, len(ids), device=device)
    voice = model.voice(torch.tensor([voice_id], device=device))  # (1, V)
    att_state = model.attention_rnn.initial_state(1, device)
    dec_state = model.decoder_rnn.initial_state(1, device)
    frame = torch.zeros(1, N_MELS, device=device)
    kappa = torch.zeros(1, c.mixtures, device=device)
    context = torch.zeros(1, 1, c.embed_size, device=device)
    max_steps = int(min(MAX_SECONDS_OUT * SAMPLE_RATE / HOP / c.reduction, 12 * len(ids) + 20))
    groups, phis, stops, step_gates, labels = [], [], [], [], []
    stopped = False
    for _ in range(max_steps):
        x = torch.cat([model._prenet(frame, generator), voice, context[:, 0]], -1)
        h_att, att_state, att_gates = model.attention_rnn.step(x, att_state)
        weights, widths, kappa = model._window(h_att[:, None], kappa)
        kappa = kappa[:, 0]
        phi, context = model._attend(weights, widths, kappa[:, None], encoded, text_mask)
        h_dec, dec_state, dec_gates = model.decoder_rnn.step(torch.cat([h_att, context[:, 0], voice], -1), dec_state)
        out = torch.cat([h_dec, context[:, 0]], -1)
        group = model.frames(out)  # (1, R*80)
        stop = float(torch.sigmoid(model.stop(out)))
        groups.append(group)
        phis.append(phi[0, 0])
        stops.append(stop)
        step_gates.append(att_gates + dec_gates)
        labels.append(CHARS[ids[int(phi[0, 0].argmax())]].replace("~", "■"))
        frame = group[:, -N_MELS:]
        if stop > settings.stop_threshold:
            stopped = True
            break
    if not stopped:
        notes.append(f"The stop token never fired; generation ended at the cap of {max_steps * c.reduction} frames.")
    frames = torch.cat(groups).reshape(-1, N_MELS)
    log_mel = model.denormalize(frames).cpu().numpy().astype(np.float32)
    audio = decode_audio(log_mel, n_iter=settings.griffin_lim_iters, seed=settings.seed) if griffin_lim else np.zeros(0, np.float32)
    meta = {"domain": DOMAIN, "mode": "text-to-speech", "reduction": c.reduction, "shown_from": 0,
            "layer_names": ["attention LSTM"] + [f"decoder LSTM {k + 1}" for k in range(c.decoder_layers)]}
    trace = Trace.from_steps(step_gates, labels, meta)
    result = SpeechResult(decode_text(ids), log_mel, audio, torch.stack(phis).cpu().numpy(), np.array(stops, np.float32), stopped, notes)
    return result, trace


@dataclass
class ContinueSettings:
    seconds: float = 2.0  # how much to add after the recording, clamped to (0, MAX_CONTINUE_SECONDS]
    noise: float = 0.3  # std of Gaussian noise (in normalised units) added to each fed-back group
    seed: int = 0
    prime_seconds: float = 5.0  # only the recording's last prime_seconds prime the state (and are shown)


@dataclass
class ContinueResult:
    log_mel: np.ndarray  # primer frames then generated frames, (frames, 80)
    primer_frames: int
    audio: np.ndarray  # Griffin-Lim of the whole log_mel
    notes: list[str]


@torch.no_grad()
def continue_audio(model: FrameModel, audio: np.ndarray, settings: ContinueSettings) -> tuple[ContinueResult, Trace]:
    """Prime the frame LSTM with a recording's log-mel (traced in one fused pass), then let it
    go on group by group (LSTMCore.step) for settings.seconds."""
    notes = []
    r = model.config.reduction
    seconds = float(settings.seconds)
    if not 0 < seconds <= MAX_CONTINUE_SECONDS:
        seconds = min(max(seconds, 0.1), MAX_CONTINUE_SECONDS)
        notes.append(f"Continuation length clamped to {seconds:g} s (0.1 to {MAX_CONTINUE_SECONDS:g} s).")
    noise = float(settings.noise)
    if not 0 <= noise <= 1:
        noise = min(max(noise, 0.0), 1.0)
        notes.append(f"Noise clamped to {noise:g} (0 to 1).")
    log_mel = encode_audio(audio)
    keep = int(settings.prime_seconds * SAMPLE_RATE / HOP) // r * r
    if len(log_mel) > keep:
        log_mel = log_mel[-keep:]
        notes.append(f"Primed with the recording's last {settings.prime_seconds:g} s.")
    device = next(model.parameters()).device
    frames = (torch.from_numpy(log_mel).to(device) - model.mel_mean) / model.mel_std
    groups = group_frames(frames[None], r)
    if groups.shape[1] == 0:
        raise AudioError("the recording is too short to prime the model (need at least 3 frames)")
    predicted, state, gates = model.trace(groups)
    prime_trace = Trace.from_sequence(gates, [f"p{k}" for k in range(groups.shape[1])])
    generator = torch.Generator(device=device)
    generator.manual_seed(int(settings.seed))
    group = predicted[:, -1]
    new_groups, step_gates = [], []
    for _ in range(max(1, int(seconds * SAMPLE_RATE / HOP / r))):
        group = group + noise * torch.randn(group.shape, generator=generator, device=device)
        new_groups.append(group)
        group, state, step_gates_k = model.step(group, state)
        step_gates.append(step_gates_k)
    generated = torch.cat(new_groups).reshape(-1, N_MELS) * model.mel_std + model.mel_mean
    primer = log_mel[: groups.shape[1] * r]
    out = np.concatenate([primer, generated.cpu().numpy()]).astype(np.float32)
    labels = [f"g{k}" for k in range(len(step_gates))]
    meta = {"domain": DOMAIN, "mode": "continue", "reduction": r, "shown_from": 0, "prompt_length": groups.shape[1]}
    trace = Trace.concat(prime_trace, Trace.from_steps(step_gates, labels), meta)
    return ContinueResult(out, len(primer), decode_audio(out, seed=settings.seed), notes), trace


# ---------------------------------------------------------------- render
def _figure(height: float):
    from matplotlib.figure import Figure

    from studio.viz import DPI, FIGURE_WIDTH

    # constrained layout keeps axis labels, twin axes and colorbars inside the picture
    return Figure(figsize=(FIGURE_WIDTH, height), dpi=DPI, layout="constrained")


def mel_figure(log_mel: np.ndarray, title: str = "log-mel spectrogram", unit_values: np.ndarray | None = None,
               unit_label: str = "", reduction: int = 1, f0: np.ndarray | None = None, boundary: int | None = None):
    """The spectrogram (frames on x, mel bins on y) with, optionally, one unit's value per step
    drawn over it (each step spans `reduction` frames), the pyin pitch track, and a line where
    the primer ends and the model's frames begin."""
    fig = _figure(3.6)
    ax = fig.add_subplot(1, 1, 1)
    frames = len(log_mel)
    image = ax.imshow(log_mel.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                      extent=(-0.5, frames - 0.5, -0.5, N_MELS - 0.5), vmin=max(float(log_mel.min()), np.log(LOG_FLOOR)))
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01, label="ln mel")
    ax.set_xlabel(f"frame ({HOP / SAMPLE_RATE * 1000:.1f} ms each)")
    ax.set_ylabel("mel bin")
    ax.set_title(title, loc="left", fontsize=10)
    if f0 is not None and np.any(np.isfinite(f0)):
        centres = _librosa().mel_frequencies(N_MELS + 2, fmin=FMIN, fmax=FMAX)[1:-1]  # each bin's centre in Hz
        bins = np.interp(np.nan_to_num(f0, nan=0.0), centres, np.arange(N_MELS))
        bins = np.where(np.isfinite(f0), bins, np.nan)
        ax.plot(np.arange(len(bins)), bins, color="cyan", lw=1.5, label="pitch (pyin)")
        ax.legend(loc="upper right", fontsize=8)
    if boundary is not None:
        ax.axvline(boundary - 0.5, color="white", lw=2, ls="--")
    if unit_values is not None:
        values = np.repeat(np.asarray(unit_values, np.float32), reduction)[:frames]
        twin = ax.twinx()
        twin.plot(np.arange(len(values)), values, color="lime", lw=1.6)
        twin.set_ylim(-1.05, 1.05)
        twin.set_ylabel(unit_label or "unit value", color="green")
    return fig


def alignment_figure(alignment: np.ndarray, text_ids_or_text, reduction: int = 1):
    """Attention weights: decoder steps (x, in frames) against characters (y). A monotonic
    diagonal that reaches the end mark means the model read the whole text in order."""
    chars = text_ids_or_text if isinstance(text_ids_or_text, str) else decode_text(text_ids_or_text)
    fig = _figure(max(2.8, min(8.0, 0.12 * alignment.shape[1] + 1.2)))
    ax = fig.add_subplot(1, 1, 1)
    steps, length = alignment.shape
    image = ax.imshow(alignment.T, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest",
                      extent=(-0.5 * reduction, (steps - 0.5) * reduction, -0.5, length - 0.5))
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01, label="weight")
    labels = list(chars) + ["■"]
    if length <= 80:
        ax.set_yticks(range(length))
        ax.set_yticklabels([ch if ch != " " else "␣" for ch in labels[:length]], fontsize=7, family="monospace")
    ax.set_xlabel("frame")
    ax.set_ylabel("character")
    ax.set_title("Attention alignment (Graves window)", loc="left", fontsize=10)
    return fig


def alignment_report(alignment: np.ndarray) -> dict:
    """Does the attention read the text in order and to the end? (for the card and the tab)"""
    peak = alignment.argmax(1)
    backwards = int(np.sum(np.diff(peak) < 0))
    return {"monotonic": backwards == 0, "backward_steps": backwards,
            "reaches_end": bool(peak.max() >= alignment.shape[1] - 2),
            "coverage": float(len(set(peak.tolist())) / alignment.shape[1])}


def features_npz(path, log_mel: np.ndarray, **extra) -> Path:
    arrays = {"log_mel": np.asarray(log_mel, np.float32), "sample_rate": np.array(SAMPLE_RATE), "hop": np.array(HOP),
              "n_fft": np.array(N_FFT), "n_mels": np.array(N_MELS)}
    arrays.update({k: np.asarray(v) for k, v in extra.items() if v is not None})
    np.savez(path, **arrays)
    return Path(path)
