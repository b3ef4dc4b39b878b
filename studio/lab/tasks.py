"""The lab's tasks: each needs a memory that spans T steps, and each is answered from the last
hidden state h_T alone, so that every cell's loss L_T sits at step T and ||dL_T/dh_{T-k}|| measures
how much of the answer can still be blamed on step T - k.

- adding (Le, Jaitly & Hinton 2015): T pairs (u_t, m_t), u_t uniform in [0, 1], m_t = 1 at one
  step of the first half and one of the second, 0 elsewhere. Target: the sum of the two marked
  numbers. Predicting the mean (1.0) scores MSE = Var(u + u') = 1/6 ~ 0.167.
- copy (recall): SYMBOLS symbols out of ALPHABET at steps 1..SYMBOLS, blanks, then a "go" mark at
  step T; recall all of them at step T (one softmax per symbol). Guessing scores ln(ALPHABET).
- quote (close the quote): T characters of a text (the user's upload, or Tiny Shakespeare), with
  an opening bracket "(" put in the first half and, for half of the sequences that have one, its
  closing ")" somewhere later. Target: is a bracket still open at step T (so must be closed)?
  Guessing scores ln 2.

Every task's `loss` is the mean over a batch (MSE for adding, cross-entropy in nats for the others)
and its `baseline` the loss of the best constant answer on the same targets ("predicting their
mean"); a cell has learned a task when its held-out loss is below a tenth of the baseline.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from studio.reference import DATA_DIR

DEFAULT_TEXT_NAME = "tinyshakespeare.txt"  # in the data folder: the quote task's text when none is given

TASKS = ("adding", "copy", "quote")
SYMBOLS = 3  # copy: how many symbols to recall
ALPHABET = 8  # copy: how many different symbols
QUOTE_OPEN, QUOTE_CLOSE = "(", ")"
# quote: the characters the model tells apart (anything else reads as OTHER); brackets and quotes
# in the user's text are turned into OTHER so that only the inserted pair counts
CHARACTERS = "abcdefghijklmnopqrstuvwxyz .,\n"
OTHER = len(CHARACTERS)
MIN_TEXT = 2_000  # characters of text the quote task needs


@dataclass
class Task:
    name: str
    length: int  # T: steps per sequence
    input_size: int  # features per step
    output_size: int  # what the head predicts from h_T
    loss_name: str  # "MSE" or "cross-entropy"

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (B, T, input_size) float32, y targets) of fresh sequences."""
        raise NotImplementedError

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of head outputs out (B, output_size) against y."""
        raise NotImplementedError

    def baseline(self, y: torch.Tensor) -> float:
        """The loss of the best constant answer on these targets."""
        raise NotImplementedError

    def log_likelihood(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(N, T) per step: the log-likelihood of the target under the answer read out at that
        step, out (N, T, output_size); y holds one target (ask why)."""
        raise NotImplementedError

    def guesses(self, out: np.ndarray) -> dict:
        """What the head answers at one step, out (output_size,), as ask why shows it."""
        raise NotImplementedError

    def labels(self, x: torch.Tensor) -> list[str]:
        """One short label per step of one sequence x (T, input_size), for the trace viewer."""
        raise NotImplementedError


class Adding(Task):
    def __init__(self, length: int):
        super().__init__("adding", length, 2, 1, "MSE")

    def sample(self, batch, generator):
        steps = self.length
        numbers = torch.rand(batch, steps, generator=generator)
        half = steps // 2
        first = torch.randint(0, half, (batch,), generator=generator)
        second = torch.randint(half, steps, (batch,), generator=generator)
        marks = torch.zeros(batch, steps)
        rows = torch.arange(batch)
        marks[rows, first] = 1.0
        marks[rows, second] = 1.0
        y = (numbers * marks).sum(1, keepdim=True)  # (B, 1)
        return torch.stack([numbers, marks], dim=-1), y

    def loss(self, out, y):
        return F.mse_loss(out, y.to(out.dtype))

    def baseline(self, y):
        return float(((y - y.mean()) ** 2).mean())

    def log_likelihood(self, out, y):
        # a unit-variance Gaussian around the answer, constants dropped: -(answer - target)^2 / 2
        return -0.5 * (out[..., 0] - y.reshape(-1, 1).to(out.dtype)) ** 2

    def guesses(self, out):
        return {"topk": [{"token": f"sum {float(out[0]):.3f}", "p": 1.0}], "entropy": 0.0}

    def labels(self, x):
        return [f"+{float(u):.2f}" if m > 0.5 else "·" for u, m in x.tolist()]


class Copy(Task):
    def __init__(self, length: int):
        if length < SYMBOLS + 2:
            raise ValueError(f"The copy task needs T of at least {SYMBOLS + 2} (the symbols, a blank, the go mark).")
        super().__init__("copy", length, ALPHABET + 2, SYMBOLS * ALPHABET, "cross-entropy")

    def sample(self, batch, generator):
        symbols = torch.randint(0, ALPHABET, (batch, SYMBOLS), generator=generator)
        codes = torch.full((batch, self.length), ALPHABET)  # blanks
        codes[:, :SYMBOLS] = symbols
        codes[:, -1] = ALPHABET + 1  # go: recall now
        return F.one_hot(codes, ALPHABET + 2).float(), symbols

    def loss(self, out, y):
        return F.cross_entropy(out.reshape(-1, ALPHABET), y.reshape(-1))

    def baseline(self, y):
        # each slot's own symbol frequencies, as a constant guess
        total = 0.0
        for slot in range(SYMBOLS):
            p = torch.bincount(y[:, slot], minlength=ALPHABET).double() / len(y)
            total -= float((p[p > 0] * p[p > 0].log()).sum())
        return total / SYMBOLS

    def log_likelihood(self, out, y):
        logp = out.reshape(*out.shape[:-1], SYMBOLS, ALPHABET).log_softmax(-1)  # (N, T, S, A)
        index = y.reshape(1, 1, SYMBOLS, 1).expand(*logp.shape[:-1], 1)
        return logp.gather(-1, index)[..., 0].sum(-1)

    def guesses(self, out):
        logits = np.asarray(out, dtype=np.float64).reshape(SYMBOLS, ALPHABET)
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        entropy = float(-(probs * np.log(np.maximum(probs, 1e-300))).sum())
        best = [{"token": f"#{s + 1} = {symbol_name(int(probs[s].argmax()))}", "p": float(probs[s].max())}
                for s in range(SYMBOLS)]
        return {"topk": best, "entropy": entropy}

    def labels(self, x):
        codes = x.argmax(-1).tolist()
        return [symbol_name(c) if c < ALPHABET else ("_" if c == ALPHABET else "?") for c in codes]


def symbol_name(code: int) -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[code]


class Quote(Task):
    def __init__(self, length: int, text: str):
        if length < 4:
            raise ValueError("The quote task needs T of at least 4.")
        super().__init__("quote", length, OTHER + 3, 1, "cross-entropy")
        self.codes = encode_text(text)
        if len(self.codes) < max(MIN_TEXT, length + 1):
            raise ValueError(f"The text has {len(self.codes):,} characters; the quote task needs at least "
                             f"{max(MIN_TEXT, length + 1):,}.")

    def sample(self, batch, generator):
        steps = self.length
        starts = torch.randint(0, len(self.codes) - steps, (batch,), generator=generator)
        codes = self.codes[starts[:, None] + torch.arange(steps)]  # (B, T)
        kind = torch.randint(0, 4, (batch,), generator=generator)  # 0, 1: open; 2: opened and closed; 3: none
        opening = torch.randint(0, steps // 2, (batch,), generator=generator)
        closing = opening + 1 + (torch.rand(batch, generator=generator) * (steps - 1 - opening)).long()
        rows = torch.arange(batch)
        has_open = kind < 3
        codes[rows[has_open], opening[has_open]] = OTHER + 1
        closed = kind == 2
        codes[rows[closed], closing[closed]] = OTHER + 2
        y = (kind < 2).float()[:, None]  # (B, 1): still open at step T
        return F.one_hot(codes, OTHER + 3).float(), y

    def loss(self, out, y):
        return F.binary_cross_entropy_with_logits(out, y.to(out.dtype))

    def baseline(self, y):
        p = float(y.double().mean())
        return 0.0 if p in (0.0, 1.0) else -(p * math.log(p) + (1 - p) * math.log(1 - p))

    def log_likelihood(self, out, y):
        target = float(y.reshape(-1)[0])
        logit = out[..., 0]
        return F.logsigmoid(logit) if target > 0.5 else F.logsigmoid(-logit)

    def guesses(self, out):
        p = 1.0 / (1.0 + math.exp(-float(out[0])))
        entropy = -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)
        return {"topk": sorted([{"token": "close it (open)", "p": p}, {"token": "nothing open", "p": 1 - p}],
                               key=lambda g: -g["p"]), "entropy": entropy}

    def labels(self, x):
        names = CHARACTERS + "~" + QUOTE_OPEN + QUOTE_CLOSE
        return [names[c] for c in x.argmax(-1).tolist()]


def encode_text(text: str) -> torch.Tensor:
    """The text as codes into CHARACTERS (lower-cased; anything else, brackets and quotes too, as OTHER)."""
    text = re.sub(r"[ \t]+", " ", text.lower())
    table = {ch: k for k, ch in enumerate(CHARACTERS)}
    return torch.tensor([table.get(ch, OTHER) for ch in text], dtype=torch.long)


def make_task(name: str, length: int, text: str | None = None) -> Task:
    """A task by name; `text` for quote (None: Tiny Shakespeare). ValueError with a sentence."""
    try:
        length = int(length)
    except (TypeError, ValueError):
        raise ValueError("Give the length T as a whole number.") from None
    if not 2 <= length <= 2_000:
        raise ValueError(f"T must be between 2 and 2,000 steps, not {length}.")
    if name == "adding":
        return Adding(length)
    if name == "copy":
        return Copy(length)
    if name == "quote":
        if text is None:
            path = DATA_DIR / DEFAULT_TEXT_NAME
            if not path.is_file():
                raise ValueError("Upload a text for the quote task (the shipped Tiny Shakespeare is not on this "
                                 "server).")
            text = path.read_text(encoding="utf-8", errors="replace")
        return Quote(length, text)
    raise ValueError(f"Unknown task {name!r}: one of {', '.join(TASKS)}.")
