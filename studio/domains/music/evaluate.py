"""Music scoring: the exact NLL per frame (the JSB Chorales figure), the contract's
teacher-forced `score`, the per-step feature tracks the probes compare units against, and the
tiny model and example of the tests."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from studio.domains.base import LoadedModel, Scored
from studio.domains.music.codec import (
    MusicTraceDetail,
    PitchCodec,
    bar_start,
    bars_before,
    masked_log_probs,
    valid_next,
)
from studio.domains.music.data import MusicInputError, Primer
from studio.domains.music.generate import MusicSettings
from studio.domains.music.model import MusicModel, MusicModelConfig
from studio.sampling import SamplingConfig
from studio.trace import Trace

VALID_HOW = ("mean over the valid chorales' frames of -log P(frame | earlier frames of its chorale), nats, each "
             "chorale from a fresh state; `python -m studio eval music --data FILE --split valid` prints it")
TEST_HOW = ("mean over all JSB test frames of -log P(frame | earlier frames of its chorale), nats, each chorale from "
            "a fresh state (Boulanger-Lewandowski et al. 2012); `python -m studio eval music --data FILE --split test` "
            "prints it")


def pad_batch(sequences: list[list[int]], pad: int, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) tokens padded with `pad`, and (B,) lengths."""
    lengths = torch.tensor([len(s) for s in sequences])
    tokens = torch.full((len(sequences), int(lengths.max())), pad, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor(sequence)
    return tokens.to(device), lengths.to(device)


def token_nll(model, tokens: torch.Tensor, lengths: torch.Tensor, codec: PitchCodec) -> torch.Tensor:
    """(B, T-1) -log P(token t+1 | tokens <= t) under the validity mask; 0 on padding."""
    logits, _ = model(tokens[:, :-1])
    log_probs = masked_log_probs(logits, tokens[:, :-1], codec)
    nll = -log_probs.gather(2, tokens[:, 1:, None])[..., 0]
    real = torch.arange(tokens.shape[1] - 1, device=tokens.device)[None, :] < (lengths[:, None] - 1)
    return torch.where(real, nll, torch.zeros_like(nll))


@torch.no_grad()
def nll_per_frame(model, pieces: list[list[list[int]]], batch_size: int = 32) -> tuple[float, int]:
    """(mean -log P(frame | earlier frames) in nats over all frames, number of frames).

    Every piece starts from a fresh state after BOS; a frame's log-probability is the sum over
    its tokens (pitches and END), so the total is the sum over all real tokens."""
    codec = model.codec
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sequences = sorted((codec.encode(piece) for piece in pieces), key=len)  # similar lengths batch well
    total, frames = 0.0, 0
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        tokens, lengths = pad_batch(chunk, codec.end, device)
        total += float(token_nll(model, tokens, lengths, codec).double().sum())
        frames += sum(s.count(codec.end) for s in chunk)
    model.train(was_training)
    if frames == 0:
        raise MusicInputError("no frames to score")
    return total / frames, frames


def read_frames(frames, codec: PitchCodec) -> tuple[list[list[int]], list[int], list[str]]:
    """(the frames as the model reads them, BOS + their tokens, notes): a sequence that is not a
    list of frames of MIDI pitches is refused; pitches outside the range are moved by octaves."""
    ok = isinstance(frames, (list, tuple)) and all(
        isinstance(frame, (list, tuple)) and all(isinstance(p, numbers.Integral) for p in frame)
        for frame in frames)
    if not ok:
        raise MusicInputError("a music sequence is a list of frames, each a list of MIDI pitches (integers)")
    fitted, notes = codec.fit_to_range(frames)
    return fitted, codec.encode(fitted), list(getattr(frames, "notes", [])) + notes


@torch.no_grad()
def score(loaded: LoadedModel, frames) -> Scored:
    """Teacher-forced over BOS and `frames` from a fresh state: the exact trace (one batched
    recovery, see LSTMCore.trace) and after every token the head's raw logits for the next one
    (unmasked: apply codec.masked_log_probs for the distribution the model samples from)."""
    codec = loaded.codec
    fitted, tokens, notes = read_frames(frames, codec)
    logits, _, gates = loaded.model.trace(torch.tensor([tokens], device=loaded.device))
    detail = MusicTraceDetail.of(codec, tokens, len(fitted), getattr(frames, "source", ""),
                                 getattr(frames, "time_signatures", []))
    # shown_from=1: BOS only sets up the state, as a fresh start does in every domain
    trace = Trace.from_sequence(gates, [codec.label(t) for t in tokens], domain="music", model=loaded.name,
                                shown_from=1, prompt_length=len(tokens), layer_names=list(loaded.layer_names),
                                detail=detail)
    return Scored(trace, {"logits": logits[0].float().cpu().numpy()}, fitted, notes)


@torch.no_grad()
def fused(loaded: LoadedModel, frames) -> dict:
    """score's distributions computed by the training path (the fused kernel, no trace): the
    contract test checks the two agree."""
    _, tokens, _ = read_frames(frames, loaded.codec)
    logits, _ = loaded.model(torch.tensor([tokens], device=loaded.device))
    return {"logits": logits[0].float().cpu().numpy()}


# ---------------------------------------------------------------- asking the model why
def explainable(loaded: LoadedModel, frames):
    """(Scored, studio.explain.Explainable) of `frames`, read teacher-forced from a fresh state as
    `score` reads them (BOS, then per frame its pitches low to high and END).

    Steps are tokens. The differentiable input at step t is what the LSTM reads there,
    `model.inputs(tokens)` (1, T, E + 2P): the token's embedding followed by its frame context,
    the multi-hots of the last complete frame and of the current frame so far. The context repeats
    earlier pitches, so the saliency of step s is the token read at s together with the frames it
    summarises, as the model saw them at s. log_likelihood row t is log P(token t + 1 | tokens
    0..t) under the codec's valid-next mask (codec.masked_log_probs, the distribution the sampler
    draws from at temperature 1 and the NLL per frame sums); the last step: 0. Named targets:
    a note name ('C4', 'F#5') or 'end' (end of frame); one the codec's rule forbids at that
    step (a pitch not above the frame's last one) is refused with a ValueError."""
    from studio.explain import Explainable, core_weights, topk

    scored = score(loaded, frames)
    model, codec = loaded.model, loaded.codec
    tokens = torch.tensor([codec.encode(scored.sequence)], device=loaded.device)
    following = torch.cat([tokens[:, 1:], tokens[:, -1:]], 1)  # the token after each step

    def log_probs(x):  # (N, T', E + 2P) -> (N, T', V), invalid tokens -inf
        out, _ = model.core(x)
        return masked_log_probs(model.head(out), tokens[:, : x.shape[1]].expand(x.shape[0], -1), codec)

    def log_likelihood(x):
        picked = log_probs(x).gather(-1, following.expand(x.shape[0], -1)[..., None])[..., 0]
        return torch.cat([picked[:, :-1], torch.zeros_like(picked[:, -1:])], 1)  # nothing follows the last

    def target_log_prob(x, step, target):
        token = codec.token_of(target)
        if not bool(valid_next(tokens[:, step : step + 1], codec)[0, 0, token]):
            raise ValueError(f"{codec.label(token)} cannot come after {scored.trace.labels[step]} at step {step}: "
                             "within a frame the pitches rise, so only higher pitches or 'end' may follow")
        return log_probs(x[:, : step + 1])[:, step, token]  # the steps after `step` cannot change it

    names = [codec.label(k) for k in range(codec.size)]
    with torch.no_grad():
        masked = masked_log_probs(torch.as_tensor(scored.distributions["logits"])[None], tokens.cpu(), codec)[0]
    masked = masked.double().numpy()

    def guesses(step):
        top, entropy = topk(masked[step], names)  # fewer than 5 near the top of the range: no impossible ones
        return {"topk": [g for g in top if g["p"] > 0], "entropy": entropy, "end_of_frame": float(np.exp(masked[step, codec.end]))}

    with torch.no_grad():
        inputs = model.inputs(tokens)
    trace = scored.trace
    layer_inputs = [inputs[0].float().cpu().numpy()] + [trace.layers[k]["h"] for k in range(trace.num_layers - 1)]
    ex = Explainable(inputs, log_likelihood, layer_inputs, core_weights(model.core), guesses, target_log_prob,
                     list(trace.labels))
    return scored, ex


# ---------------------------------------------------------------- features
def frame_of_each_step(frames) -> np.ndarray:
    """(T,) the frame each token step of `frames` belongs to: BOS to the first frame, every pitch
    and END to their own frame (T = 1 + pitches + frames, as codec.encode writes them)."""
    sizes = [len(set(frame)) + 1 for frame in frames]  # a frame's tokens: its distinct pitches, then END
    return np.concatenate([[0], np.repeat(np.arange(len(frames)), sizes)]).astype(int)


def features(frames, scored=None) -> dict[str, np.ndarray]:
    """Per token step (one value per step of score's trace; a step shows the frame it belongs to):
    voices sounding, soprano and bass pitch (0 in a rest), beat position in the bar (quarter notes
    from its start, in the metre of the primer's file when it had one, else 4/4), whether the chord
    changed from the previous frame, and end of frame. With `scored`, the frames are the ones the
    model read (moved into range) and the grid is its own; without, a quarter-note grid is assumed
    (the shipped model's)."""
    steps_per_quarter, metre = 1, getattr(frames, "time_signatures", [])
    if scored is not None:
        frames, steps_per_quarter = scored.sequence, scored.trace.detail.steps_per_quarter
        metre = scored.trace.detail.time_signatures
    frames = [sorted(set(int(p) for p in frame)) for frame in frames]
    frame_index = frame_of_each_step(frames)
    padded = frames or [[]]  # no frames: BOS alone stands for an empty one
    voices = np.array([len(f) for f in padded], dtype=np.float32)
    soprano = np.array([f[-1] if f else 0 for f in padded], dtype=np.float32)
    bass = np.array([f[0] if f else 0 for f in padded], dtype=np.float32)
    grid = np.arange(len(padded))
    quarters = grid / steps_per_quarter
    beat = np.array([q - bar_start(metre, math.floor(bars_before(metre, q) + 1e-9)) for q in quarters])
    change = np.array([f != (padded[k - 1] if k else []) for k, f in enumerate(padded)], dtype=np.float32)
    is_end = np.zeros(len(frame_index), dtype=np.float32)
    is_end[np.cumsum([len(f) + 1 for f in frames]).astype(int)] = 1  # END of frame k sits after its pitches
    return {
        "voices": voices[frame_index],
        "soprano pitch": soprano[frame_index],
        "bass pitch": bass[frame_index],
        "beat position": beat[frame_index].astype(np.float32),
        "chord change": change[frame_index],
        "end of frame": is_end,
    }


def example():
    """(frames, settings): a short input for `score` and settings for `generate` that continue a
    two-chord primer by one bar (tests, docs, benches)."""
    frames = [[60, 64, 67], [62, 65, 69], [], [59, 62, 67, 74], [60, 64, 67, 72]]
    primer = Primer([[60, 64, 67], [62, 65, 71]], [], "example")
    return frames, MusicSettings(bars=1, primer=primer, sampling=SamplingConfig(temperature=1.0), seed=0)


def tiny(seed: int = 0):
    """(model, codec): a small random music model for tests (pitches 48..76, 16 units; no files)."""
    torch.manual_seed(seed)
    model = MusicModel(MusicModelConfig(48, 76, 1, embed_size=4, hidden_size=16, num_layers=2, dropout=0.0)).eval()
    return model, model.codec
