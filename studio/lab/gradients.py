"""Measured, not drawn: how much gradient of the loss at step T reaches step T - k.

For a batch of real task sequences, with the cell and the batch cast to float64 (so that a gradient
of 1e-40 is still a number, not a float32 zero), the cell steps through time (`LabCell.unrolled`)
and autograd gives

    h_norm[k] = ||dL_T / dh_{T-k}||      (over the batch and the units)
    x_norm[k] = ||dL_T / dx_{T-k}||      (over the batch and the input features)

for k = 0 .. T-1 (k = 0 is the last step; x_1, the first input, is k = T-1). For an LSTM, beside
them, the forget gates' product along the cell path, mean over batch and units of
prod_{j=T-k+1..T} f_j: dc_T/dc_{T-k} along the cell path alone is exactly that product, the
"constant error carousel" when the gates stay near 1.

ratio = log10(x_norm[T-1] / x_norm[0]) = log10(||dL_T/dx_1|| / ||dL_T/dx_T||): a gradient that
vanished prints a large negative number. Where even float64 gives an exact 0 for dL/dx_1, the ratio
is measured again with the loss scaled up by ~10^300 (gradients are linear in it, so the ratio is
the same), which reaches about 10^-620; only below that is the ratio reported as FLOOR (-300),
and `floored` says so.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

FLOOR = -300.0  # log10 ratio reported when dL/dx_1 is exactly 0 even in float64


def measure(cell, task, x: torch.Tensor, y: torch.Tensor) -> dict:
    """{"h": [T floats], "x": [T floats], "forget_product": [T floats] | None, "ratio", "floored",
    "loss"}: the curves against k = 0..T-1 for this batch, the cell left untouched."""
    exact = copy.deepcopy(cell).double()
    inputs = x.detach().double().requires_grad_(True)
    targets = y.double() if y.is_floating_point() else y
    with torch.enable_grad():
        out, states = exact.unrolled(inputs)
        for state in states:
            state.retain_grad()
        loss = task.loss(out, targets)
        loss.backward()
    h_norm = np.array([float(norm(s.grad)[0]) if s.grad is not None else 0.0 for s in states[::-1]])
    x_norm = norm(inputs.grad, (0, 2)).numpy()[::-1].astype(np.float64)
    first, last = float(x_norm[-1]), float(x_norm[0])
    if first == 0.0 and last > 0:
        # below float64's smallest number: the gradient is linear in the loss, so backpropagate
        # the loss times 10^s (dL/dx_T near 10^300) and take the ratio from that
        first, last = _scaled_ends(exact, task, x, targets, 300 - math.ceil(math.log10(max(last, float(h_norm.max())))))
    if 0 < first < math.inf and 0 < last < math.inf:
        ratio, floored = math.log10(first) - math.log10(last), False
    else:
        ratio, floored = FLOOR, True
    forget = forget_product(exact, inputs.detach()) if exact.is_lstm else None
    return {"h": h_norm.tolist(), "x": x_norm.tolist(), "forget_product": forget, "ratio": ratio,
            "floored": floored, "loss": float(loss.detach())}


def _scaled_ends(cell, task, x, targets, exponent: int) -> tuple[float, float]:
    """(||dL/dx_1||, ||dL/dx_T||) both times 10^exponent."""
    inputs = x.detach().double().requires_grad_(True)
    with torch.enable_grad():
        loss = task.loss(cell.unrolled(inputs)[0], targets)
        loss.backward(torch.tensor(10.0 ** exponent, dtype=torch.float64))
    norms = norm(inputs.grad, (0, 2))
    return float(norms[0]), float(norms[-1])


def norm(values: torch.Tensor, dims: tuple = (0, 1)) -> torch.Tensor:
    """The 2-norm over `dims`, the other dimension kept, with the largest magnitude divided out first:
    squaring 1e-200 underflows to 0 (and 1e200 overflows), so a plain norm stops near 1e-154."""
    largest = values.abs().amax(dim=dims, keepdim=True)
    safe = torch.where(largest > 0, largest, torch.ones_like(largest))
    return ((values / safe).pow(2).sum(dim=dims, keepdim=True).sqrt() * safe).flatten()


@torch.no_grad()
def forget_product(cell, x: torch.Tensor) -> list[float]:
    """[mean over batch and units of prod_{j=T-k+1..T} f_j for k = 0..T-1] from the exact trace."""
    _, _, gates = cell.core.trace(x)
    forget = gates[0]["f"].double()  # (B, T, H)
    # products of the last k gates: a reversed cumulative product, with the empty product (k = 0) first
    tail = torch.cumprod(forget.flip(1), dim=1)  # tail[:, k-1] = f_T ... f_{T-k+1}
    means = tail.mean(dim=(0, 2)).tolist()
    return [1.0] + means[:-1]
