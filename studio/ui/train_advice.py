"""What the Train tab says around a training: before it, how much of the data the run will see
(and a warning when that is too little to learn anything); after it, what it learned (its
validation loss against the unigram baseline), whether what it has read changes what it predicts
next, and whether its samples copy the training data.

The estimate is rough on purpose: it counts one byte of the user's files as one step of data (exact
for text, within a small factor for the other domains) and uses the text trainer's speed on one
thread of this machine's kind (docs/benchmarks.md, Training: medium, 2 x 256, ~12,000 tokens/s).
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections import Counter
from pathlib import Path

import numpy as np

from studio import domains, limits

# tokens per second with one thread, per size preset: medium measured (docs/benchmarks.md), the
# others scaled by the weights a step multiplies (a small model is bound by per-call overhead)
TOKENS_PER_S = {"tiny": 60_000, "small": 30_000, "medium": 12_000, "large": 3_500}
TOKENS_PER_STEP = 64 * 128  # the trainers' default batch x window
MIN_STEPS = 200  # fewer updates than this teach a model from scratch nothing readable
MIN_PASSES = 1.0
COPY_NOTE_AT = 40  # a sample sharing this many characters in a row with the data is copying it
READ_AT_MOST = 2_000_000  # bytes of data read for the baseline and the copy check
PROMPT_SEEDS = (0, 1, 2)  # the domain's example settings generated with these seeds give different histories
# the prompt "changes what comes next" when predictions after different histories differ, step for step, by at
# least this share of how much one generation's predictions differ between its own steps (the shipped models:
# 0.7-1.9; an untrained tiny text LSTM ~1; one that ignores its input 0)
PROMPT_MATTERS_AT = 0.05
PROMPT_IGNORED_BELOW = 0.001  # under this share it makes no difference at all (between: "only a little")


def data_bytes(paths) -> int:
    """The bytes of data in these files (a zip counts what it holds)."""
    total = 0
    for path in paths or []:
        path = Path(getattr(path, "name", path))
        try:
            if path.suffix.lower() == ".zip":  # what the archive declares (studio.limits reads every zip)
                total += sum(info.file_size for info in limits.check_zip(path))
            else:
                total += path.stat().st_size
        except (OSError, ValueError):  # an unreadable file: the training itself says why
            continue
    return total


def estimate(preset: str, minutes, size: int, fine_tune: bool) -> str:
    """Markdown: the steps and passes over the data a run of `minutes` makes, with a warning when
    it is too short to learn anything."""
    try:
        minutes = float(minutes)
    except (TypeError, ValueError):
        return "Give the time budget in minutes (at least 0.05)."
    if not math.isfinite(minutes) or minutes <= 0:
        return "Give the time budget in minutes (at least 0.05)."
    tokens = TOKENS_PER_S.get(preset, TOKENS_PER_S["medium"]) * minutes * 60
    steps = int(tokens // TOKENS_PER_STEP)
    line = f"**Estimate**: about {steps:,} steps"
    passes = tokens / size if size else None
    if passes is not None:
        line += f", about {passes:,.1f} passes over your {size / 1000:,.0f} KB"
    line += " (rough: one thread of this server)."
    short = steps < MIN_STEPS or (passes is not None and passes < MIN_PASSES)
    if short and not fine_tune:
        need = max(MIN_STEPS * TOKENS_PER_STEP, MIN_PASSES * (size or 0)) / TOKENS_PER_S.get(preset, 12_000) / 60
        line += (f"\n\n⚠ **Too short to learn anything**: fewer than {MIN_STEPS} steps or less than one pass over "
                 "the data. "
                 f"Give it at least {need:.1f} minutes, pick a smaller size, or fine-tune a shipped model "
                 "(*Start from*).")
    return line


def read_corpus(paths) -> str:
    """The data as text (at most READ_AT_MOST bytes), or "" when it is not text."""
    chunks, left = [], READ_AT_MOST
    for path in paths or []:
        path = Path(getattr(path, "name", path))
        if path.suffix.lower() not in (".txt", ".md", ".text") or left <= 0:
            continue
        try:
            data = path.read_bytes()[:left]
        except OSError:
            continue
        left -= len(data)
        chunks.append(data.decode("utf-8", errors="ignore"))
    return "".join(chunks)


def unigram_nats(corpus: str) -> float | None:
    """The loss (nats per character) of predicting each character by its frequency alone."""
    counts = Counter(corpus)
    total = sum(counts.values())
    if total < 2:
        return None
    return -sum(n / total * math.log(n / total) for n in counts.values())


def longest_shared(sample: str, corpus: str) -> str:
    """The longest run of characters of `sample` also found in `corpus` (grown greedily per start)."""
    best, start = "", 0
    while start + len(best) < len(sample):
        length = len(best) + 1
        while start + length <= len(sample) and sample[start : start + length] in corpus:
            length += 1
        if length - 1 > len(best):
            best = sample[start : start + length - 1]
        start += 1
    return best


def _first_difference(values) -> int | None:
    """The first step where two histories' predictions part (the steps before read the same prompt,
    identically, and would only dilute a mean); None when they never do."""
    parted = np.flatnonzero(np.nan_to_num(np.asarray(values, np.float64)) > 1e-9)
    return int(parted[0]) if len(parted) else None


def prompt_effect(domain, loaded) -> str:
    """Markdown: whether what the model has read (its prompt, primer or history, then its own output)
    changes what it predicts next. The domain's example settings are generated with a few seeds, so the
    histories differ; the domain's own `step_divergence` compares the predictions step for step from where
    they part, against how much one generation's predictions move between its own steps there. "" when the
    domain cannot say: its generations do not differ with the seed, its predictions cannot be compared, or
    (outputs that are not tokens) a small difference may only mean the seed changed the history little."""
    compare = domains.member(domain, "step_divergence")
    try:
        _, settings = domain.example()
        made = [domain.generate(loaded, dataclasses.replace(settings, seed=seed)) for seed in PROMPT_SEEDS]
        if len({pickle.dumps(domain.sequence_of(generation)) for generation in made}) < 2:
            return ""  # the seed changes nothing: no different histories to compare
        pairs = []
        for k, plain in enumerate(made):
            for changed in made[k + 1:]:
                values, _ = compare(plain.distributions, changed.distributions)
                if values is None:
                    return ""
                pairs.append(np.nan_to_num(np.asarray(values, np.float64)))
        parted = [p for p in map(_first_difference, pairs) if p is not None]
        start = min(parted) if parted else 0
        across = [float(values[start:].mean()) for values in pairs]
        within = []
        for generation in made:
            dist = {k: v[start:] for k, v in generation.distributions.items()}
            steps = len(next(iter(dist.values())))
            if steps < 2:
                return ""
            shift = max(1, steps // 4)
            values, _ = compare({k: v[:-shift] for k, v in dist.items()}, {k: v[shift:] for k, v in dist.items()})
            within.append(float(np.mean(np.nan_to_num(values))))
    except Exception:  # noqa: BLE001 (a model the example does not suit: the verdict goes without this line)
        return ""
    across_mean, within_mean = float(np.mean(across)), float(np.mean(within))
    ratio = across_mean / within_mean if within_mean > 1e-12 else 0.0
    measured = (f"(after different histories its next-step predictions differ by {across_mean:.3g} step for step, "
                f"{ratio:.0%} of how much they move between its own steps)")
    if ratio >= PROMPT_MATTERS_AT:
        return f"**The prompt changes what comes next** {measured}."
    if not domains.member(domain, "TOKENS"):
        return ""
    if ratio >= PROMPT_IGNORED_BELOW:
        return (f"**The prompt changes what comes next only a little yet** {measured}. Train longer, or fine-tune "
                "a shipped model.")
    return (f"**The prompt makes no difference yet** {measured}: it predicts much the same whatever it has read. "
            "Train longer, or fine-tune a shipped model.")


def verdict(status: dict, paths, prompt: str = "") -> str:
    """Markdown, after a run: what it learned, in plain words (`prompt`: prompt_effect's line, if any)."""
    progress = status.get("progress") or []
    vals = [point["val"] for point in progress if "val" in point]
    steps = status.get("step") or 0
    if not vals:
        return (f"**Verdict**: the run stopped after {steps:,} steps, before its first validation: it learned "
                "nothing measurable. Give it more minutes, or fine-tune a shipped model.")
    best, first = min(vals), vals[0]
    corpus = read_corpus(paths)
    baseline = unigram_nats(corpus) if corpus else None
    if baseline is not None:
        learned = best < baseline - 0.05
        text = (f"**Verdict**: after {steps:,} steps its best validation loss is {best:.2f} nats per character; "
                f"predicting each character by its frequency alone (the unigram baseline) gives {baseline:.2f}. ")
        text += ("It learned more than letter frequencies: it uses what came before." if learned else
                 "It learned no more than letter frequencies: what comes before does not change what it predicts yet. "
                 "Train longer, or fine-tune a shipped model.")
    else:
        text = (f"**Verdict**: after {steps:,} steps its validation loss went from {first:.2f} to {best:.2f}"
                + (" (it learned something)." if best < first - 0.05 else " (it has barely learned yet: train longer, "
                                                                          "or fine-tune a shipped model)."))
    if prompt:
        text += "\n\n" + prompt
    samples = status.get("samples") or []
    if corpus and samples and samples[-1].get("sample"):
        shared = longest_shared(samples[-1]["sample"], corpus)
        if len(shared) >= COPY_NOTE_AT:
            text += (f"\n\n**Copying**: its last sample shares {len(shared)} characters in a row with the "
                     "training data "
                     f"(`{shared[:80]!r}`…): it has memorised part of it.")
        else:
            text += (f"\n\nIts last sample shares at most {len(shared)} characters in a row with the training data "
                     "(no copying).")
    return text
