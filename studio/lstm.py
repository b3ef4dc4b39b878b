"""The one LSTM core shared by every domain.

Training and plain inference run torch's fused ``nn.LSTM`` kernel, one module per layer so
each layer's output sequence is available. The gates that the fused kernel hides are
recovered exactly afterwards (``trace``) or computed as we go while sampling (``step``).

PyTorch's LSTM definition, which both recoveries follow (rows of the weights are in gate
order i, f, g, o):

    z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          # (4H,)
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  g = tanh(z_g)
    c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)

State is always passed explicitly as ``(h, c)``, each (num_layers, B, H), as ``nn.LSTM`` does.

Hooks (for interventions and for reading values as they are made): ``step`` accepts a list of
callables ``hook(step, layer, name, value) -> Tensor | None``, called for every layer in the
order i, f, g, o, c, h. A hook that returns a tensor replaces that value, and everything computed
after it uses the replacement (a replaced forget gate changes c; a replaced c changes h; a replaced
h is what the next layer and the next step read). ``layer`` counts from ``first_layer`` so a model
with several cores (an attention layer below a core) numbers its layers as its Trace does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

GATE_NAMES = ("i", "f", "g", "o", "c", "h")

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (L, B, H)
# hook(step, layer, name, value) -> replacement or None; name in GATE_NAMES, value (B, H)
Hook = Callable[[int, int, str, torch.Tensor], "torch.Tensor | None"]


@dataclass
class LSTMConfig:
    input_size: int  # features per time step fed to the first layer
    hidden_size: int  # units per layer (H)
    num_layers: int = 2
    dropout: float = 0.0  # between layers, training only (as nn.LSTM's dropout)


class LSTMCore(nn.Module):
    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        sizes = [config.input_size] + [config.hidden_size] * (config.num_layers - 1)
        # One single-layer fused LSTM per layer (same kernel as a multi-layer nn.LSTM) so that
        # every layer's output sequence is visible to `trace`.
        self.layers = nn.ModuleList(nn.LSTM(n, config.hidden_size, batch_first=True) for n in sizes)
        self.dropout = nn.Dropout(config.dropout)

    def initial_state(self, batch_size: int, device=None) -> State:
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        weight = self.layers[0].weight_ih_l0  # the state takes the weights' device and dtype (float64 in checks)
        device = device or weight.device
        return torch.zeros(shape, device=device, dtype=weight.dtype), torch.zeros(shape, device=device, dtype=weight.dtype)

    # the gates' activation: out of place, in place, and in place on one step's whole z (i, f, g, o, g's
    # rows doubled: trace_stepped); studio.lstm_hard.HardSigmoidCore has Keras's hard sigmoid instead
    def _squash(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(z)
    def _squash_(self, z: torch.Tensor) -> torch.Tensor:
        return z.sigmoid_()
    def _squash_step_(self, z: torch.Tensor) -> torch.Tensor:
        return z.sigmoid_()

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Fused forward. x: (B, T, input_size) -> out (B, T, H), new state."""
        out, state, _ = self.run_layers(x, state, keep_layer_io=False)
        return out, state

    def run_layers(self, x, state=None, keep_layer_io=True):
        """Fused forward keeping each layer's (input, output) sequences when asked:
        (out (B, T, H), state, [(x_k (B, T, X_k), h_k (B, T, H)) per layer])."""
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        h0, c0 = state
        hs, cs, layer_io = [], [], []
        for k, layer in enumerate(self.layers):
            if k > 0:
                x = self.dropout(x)
            out, (h, c) = layer(x, (h0[k : k + 1].contiguous(), c0[k : k + 1].contiguous()))
            if keep_layer_io:
                layer_io.append((x, out))
            hs.append(h)
            cs.append(c)
            x = out
        return x, (torch.cat(hs), torch.cat(cs)), layer_io

    @torch.no_grad()
    def trace(self, x: torch.Tensor, state: State | None = None):
        """Fused forward plus every gate, exactly.

        Returns (out, new_state, gates) where gates[k] is a dict of (B, T, H) tensors
        i, f, g, o, c, h for layer k. Per layer: one batched matmul over all T gives every
        pre-activation (the fused outputs shifted by one step stand in for h_{t-1}); only
        the elementwise cell recurrence is scanned; h is the fused output itself (o * tanh(c)
        rebuilds it within rounding, which the tests check).
        """
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        out, new_state, layer_io = self.run_layers(x, state, keep_layer_io=True)
        h0, c0 = state
        gates = []
        hidden = self.config.hidden_size
        for k, ((weight, bias), (inp, hid)) in enumerate(zip(self._step_weights(), layer_io, strict=True)):
            # One GEMM for both halves of z: [x_t, h_{t-1}] @ [W_ih, W_hh]^T + (b_ih + b_hh), its
            # input written once into one buffer (h_{t-1} is the fused output shifted by a step)
            width = inp.shape[-1]
            joined = inp.new_empty(*inp.shape[:-1], width + hidden)  # (B, T, X+H)
            joined[..., :width] = inp
            joined[:, 0, width:] = h0[k]
            joined[:, 1:, width:] = hid[:, :-1]
            z = torch.addmm(bias, joined.view(-1, width + hidden), weight).view(*inp.shape[:-1], 4 * hidden)  # (B, T, 4H)
            # squashed in place (i and f side by side in one call): the gates are views of z, no
            # new 15 MB tensor per gate at T=10,000
            self._squash_(z[..., : 2 * hidden])
            self._squash_(z[..., 3 * hidden :])
            zi, zf, zg, zo = z.chunk(4, dim=-1)
            i, f, o, g = zi, zf, zo, zg.tanh_()
            c = _cell_scan(f, i * g, c0[k], overwrite=True)
            # h = o * tanh(c) is the fused kernel's own output (the tests check the two agree)
            gates.append({"i": i, "f": f, "g": g, "o": o, "c": c, "h": hid})
        return out, new_state, gates

    @torch.no_grad()
    def trace_stepped(self, x: torch.Tensor | None, state: State | None = None,
                      out: list[torch.Tensor] | None = None,
                      gemm_dtype: torch.dtype | None = None,
                      z0: torch.Tensor | None = None) -> tuple[list[torch.Tensor], State]:
        """Every gate, computed step by step as it is made: for many sequences side by side.

        x is time-major, (T, B, input_size). Returns (blocks, new_state): blocks[k] is layer k's
        (T, B, 6, H) tensor of i, f, g, o, c, h (GATE_NAMES order) in one piece, so a consumer
        can read all six at once. Per layer one GEMM gives the input half of every step's z, then
        each step adds the recurrent half and updates the cell. That is half of `trace`'s
        arithmetic (which runs the fused kernel and then makes z again from its outputs), and at
        batch 64 the step's GEMM is as efficient as one big one; at batch 1 `trace` is faster.
        Equal to `trace` within float rounding (tests/test_experiments.py checks it). `out`: per
        layer a (T' >= T, B, 6, H) tensor to write into instead of new memory (a caller going through
        a long sequence chunk by chunk: fresh 19 MB blocks cost as much in page faults as their GEMM).
        `gemm_dtype=torch.bfloat16`: the matrix products read bfloat16 copies of the weights and of
        x and h (accumulated in float32 by oneDNN, the result rounded to bfloat16 before it is added
        to z); the cell and every gate stay float32. Faster than the float32 GEMM on a CPU with
        AVX512-BF16 (docs/benchmarks.md, Experiments on units), at ~3 significant digits in z: an approximation for ranking units over long
        texts (the probe), never for what a user reads as the trace. `z0`: layer 0's input half of
        z, (T, B, 4H), already known (input_table's rows for a text's characters): x is then None.
        """
        given = x if z0 is None else z0
        steps, batch = given.shape[:2]
        if state is None:
            state = self.initial_state(batch, given.device)
        h0, c0 = state
        hidden = self.config.hidden_size
        blocks, hs, cs = [], [], []
        for k, (w_ih, w_hh, bias) in enumerate(self._doubled_g_weights(gemm_dtype)):
            block = out[k][:steps] if out is not None else given.new_empty(steps, batch, 6, hidden)
            flat = block.view(steps, batch, 6 * hidden)
            z = flat[..., : 4 * hidden]  # i, f, g, o: first z, then the gates in place
            if k == 0 and z0 is not None:
                z.copy_(z0)
            elif gemm_dtype is None:
                torch.addmm(bias, x.reshape(steps * batch, -1), w_ih, out=z.view(steps * batch, 4 * hidden))
            else:  # the bfloat16 product converted and the bias added, into z, in one pass
                torch.add(torch.mm(x.reshape(steps * batch, -1).to(gemm_dtype), w_ih).view(steps, batch, -1), bias, out=z)
            gates = z.view(steps, batch, 4, hidden)
            i, f, g, o = gates.unbind(2)
            c_all, h_all = block[:, :, 4], block[:, :, 5]
            h, c = h0[k], c0[k]
            for t in range(steps):
                if gemm_dtype is None:
                    z[t].addmm_(h, w_hh)
                else:
                    z[t].add_(torch.mm(h.to(gemm_dtype), w_hh))
                # one sigmoid for all four: torch's tanh costs several times its sigmoid on CPU
                # (docs/benchmarks.md, Text: sampling and the trace), and
                # tanh(x) = 2 sigmoid(2x) - 1 with the g rows of the weights doubled (exact)
                self._squash_step_(z[t])
                g[t].mul_(2).sub_(1)
                c = torch.mul(f[t], c, out=c_all[t]).addcmul_(i[t], g[t])
                h = torch.mul(c, 2, out=h_all[t]).sigmoid_().mul_(2).sub_(1).mul_(o[t])  # o * tanh(c)
            blocks.append(block)
            hs.append(h)
            cs.append(c)
            x = h_all
        return blocks, (torch.stack(hs), torch.stack(cs))

    @torch.no_grad()
    def input_table(self, embedding: torch.Tensor) -> torch.Tensor:
        """(V, 4H): layer 0's input half of z for each row of an embedding table (V, X), bias and
        trace_stepped's doubled g included, in float32: a text's steps look theirs up (z0) instead
        of multiplying 64-wide rows, a slow shape for a GEMM."""
        w_ih, _, bias = self._doubled_g_weights()[0]
        return torch.addmm(bias, embedding, w_ih)

    def _doubled_g_weights(self, dtype: torch.dtype | None = None) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per layer (W_ih^T (X, 4H), W_hh^T (H, 4H), b_ih + b_hh) with the g block times 2 (see
        trace_stepped): `_step_weights` with its g columns doubled, cached the same way; `dtype`:
        the two weight matrices in that type (the bias stays float32)."""
        if dtype is not None:
            doubled = self._doubled_g_weights()
            if getattr(self, "_cast_source", None) is not doubled or self._cast[0][0].dtype != dtype:
                cast = [(w_ih.to(dtype), w_hh.to(dtype), bias) for w_ih, w_hh, bias in doubled]
                self._cast, self._cast_source = cast, doubled  # built whole, then set (threads)
                return cast
            return self._cast
        step_weights = self._step_weights()
        if getattr(self, "_doubled_source", None) is not step_weights:
            hidden = self.config.hidden_size
            doubled = []  # built whole, then set: two threads may ask at once
            for layer, (weight, bias) in zip(self.layers, step_weights, strict=True):
                scale = torch.ones_like(bias)
                scale[2 * hidden : 3 * hidden] = 2.0
                width = layer.weight_ih_l0.shape[1]
                doubled.append(((weight[:width] * scale).contiguous(), (weight[width:] * scale).contiguous(), bias * scale))
            self._doubled, self._doubled_source = doubled, step_weights
            return doubled
        return self._doubled

    @torch.no_grad()
    def step(self, x: torch.Tensor, state: State, hooks: Sequence[Hook] | None = None, step: int = 0,
             first_layer: int = 0):
        """One time step for sampling, computing its gates on the way.

        x: (B, input_size). Returns (out (B, H), new_state, gates) with gates[k] a dict of
        (B, H) tensors i, f, g, o, c, h. `hooks` (see the module docstring) see this step as
        number `step` and this core's layer k as layer `first_layer + k`; with no hooks the
        arithmetic is exactly the hook-free path's.
        """
        h0, c0 = state
        hs, cs, gates = [], [], []
        hidden = self.config.hidden_size
        for k, product in enumerate(self._step_products(x.device)):
            z = product(torch.cat([x, h0[k]], dim=-1))  # (B, 4H)
            # one sigmoid over all four blocks (g's is unused) is cheaper than three calls at batch 1
            squashed = self._squash(z)
            i, f, o = squashed[:, :hidden], squashed[:, hidden : 2 * hidden], squashed[:, 3 * hidden :]
            g = torch.tanh(z[:, 2 * hidden : 3 * hidden])
            if hooks:
                layer_gates = _hooked_cell(i, f, g, o, c0[k], hooks, step, first_layer + k)
            else:
                c = torch.addcmul(f * c0[k], i, g)
                layer_gates = {"i": i, "f": f, "g": g, "o": o, "c": c, "h": o * torch.tanh(c)}
            gates.append(layer_gates)
            hs.append(layer_gates["h"])
            cs.append(layer_gates["c"])
            x = layer_gates["h"]
        return x, (torch.stack(hs), torch.stack(cs)), gates

    def cell(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, layer: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """One differentiable step of one layer, (B, X), (B, H), (B, H) -> (h, c): for layers that
        must be stepped in training because their input depends on their own last output (an
        attention window). Same math as the fused kernel and `step`."""
        lstm = self.layers[layer]
        return torch.lstm_cell(x, (h, c), lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)

    # caches of derived weights (rebuilt on demand): never pickled (a packed product is a closure)
    _CACHES = ("_products", "_products_source", "_cast", "_cast_source", "_doubled", "_doubled_source",
               "_step_cache", "_step_cache_key")

    def __getstate__(self):
        """The module without its caches: what goes to a generation worker (studio.workers)."""
        state = dict(self.__dict__)
        for name in self._CACHES:
            state.pop(name, None)
        return state

    def _step_products(self, device: torch.device) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Per layer, [x_t, h_{t-1}] -> z_t: `_step_weights`' product, on a CPU by oneDNN with
        reordered weights (packed_linear: the same bits for a row at any batch size), elsewhere
        addmm. Cached with _step_weights."""
        step_weights = self._step_weights()
        if getattr(self, "_products_source", None) is not step_weights:
            products = []  # built whole, then set: two threads may ask at once
            for weight, bias in step_weights:
                packed = packed_linear(weight, bias) if device.type == "cpu" else None
                products.append(packed or (lambda x, weight=weight, bias=bias: torch.addmm(bias, x, weight)))
            self._products, self._products_source = products, step_weights
        return self._products

    def _step_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer ([W_ih, W_hh]^T (X+H, 4H), b_ih + b_hh): one matmul per layer and step
        instead of two. Cached, and rebuilt whenever a weight changes (training updates them in
        place, which bumps their version; loading or moving them makes new storage)."""
        params = [p for layer in self.layers for p in (layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0)]
        key = tuple((p.data_ptr(), p._version) for p in params)
        if getattr(self, "_step_cache_key", None) != key:
            with torch.no_grad():
                self._step_cache = [(torch.cat([layer.weight_ih_l0, layer.weight_hh_l0], dim=1).t().contiguous(),
                                     layer.bias_ih_l0 + layer.bias_hh_l0) for layer in self.layers]
            self._step_cache_key = key
        return self._step_cache


def packed_linear(weight: torch.Tensor, bias: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """x -> x @ weight + bias through oneDNN with the weight reordered once, or None where torch
    has no such op. Why: MKL's sgemm gives a row of a batch different last bits depending on how
    many rows there are (1-3 rows take another kernel than 4 or more) and is slow for 2-16 rows on
    this CPU; oneDNN's kernel gives every row the same bits whatever the batch, and is faster at
    those sizes (docs/benchmarks.md, Load and requests). So concurrent
    requests can be sampled as one batch and each still gets exactly what it would alone."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    if (not hasattr(mkldnn, "_reorder_linear_weight") or not torch.backends.mkldnn.is_available()
            or weight.dtype != torch.float32 or weight.device.type != "cpu"):  # float64 tests, GPUs: addmm
        return None
    packed = mkldnn._reorder_linear_weight(weight.t().contiguous(), 8)  # tuned for up to ~8 rows
    return lambda x: mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def step_linear(module: nn.Linear) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> module(x) for sampling steps (a model's output head): packed_linear of its weight on a
    CPU, so a row's logits do not depend on the batch either; cached on the module and rebuilt
    when its weight changes."""
    weight, bias = module.weight, module.bias
    key = (id(module), weight.data_ptr(), weight._version, None if bias is None else (bias.data_ptr(), bias._version))
    product = _STEP_LINEARS.get(key)
    if product is None:
        with torch.no_grad():
            packed = packed_linear(weight.t(), bias) if weight.device.type == "cpu" and bias is not None else None
        product = packed or (lambda x: F.linear(x, module.weight, module.bias))
        if len(_STEP_LINEARS) > 64:  # weights changed by training leave old keys behind
            _STEP_LINEARS.clear()
        _STEP_LINEARS[key] = product
    return product


_STEP_LINEARS: dict = {}  # step_linear's products (kept here, not on the module: a module is pickled for workers)


def _hooked_cell(i, f, g, o, c_prev, hooks: Sequence[Hook], step: int, layer: int) -> dict[str, torch.Tensor]:
    """The cell update of `step` with every hook offered each value before it is used."""
    values = {}

    def offer(name, value):
        for hook in hooks:
            replaced = hook(step, layer, name, value)
            if replaced is not None:
                value = replaced
        values[name] = value
        return value

    i, f, g, o = offer("i", i), offer("f", f), offer("g", g), offer("o", o)
    c = offer("c", torch.addcmul(f * c_prev, i, g))
    offer("h", o * torch.tanh(c))
    return values


def set_units(layer: int, units, quantity: str = "h", value: float = 0.0, from_step: int = 0,
              until_step: int | None = None) -> Hook:
    """A hook that holds `quantity` of `units` in `layer` at `value` (0 ablates) for steps in
    [from_step, until_step): the building block of interventions (forget = 1, input = 0, h = 0)."""
    units = [int(u) for u in ([units] if isinstance(units, int) else units)]

    def hook(step, hook_layer, name, current):
        if hook_layer != layer or name != quantity or step < from_step or (until_step is not None and step >= until_step):
            return None
        changed = current.clone()
        changed[:, units] = value
        return changed

    return hook


def _cell_scan(forget: torch.Tensor, update: torch.Tensor, c0: torch.Tensor, block: int = 64,
               overwrite: bool = False) -> torch.Tensor:
    """c_t = f_t * c_{t-1} + u_t for all t. forget/update: (B, T, H); c0: (B, H) -> (B, T, H).

    Cut the steps into blocks of `block`. Within every block at once, run the recurrence from a
    zero cell (`block` vectorised steps over all blocks); walk the T/block block ends to get the
    cell entering each block; add that cell times the forget gates' running product inside the
    block; walk the last T mod block steps one by one (no padding copies). Only products of
    gates in [0, 1] and sums appear, never a division, so the result stays within float
    rounding of the sequential recurrence. overwrite=True lets the scan work in `update` itself
    (a temporary the caller does not need) instead of a copy: at T=10,000 and H=384 every 15 MB
    allocation shows in the trace's time.
    """
    batch, steps, hidden = forget.shape
    if not overwrite or not update.is_contiguous():  # the in-place block view needs contiguous storage
        update = update.contiguous() if overwrite else update.clone(memory_format=torch.contiguous_format)
    full = steps - steps % block  # whole blocks; the few steps after them are walked one by one
    forget_blocks = forget[:, :full].reshape(batch, -1, block, hidden)
    cells = update[:, :full].reshape(batch, -1, block, hidden)  # a view: the scan lands in `update`
    for j in range(1, block):  # each block's recurrence from a zero cell, all blocks at once
        cells[:, :, j].addcmul_(forget_blocks[:, :, j], cells[:, :, j - 1])
    decay = torch.cumprod(forget_blocks, dim=2)  # forget gates multiplied from each block's start
    incoming = torch.empty_like(cells[:, :, 0])  # (B, T/block, H): the cell entering each block
    c = c0
    for b in range(cells.shape[1]):
        incoming[:, b] = c
        c = torch.addcmul(cells[:, b, -1], decay[:, b, -1], c)
    cells.addcmul_(decay, incoming.unsqueeze(2))
    for t in range(full, steps):
        c = update[:, t].addcmul_(forget[:, t], c)
    return update
