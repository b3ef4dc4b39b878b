"""Speech generation through the models' own `step`. `generate(loaded, settings, hooks)` goes by the
model's kind: a text-to-mel model speaks SpeechSettings.text (R frames a decoder step until the
stop token fires); a frame LSTM continues ContinueSettings.audio (primed with the recording's
frames, then group by group). Both invert the frames to audio with Griffin-Lim unless asked not to.

Distributions (first axis = trace steps): "frames" (steps, R, 80), the log-mel frames predicted at
each step (text-to-mel: the group the step wrote; frame LSTM: the group after the one it read) and,
for the text-to-mel model, "stop" (steps,), the stop probability after each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from studio import limits
from studio.domains.base import Generation, LoadedModel
from studio.domains.speech.codec import (
    END_LABEL,
    GRIFFIN_LIM_ITERS,
    HOP,
    N_MELS,
    SAMPLE_RATE,
    AudioError,
    SpeechDetail,
    decode_audio,
    encode_audio,
    normalize_text,
)
from studio.domains.speech.data import band_note
from studio.domains.speech.model import FrameModel, SpeechModel, group_frames
from studio.sampling import make_generator
from studio.trace import Trace

MAX_TEXT = 300  # characters of text per request; longer text is cut (with a note)
MAX_SECONDS_OUT = 20.0  # generated audio per request; the stop token usually ends far sooner
MAX_CONTINUE_SECONDS = 10.0


@dataclass
class SpeechSettings:
    text: str = "hello world, this is a speaking machine."
    voice: int = 0  # index into the card's voices
    seed: int = 0  # seeds the prenet dropout (the only randomness when generating)
    stop_threshold: float = 0.5  # generation ends when the stop probability passes this
    griffin_lim_iters: int = GRIFFIN_LIM_ITERS  # 0: frames only, no audio
    max_steps: int = 0  # decoder steps at most (R frames each); 0: the cap for the text (see max_steps_for)


@dataclass
class SpeechResult:
    text: str  # the text as the model read it (normalised, capped)
    log_mel: np.ndarray  # (frames, 80)
    audio: np.ndarray  # frames * HOP samples at SAMPLE_RATE (empty with griffin_lim_iters=0)
    alignment: np.ndarray  # (steps, U) attention weights over the characters (END included)
    stop_probs: np.ndarray  # (steps,)
    stopped: bool  # True when the stop token ended generation (False: the length cap did)
    notes: list[str]
    voice: int = 0  # the voice spoken in
    seed: int = 0  # the seed of the prenet dropout


@dataclass
class ContinueSettings:
    audio: np.ndarray | None = None  # the recording: mono float32 at SAMPLE_RATE (data.read_audio(path).audio)
    seconds: float = 2.0  # how much to add after the recording, clamped to (0, MAX_CONTINUE_SECONDS]
    noise: float = 0.3  # std of Gaussian noise (normalised units) added to each group fed back, not to the output
    seed: int = 0
    prime_seconds: float = 5.0  # only the recording's last prime_seconds prime the state (and are shown)
    griffin_lim_iters: int = GRIFFIN_LIM_ITERS  # 0: frames only, no audio
    keep_in_range: bool = True  # hold predictions to the card's per-bin training range (mel_min/mel_max) if known


@dataclass
class ContinueResult:
    log_mel: np.ndarray  # primer frames then generated frames (the model's predictions), (frames, 80)
    primer_frames: int
    audio: np.ndarray  # Griffin-Lim of the whole log_mel (empty with griffin_lim_iters=0)
    notes: list[str] = field(default_factory=list)
    fed: np.ndarray | None = None  # what the model read: primer frames then the predictions plus noise
    held_values: int = 0  # predicted values keep_in_range moved back from more than 1 beyond the training range


def clean_text(settings: SpeechSettings, codec, num_voices: int) -> tuple[list[int], int, list[str]]:
    """(token ids, voice, notes): the documented limits applied to a request."""
    notes = []
    text = normalize_text(settings.text or "")
    if len(text) > MAX_TEXT:
        cut = text[:MAX_TEXT].rsplit(" ", 1)[0] or text[:MAX_TEXT]
        notes.append(f"The text has {len(text):,} characters; only the first {len(cut)} (up to a word boundary) were spoken (cap {MAX_TEXT}).")
        text = cut
    ids, dropped = codec.alphabet.encode(text)
    if dropped:
        notes.append("Dropped characters the model does not read: " + ", ".join(repr(ch) for ch in dropped[:20]) + ".")
    if len(ids) <= 1:
        notes.append("No text to speak: spoke a default sentence instead." if not text else
                     "Nothing in the text was readable: spoke a default sentence instead.")
        ids, _ = codec.alphabet.encode(SpeechSettings.text)
    voice = int(settings.voice)
    if not 0 <= voice < num_voices:
        notes.append(f"Voice {voice} does not exist; used voice 0.")
        voice = 0
    return ids, voice, notes


def max_steps_for(settings: SpeechSettings, reduction: int, characters: int) -> int:
    """Decoder steps allowed: 12 per character + 20, at most MAX_SECONDS_OUT, at most settings.max_steps."""
    cap = int(min(MAX_SECONDS_OUT * SAMPLE_RATE / HOP / reduction, 12 * characters + 20))
    return min(cap, int(settings.max_steps)) if settings.max_steps > 0 else cap


def trace_fields(loaded: LoadedModel, detail: SpeechDetail, prompt_length: int = 0) -> dict:
    """The Trace description every speech trace carries."""
    return {"domain": "speech", "model": loaded.name, "prompt_length": prompt_length,
            "layer_names": list(loaded.layer_names), "detail": detail}


def audio_of(log_mel: np.ndarray, iters: int, seed: int) -> np.ndarray:
    return decode_audio(log_mel, n_iter=iters, seed=limits.seed32(seed)) if iters > 0 else np.zeros(0, np.float32)


def generate(loaded: LoadedModel, settings, hooks=None) -> Generation:
    """Speak (text-to-mel model, SpeechSettings) or continue a recording (frame LSTM,
    ContinueSettings); hooks (studio.lstm) see every step of every layer."""
    if isinstance(loaded.model, FrameModel):
        if not isinstance(settings, ContinueSettings):
            raise ValueError(f"{loaded.name} is a frame LSTM: it continues a recording (ContinueSettings), it reads no text")
        generation = continue_recording(loaded, settings, hooks)
    elif isinstance(settings, SpeechSettings):
        generation = speak(loaded, settings, hooks)
    else:
        raise ValueError(f"{loaded.name} is a text-to-mel model: it speaks a text (SpeechSettings)")
    generation.settings = settings
    return generation


@torch.no_grad()
def speak(loaded: LoadedModel, settings: SpeechSettings, hooks=None) -> Generation:
    """Text -> mel frames step by step (R frames a step) through SpeechModel.step, which records
    the gates of the attention LSTM (trace layer 0) and of the decoder LSTM (layers 1..)."""
    model: SpeechModel = loaded.model
    c, alphabet = model.config, loaded.codec.alphabet
    ids, voice_id, notes = clean_text(settings, loaded.codec, c.num_voices)
    device = loaded.device
    generator = make_generator(settings.seed, device)
    state = model.start(torch.tensor([ids], device=device), torch.tensor([voice_id], device=device))
    frame = torch.zeros(1, N_MELS, device=device)
    max_steps = max_steps_for(settings, c.reduction, len(ids))
    groups, phis, stops, step_gates, labels = [], [], [], [], []
    stopped = False
    for t in range(max_steps):
        made, state = model.step(frame, state, hooks, t, generator)
        stop = float(torch.sigmoid(made.stop_logit))
        groups.append(made.group)
        phis.append(made.phi[0])
        stops.append(stop)
        step_gates.append(made.gates)
        labels.append(alphabet.label(ids[int(made.phi[0].argmax())]))
        frame = made.group[:, -N_MELS:]
        if stop > settings.stop_threshold:
            stopped = True
            break
        if limits.out_of_time():  # the request's deadline: keep what was spoken
            notes.append(limits.time_note(f"the first {len(groups) * c.reduction} frames"))
            break
    if not stopped and not limits.out_of_time():
        notes.append(f"The stop token never fired; generation ended at the cap of {max_steps * c.reduction} frames.")
    frames = torch.cat(groups).reshape(-1, N_MELS)
    log_mel = model.denormalize(frames).cpu().numpy().astype(np.float32)
    alignment = torch.stack(phis).cpu().numpy()
    text = alphabet.decode(ids)
    detail = SpeechDetail("text-to-speech", c.reduction, text + END_LABEL, [int(k) for k in alignment.argmax(1)])
    trace = Trace.from_steps(step_gates, labels, **trace_fields(loaded, detail))
    stop_probs = np.array(stops, np.float32)
    result = SpeechResult(text, log_mel, audio_of(log_mel, settings.griffin_lim_iters, settings.seed), alignment,
                          stop_probs, stopped, notes, voice_id, int(settings.seed))
    return Generation(result, trace, {"frames": log_mel.reshape(len(groups), c.reduction, N_MELS), "stop": stop_probs})


def clean_continue(settings: ContinueSettings) -> tuple[float, float, list[str]]:
    """(seconds, noise, notes), clamped to their documented ranges."""
    notes = []
    seconds = float(settings.seconds)
    if not 0 < seconds <= MAX_CONTINUE_SECONDS:
        seconds = min(max(seconds, 0.1), MAX_CONTINUE_SECONDS)
        notes.append(f"Continuation length clamped to {seconds:g} s (0.1 to {MAX_CONTINUE_SECONDS:g} s).")
    noise = float(settings.noise)
    if not 0 <= noise <= 1:
        noise = min(max(noise, 0.0), 1.0)
        notes.append(f"Noise clamped to {noise:g} (0 to 1).")
    return seconds, noise, notes


def value_bounds(model: FrameModel, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The card's per-bin training range and 1 log unit, normalised and repeated for a group of r
    frames: (low, high, one); None if the card has no range."""
    c = model.config
    if len(c.mel_min) != N_MELS or len(c.mel_max) != N_MELS:
        return None
    low, high = (model.normalize(torch.tensor(v, device=model.mel_mean.device)).repeat(r) for v in (c.mel_min, c.mel_max))
    return low, high, (1 / model.mel_std).repeat(r)


@torch.no_grad()
def continue_recording(loaded: LoadedModel, settings: ContinueSettings, hooks=None) -> Generation:
    """Prime the frame LSTM with a recording's log-mel (one traced pass; stepped when hooks are
    given, so they see the primer too), then let it go on group by group for settings.seconds."""
    model: FrameModel = loaded.model
    if settings.audio is None:
        raise AudioError("give a recording to continue")
    seconds, noise, notes = clean_continue(settings)
    r = model.config.reduction
    log_mel = encode_audio(settings.audio)
    keep = int(settings.prime_seconds * SAMPLE_RATE / HOP) // r * r
    if len(log_mel) > keep:
        log_mel = log_mel[-keep:]
        notes.append(f"Primed with the recording's last {settings.prime_seconds:g} s.")
    device = loaded.device
    frames = (torch.from_numpy(log_mel).to(device) - model.mel_mean) / model.mel_std
    groups = group_frames(frames[None], r)  # (1, P, R*80)
    primer_steps = groups.shape[1]
    if primer_steps == 0:
        raise AudioError("the recording is too short to prime the model (need at least 3 frames)")
    primer_labels = [f"p{k}" for k in range(primer_steps)]
    step_gates, predictions = [], []
    if hooks:  # every primer step through `step`, so the hooks see it
        state = model.core.initial_state(1, device)
        for t in range(primer_steps):
            group, state, gates = model.step(groups[:, t], state, hooks, t)
            step_gates.append(gates)
            predictions.append(group)
        primer_trace = None
    else:
        predicted, state, gates = model.trace(groups)
        primer_trace = Trace.from_sequence(gates, primer_labels)
        predictions.append(predicted[0])
        group = predicted[:, -1]
    generator = make_generator(settings.seed, device)
    bounds = value_bounds(model, r) if settings.keep_in_range else None
    made, fed, held = [], [], 0
    # The output is what the model predicts; the noise goes only into what it reads next. Noise in the
    # output itself would be carried on (the model predicts a change from what it reads), a random walk
    # out of the training range within a second (docs/speech.md, "Continuing a recording").
    for k in range(max(1, int(seconds * SAMPLE_RATE / HOP / r))):
        if bounds is not None:  # held silently within [min, max]; counted when more than 1 log unit out
            low, high, one = bounds
            held += int(((group < low - one) | (group > high + one)).sum())
            group = torch.minimum(torch.maximum(group, low), high)
        made.append(group)
        fed.append(group + noise * torch.randn(group.shape, generator=generator, device=device))
        group, state, gates = model.step(fed[-1], state, hooks, primer_steps + k)
        step_gates.append(gates)
        predictions.append(group)
        if limits.out_of_time():  # the request's deadline: keep what was made
            notes.append(limits.time_note(f"the first {len(made) * r} frames of the continuation"))
            break
    if held:
        notes.append(f"Held {held:,} predicted values ({held / (len(made) * r * N_MELS):.2%}) that strayed more than "
                     "1 beyond the training data's per-bin range back into it.")
    band = band_note(settings.audio)
    if band:
        notes.append(band)
    primer = log_mel[: primer_steps * r]
    made_mel, fed_mel = (model.denormalize(torch.cat(g).reshape(-1, N_MELS)).cpu().numpy() for g in (made, fed))
    out = np.concatenate([primer, made_mel]).astype(np.float32)
    labels = [f"g{k}" for k in range(len(made))]
    fields = trace_fields(loaded, SpeechDetail("continue", r), prompt_length=primer_steps)
    stepped = Trace.from_steps(step_gates, primer_labels + labels if hooks else labels, **fields)
    trace = stepped if hooks else Trace.concat(Trace(primer_trace.layers, primer_trace.labels, **fields), stepped)
    predicted_frames = model.denormalize(torch.cat(predictions).reshape(-1, r, N_MELS)).cpu().numpy()
    result = ContinueResult(out, len(primer), audio_of(out, settings.griffin_lim_iters, settings.seed), notes,
                            np.concatenate([primer, fed_mel]).astype(np.float32), held)
    return Generation(result, trace, {"frames": predicted_frames.astype(np.float32)})
