"""Text scoring: nats per character over a text, the contract's teacher-forced `score`, the
per-token feature tracks the probes compare units against (per character, or per word for a word
model), and the tiny model and example of the tests."""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F

from studio import probe_stream
from studio.domains.base import LoadedModel, Scored
from studio.domains.text.codec import TextCodec, code_points
from studio.domains.text.generate import TextSettings, read_windowed
from studio.domains.text.model import TextModel, TextModelConfig
from studio.trace import Trace

CUSTOM_FEATURE_HINT = " or type a regex (e.g. '[^'\\n]*' for inside quotes)"

VAL_HOW = ("mean -log P(char | all earlier val chars), state carried through the validation text in 16 contiguous "
           "streams; `python -m studio eval text --data FILE` prints it")


@torch.no_grad()
def nats_per_char(model, ids, streams: int = 16, chunk: int = 1024) -> float:
    """Mean -log P(char | all earlier chars) in nats, state carried through the text.

    The text is cut into `streams` contiguous pieces run side by side for speed; each piece's
    first character has no prediction, all others are scored."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    if len(ids) < 2:
        raise ValueError("need at least 2 characters to score a prediction")
    device = next(model.parameters()).device
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    piece = (len(ids) - 1) // streams
    total, count = 0.0, 0
    rows = torch.stack([ids[k * piece : k * piece + piece + 1] for k in range(streams)]).to(device)
    state = None
    for start in range(0, piece, chunk):
        inputs = rows[:, start : min(start + chunk, piece)]
        targets = rows[:, start + 1 : min(start + chunk, piece) + 1]
        logits, state = model(inputs, state)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"))
        count += targets.numel()
    # Scored characters outside the streams' even split are left out: at most `streams` chars.
    return total / count


@torch.no_grad()
def score(loaded: LoadedModel, text: str) -> Scored:
    """Teacher-forced over `text` from a fresh state: the exact trace (one batched recovery, see
    LSTMCore.trace) and after every token the logits of the next one. A text with a window (a
    TokenText a window-sampled generation hands on) is read as the sampler read it: each step the
    last `window` tokens from a zero state (generate.read_windowed)."""
    ids, dropped = loaded.codec.encode(text)
    if not ids:
        raise ValueError("the text has no character this model knows")
    notes = [f"Dropped characters this model never saw: {dropped!r}."] if dropped else []
    window = getattr(text, "window", 0)
    if window:
        logits, gates = read_windowed(loaded, ids, window)
    else:
        logits, _, gates = loaded.model.trace(torch.tensor([ids], device=loaded.device))
    read = loaded.codec.read(ids, window)
    trace = Trace.from_sequence(gates, read.labels, domain="text", model=loaded.name, prompt_length=len(ids))
    return Scored(trace, {"logits": logits[0].float().cpu().numpy()}, read, notes)


@torch.no_grad()
def fused(loaded: LoadedModel, text: str) -> dict:
    """score's distributions computed by the training path (the fused kernel, no trace): the
    contract test checks the two agree."""
    ids, _ = loaded.codec.encode(text)
    logits, _ = loaded.model(torch.tensor([ids], device=loaded.device))
    return {"logits": logits[0].float().cpu().numpy()}


def explainable(loaded: LoadedModel, text: str):
    """(Scored, studio.explain.Explainable) of `text`: what the explanations need, teacher-forced.
    The differentiable input is each token's embedding. A window-sampled text (score) is explained
    step by step as the sampler computed it: a step's guesses, saliency and equations are those of
    its window read from zero (the Explainable's `apart`)."""
    from studio.explain import Explainable, core_weights, topk

    scored = score(loaded, text)
    model, codec = loaded.model, loaded.codec
    window = scored.sequence.window
    plain_ids = codec.encode(scored.sequence)[0]
    ids = torch.tensor([plain_ids], device=loaded.device)
    following = torch.cat([ids[:, 1:], ids[:, -1:]], 1)  # the next token after each step

    def log_probs(x):
        if window and x is embedded:  # the sequence as read (surprise): score has every window's logits
            return F.log_softmax(torch.as_tensor(scored.distributions["logits"], device=x.device), -1)[None]
        out = _windowed_outputs(model.core, x, window) if window else model.core(x)[0]
        return F.log_softmax(model.head(out), -1)  # (N, T, V)

    def log_likelihood(x):
        picked = log_probs(x).gather(-1, following.expand(x.shape[0], -1)[..., None])[..., 0]
        return torch.cat([picked[:, :-1], torch.zeros_like(picked[:, -1:])], 1)  # nothing follows the last

    def target_log_prob(x, step, target):
        if not isinstance(target, str) or target not in codec.index:
            raise ValueError(f"the target must be one {'word' if codec.words else 'character'} this model knows, not "
                             f"{target!r}")
        return log_probs(x)[:, step, codec.index[target]]

    names = [repr(ch)[1:-1] if ch in "\n\t" else ch for ch in codec.tokens]
    logits = scored.distributions["logits"]

    def guesses(step):
        top, entropy = topk(logits[step], names)
        return {"topk": top, "entropy": entropy}

    with torch.no_grad():
        embedded = model.embed(ids)
    layer_inputs = [embedded[0].cpu().numpy()] + [scored.trace.layers[k]["h"] for k in range(scored.trace.num_layers - 1)]

    def apart(step):  # the window the sampler read before this prediction, and the token that followed it
        start = max(0, step - window + 1)
        local, local_ex = explainable(loaded, codec.read(plain_ids[start : step + 2]))
        return local.trace, local_ex, step - start, start

    ex = Explainable(embedded, log_likelihood, layer_inputs, core_weights(model.core), guesses, target_log_prob,
                     list(scored.trace.labels), apart if window else None)
    return scored, ex


def _windowed_outputs(core, x, window: int):
    """The top layer's output at the last position of each step's window (read from zero) over
    inputs x (N, T, E): (N, T, H), differentiable (read_windowed's reading, for the log-likelihood)."""
    n, steps, width = x.shape
    head = min(window - 1, steps)
    parts = [core(x[:, :head])[0]] if head else []
    if steps > head:
        windows = x.unfold(1, window, 1).permute(0, 1, 3, 2).reshape(-1, window, width)  # (N * (T - head), window, E)
        parts.append(core(windows)[0][:, -1].reshape(n, steps - head, -1))
    return torch.cat(parts, 1)


def trace_chunks(loaded: LoadedModel, text: str, chunk: int = 10_000):
    """(the text as the model reads it, the exact teacher-forced trace of it `chunk` characters at a
    time with the state carried over, as one pass would give it): 100,000 characters never hold
    1.8 GB of gates at once. The first is a TokenText (a word model's features are per token); the
    second yields (Trace of the chunk, the text it read)."""
    ids, _ = loaded.codec.encode(text)
    return loaded.codec.read(ids), _chunks(loaded, ids, chunk)


@torch.no_grad()
def _chunks(loaded: LoadedModel, ids: list, chunk: int):
    state = None
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        _, state, gates = loaded.model.trace(torch.tensor([part], device=loaded.device), state)
        read = loaded.codec.decode(part)
        yield Trace.from_sequence(gates, loaded.codec.labels(part), domain="text", model=loaded.name), read


def fast_probe(loaded: LoadedModel, text: str, track, top: int = 10, progress=None) -> list:
    """The probe over a long text read as parallel streams, each from a 100-character burn-in, with
    bfloat16 matrix products where the hardware has them (trace_streams; docs/benchmarks.md,
    Experiments on units, measures its speed and its agreement with the exact ranking), in
    probe_stream.probe_parts() threads. `text` as trace_chunks reads it, `track` one value per step;
    progress(fraction) hears the steps read so far (probe_stream.accumulate_parts)."""
    config = loaded.model.core.config
    parts = trace_streams(loaded, text, parts=probe_stream.probe_parts(loaded.device),  # runs the burn-in
                          gemm_dtype=probe_stream.fast_gemm_dtype(loaded.device))
    return probe_stream.accumulate_parts(parts, track, config.num_layers, config.hidden_size, progress).top(top)


@torch.no_grad()
def trace_streams(loaded: LoadedModel, text: str, streams: int = 64, burn_in: int = 100, chunk: int = 64,
                  parts: int = 1, gemm_dtype: torch.dtype | None = None) -> list:
    """The teacher-forced trace of a long text read as `streams` pieces side by side (LSTMCore.trace_stepped:
    one batched step instead of a batch-1 kernel, faster on a CPU: docs/benchmarks.md, Experiments on
    units). Piece k > 0 starts from the
    state the `burn_in` characters before it leave, not from the whole text before it: a
    teacher-forced LSTM forgets, and over 100,000 characters of Tiny Shakespeare the probe's AUCs stay
    within 4e-4 of the single-stream trace's with 100 (within 6e-3 with none; docs/benchmarks.md).

    Returns `parts` iterators over disjoint groups of the pieces (one per thread), each running its
    pieces' burn-in first (in the thread that reads it), then yielding per `chunk` steps (blocks,
    positions): blocks[k] the (rows, 6, H) gates of layer k (i, f, g, o, c, h), positions (rows,)
    the index of each row's character in the text (rows in no order). An iterator's next chunk
    overwrites its blocks: read them before asking for it. `gemm_dtype`: see LSTMCore.trace_stepped (bfloat16 products for speed)."""
    ids, _ = loaded.codec.encode(text)
    n = len(ids)
    if n == 0:
        return []
    streams = max(1, min(streams, n // max(burn_in, 1)))  # a piece at least as long as its burn-in
    length = -(-n // streams)  # characters per piece; the last piece is padded (those rows are dropped)
    padded = torch.tensor(ids + [0] * (streams * length - n), device=loaded.device)
    rows = padded.view(streams, length)
    positions = torch.arange(streams * length, device=loaded.device).view(streams, length)
    groups = []
    for j in range(parts):
        a, b = j * streams // parts, (j + 1) * streams // parts
        if b > a:
            burned = range(max(a, 1), b) if burn_in else range(0)  # piece 0 starts the text: from zeros, exactly
            before = torch.stack([padded[k * length - burn_in : k * length] for k in burned]) if len(burned) else None
            groups.append(_stream_chunks(loaded, rows[a:b], positions[a:b], before, n, chunk, gemm_dtype))
    return groups


@torch.no_grad()
def _stream_chunks(loaded: LoadedModel, rows, positions, before, n: int, chunk: int, gemm_dtype=None):
    """trace_streams' chunks of one group of pieces: rows (B, length) of ids, their positions;
    before: the burn-in ids of its last len(before) pieces (the first piece of the text has none)."""
    core = loaded.model.core
    h, c = core.initial_state(rows.shape[0], loaded.device)
    if before is not None:  # run here, in the thread that reads this group: the groups burn in side by side
        skip = rows.shape[0] - len(before)
        _, (h[:, skip:], c[:, skip:]) = core(loaded.model.embed(before))  # the fused kernel: only the state is kept
    state = (h, c)
    # every chunk is written into the same memory: fresh blocks of this size cost page faults
    out = [torch.empty(min(chunk, rows.shape[1]), rows.shape[0], 6, core.config.hidden_size, device=loaded.device)
           for _ in range(core.config.num_layers)]
    table = core.input_table(loaded.model.embed.weight)  # (V, 4H): a character's layer-0 input, looked up
    for start in range(0, rows.shape[1], chunk):
        z0 = table[rows[:, start : start + chunk].t()]  # time-major (T, B, 4H)
        blocks, state = core.trace_stepped(None, state, out, gemm_dtype, z0=z0)
        where = positions[:, start : start + chunk].t().reshape(-1)
        blocks = [block.view(len(where), 6, -1) for block in blocks]
        keep = where < n
        if not bool(keep.all()):
            where, blocks = where[keep], [block[keep] for block in blocks]
        yield blocks, where


def _inside(codes: np.ndarray, opening: str, closing: str) -> np.ndarray:
    """1 where a character lies between an opening mark and its closing one (the marks included), from
    the text's code points. Quotes (the same mark both ways) alternate: inside after an odd count of
    them. Brackets nest: the depth is a walk of +1 / -1 held at 0 (a stray closing mark closes
    nothing), which is its running sum minus that sum's lowest point so far (Lindley's recursion)."""
    opens = codes == ord(opening)
    if opening == closing:
        before = np.cumsum(opens) - opens  # marks strictly before each character
        return ((before % 2 == 1) | opens).astype(np.float32)
    walk = np.cumsum(opens.astype(np.int64) - (codes == ord(closing)))
    depth = walk - np.minimum(np.minimum.accumulate(walk), 0)
    depth_before = np.concatenate([[0], depth[:-1]])
    return ((depth_before > 0) | opens).astype(np.float32)


def regex_track(text: str, pattern: str) -> np.ndarray:
    """1 on every character inside a match of `pattern` (the probe's user-typed features)."""
    track = np.zeros(len(text), dtype=np.float32)
    for match in re.finditer(pattern, text):
        track[match.start() : match.end()] = 1
    return track


def custom_feature(text: str, name: str) -> np.ndarray:
    """The contract's user-named feature: any name that is not one of `features` is a regex over
    the text (ValueError with a sentence when it does not compile). Over a word model's reading, a
    token is on where any of its characters lies in a match."""
    per_word = getattr(text, "words", False)
    if per_word and name in CHARACTER_FEATURES:
        raise ValueError(f"{name!r} is a feature of characters and this model reads words: its features are "
                         f"{', '.join(_word_features(text))}, or type a regex.")
    try:
        track = regex_track(str(text), name)
    except re.error as error:
        raise ValueError(f"{name!r} is neither a listed feature nor a regex: {error}") from None
    return _per_token(text, track) if per_word else track


CHARACTER_FEATURES = ("space", "vowel")  # features with no meaning for a word


def _per_token(text, track: np.ndarray) -> np.ndarray:
    """A per-character track of a TokenText as one value per token: the largest over its characters."""
    if not text.labels:
        return track[:0]
    starts = np.concatenate([[0], np.cumsum([len(label) for label in text.labels])[:-1]])
    return np.maximum.reduceat(track, starts)


def _word_features(text) -> dict[str, np.ndarray]:
    """features() per token of a word model's reading (a TokenText of words): <eos> (the line break),
    a capitalised word, a token of punctuation only, inside quotes or parentheses (a token touching
    them counts), and the position in the line in tokens."""
    labels = text.labels
    by_character = features(str(text))
    line_end = np.array([label == "\n" for label in labels], dtype=np.float32)
    steps = np.arange(len(labels))
    line_end_at_or_before = np.maximum.accumulate(np.where(line_end > 0, steps, -1))
    last_line_end_before = np.concatenate([[-1], line_end_at_or_before[:-1]])[: len(labels)]
    return {
        "newline": line_end,
        "uppercase": np.array([label[:1].isupper() for label in labels], dtype=np.float32),
        "punctuation": np.array([bool(label.strip()) and not any(ch.isalnum() for ch in label) for label in labels],
                                dtype=np.float32),
        "inside quotes": _per_token(text, by_character["inside quotes"]),
        "inside parentheses": _per_token(text, by_character["inside parentheses"]),
        "position in line": (steps - last_line_end_before - 1).astype(np.float32),
    }


def features(text: str, scored=None) -> dict[str, np.ndarray]:
    """Per character: on/off tracks and the position in the line (Karpathy's cells track these). In
    numpy over code points, each distinct character classified once: cheap next to the trace
    (docs/benchmarks.md, Experiments on units; the probe computes them for its whole reference).
    A word model's reading (a TokenText of words, as score and trace_chunks give it): per token."""
    if getattr(text, "words", False):
        return _word_features(text)
    codes = code_points(text)
    distinct, inverse = np.unique(codes, return_inverse=True)

    def per_character(test) -> np.ndarray:
        return np.array([test(chr(code)) for code in distinct], dtype=np.float32)[inverse.reshape(-1)]

    steps = np.arange(len(codes))
    newline_at_or_before = np.maximum.accumulate(np.where(codes == 10, steps, -1))
    last_newline_before = np.concatenate([[-1], newline_at_or_before[:-1]])[: len(codes)]
    return {
        "space": (codes == 32).astype(np.float32),
        "newline": (codes == 10).astype(np.float32),
        "uppercase": per_character(str.isupper),
        "vowel": per_character(lambda ch: ch.lower() in "aeiou"),
        "inside quotes": _inside(codes, '"', '"'),
        "inside parentheses": _inside(codes, "(", ")"),
        "position in line": (steps - last_newline_before - 1).astype(np.float32),
    }


def feature_names(loaded: LoadedModel) -> list[str]:
    """The contract's names of `features` for what this model reads: a word model's are per word (no
    "space" or "vowel"; "punctuation"), worked out from its own vocabulary read as a text."""
    return list(features(loaded.codec.read(range(loaded.codec.size))))


def example() -> tuple[str, object]:
    """A short input for `score` and short settings for `generate` (tests, docs, benches)."""
    return 'He said "to be (or not)" and left.\nNext line', TextSettings(prompt="The ", length=20)


def tiny(seed: int = 0):
    """(model, codec): a small random text model for tests (no training, no files)."""
    torch.manual_seed(seed)
    codec = TextCodec.from_text("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?'\"()-\n")
    return TextModel(TextModelConfig(codec.size, 8, 16, 2, 0.0)).eval(), codec
