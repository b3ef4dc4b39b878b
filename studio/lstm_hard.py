"""An LSTM core whose gates use a hard sigmoid, clip(slope * z + offset, 0, 1), instead of the
logistic one: Keras's `hard_sigmoid`, which models opened from Keras files may use
(studio.importer: Keras 2 defines it as (0.2, 0.5), Keras 3 as relu6(z + 3) / 6, i.e. (1/6, 0.5)).
torch's fused kernel has only the logistic sigmoid, so this core runs its layers step by step;
everything else (trace, trace_stepped, step, hooks) is LSTMCore's with the activation swapped."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from studio.lstm import LSTMConfig, LSTMCore


class HardSigmoidCore(LSTMCore):
    def __init__(self, config: LSTMConfig, hard_sigmoid: tuple[float, float]):
        super().__init__(config)
        self.hard_sigmoid = (float(hard_sigmoid[0]), float(hard_sigmoid[1]))  # (slope, offset)

    def _squash(self, z):
        return self._squash_(z.clone())

    def _squash_(self, z):
        slope, offset = self.hard_sigmoid
        return z.mul_(slope).add_(offset).clamp_(0.0, 1.0)

    def _squash_step_(self, z):
        """i, f, o hard; g (its rows doubled, tanh(x) = 2 sigmoid(2x) - 1: trace_stepped) by the sigmoid."""
        hidden = self.config.hidden_size
        self._squash_(z[..., : 2 * hidden])
        z[..., 2 * hidden : 3 * hidden].sigmoid_()
        self._squash_(z[..., 3 * hidden :])
        return z

    def run_layers(self, x, state=None, keep_layer_io=True):
        """LSTMCore.run_layers with each layer stepped through `cell` (differentiable, for fine-tuning)."""
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        h0, c0 = state
        hs, cs, layer_io = [], [], []
        for k in range(len(self.layers)):
            if k > 0:
                x = self.dropout(x)
            h, c, outs = h0[k], c0[k], []
            for t in range(x.shape[1]):
                h, c = self.cell(x[:, t], h, c, k)
                outs.append(h)
            out = torch.stack(outs, dim=1)
            if keep_layer_io:
                layer_io.append((x, out))
            hs.append(h[None])
            cs.append(c[None])
            x = out
        return x, (torch.cat(hs), torch.cat(cs)), layer_io

    def cell(self, x, h, c, layer: int = 0):
        lstm = self.layers[layer]
        z = F.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0) + F.linear(h, lstm.weight_hh_l0, lstm.bias_hh_l0)
        zi, zf, zg, zo = z.chunk(4, dim=-1)
        slope, offset = self.hard_sigmoid
        i, f, o = ((v * slope + offset).clamp(0.0, 1.0) for v in (zi, zf, zo))
        c = f * c + i * torch.tanh(zg)
        return o * torch.tanh(c), c
