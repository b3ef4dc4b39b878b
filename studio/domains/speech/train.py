"""Speech training tasks for studio.train.train: teacher-forced whole utterances for the
text-to-mel model (SpeechTask), random crops of the frame stream for the frame LSTM (FrameTask); and
a user's recordings with transcripts (or recordings made in the page) as a corpus (TRAINING)."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from studio import limits
from studio.domains.base import Training, describe
from studio.domains.speech.codec import (
    HOP,
    LOG_FLOOR,
    N_MELS,
    SAMPLE_RATE,
    AudioError,
    SpeechAlphabet,
    _librosa,
    encode_audio,
    normalize_text,
)
from studio.domains.speech.data import Corpus, prepare_audio, read_audio
from studio.domains.speech.model import FrameModelConfig, SpeechModelConfig, group_frames

VAL_COUNT = 64  # training-split utterances kept aside to validate
TTS_VAL_HOW = (f"L1 + L2 of the normalised log-mel frames plus the stop token's BCE (positive weight 5), "
               f"teacher-forced, on {VAL_COUNT} validation utterances")
FRAME_VAL_HOW = ("L1 + L2 of the predicted next group of normalised log-mel frames on "
                 f"{VAL_COUNT} validation utterances in crops, teacher-forced with the training's input noise and "
                 "scheduled sampling (seeded)")


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
    """Utterances padded to the longest: steps of R frames, padding frames are silence."""
    r = model_config.reduction
    mean, std = np.array(model_config.mel_mean, np.float32), np.array(model_config.mel_std, np.float32)
    alphabet = SpeechAlphabet()
    ids = [alphabet.encode(t)[0] for t in texts]
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

    def __init__(self, corpus: Corpus, model_config: SpeechModelConfig, batch_size: int = 32, val_count: int = VAL_COUNT):
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
    """Random crops of `crop` frames from the training utterances, grouped by R. Generation feeds the
    model its own prediction plus noise, so training can too: `input_noise` adds Gaussian noise (std
    drawn per crop, uniform in [0, input_noise], normalised units) to the groups read, never to the
    targets, so the model learns to read through the noise (a model predicting the change from what it
    reads still carried it on after 800 such steps; one predicting the next group itself, `--direct`,
    did not: docs/speech.md, "Continuing a recording"); `scheduled_sampling` replaces that share of the
    groups read by the model's own one-step prediction of them (parallel scheduled sampling: one extra
    pass without gradients, the fused kernel kept)."""

    def __init__(self, corpus: Corpus, model_config: FrameModelConfig, batch_size: int = 32, crop: int = 240,
                 input_noise: float = 0.0, scheduled_sampling: float = 0.0):
        self.corpus, self.config, self.batch_size, self.crop = corpus, model_config, batch_size, crop
        self.input_noise, self.scheduled_sampling = float(input_noise), float(scheduled_sampling)
        self.mean, self.std = np.array(model_config.mel_mean, np.float32), np.array(model_config.mel_std, np.float32)
        train = corpus.indices("train")
        self.val, self.train = train[:VAL_COUNT], train[VAL_COUNT:]
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

    def read_groups(self, model, groups, generator=None):
        """What the model reads in training: the groups before each target, some replaced by its own
        predictions, noise added (as generation feeds it)."""
        inputs = groups[:, :-1]
        if self.scheduled_sampling > 0:
            with torch.no_grad():
                own, _ = model(inputs)  # own[:, t] predicts groups[:, t + 1], i.e. inputs[:, t + 1]
            swap = torch.rand(inputs.shape[:2], generator=generator, device=inputs.device) < self.scheduled_sampling
            swap[:, 0] = False
            inputs = torch.where(swap[..., None], torch.cat([inputs[:, :1], own[:, :-1]], 1), inputs)
        if self.input_noise > 0:
            std = torch.rand(inputs.shape[0], 1, 1, generator=generator, device=inputs.device) * self.input_noise
            inputs = inputs + std * torch.randn(inputs.shape, generator=generator, device=inputs.device)
        return inputs

    def loss(self, model, groups, generator=None):
        predicted, _ = model(self.read_groups(model, groups, generator))
        return F.l1_loss(predicted, groups[:, 1:]) + F.mse_loss(predicted, groups[:, 1:])

    def evaluate(self, model):
        """The training loss on the validation utterances, its noise and scheduled sampling drawn
        from a fixed seed (so checkpoints are compared on the same draws), in crops of `crop` frames."""
        device = next(model.parameters()).device
        size = min(self.crop, len(self.val_stream))
        stream = torch.from_numpy(self.val_stream[: len(self.val_stream) // size * size])
        crops = group_frames(stream.reshape(-1, size, N_MELS), self.config.reduction).to(device)
        generator = torch.Generator(device).manual_seed(0)
        with torch.no_grad():
            return float(self.loss(model, crops, generator))


# ---------------------------------------------------------------- a user's recordings (python -m studio train speech
# --data, the Train tab)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")  # what read_audio reads (libsndfile)
TRANSCRIPT_SUFFIX = ".txt"  # name.wav + name.txt
LIST_SUFFIX = ".csv"  # rows of file,text (the file relative to the CSV's folder)
MAX_TRAINING_SECONDS = 20.0  # a longer recording trains on its first seconds


@dataclass
class Recording:
    path: Path  # the audio file
    name: str  # as the user named it
    text: str  # what it says, normalised as the model reads it


def _clean(text: str) -> str:
    alphabet = SpeechAlphabet()
    return " ".join("".join(ch for ch in normalize_text(text) if alphabet.readable(ch)).split())


def _listed(csv_path: Path) -> list[tuple[Path, str]]:
    """(audio file, text) of each row of a CSV of file,text (a header row is skipped)."""
    import csv

    rows = []
    with open(csv_path, encoding="utf-8", errors="replace", newline="") as handle:
        for k, row in enumerate(csv.reader(handle)):
            if len(row) < 2 or not row[0].strip():
                continue
            audio = csv_path.parent / Path(row[0].strip().replace("\\", "/"))
            if k == 0 and not audio.is_file() and Path(row[0]).suffix.lower() not in AUDIO_SUFFIXES:
                continue  # a header: file,text
            rows.append((audio, ",".join(row[1:])))
    return rows


def _recordings_in(folder: Path, shown: str) -> tuple[list[Recording], int]:
    """(recordings, how many lack a transcript) of a folder: its CSV lists, else name.wav + name.txt pairs."""
    lists = sorted(p for p in folder.rglob(f"*{LIST_SUFFIX}") if not limits.hidden(str(p.relative_to(folder))))
    if lists:
        found = [(audio, text) for csv_path in lists for audio, text in _listed(csv_path)]
        missing = [audio.name for audio, _ in found if not audio.is_file()]
        if missing:
            raise AudioError(f"{shown}: the list names {len(missing)} recording(s) that are not there, the first "
                             f"{missing[0]}")
        return [Recording(audio, audio.name, _clean(text)) for audio, text in found], 0
    audio = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                   and not limits.hidden(str(p.relative_to(folder))))
    paired = [Recording(p, p.name,
                        _clean(p.with_suffix(TRANSCRIPT_SUFFIX).read_text(encoding="utf-8", errors="replace")))
              for p in audio if p.with_suffix(TRANSCRIPT_SUFFIX).is_file()]
    return paired, len(audio) - len(paired)


def read_recordings(paths, scratch) -> tuple[list[Recording], list[str]]:
    """(recordings with transcripts, notes) from `paths`: folders of name.wav + name.txt (or holding a
    CSV of file,text), CSV files, .zip files of either, or audio files with their .txt beside them.
    Recordings without a transcript are skipped with a note; AudioError with a sentence when none is left."""
    recordings, untranscribed = [], 0
    loose = [Path(p) for p in paths]
    # a recording a CSV lists is read with the CSV's text (not again with its .txt)
    listed = {audio.resolve() for p in loose if p.suffix.lower() == LIST_SUFFIX and p.is_file()
              for audio, _ in _listed(p)}
    for path in loose:
        if path.is_dir() or path.suffix.lower() == ".zip":
            folder = path
            if path.suffix.lower() == ".zip":
                Path(scratch).mkdir(parents=True, exist_ok=True)
                folder = Path(tempfile.mkdtemp(prefix="zip-", dir=scratch))  # a folder each: names never collide
                limits.extract_zip(path, folder,
                                   lambda name: Path(name).suffix.lower() in (*AUDIO_SUFFIXES, TRANSCRIPT_SUFFIX,
                                                                                            LIST_SUFFIX),
                                   None, "recordings", AudioError)
            found, missing = _recordings_in(folder, path.name)
            recordings += found
            untranscribed += missing
        elif path.suffix.lower() == LIST_SUFFIX:
            rows = _listed(path)
            absent = [audio.name for audio, _ in rows if not audio.is_file()]
            if absent:
                raise AudioError(f"{path.name} names {len(absent)} recording(s) that were not given, the first "
                                 f"{absent[0]}; "
                                 "upload them with it (or a zip of the list and the recordings)")
            recordings += [Recording(audio, audio.name, _clean(text)) for audio, text in rows]
        elif path.suffix.lower() in AUDIO_SUFFIXES:
            transcript = path.with_suffix(TRANSCRIPT_SUFFIX)
            if path.resolve() in listed:
                continue
            if transcript.is_file():
                recordings.append(Recording(path, path.name,
                                            _clean(transcript.read_text(encoding="utf-8", errors="replace"))))
            else:
                untranscribed += 1
        elif path.suffix.lower() != TRANSCRIPT_SUFFIX:
            raise AudioError(f"{path.name}: not a recording or a transcript; give name.wav (or .flac, .ogg) with "
                             "name.txt, "
                             "a CSV of file,text, or a folder or zip of them")
    notes = [f"skipped {untranscribed} recording(s) without a transcript (name.txt beside "
             "name.wav)"] if untranscribed else []
    empty = [r.name for r in recordings if not r.text]
    if empty:
        notes.append(f"skipped {len(empty)} recording(s) whose transcript has nothing the model reads, the first "
                     f"{empty[0]}")
        recordings = [r for r in recordings if r.text]
    if not recordings:
        raise AudioError("No recording has a transcript: a text-to-mel model learns to say a text, so give each "
                         "name.wav its name.txt (or a CSV of file,text)." if untranscribed else
                         "No recordings were given: name.wav + name.txt pairs, a CSV of file,text, or a folder or zip "
                         "of them.")
    return recordings, notes


def user_corpus(recordings: list[Recording]) -> tuple[Corpus, list[str]]:
    """(corpus, notes): each recording decoded (any rate, resampled; at most MAX_TRAINING_SECONDS),
    its silence trimmed and padded as the espeak-ng corpus' is, as log-mel; one voice (0), all "train"."""
    mels, texts, notes = [], [], []
    for recording in recordings:
        loaded = read_audio(recording.path, max_seconds=MAX_TRAINING_SECONDS)
        audio, _ = _librosa().effects.trim(loaded.audio, top_db=40)
        mels.append(encode_audio(np.pad(audio, (HOP * 4, HOP * 4))))
        texts.append(recording.text)
        notes += [f"{recording.name}: {note}" for note in loaded.notes if not note.startswith("Resampled")]
    return Corpus(mels, texts, [0] * len(mels), ["train"] * len(mels)), notes


def recording_files(recorded, text: str, folder) -> list[Path]:
    """A recording made in the page ((rate, samples), as gr.Audio gives it) and its transcript as
    name.wav + name.txt in `folder`; AudioError with a sentence when either is missing."""
    import soundfile

    if not isinstance(recorded, tuple | list) or len(recorded) != 2:
        raise AudioError("Record something first (the microphone above), then add it.")
    if not _clean(text or ""):
        raise AudioError("Type what the recording says in the transcript box: the model learns to say that text.")
    loaded = prepare_audio(recorded[1], recorded[0], max_seconds=MAX_TRAINING_SECONDS)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"recording-{len(list(folder.glob('recording-*.wav'))) + 1:03d}"
    soundfile.write(str(stem.with_suffix(".wav")), loaded.audio, SAMPLE_RATE)
    stem.with_suffix(TRANSCRIPT_SUFFIX).write_text(" ".join(text.split()), encoding="utf-8")
    return [stem.with_suffix(".wav"), stem.with_suffix(TRANSCRIPT_SUFFIX)]

MIN_UTTERANCES = 4  # recordings with transcripts: fewer cannot both train and validate


def held_out_count(utterances: int) -> int:
    """Utterances of a user's corpus kept aside to validate: a tenth, at least one."""
    return max(1, utterances // 10)


def prepare_recordings(paths: list[Path], folder: Path) -> tuple[list[Path], list[dict]]:
    """The Train tab's data: every recording paired with its transcript and its header read (checked
    now, so a bad upload is told at once), copied as name.wav + name.txt into one folder the trainer reads."""
    import soundfile

    recordings, _ = read_recordings(paths, folder / "unpacked")
    if len(recordings) < MIN_UTTERANCES:
        raise ValueError(f"{len(recordings)} recording(s) with a transcript were read; give at least {MIN_UTTERANCES} "
                         "(a few are kept aside to validate).")
    out = folder / "recordings"
    out.mkdir(parents=True, exist_ok=True)
    for k, recording in enumerate(recordings):
        try:
            soundfile.info(str(recording.path))
        except (RuntimeError, soundfile.LibsndfileError, OSError):
            raise ValueError(f"{recording.name} is not an audio file this studio can read (WAV, FLAC "
                             "or OGG).") from None
        stem = out / f"{k:04d}-{Path(recording.name).stem[:40]}"
        shutil.copyfile(recording.path, stem.with_suffix(recording.path.suffix.lower()))
        stem.with_suffix(".txt").write_text(recording.text, encoding="utf-8")
    return [out], [describe(path) for path in paths]


TRAINING = Training(
    suffixes=frozenset((*AUDIO_SUFFIXES, ".txt", ".csv")), what="recordings with transcripts",
    prepare=prepare_recordings,
    shape_flags=lambda shape: ["--hidden-size", str(shape[0]), "--decoder-layers", str(shape[1])],
    hint="Your data: recordings with transcripts (name.wav + name.txt, or a CSV of file,text with the recordings), "
         "or a zip of them; or recordings made below",
    recorded=recording_files)
