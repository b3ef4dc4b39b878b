"""Ask the model why: what it considered at a step, which earlier inputs moved an output, and one
step of one unit under the microscope. Written once, against what every domain hands over for a
sequence (`Explainable`, made by its `explainable(loaded, sequence)`); no gradio here.

Steps follow the trace: step t is the model reading input t; its prediction (distribution row t)
is for step t + 1. "Why did the output at step t + 1 come out" = the prediction made at step t, so
saliency for a step is over the inputs 0..t that prediction saw.

- guesses(step): the domain's top guesses (text: characters; music: pitches and end of frame;
  handwriting: mixture weights and end of stroke; speech: stop probability, attention peak) and the
  entropy of the prediction; `surprise` per step is -log p of what actually came next.
- saliency(ex, step, target, method): captum's gradient x input or integrated gradients of the
  log-likelihood of the actual next value (or a named target) with respect to every earlier
  input, summed over the input's features: one number per earlier step.
- anatomy(trace, ex, layer, unit, step): the LSTM equations of that step with their numbers, each
  gate's pre-activation split into the input's part, the largest parts from units of h_{t-1} (the
  rest summed) and the bias; c_{t-1} -> c_t -> h_t.
- trajectory(trace, layer, quantity): the layer's h (or c) over the sequence projected to 2D by PCA.

A sequence whose steps were each computed apart (a window sampler re-reads the last N inputs from a
zero state before each prediction) hands over `Explainable.apart`: a step's guesses, saliency and
equations are then those of its own reading, and the inputs before its window get exactly 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from studio.trace import Trace

GATES = ("i", "f", "g", "o")
TOP_UNITS = 5  # recurrent contributions named in the anatomy; the rest are summed
# integrated gradients' passes in this many batches when progress is shown: ~1.15x the time of one batch (step 400
# of the shipped text model, one thread: 6.0 s against 5.3 s, medians of 3 on a loaded 2-core machine)
IG_PARTS = 4
FLAT = 1e-5  # gradient x input below this everywhere says nothing (the prediction is at its optimum)


@dataclass
class Explainable:
    """What a domain hands over for one sequence, read teacher-forced from a fresh state."""

    inputs: torch.Tensor  # (1, T, E) what the model reads at each step, as a differentiable tensor
    # inputs (N, T, E) -> (N, T): log-likelihood of the actual next value after each step (0 where nothing follows)
    log_likelihood: Callable[[torch.Tensor], torch.Tensor]
    layer_inputs: list[np.ndarray]  # per trace layer, (T, X): what that layer read at each step
    weights: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per trace layer: W_ih (4H, X), W_hh (4H, H), b (4H,)
    guesses: Callable[[int], dict]  # step -> {"topk": [{"token", "p"}], "entropy": nats, ...domain extras}
    # (inputs, step, target) -> (N,) log-probability of a named target as the next value (None: not offered)
    target_log_prob: Callable[[torch.Tensor, int, Any], torch.Tensor] | None = None
    labels: list[str] = field(default_factory=list)  # per step, as the trace's
    # a sequence whose steps were each computed apart (a window sampler re-reads its last N inputs from a
    # zero state): step -> (the trace of what that step read, its Explainable, the step's index in it, the
    # index in this sequence of its first input); explain() answers from it (None: one carried reading)
    apart: Callable[[int], tuple[Trace, Explainable, int, int]] | None = None

    @property
    def steps(self) -> int:
        return self.inputs.shape[1]


# ---------------------------------------------------------------- what the model considered
def topk(logits: np.ndarray, names: list[str], k: int = 5) -> tuple[list[dict], float]:
    """([{"token", "p"}] of the k most likely, entropy in nats) of one softmax over `logits`."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max()
    probs = np.exp(shifted) / np.exp(shifted).sum()
    order = np.argsort(-probs, kind="stable")[:k]
    entropy = float(-(probs[probs > 0] * np.log(probs[probs > 0])).sum())
    return [{"token": names[j], "p": float(probs[j])} for j in order], entropy


def surprise(ex: Explainable) -> np.ndarray:
    """(T,) -log p of the actual next value after each step (0 where nothing follows)."""
    with torch.no_grad():
        return (-ex.log_likelihood(ex.inputs)[0]).double().cpu().numpy()


# ---------------------------------------------------------------- which earlier inputs mattered
def saliency(ex: Explainable, step: int, target: Any = None, method: str = "gradient_x_input",
             ig_steps: int = 32, progress: Callable[[float], None] | None = None) -> np.ndarray:
    """(step + 1,): how much each input 0..step moved the prediction made at `step`: the log-
    likelihood of the actual next value, or of `target`. Attributions by captum, summed over each
    input's features. method: "gradient_x_input" or "integrated_gradients" (zero baseline).
    `progress(fraction)` is told as integrated gradients' passes are done (IG_PARTS batches)."""
    from captum.attr import InputXGradient, IntegratedGradients

    step = int(step)
    if not 0 <= step < ex.steps:
        raise ValueError(f"step {step} is outside 0..{ex.steps - 1}")
    if target is None:
        def forward(x):
            return ex.log_likelihood(x)[:, step]
    else:
        if ex.target_log_prob is None:
            raise ValueError("this domain takes no named target")

        def forward(x):
            return ex.target_log_prob(x, step, target)

    inputs = ex.inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        if method == "integrated_gradients":
            batch = ig_steps if progress is None else -(-ig_steps // IG_PARTS)
            parts, done = -(-ig_steps // batch), [0]

            def counted(x):  # captum calls the forward once per batch of passes
                if progress is not None:
                    progress(done[0] / parts)
                    done[0] += 1
                return forward(x)

            attributions = IntegratedGradients(counted).attribute(inputs, n_steps=ig_steps, internal_batch_size=batch)
            if progress is not None:
                progress(1.0)
        elif method == "gradient_x_input":
            attributions = InputXGradient(forward).attribute(inputs)
        else:
            raise ValueError(f"unknown saliency method {method!r}: gradient_x_input or integrated_gradients")
    return attributions[0, : step + 1].sum(-1).detach().double().cpu().numpy()


# ---------------------------------------------------------------- one step under the microscope
def anatomy(trace: Trace, ex: Explainable, layer: int, unit: int, step: int, top: int = TOP_UNITS) -> dict:
    """The step's equations for one unit, with their numbers (JSON-ready). Each gate's pre-activation
    z = W_ih x_t + W_hh h_{t-1} + b is split into `input` (the first term), `recurrent` (the second:
    `top` named units and the rest), `bias` and `total`; i, f, o = sigmoid(z), g = tanh(z);
    c = f * c_prev + i * g; h = o * tanh(c). The gate values are the trace's."""
    layer, unit, step = int(layer), int(unit), int(step)
    if not 0 <= layer < trace.num_layers:
        raise ValueError(f"layer {layer} is outside 0..{trace.num_layers - 1}")
    if not 0 <= unit < trace.hidden_size:
        raise ValueError(f"unit {unit} is outside 0..{trace.hidden_size - 1}")
    if not 0 <= step < trace.steps:
        raise ValueError(f"step {step} is outside 0..{trace.steps - 1}")
    w_ih, w_hh, bias = ex.weights[layer]
    hidden = trace.hidden_size
    x = np.asarray(ex.layer_inputs[layer][step], dtype=np.float64)
    h_prev = trace.layers[layer]["h"][step - 1].astype(np.float64) if step else np.zeros(hidden)
    c_prev = float(trace.layers[layer]["c"][step - 1, unit]) if step else 0.0
    pre = {}
    for g, name in enumerate(GATES):
        row = g * hidden + unit
        parts = w_hh[row].astype(np.float64) * h_prev  # (H,) each unit of h_{t-1}'s part
        named = np.argsort(-np.abs(parts), kind="stable")[:top]
        recurrent = float(parts.sum())
        contribution = {
            "input": float(w_ih[row].astype(np.float64) @ x),
            "recurrent": recurrent,
            "recurrent_top": [{"unit": int(j), "h_prev": float(h_prev[j]), "weight": float(w_hh[row, j]),
                               "contribution": float(parts[j])} for j in named],
            "recurrent_rest": recurrent - float(parts[named].sum()),
            "bias": float(bias[row]),
        }
        contribution["total"] = contribution["input"] + recurrent + contribution["bias"]
        pre[name] = contribution
    values = {name: float(trace.layers[layer][name][step, unit]) for name in ("i", "f", "g", "o", "c", "h")}
    return {"layer": layer, "layer_name": trace.layer_name(layer), "unit": unit, "step": step,
            "label": trace.labels[step], "c_prev": c_prev, **values, "pre": pre}


# ---------------------------------------------------------------- the path of the state
def trajectory(trace: Trace, layer: int, quantity: str = "h") -> tuple[np.ndarray, np.ndarray]:
    """((T, 2) coordinates of the layer's `quantity` (h, c or tanh_c) per step, projected on the two
    principal components fitted on this very sequence; their share of the variance (2,))."""
    values = trace.quantity(layer, quantity).astype(np.float64)
    centred = values - values.mean(0)
    if len(centred) < 2:
        return np.zeros((len(centred), 2)), np.zeros(2)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    share = singular**2 / max(float((singular**2).sum()), 1e-12)
    coords = centred @ vt[:2].T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords, np.pad(share[:2], (0, max(0, 2 - len(share[:2]))))


# ---------------------------------------------------------------- everything for one step
def explain(trace: Trace, ex: Explainable, step: int, layer: int = 0, unit: int = 0, target: Any = None,
            method: str = "gradient_x_input", progress: Callable[[float], None] | None = None) -> dict:
    """The answer the CLI's `explain --json` and the API's /explain give: {"step", "label",
    "topk", "entropy", "surprise", "saliency", "anatomy", ...domain extras}."""
    step = int(step)
    if not 0 <= step < trace.steps:
        raise ValueError(f"Step {step} is not in this sequence: it has steps 0 to {trace.steps - 1}.")
    if ex.apart is None:
        considered = ex.guesses(step)
        attributions = saliency(ex, step, target, method, progress=progress)
        microscope = anatomy(trace, ex, layer, unit, step)
        extra = {}
    else:  # what the step itself computed: its own reading, inputs before it have no part in it
        part_trace, part, part_step, start = ex.apart(step)
        considered = part.guesses(part_step)
        attributions = np.zeros(step + 1)
        attributions[start:] = saliency(part, part_step, target, method, progress=progress)
        microscope = {**anatomy(part_trace, part, layer, unit, part_step), "step": step}
        extra = {"window": {"start": start, "end": step},
                 "note": f"This prediction read only steps {start} to {step}, from a zero state (the window sampler); "
                         "the steps before them had no part in it."}
    surprises = surprise(ex)
    answer = {
        "step": step,
        "label": trace.labels[step],
        **considered,
        "surprise": float(surprises[step]),
        "surprise_track": surprises.round(4).tolist(),
        "saliency_method": method,
        "target": target,
        "saliency": [float(v) for v in attributions],
        "anatomy": microscope,
        **extra,
    }
    if method == "gradient_x_input" and np.abs(attributions).max(initial=0.0) < FLAT:
        # a generated value the model predicted exactly (speech frames are not sampled) sits at the
        # top of its log-likelihood: the slope there is 0 whatever the inputs did
        flat = ("What came next is exactly what the model predicted, so its log-likelihood is at its maximum and "
                "gradient x input is flat here: choose integrated gradients, or name a target.")
        answer["note"] = f"{answer['note']} {flat}" if answer.get("note") else flat
    return answer


def core_weights(core) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(W_ih, W_hh, b_ih + b_hh) per layer of an LSTMCore, as numpy (anatomy's weights)."""
    return [(layer.weight_ih_l0.detach().cpu().numpy(), layer.weight_hh_l0.detach().cpu().numpy(),
             (layer.bias_ih_l0 + layer.bias_hh_l0).detach().cpu().numpy()) for layer in core.layers]


def explain_sequence(domain, loaded, sequence, step: int, layer: int = 0, unit: int = 0, target: Any = None,
                     method: str = "gradient_x_input", progress: Callable[[float], None] | None = None) -> dict:
    """explain() of a sequence read afresh (domain.explainable): what a lent GPU call runs (studio.gpu), since
    an Explainable's closures cannot be pickled over to it."""
    scored, ex = domain.explainable(loaded, sequence)
    return explain(scored.trace, ex, step, layer, unit, target, method, progress)
