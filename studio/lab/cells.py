"""The cells the lab compares, each a recurrent layer plus a linear head on h_T:

    rnn        h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)                (torch's nn.RNN)
    gru        torch's nn.GRU
    lstm       the studio's LSTM core (studio.lstm.LSTMCore), forget-gate bias started at 1
    lstm-fb0   the same LSTM with the forget-gate bias started at 0
    lstm-nof   the same LSTM without a forget gate: f_t = 1 always (Hochreiter & Schmidhuber 1997),
               c_t = c_{t-1} + i_t * g_t

rnn and gru get the hidden size whose parameter count (cell and head) is nearest the LSTM's, within
MATCH; the two ablations keep the LSTM's size (they are the same LSTM with one thing changed).

The forget gate is held at 1 inside the fused kernel itself: its rows of W_ih and W_hh are 0 and
its bias PINNED_BIAS, so sigmoid gives exactly 1.0 in float32 and float64 alike (exp(-1e4)
underflows to 0), its gradient is exactly 0, and `pin` puts the rows back after every optimiser
step in case anything moved them. The LSTM core's own code is unchanged.

Training runs the fused kernels (`forward`); the gradient measurement steps through time with the
same weights (`unrolled`) so that every h_t is a tensor of its own whose gradient autograd keeps.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from studio.lstm import LSTMConfig, LSTMCore

CELLS = ("rnn", "gru", "lstm")
VARIANTS = ("lstm-nof", "lstm-fb0")  # ablations of the LSTM, outside the parameter match
ALL_CELLS = CELLS + VARIANTS
TITLES = {"rnn": "tanh RNN", "gru": "GRU", "lstm": "LSTM", "lstm-nof": "LSTM, no forget gate (f = 1)",
          "lstm-fb0": "LSTM, forget bias 0"}
MATCH = 0.05  # parameter counts within 5% of the LSTM's
PINNED_BIAS = 1e4  # z_f of the no-forget LSTM: sigmoid(1e4) == 1.0 exactly


class LabCell(nn.Module):
    def __init__(self, kind: str, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        if kind not in ALL_CELLS:
            raise ValueError(f"Unknown cell {kind!r}: one of {', '.join(ALL_CELLS)}.")
        self.kind, self.input_size, self.hidden_size, self.output_size = kind, input_size, hidden_size, output_size
        if kind == "rnn":
            self.rnn = nn.RNN(input_size, hidden_size, nonlinearity="tanh", batch_first=True)
        elif kind == "gru":
            self.rnn = nn.GRU(input_size, hidden_size, batch_first=True)
        else:
            self.core = LSTMCore(LSTMConfig(input_size, hidden_size, num_layers=1))
            layer = self.core.layers[0]
            forget = slice(hidden_size, 2 * hidden_size)
            with torch.no_grad():  # the forget gate's bias is b_ih + b_hh: all of it in b_ih
                layer.bias_hh_l0[forget] = 0.0
                layer.bias_ih_l0[forget] = 0.0 if kind == "lstm-fb0" else 1.0
        self.head = nn.Linear(hidden_size, output_size)
        self.pin()

    @property
    def is_lstm(self) -> bool:
        return self.kind.startswith("lstm")

    @property
    def parameters_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def pin(self) -> None:
        """Hold the no-forget LSTM's forget gate at exactly 1 (see the module docstring)."""
        if self.kind != "lstm-nof":
            return
        layer = self.core.layers[0]
        forget = slice(self.hidden_size, 2 * self.hidden_size)
        layer.weight_ih_l0[forget] = 0.0
        layer.weight_hh_l0[forget] = 0.0
        layer.bias_ih_l0[forget] = PINNED_BIAS
        layer.bias_hh_l0[forget] = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, X) -> the head's answer from h_T, (B, output_size), through the fused kernel."""
        return self.head(self.sequence(x)[:, -1])

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Every h_t, (B, T, H), through the fused kernel."""
        if self.is_lstm:
            return self.core(x)[0]
        return self.rnn(x)[0]

    def unrolled(self, x: torch.Tensor, nudge: dict | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Step by step with the same weights: (the answer (B, output_size), [h_t (B, H) for each t]),
        every h_t its own node of the graph (retain_grad() on it keeps dL/dh_t). `nudge` {t: (B, H)}
        is added to h_t (c_t untouched): finite differences check dL/dh_t with it."""
        batch, steps, _ = x.shape
        h = x.new_zeros(batch, self.hidden_size)
        c = x.new_zeros(batch, self.hidden_size)
        states = []
        if not self.is_lstm:
            rnn = self.rnn
            weights = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
            step = torch.rnn_tanh_cell if self.kind == "rnn" else torch.gru_cell
        for t in range(steps):
            if self.is_lstm:
                h, c = self.core.cell(x[:, t], h, c)
            else:
                h = step(x[:, t], h, *weights)
            if nudge and t in nudge:
                h = h + nudge[t]
            states.append(h)
        return self.head(h), states


def count(kind: str, input_size: int, hidden_size: int, output_size: int) -> int:
    """Parameters of a cell (recurrent layer and head) without building it."""
    gates = {"rnn": 1, "gru": 3}.get(kind, 4)
    return gates * (hidden_size * (input_size + hidden_size) + 2 * hidden_size) + (hidden_size + 1) * output_size


def matched_hidden(kind: str, input_size: int, output_size: int, lstm_hidden: int) -> int:
    """The hidden size whose parameter count is nearest the LSTM's at `lstm_hidden` (the ablations:
    the LSTM's own size)."""
    if kind.startswith("lstm"):
        return lstm_hidden
    target = count("lstm", input_size, lstm_hidden, output_size)
    return min(range(1, 8 * lstm_hidden + 8), key=lambda h: abs(count(kind, input_size, h, output_size) - target))


def build(kinds, input_size: int, output_size: int, lstm_hidden: int, seed: int = 0) -> dict[str, LabCell]:
    """{kind: LabCell} at matched sizes, each started from its own seed (seed + its place in ALL_CELLS)."""
    cells = {}
    for kind in kinds:
        torch.manual_seed(seed * 100 + ALL_CELLS.index(kind))
        cells[kind] = LabCell(kind, input_size, matched_hidden(kind, input_size, output_size, lstm_hidden), output_size)
    return cells


def parse_cells(text) -> tuple[str, ...]:
    """'rnn,gru,lstm' (or a list) -> the cells in ALL_CELLS order; ValueError with a sentence."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text or []) if n and n.strip()]
    unknown = [n for n in names if n not in ALL_CELLS]
    if unknown:
        raise ValueError(f"Unknown cell {unknown[0]!r}: choose from {', '.join(ALL_CELLS)}.")
    if not names:
        raise ValueError(f"Choose at least one cell: {', '.join(ALL_CELLS)}.")
    return tuple(k for k in ALL_CELLS if k in names)
