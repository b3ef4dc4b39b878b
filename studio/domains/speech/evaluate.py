"""Speech evaluation: the mel-cepstral distance (MCD) the card reports, the held-out evaluation
behind `python -m studio eval speech`, the attention alignment report, the contract's
teacher-forced `score` (with `fused`, the same through the training forward), the per-step
feature tracks the probes compare units against, how far apart two generations' predicted frames
are (`step_divergence`), and the tiny model and example of the tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from studio.domains.base import LoadedModel, Scored
from studio.domains.speech.codec import (
    N_MELS,
    SAMPLE_RATE,
    AudioError,
    SpeechCodec,
    SpeechDetail,
    _librosa,
    decode_audio,
    encode_audio,
    mel_centres,
)
from studio.domains.speech.data import Corpus, Utterance, reference_audio
from studio.domains.speech.generate import SpeechSettings, speak, trace_fields
from studio.domains.speech.model import FrameModel, SpeechModel, SpeechModelConfig, group_frames
from studio.domains.speech.train import make_speech_batch
from studio.experiments import bernoulli_kl
from studio.sampling import make_generator
from studio.trace import Trace

# Mel-cepstral distance as Kubichek (1993) defines it, with the defaults of the mel-cepstral-distance
# package (v0.0.4), whose README gives 7.45 for Tacotron 2 against ground truth: the yardstick.
MCD_FRAME_MS, MCD_HOP_MS, MCD_BANDS, MCD_FIRST, MCD_LAST = 32, 8, 20, 2, 16
# One departure from those defaults: both signals get the same seeded white noise at -60 dB below
# their peak, a recording's noise floor. espeak-ng writes exact digital silence (16% of its samples),
# whose log10 energy is log10(eps) = -15.7; without the floor those frames alone decide the score
# (Griffin-Lim's own round trip of espeak audio scored 24.6, worse than a different sentence: 12.5).
MCD_NOISE_FLOOR = 1e-3
REDUCTION = 3  # frames per step of both model kinds' defaults: features() groups by it without a trace
VOICED_BELOW_HZ = 1000.0  # features(): a frame is "voiced" when most of its energy lies below this...
VOICED_MIN_DB = -40.0  # ...and it is no more than 40 dB below the loudest frame
DECISIONS = {"stop": 1.0, "go on": -1.0}  # the text-to-mel stop token's named targets: the sign of its logit
MCD_HOW = ("model audio (Griffin-Lim) vs espeak-ng's rendering of each held-out sentence: Kubichek MCD with the "
           "mel-cepstral-distance package's defaults (20 bands, coefficients 2..16, DTW), plus a -60 dB noise floor; "
           "see studio/domains/speech/evaluate.py. Identified: the nearest held-out reference is its own.")


# ---------------------------------------------------------------- MCD
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


def alignment_report(alignment: np.ndarray) -> dict:
    """Does the attention read the text in order and to the end? (for the card and the tab)"""
    peak = alignment.argmax(1)
    backwards = int(np.sum(np.diff(peak) < 0))
    return {"monotonic": backwards == 0, "backward_steps": backwards,
            "reaches_end": bool(peak.max() >= alignment.shape[1] - 2),
            "coverage": float(len(set(peak.tolist())) / alignment.shape[1])}


@dataclass
class HeldOutReport:
    sentences: int
    mcd_db: float  # mean MCD of the model's audio against espeak-ng's rendering
    griffin_lim_floor_mcd_db: float  # mean MCD of espeak-ng's own log-mel inverted by Griffin-Lim
    identified: int  # sentences whose nearest held-out reference is their own
    stopped: int  # generations the stop token ended
    monotonic: int  # alignments that never step back
    reaching_end: int  # alignments that reach the end of the text


def held_out_mcd(loaded: LoadedModel, corpus: Corpus, limit: int) -> HeldOutReport:
    """MCD of the model's audio against espeak-ng's own rendering of each held-out sentence, next to
    the floor that Griffin-Lim alone sets (espeak's log-mel inverted the same way)."""
    held_out = corpus.indices("test")[:limit]
    if not held_out:
        raise ValueError("the corpus has no held-out sentences")
    references = [reference_audio(corpus.texts[k], corpus.voices[k]) for k in held_out]
    reference_bands = [mcd_bands(audio) for audio in references]  # each compared 50 times: once
    scores, floors, reports, stopped, identified = [], [], [], 0, 0
    for index, (k, reference) in enumerate(zip(held_out, references, strict=True)):
        result = speak(loaded, SpeechSettings(text=corpus.texts[k], voice=corpus.voices[k])).result
        # A proxy for intelligibility that needs no recogniser: among every held-out sentence as
        # espeak-ng says it, is the nearest (lowest MCD) the one the model was asked to say?
        bands = mcd_bands(result.audio)
        distances = [mcd_between(bands, other) for other in reference_bands]
        scores.append(distances[index])
        identified += int(np.argmin(distances)) == index
        floors.append(mcd_between(mcd_bands(decode_audio(encode_audio(reference))), reference_bands[index]))
        reports.append(alignment_report(result.alignment))
        stopped += result.stopped
    return HeldOutReport(len(scores), float(np.mean(scores)), float(np.mean(floors)), identified, stopped,
                         sum(r["monotonic"] for r in reports), sum(r["reaches_end"] for r in reports))


# ---------------------------------------------------------------- the contract's score
def _read(loaded: LoadedModel, sequence) -> tuple[Utterance, list[str]]:
    """The sequence as an Utterance cut to whole steps of R frames, and the notes on what changed."""
    utterance = sequence if isinstance(sequence, Utterance) else Utterance("", np.asarray(sequence, np.float32))
    log_mel = np.asarray(utterance.log_mel, np.float32)
    if log_mel.ndim != 2 or log_mel.shape[1] != N_MELS:
        raise ValueError(f"expected log-mel frames of shape (frames, {N_MELS}), got {log_mel.shape}")
    r = loaded.model.config.reduction
    notes = list(utterance.notes)
    if len(log_mel) < r:
        raise ValueError(f"the recording is too short: {len(log_mel)} frames, a step reads {r}")
    if len(log_mel) % r:
        notes.append(f"The last {len(log_mel) % r} frame(s), too few for a step of {r}, were left out.")
    read = Utterance(utterance.text, log_mel[: len(log_mel) // r * r], utterance.voice, notes, utterance.seed)
    if not isinstance(loaded.model, FrameModel):
        ids, dropped = loaded.codec.alphabet.encode(read.text)
        if len(ids) <= 1:
            raise ValueError("the transcript has no character this model reads")
        if dropped:
            notes.append("Dropped characters the model does not read: " + ", ".join(repr(ch) for ch in dropped[:20]) + ".")
        if not 0 <= read.voice < loaded.model.config.num_voices:
            raise ValueError(f"voice {read.voice} does not exist (the model knows {loaded.model.config.num_voices})")
    return read, notes


def _batch(loaded: LoadedModel, read: Utterance):
    """The utterance as a batch of one, its frames in the model's dtype (float64 in checks)."""
    batch = make_speech_batch(loaded.model.config, [read.log_mel], [read.text], [read.voice], loaded.device)
    dtype = next(loaded.model.parameters()).dtype
    batch.mel_in, batch.targets = batch.mel_in.to(dtype), batch.targets.to(dtype)
    return batch


@torch.no_grad()
def score(loaded: LoadedModel, sequence) -> Scored:
    """Teacher-forced over a recording (an Utterance; a bare (frames, 80) log-mel for the frame
    LSTM): the exact trace and per step the predicted frames (and stop probability). The
    text-to-mel model reads the transcript and, at step t, the last frame of step t-1, its prenet
    dropping what the utterance's seed draws (0 unless set; `fused` draws the same)."""
    return _score(loaded, sequence)


@torch.no_grad()
def _score(loaded: LoadedModel, sequence, reads: list | None = None) -> Scored:
    """score; a text-to-mel model's layer inputs land in `reads` (SpeechModel._read)."""
    read, notes = _read(loaded, sequence)
    model, r = loaded.model, loaded.model.config.reduction
    if isinstance(model, FrameModel):
        groups = group_frames(model.normalize(torch.from_numpy(read.log_mel).to(loaded.device))[None], r)
        predicted, _, gates = model.trace(groups)
        steps = groups.shape[1]
        trace = Trace.from_sequence(gates, [str(k * r) for k in range(steps)],
                                    **trace_fields(loaded, SpeechDetail("continue", r), prompt_length=steps))
        return Scored(trace, {"frames": _frames(model, predicted[0], r)}, read, notes)
    batch = _batch(loaded, read)
    frames, stop, phi, gates = model.trace(batch.tokens, batch.voices, batch.mel_in, make_generator(read.seed, loaded.device),
                                           reads=reads)
    alphabet, ids = loaded.codec.alphabet, batch.tokens[0].tolist()
    position = phi[0].argmax(1).tolist()
    detail = SpeechDetail("text-to-speech", r, alphabet.decode(ids) + alphabet.label(ids[-1]), position)
    trace = Trace.from_sequence(gates, [alphabet.label(ids[k]) for k in position],
                                **trace_fields(loaded, detail, prompt_length=len(position)))
    distributions = {"frames": _frames(model, frames[0], r), "stop": torch.sigmoid(stop[0]).cpu().numpy()}
    return Scored(trace, distributions, read, notes)


def _frames(model, groups: torch.Tensor, r: int) -> np.ndarray:
    """Normalised groups (T, R*80) -> log-mel frames (T, R, 80) float32."""
    return model.denormalize(groups.reshape(-1, r, N_MELS)).float().cpu().numpy()


@torch.no_grad()
def fused(loaded: LoadedModel, sequence) -> dict[str, np.ndarray]:
    """score's distributions through the training forward (no trace): the contract test checks
    the two agree."""
    read, _ = _read(loaded, sequence)
    model, r = loaded.model, loaded.model.config.reduction
    if isinstance(model, FrameModel):
        predicted, _ = model(group_frames(model.normalize(torch.from_numpy(read.log_mel).to(loaded.device))[None], r))
        return {"frames": _frames(model, predicted[0], r)}
    batch = _batch(loaded, read)
    frames, stop, _ = model(batch.tokens, batch.voices, batch.mel_in, make_generator(read.seed, loaded.device))
    return {"frames": _frames(model, frames[0], r), "stop": torch.sigmoid(stop[0]).cpu().numpy()}


# ---------------------------------------------------------------- asking the model why
def explainable(loaded: LoadedModel, sequence):
    """(Scored, studio.explain.Explainable) of a recording, read teacher-forced from a fresh state
    as `score` reads it.

    Text-to-mel model. The differentiable input at step t is the frame the decoder reads there,
    before the prenet: the last frame of the group written at step t - 1 (zeros at step 0), 80
    normalised log-mel values; "the earlier inputs" are the sounds the model heard itself make.
    The text, the voice and the prenet's dropout masks stay fixed: the masks are the very ones
    `score` drew (the utterance's seed), so the forward is deterministic and gradients agree with
    finite differences. Step t writes group t, so every step, the last too, has an actual next
    value: log_likelihood row t = -1/2 ||predicted group t - actual group t||^2 over its R x 80
    normalised values (a unit-variance Gaussian's log-density, its constant -(R 80 / 2) log 2 pi
    left out, so a perfect group scores 0) plus the log-probability of the actual stop decision:
    log sigmoid(stop logit) at the last step (the recording ends there), log(1 - sigmoid) before.
    guesses(t): "stop" and "go on" with the stop probability, the stop Bernoulli's entropy, and
    "attention_peak" {"index", "char"}: the character the window weighs most. layer_inputs: the
    attention LSTM's [prenet(frame), voice, previous context], the first decoder layer's
    [attention h, context, voice], then each layer's h below it. Named targets: "stop" and
    "go on", the log-probability of that stop decision at the step ("why did it stop here?").
    On the model's own generation the frames are exactly what it predicted, so the Gaussian part
    sits at its maximum and its gradient is 0: gradient x input there explains the stop decision
    only (integrated gradients, and a recording, see the frames too).

    Frame LSTM. The input at step t is the group of R frames it reads (R x 80 normalised values);
    row t = -1/2 ||predicted group t+1 - actual group t+1||^2 (the same Gaussian), the last 0.
    guesses(t): the five mel bands holding most of the predicted next group's energy (p = the
    band's share of the group's mel energy; entropy: the spectral entropy of those shares). No
    named targets (target_log_prob is None)."""
    from studio.explain import Explainable, core_weights

    reads = []
    scored = _score(loaded, sequence, reads)
    model, labels = loaded.model, list(scored.trace.labels)
    if isinstance(model, FrameModel):
        return scored, Explainable(*_frame_parts(loaded, scored), labels=labels)
    batch, steps = _batch(loaded, scored.sequence), scored.trace.steps
    masks = model.prenet_masks(batch.mel_in.shape[:-1], make_generator(scored.sequence.seed, loaded.device), loaded.device)
    decision = -torch.ones(1, steps, dtype=batch.targets.dtype, device=loaded.device)  # -1: go on, +1: stop
    decision[0, -1] = 1

    def log_likelihood(x):
        frames, stop, _ = model(batch.tokens.expand(len(x), -1), batch.voices.expand(len(x)), x, masks=masks)
        return -0.5 * ((frames - batch.targets) ** 2).sum(-1) + F.logsigmoid(decision * stop)

    def target_log_prob(x, step, target):
        if not isinstance(target, str) or target not in DECISIONS:
            raise ValueError(f"the target must be one of the stop token's decisions {' or '.join(map(repr, DECISIONS))}, "
                             f"not {target!r}")
        _, stop, _ = model(batch.tokens.expand(len(x), -1), batch.voices.expand(len(x)), x[:, : step + 1],
                         masks=[m[:, : step + 1] for m in masks])
        return F.logsigmoid(DECISIONS[target] * stop[:, step])

    detail, stop = scored.trace.detail, scored.distributions["stop"].astype(np.float64)

    def guesses(step):
        top, entropy = _shares([stop[step], 1 - stop[step]], ["stop", "go on"], 2)
        peak = detail.position[step]
        return {"topk": top, "entropy": entropy, "attention_peak": {"index": peak, "char": detail.text[peak]}}

    layer_inputs = [reads[0][0].float().cpu().numpy(), reads[1][0].float().cpu().numpy()]
    layer_inputs += [scored.trace.layers[k]["h"] for k in range(1, scored.trace.num_layers - 1)]
    weights = core_weights(model.attention_rnn) + core_weights(model.decoder_rnn)
    return scored, Explainable(batch.mel_in, log_likelihood, layer_inputs, weights, guesses, target_log_prob, labels)


def _frame_parts(loaded: LoadedModel, scored: Scored):
    """The frame LSTM's Explainable fields (inputs, log_likelihood, layer_inputs, weights, guesses)."""
    from studio.explain import core_weights

    model, r = loaded.model, loaded.model.config.reduction
    dtype = next(model.parameters()).dtype
    log_mel = torch.from_numpy(scored.sequence.log_mel).to(loaded.device, dtype)
    groups = group_frames(model.normalize(log_mel)[None], r)  # (1, T, R*80)

    def log_likelihood(x):
        predicted, _ = model(x)
        error = -0.5 * ((predicted[:, :-1] - groups[:, 1:]) ** 2).sum(-1)
        return torch.cat([error, torch.zeros_like(error[:, :1])], 1)  # nothing follows the last

    names = [f"band {k} (~{hz:.0f} Hz)" for k, hz in enumerate(mel_centres())]
    energy = np.exp(scored.distributions["frames"].astype(np.float64)).mean(1)  # (T, 80) mel energy per band

    def guesses(step):
        top, entropy = _shares(energy[step], names)
        return {"topk": top, "entropy": entropy}

    with torch.no_grad():
        read = torch.relu(model.inp(groups))[0].float().cpu().numpy()
    layer_inputs = [read] + [scored.trace.layers[k]["h"] for k in range(scored.trace.num_layers - 1)]
    return groups, log_likelihood, layer_inputs, core_weights(model.core), guesses


def _shares(amounts, names, k: int = 5):
    """explain.topk over non-negative amounts (probabilities, energies): p = each one's share."""
    from studio.explain import topk

    with np.errstate(divide="ignore"):
        return topk(np.log(np.asarray(amounts, np.float64)), names, k)


def step_divergence(plain: dict, changed: dict) -> tuple[np.ndarray, str]:
    """The contract's comparison of two generations' next-step predictions: per step, half the
    squared distance of the predicted frames (the KL of unit-variance Gaussians around them), plus
    the stop Bernoulli's KL where there is one."""
    steps = min(len(plain["frames"]), len(changed["frames"]))
    a = plain["frames"][:steps].reshape(steps, -1).astype(np.float64)
    b = changed["frames"][:steps].reshape(steps, -1).astype(np.float64)
    values = 0.5 * ((a - b) ** 2).sum(1)
    if "stop" in plain and "stop" in changed:
        values = values + bernoulli_kl(plain["stop"][:steps].reshape(steps, -1).mean(1),
                                       changed["stop"][:steps].reshape(steps, -1).mean(1))
    return values, "½‖Δ predicted frames‖², the KL of unit-variance Gaussians around them (nats)"


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
    return Utterance("hi there.", example_mel()), SpeechSettings(text="hi there.", stop_threshold=1.0, max_steps=30,
                                                          griffin_lim_iters=4)
