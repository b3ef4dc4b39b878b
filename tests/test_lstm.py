"""LSTMCore: the exact gate trace and the traced step agree with the fused kernel and with an
independent per-step reference written here from PyTorch's LSTM equations."""

from __future__ import annotations

import pytest
import torch

from studio.lstm import GATE_NAMES, LSTMConfig, LSTMCore, _cell_scan

INPUT_SIZE, HIDDEN = 5, 12
TOL = 1e-5


def make_core(num_layers: int, seed: int = 0) -> LSTMCore:
    torch.manual_seed(seed)
    core = LSTMCore(LSTMConfig(INPUT_SIZE, HIDDEN, num_layers)).eval()
    with torch.no_grad():  # wider than the default init, so gates leave the linear region
        for p in core.parameters():
            p.uniform_(-0.6, 0.6)
    return core


def random_inputs(num_layers: int, batch: int, steps: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, INPUT_SIZE, generator=gen)
    h0 = torch.rand(num_layers, batch, HIDDEN, generator=gen) * 2 - 1  # any h in (-1, 1)
    c0 = torch.randn(num_layers, batch, HIDDEN, generator=gen) * 1.5
    return x, (h0, c0)


def reference_lstm(core: LSTMCore, x: torch.Tensor, state):
    """nn.LSTMCell-style loop in float64 straight from the weights: per layer a list of
    per-step dicts i, f, g, o, c, h, each (B, H)."""
    h0, c0 = (s.double() for s in state)
    layer_input = x.double()
    result = []
    for k, layer in enumerate(core.layers):
        w_ih, w_hh = layer.weight_ih_l0.double(), layer.weight_hh_l0.double()
        b = layer.bias_ih_l0.double() + layer.bias_hh_l0.double()
        h, c = h0[k], c0[k]
        steps = []
        for t in range(layer_input.shape[1]):
            z = layer_input[:, t] @ w_ih.T + h @ w_hh.T + b
            i = torch.sigmoid(z[:, 0 * HIDDEN : 1 * HIDDEN])
            f = torch.sigmoid(z[:, 1 * HIDDEN : 2 * HIDDEN])
            g = torch.tanh(z[:, 2 * HIDDEN : 3 * HIDDEN])
            o = torch.sigmoid(z[:, 3 * HIDDEN : 4 * HIDDEN])
            c = f * c + i * g
            h = o * torch.tanh(c)
            steps.append({"i": i, "f": f, "g": g, "o": o, "c": c, "h": h})
        result.append(steps)
        layer_input = torch.stack([s["h"] for s in steps], dim=1)
    return result


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("steps", [1, 63, 64, 65, 130])
@pytest.mark.parametrize("batch", [1, 3])
def test_trace_matches_fused_forward_and_reference(num_layers, steps, batch):
    core = make_core(num_layers)
    x, state = random_inputs(num_layers, batch, steps)
    assert state[0].abs().min() > 0 and state[1].abs().min() > 0  # really non-zero initial state

    fused_out, (fused_h, fused_c) = core(x, state)
    out, (new_h, new_c), gates = core.trace(x, state)

    assert len(gates) == num_layers
    # trace runs under no_grad, where the kernel may take another path: equal within rounding
    assert max_diff(out, fused_out) <= TOL
    assert max_diff(new_h, fused_h) <= TOL and max_diff(new_c, fused_c) <= TOL

    # Each layer's recomputed h equals that layer's fused output sequence; its last c equals
    # the fused final cell (per-layer fused runs done here, not through LSTMCore internals).
    layer_input = x
    for k, layer in enumerate(core.layers):
        layer_out, (layer_h, layer_c) = layer(layer_input, (state[0][k : k + 1].contiguous(), state[1][k : k + 1].contiguous()))
        for name in GATE_NAMES:
            assert gates[k][name].shape == (batch, steps, HIDDEN), name
        assert max_diff(gates[k]["h"], layer_out) <= TOL
        # the recovered gates rebuild the fused output: o * tanh(c) = h at every step
        assert max_diff(gates[k]["o"] * torch.tanh(gates[k]["c"]), layer_out) <= TOL
        assert max_diff(gates[k]["c"][:, -1], layer_c[0]) <= TOL
        assert max_diff(gates[k]["c"][:, -1], fused_c[k]) <= TOL
        assert max_diff(gates[k]["h"][:, -1], fused_h[k]) <= TOL
        layer_input = layer_out
    assert max_diff(gates[-1]["h"], fused_out) <= TOL

    for layer_gates in gates:
        for name in ("i", "f", "o"):
            assert layer_gates[name].min() >= 0 and layer_gates[name].max() <= 1, name
        assert layer_gates["g"].min() >= -1 and layer_gates["g"].max() <= 1

    # Independent check of every quantity, not only h.
    reference = reference_lstm(core, x, state)
    for k in range(num_layers):
        for name in GATE_NAMES:
            expected = torch.stack([s[name] for s in reference[k]], dim=1)
            assert max_diff(gates[k][name], expected) <= TOL, (k, name)


def test_trace_gates_are_not_trivial():
    """Guards the comparison above against a degenerate setup (e.g. all gates ~0.5)."""
    core = make_core(2)
    x, state = random_inputs(2, 2, 40)
    _, _, gates = core.trace(x, state)
    for name in ("i", "f", "o"):
        assert gates[0][name].std() > 0.1
    assert gates[1]["c"].abs().max() > 0.5


def test_trace_without_state_starts_from_zeros():
    core = make_core(2)
    x, _ = random_inputs(2, 2, 10)
    zeros = core.initial_state(2)
    assert zeros[0].shape == (2, 2, HIDDEN) and not zeros[0].any() and not zeros[1].any()
    _, _, gates_default = core.trace(x)
    _, _, gates_zero = core.trace(x, zeros)
    for a, b in zip(gates_default, gates_zero, strict=True):
        for name in GATE_NAMES:
            assert torch.equal(a[name], b[name])


def test_step_by_step_reproduces_fused_forward_and_trace_gates():
    num_layers, batch, steps = 2, 3, 70
    core = make_core(num_layers)
    x, state = random_inputs(num_layers, batch, steps)
    fused_out, (fused_h, fused_c) = core(x, state)
    _, _, traced = core.trace(x, state)

    current = state
    outs = []
    for t in range(steps):
        out, current, gates = core.step(x[:, t], current)
        assert len(gates) == num_layers
        for k in range(num_layers):
            for name in GATE_NAMES:
                assert gates[k][name].shape == (batch, HIDDEN)
                assert max_diff(gates[k][name], traced[k][name][:, t]) <= TOL, (t, k, name)
        assert torch.equal(out, gates[-1]["h"])
        outs.append(out)
    assert max_diff(torch.stack(outs, dim=1), fused_out) <= TOL
    assert current[0].shape == fused_h.shape and current[1].shape == fused_c.shape
    assert max_diff(current[0], fused_h) <= TOL
    assert max_diff(current[1], fused_c) <= TOL


def test_step_sees_weights_changed_in_place():
    """step() caches its concatenated weights; an in-place update (as an optimizer makes) or a
    load_state_dict must not leave it stepping with stale ones."""
    core = make_core(2)
    x, state = random_inputs(2, 1, 1)
    core.step(x[:, 0], state)  # fills the cache
    with torch.no_grad():
        core.layers[1].weight_hh_l0.mul_(0.5)
        core.layers[0].bias_ih_l0.add_(0.25)
    out, _, _ = core.step(x[:, 0], state)
    assert max_diff(out, core(x, state)[0][:, 0]) <= TOL
    other = make_core(2)
    other.load_state_dict({k: v * 0.9 for k, v in core.state_dict().items()})
    other.step(x[:, 0], state)
    other.load_state_dict(core.state_dict())
    assert max_diff(other.step(x[:, 0], state)[0], out) <= TOL


@pytest.mark.parametrize("steps", [1, 2, 63, 64, 65, 129, 200])
@pytest.mark.parametrize("block", [4, 64])
def test_cell_scan_equals_sequential_recurrence(steps, block):
    gen = torch.Generator().manual_seed(steps)
    forget = torch.rand(2, steps, 7, generator=gen)
    update = torch.randn(2, steps, 7, generator=gen)
    c0 = torch.randn(2, 7, generator=gen)
    c, expected = c0.double(), []
    for t in range(steps):
        c = forget[:, t].double() * c + update[:, t].double()
        expected.append(c)
    cells = _cell_scan(forget, update, c0, block=block)
    assert cells.shape == (2, steps, 7)
    assert max_diff(cells, torch.stack(expected, dim=1)) <= TOL
