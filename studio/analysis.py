"""Which units of a layer are worth looking at, from a Trace alone (pure numpy).

Saturation follows Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding
Recurrent Networks": a gate is left-saturated below 0.1 and right-saturated above 0.9; a
forget gate that is nearly always right-saturated keeps its cell for a long time.
"""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass

import numpy as np

from studio.trace import QUANTITY_TITLES, Trace

SATURATION_LOW = 0.1  # below this a gate counts as left-saturated (closed)
SATURATION_HIGH = 0.9  # above this a gate counts as right-saturated (open)
SIGMOID_GATES = ("i", "f", "o")
ORDERINGS = ("index", "variance", "saturation")

# interesting_units thresholds: loose enough for real trained units, tight enough that
# uniform noise in a random trace almost never passes.
MIN_CLASS_STEPS = 2  # a label class (and the rest) needs this many steps to compare means
MIN_SEPARATION = 1.0  # gap between class means, in units of the pooled within-class std
MIN_GAP = 0.25  # and in absolute tanh(c) units, so near-constant units don't qualify
LONG_MEMORY = 0.9  # fraction of steps with f > 0.9 that makes a "long memory" unit
MIN_MEMORY_STEPS = 10  # an open forget gate over a handful of steps says nothing about memory


@dataclass
class UnitNote:
    unit: int  # unit index within the layer
    reason: str  # one plain sentence for a learner
    score: float  # strength of the evidence; comparable only between notes of the same kind


def check_layer(trace: Trace, layer: int) -> None:
    """Raise ValueError unless `layer` indexes one of the trace's layers."""
    if not 0 <= layer < trace.num_layers:
        raise ValueError(f"layer {layer} is out of range: this trace has {trace.num_layers} layer(s), 0..{trace.num_layers - 1}")


def _check_start(start: int) -> None:
    if start < 0:  # a negative slice start would silently mean "the last few steps"
        raise ValueError(f"start must be >= 0, got {start}")


def saturation_fractions(trace: Trace, layer: int, gate: str, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the fraction of steps (from `start`) with gate < 0.1 and with gate > 0.9: two (H,) arrays."""
    check_layer(trace, layer)
    _check_start(start)
    if gate not in SIGMOID_GATES:
        raise ValueError(f"saturation is defined for the sigmoid gates {SIGMOID_GATES}, not {gate!r}")
    values = trace.quantity(layer, gate)[start:]  # (T', H)
    if len(values) == 0:  # nothing to count; zeros rather than 0/0 = NaN
        zeros = np.zeros(values.shape[1])
        return zeros, zeros.copy()
    return (values < SATURATION_LOW).mean(axis=0), (values > SATURATION_HIGH).mean(axis=0)


def order_units(trace: Trace, layer: int, by: str = "index", quantity: str = "tanh_c", start: int = 0) -> np.ndarray:
    """Unit indices of a layer: in index order, by variance of `quantity` (largest first), or
    by forget-gate saturation max(left, right) (most saturated first)."""
    check_layer(trace, layer)
    _check_start(start)
    if by == "index":
        return np.arange(trace.hidden_size)
    if by == "variance":
        if quantity not in QUANTITY_TITLES:
            raise ValueError(f"unknown quantity {quantity!r}; choose one of {tuple(QUANTITY_TITLES)}")
        values = trace.quantity(layer, quantity)[start:]
        score = values.var(axis=0) if len(values) else np.zeros(values.shape[1])
    elif by == "saturation":
        left, right = saturation_fractions(trace, layer, "f", start)
        score = np.maximum(left, right)
    else:
        raise ValueError(f"unknown unit ordering by={by!r}; choose one of {ORDERINGS}")
    return np.argsort(-score, kind="stable")  # stable: ties keep index order


def interesting_units(trace: Trace, layer: int, k: int = 5, start: int = 0) -> list[UnitNote]:
    """Up to k distinct units most worth looking at, each with a plain-words reason.

    Three kinds of evidence, scored on steps from `start` (e.g. after a prompt), taken in turn
    so the list is varied: units that separate a class of labels (spaces, letters, inside
    quotes, the most frequent labels) from the rest; forget gates that stay open (long memory);
    cells that swing the most. Kinds without convincing evidence contribute nothing.
    """
    check_layer(trace, layer)
    _check_start(start)
    if k <= 0 or start >= trace.steps:
        return []
    cells = trace.quantity(layer, "tanh_c")[start:].astype(np.float64)  # (T', H)
    candidates = [
        _label_notes(cells, trace.labels, start),
        _memory_notes(trace, layer, start),
        _variance_notes(cells),
    ]
    notes, seen = [], set()
    for rank in range(max(map(len, candidates))):
        for kind in candidates:
            if rank < len(kind) and kind[rank].unit not in seen:
                notes.append(kind[rank])
                seen.add(kind[rank].unit)
                if len(notes) == k:
                    return notes
    return notes


def _variance_notes(cells: np.ndarray) -> list[UnitNote]:
    variance = cells.var(axis=0)
    notes = []
    for rank, unit in enumerate(np.argsort(-variance, kind="stable"), start=1):
        if variance[unit] <= 1e-12:  # a flat cell is not worth a look
            break
        if rank == 1:
            reason = f"unit {unit}: its cell swings the most (variance {variance[unit]:.2f})"
        else:
            reason = f"unit {unit}: its cell swings widely (variance {variance[unit]:.2f}, #{rank} of {len(variance)} units)"
        notes.append(UnitNote(int(unit), reason, float(variance[unit])))
    return notes


def _memory_notes(trace: Trace, layer: int, start: int) -> list[UnitNote]:
    if trace.steps - start < MIN_MEMORY_STEPS:
        return []
    _, open_fraction = saturation_fractions(trace, layer, "f", start)
    notes = []
    for unit in np.argsort(-open_fraction, kind="stable"):
        if open_fraction[unit] < LONG_MEMORY:
            break
        reason = f"unit {unit}: its forget gate stays above 0.9 on {open_fraction[unit]:.0%} of steps, so it keeps a long memory"
        notes.append(UnitNote(int(unit), reason, float(open_fraction[unit])))
    return notes


def _label_notes(cells: np.ndarray, labels: list[str], start: int) -> list[UnitNote]:
    """For each label class, the unit whose cell best separates it from the rest."""
    steps = len(cells)
    notes = []
    for name, mask in _label_classes(labels):
        mask = mask[start:]
        inside = int(mask.sum())
        if inside < MIN_CLASS_STEPS or steps - inside < MIN_CLASS_STEPS:
            continue
        mean_in, mean_out = cells[mask].mean(axis=0), cells[~mask].mean(axis=0)  # (H,)
        within = np.concatenate([cells[mask] - mean_in, cells[~mask] - mean_out])
        gap = mean_in - mean_out
        # +0.05 keeps a perfectly clean unit (zero spread) finite and ranks it by its gap
        separation = np.abs(gap) / (within.std(axis=0) + 0.05)
        unit = int(np.argmax(separation))
        if separation[unit] < MIN_SEPARATION or abs(gap[unit]) < MIN_GAP:
            continue
        high, low = ("high", "low") if gap[unit] > 0 else ("low", "high")
        rest = "outside" if name == "inside quotes" else "elsewhere"
        where = name if name == "inside quotes" else f"on {name}"
        reason = f"unit {unit}: {high} {where} ({mean_in[unit]:+.2f}), {low} {rest} ({mean_out[unit]:+.2f})"
        notes.append(UnitNote(unit, reason, float(separation[unit])))
    return sorted(notes, key=lambda note: -note.score)


def _label_classes(labels: list[str]) -> list[tuple[str, np.ndarray]]:
    """(name, boolean mask over all steps) for label classes that might explain a unit.

    Character categories cover text; the most frequent exact labels keep this generic for
    domains whose labels are not characters. Masks span the whole trace because quote state
    depends on what came before `start`.
    """
    categories = {
        "spaces/newlines": lambda s: s.isspace(),
        "letters": lambda s: s.isalpha(),
        "digits": lambda s: s.isdigit(),
        "punctuation": lambda s: len(s) > 0 and all(ch in string.punctuation for ch in s),
        "capital letters": lambda s: s.isalpha() and s.isupper(),
    }
    # character categories only where every label is one character (text): a music label "END" is no letter
    characters = all(len(s) <= 1 for s in labels)
    classes = [(name, np.array([test(s) for s in labels], dtype=bool))
               for name, test in categories.items()] if characters else []
    quote_marks = [s == '"' for s in labels]
    if sum(quote_marks) >= 2:
        inside, state = [], False
        for is_quote in quote_marks:
            state ^= is_quote
            inside.append(state)
        classes.append(("inside quotes", np.array(inside)))
    for label, _ in Counter(labels).most_common(2):
        classes.append((f"'{display_label(label)}'", np.array([s == label for s in labels], dtype=bool)))
    # Drop classes identical to an earlier one (e.g. the label " " when there are no newlines).
    unique, seen = [], set()
    for name, mask in classes:
        if mask.tobytes() not in seen:
            seen.add(mask.tobytes())
            unique.append((name, mask))
    return unique


def display_label(label: str) -> str:
    """A step label made visible: newline as ⏎, space as ␣ (for tick labels and reasons)."""
    return label.replace("\n", "⏎").replace(" ", "␣")
