"""ONNX export of any model whose network is an LSTM stack with a head: one sampling step as an
ONNX graph, with the hidden and cell state as explicit inputs and outputs, so a browser
(onnxruntime-web) or an embedded runtime can sample step by step.

What a model must look like (the studio's text and music models, an imported one, the
handwriting prediction model): `core` a studio.lstm.LSTMCore, `head` an nn.Linear reading the top
layer's h, and optionally `embed` an nn.Embedding whose rows are the first columns of the core's
input. Any other submodule (an attention window, an encoder, an input layer) means the network is
more than a stack and a head, and the export is refused naming it.

The graph (opset 17), for a batch of B sequences, L layers of H units:

    inputs   token    int64 (B,)         the token read at this step (when the model has `embed`)
             features float (B, F)       the rest of the core's input at this step (when F > 0:
                                         a music model's frame context, a handwriting point)
             h, c     float (L, B, H)    the state (zeros to start)
    outputs  logits   float (B, V)       the head's output (softmax of it: the next-token distribution)
             h_out, c_out (L, B, H)      the state after this step

The cell is written out with MatMul, Sigmoid and Tanh (rows i, f, g, o as studio.lstm), not ONNX's
LSTM operator: its gate order and layout differ, and the plain ops run in every runtime. A core
whose gates use a hard sigmoid (studio.lstm_hard.HardSigmoidCore) gets
ONNX's HardSigmoid with the same slope and offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from studio.lstm import LSTMCore

OPSET = 17
# the modules a stack-with-a-head network may have (dropout holds no weights and is off in export)
PARTS = {"core", "head", "embed", "drop", "dropout"}


class ExportError(Exception):
    """The model cannot be exported; the message says why in one sentence."""


@dataclass
class StepShape:
    """What the exported step reads and writes."""

    has_token: bool  # a token id input (the model has `embed`)
    feature_size: int  # width of the `features` input (0: none)
    num_layers: int
    hidden_size: int
    output_size: int


def step_shape(model: nn.Module) -> StepShape:
    """The exported step's shape, or ExportError naming what makes the network more than a stack and a head."""
    core, head, embed = getattr(model, "core", None), getattr(model, "head", None), getattr(model, "embed", None)
    if not isinstance(core, LSTMCore) or not isinstance(head, nn.Linear):
        raise ExportError("Only a network that is an LSTM stack with a linear head exports to ONNX; this model has no "
                          "'core' LSTM stack with a 'head' layer.")
    extra = sorted(name for name, _ in model.named_children() if name not in PARTS)
    if extra:
        raise ExportError(f"This model has more than an LSTM stack and a head (its '{extra[0]}' part), which the ONNX "
                          "export does not cover.")
    config = core.config
    if head.in_features != config.hidden_size:
        raise ExportError(f"The head reads {head.in_features} values, not the top layer's {config.hidden_size} units, "
                          "so the network is not a plain stack with a head.")
    embed_size = 0
    if embed is not None:
        if not isinstance(embed, nn.Embedding):
            raise ExportError("The model's 'embed' part is not an embedding table.")
        embed_size = embed.embedding_dim
    if embed_size > config.input_size:
        raise ExportError(f"The embedding is {embed_size} wide but the LSTM reads {config.input_size} values.")
    return StepShape(embed is not None, config.input_size - embed_size, config.num_layers, config.hidden_size,
                     head.out_features)


def build(model: nn.Module):
    """The onnx.ModelProto of one sampling step (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = step_shape(model)
    core, head = model.core, model.head
    nodes, weights = [], []

    def const(name, array):
        weights.append(numpy_helper.from_array(np.array(array, order="C"), name))  # (ascontiguousarray makes a 0-d
                                                                                   # index 1-d)
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    batch, layers, hidden = "batch", shape.num_layers, shape.hidden_size
    inputs = []
    parts = []
    if shape.has_token:
        inputs.append(helper.make_tensor_value_info("token", TensorProto.INT64, [batch]))
        table = const("embed.weight", model.embed.weight.detach().float().numpy())
        parts.append(node("Gather", [table, "token"], "embedded", axis=0))
    if shape.feature_size:
        inputs.append(helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, shape.feature_size]))
        parts.append("features")
    inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, [layers, batch, hidden]) for name in ("h", "c")]
    x = parts[0] if len(parts) == 1 else node("Concat", parts, "x", axis=1)
    split = const("gate_split", np.array([hidden] * 4, dtype=np.int64))
    slope, offset = getattr(core, "hard_sigmoid", None) or (None, None)  # studio.lstm_hard
    hs, cs = [], []
    for k, layer in enumerate(core.layers):
        index = const(f"layer{k}", np.array(k, dtype=np.int64))
        h_prev = node("Gather", ["h", index], f"h_prev{k}", axis=0)
        c_prev = node("Gather", ["c", index], f"c_prev{k}", axis=0)
        weight = torch.cat([layer.weight_ih_l0, layer.weight_hh_l0], dim=1).t().detach().float().numpy()
        bias = (layer.bias_ih_l0 + layer.bias_hh_l0).detach().float().numpy()
        joined = node("Concat", [x, h_prev], f"xh{k}", axis=1)
        z = node("Add", [node("MatMul", [joined, const(f"W{k}", weight)], f"zw{k}"), const(f"b{k}", bias)], f"z{k}")
        nodes.append(helper.make_node("Split", [z, split], [f"zi{k}", f"zf{k}", f"zg{k}", f"zo{k}"], name=f"split{k}",
                                      axis=1))
        if slope is None:
            gate = {name: node("Sigmoid", [f"z{name}{k}"], f"{name}{k}") for name in "ifo"}
        else:
            gate = {name: node("HardSigmoid", [f"z{name}{k}"], f"{name}{k}", alpha=float(slope), beta=float(offset))
                    for name in "ifo"}
        g = node("Tanh", [f"zg{k}"], f"g{k}")
        c = node("Add", [node("Mul", [gate["f"], c_prev], f"fc{k}"), node("Mul", [gate["i"], g], f"ig{k}")], f"c{k}")
        x = node("Mul", [gate["o"], node("Tanh", [c], f"tanh_c{k}")], f"h{k}")
        axes = const(f"axes{k}", np.array([0], dtype=np.int64))
        hs.append(node("Unsqueeze", [x, axes], f"h_out{k}"))
        cs.append(node("Unsqueeze", [c, axes], f"c_out{k}"))
    head_weight = head.weight.detach().float().numpy().T
    logits = node("MatMul", [x, const("head.weight", head_weight)], "head_product")
    if head.bias is not None:
        logits = node("Add", [logits, const("head.bias", head.bias.detach().float().numpy())], "logits")
    else:
        logits = node("Identity", [logits], "logits")
    node("Concat", hs, "h_out", axis=0) if len(hs) > 1 else node("Identity", hs, "h_out")
    node("Concat", cs, "c_out", axis=0) if len(cs) > 1 else node("Identity", cs, "c_out")
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, shape.output_size])]
    outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, [layers, batch, hidden])
                for name in ("h_out", "c_out")]
    graph = helper.make_graph(nodes, "lstm_step", inputs, outputs, initializer=weights)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lstm-studio")
    proto.ir_version = 8  # what onnxruntime releases of the last years all read
    onnx.checker.check_model(proto)
    return proto


def export(model: nn.Module, out, description: str = "") -> Path:
    """Write the step graph of `model` to `out` (.onnx); returns the path."""
    proto = build(model)
    if description:
        proto.doc_string = description
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(proto.SerializeToString())
    return out


@torch.no_grad()
def studio_outputs(model: nn.Module, core_inputs: torch.Tensor) -> torch.Tensor:
    """The studio's own next-step outputs for a teacher-forced sequence of core inputs (T, X): (T, V)."""
    out, _, _ = model.core.trace(core_inputs[None].to(model.head.weight.dtype))
    return model.head(out)[0]


def run_steps(path, tokens: np.ndarray | None, features: np.ndarray | None, num_layers: int,
              hidden_size: int) -> np.ndarray:
    """Run an exported step graph with onnxruntime over a sequence (batch 1), the state carried from
    step to step: (T, V) outputs. tokens (T,) int, features (T, F) or None."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    steps = len(tokens) if tokens is not None else len(features)
    h = np.zeros((num_layers, 1, hidden_size), np.float32)
    c = np.zeros_like(h)
    outputs = []
    for t in range(steps):
        feed = {"h": h, "c": c}
        if tokens is not None:
            feed["token"] = np.asarray(tokens[t : t + 1], dtype=np.int64)
        if features is not None:
            feed["features"] = np.asarray(features[t : t + 1], dtype=np.float32)
        logits, h, c = session.run(["logits", "h_out", "c_out"], feed)
        outputs.append(logits[0])
    return np.stack(outputs)


@torch.no_grad()
def check(model: nn.Module, path, tokens=None, features=None, steps: int = 500, seed: int = 0) -> float:
    """Largest |studio - onnxruntime| over a teacher-forced sequence: the given tokens (T,) and
    features (T, F), or `steps` random ones (equal arithmetic does not need a meaningful input)."""
    shape = step_shape(model)
    generator = torch.Generator().manual_seed(seed)
    if shape.has_token and tokens is None:
        tokens = torch.randint(model.embed.num_embeddings, (steps,), generator=generator)
    if shape.feature_size and features is None:
        features = (torch.rand(len(tokens) if tokens is not None else steps, shape.feature_size,
                               generator=generator) < 0.1).float()
    parts = []
    if shape.has_token:
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        parts.append(model.embed.weight[tokens])
    if shape.feature_size:
        features = torch.as_tensor(features, dtype=torch.float32)
        parts.append(features.to(model.head.weight.dtype))
    expected = studio_outputs(model, torch.cat(parts, dim=-1)).float().numpy()
    got = run_steps(path, None if tokens is None else tokens.numpy(), None if features is None else features.numpy(),
                    shape.num_layers, shape.hidden_size)
    return float(np.abs(expected - got).max())


# ---------------------------------------------------------------- command line
def add_command(parser, domain) -> None:
    """`python -m studio onnx DOMAIN --model NAME --out OUT.onnx`: the same for every domain."""
    from studio import cli_common

    cli_common.add_model_flag(parser, domain)
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--check-steps", type=int, default=500,
                        help="steps of random input run through the studio and onnxruntime to compare (0: no check)")
    parser.set_defaults(run=lambda args: run_command(domain, args))


def model_stem(name) -> str:
    """A checkpoint stem as given, or the model of that name in the models folder (an opened or trained
    model in the user models folder is given by its path)."""
    from studio import checkpoint

    given = Path(str(name))
    if not checkpoint.paths(given)[1].exists():
        for folder in (checkpoint.MODELS_DIR,):
            if checkpoint.paths(folder / given.name)[1].exists():
                return str(folder / given.name)
    return str(given)


def run_command(domain, args) -> int:
    import sys

    from studio import checkpoint

    try:
        loaded = domain.load(model_stem(args.model), device="cpu")
        path = export(loaded.model, args.out, loaded.card.get("description", ""))
    except (checkpoint.CheckpointError, ExportError) as error:
        sys.exit(f"error: {error}")
    shape = step_shape(loaded.model)
    inputs = (["token (int64, batch)"] if shape.has_token else []) + (
        [f"features (float, batch x {shape.feature_size})"] if shape.feature_size else [])
    print(f"wrote {path}: inputs {', '.join(inputs)}, h, c ({shape.num_layers} x batch x {shape.hidden_size}); "
          f"outputs logits (batch x {shape.output_size}), h_out, c_out")
    if args.check_steps > 0:
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:  # a test dependency (requirements-dev.txt)
            print("note: onnxruntime is not installed, so the graph was not run against the studio "
                  "(pip install onnxruntime, or --check-steps 0)", file=sys.stderr)
            return 0
        difference = check(loaded.model, path, steps=args.check_steps)
        print(f"onnxruntime vs the studio over {args.check_steps} steps: largest difference {difference:.2e}")
        if difference > 1e-4:
            sys.exit("error: the exported graph disagrees with the studio by more than 1e-4")
    return 0
