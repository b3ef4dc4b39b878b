"""The "ask why" panel under the trace viewer: for the step the viewer selected, the top guesses,
the saliency of every earlier input (also painted onto the viewer's output), the step's LSTM
equations with their numbers (a Colah-style cell diagram) and the trajectory of the layer's state.
Drawn in the browser (explain_panel.js) from the answer of studio.explain; the Python side is
`explanation(...)`, written once for every domain that offers `explainable`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio import explain, gpu
from studio.ui import inputs
from studio.ui.common import clamp_int, endpoint_input, endpoint_model

HERE = Path(__file__).resolve().parent
PANEL_JS = (HERE / "explain_panel.js").read_text(encoding="utf-8")
PANEL_CSS = (HERE / "explain_panel.css").read_text(encoding="utf-8")
IG_SECONDS_PER_STEP = 7 / 400  # integrated gradients' time on this server's kind (docs/benchmarks.md: ~7 s at step
                                # 400, ~50 s at step 3,000 with the shipped text model)
METHODS = [("gradient x input (fast)", "gradient_x_input"),
           ("integrated gradients (32 passes: ~7 s at step 400, ~50 s at step 3,000)", "integrated_gradients")]


@dataclass
class ExplainPanel:
    html: gr.HTML  # value: explanation(...)'s answer
    target: gr.Textbox  # "why not ...?": a next value to explain instead of the actual one
    method: gr.Dropdown


def explain_panel(prefix: str, viewer_id: str) -> ExplainPanel:
    with gr.Row():
        target = gr.Textbox(label="Why not…? (a next value to explain instead; empty: what came next)",
                            elem_id=f"{prefix}-why-not", scale=2)
        method = inputs.Dropdown(METHODS, value="gradient_x_input", label="Saliency", scale=1)
    html = gr.HTML(None, html_template='<div class="ex-root"></div>', css_template=PANEL_CSS, js_on_load=PANEL_JS,
                   elem_id=f"{prefix}-explain", viewer_id=viewer_id, apply_default_css=False)
    return ExplainPanel(html, target, method)


def explainable_of(domain, loaded, generation):
    """The domain's Explainable for a generation, made once and kept with it."""
    if getattr(generation, "explained", None) is None:
        generation.explained = domain.explainable(loaded, domain.sequence_of(generation))
    return generation.explained


def trajectory_of(generation, trace, layer: int):
    """explain.trajectory of one layer, computed once per generation (an SVD of steps x units)."""
    if getattr(generation, "trajectories", None) is None:
        generation.trajectories = {}
    if layer not in generation.trajectories:
        generation.trajectories[layer] = explain.trajectory(trace, layer)
    return generation.trajectories[layer]


def explanation(domain, loaded, generation, event: dict, target=None, method: str = "gradient_x_input",
                progress=None) -> dict:
    """The panel's value for a viewer event (a step, with the viewer's layer and unit). `progress` (a
    gr.Progress, or anything called as progress(fraction, desc=...)) hears integrated gradients' expected
    time first, then its passes as they are done."""
    scored, ex = explainable_of(domain, loaded, generation)
    trace = scored.trace
    step = clamp_int(event.get("step"), 0, trace.steps - 1, trace.steps - 1)
    layer = clamp_int(event.get("layer"), 0, trace.num_layers - 1, 0)
    unit = clamp_int(event.get("unit"), 0, trace.hidden_size - 1, 0)
    target = target.strip() if isinstance(target, str) and target.strip() else None
    try:
        method = method if method in dict(METHODS).values() else "gradient_x_input"
        if method == "integrated_gradients":  # the long one: a lent GPU on ZeroGPU
            told = None
            if progress is not None:
                said = f"Integrated gradients up to step {step}: about {max(1, round(step * IG_SECONDS_PER_STEP))} s"
                progress(0.0, desc=said)
                # a GPU call gets no callback (it could not cross over to it): the time alone is said there
                told = None if gpu.available() else (lambda done: progress(done, desc=said))
            # a domain's sequence is read afresh where the call runs; the lab's (no domain) is read here
            answer = (gpu.long_call(explain.explain_sequence, domain, loaded, domain.sequence_of(generation), step,
                                    layer, unit, target, method, told) if domain is not None
                      else explain.explain(trace, ex, step, layer, unit, target, method, told))
        else:
            answer = explain.explain(trace, ex, step, layer, unit, target, method)
    except ValueError as error:  # a target the model cannot have: say so, keep the rest
        answer = explain.explain(trace, ex, step, layer, unit, None, "gradient_x_input")
        answer["note"] = str(error)
    coords, share = trajectory_of(generation, trace, layer)
    first = min(generation.trace.shown_from, trace.steps - 1)  # what the generation shows (a primer's steps are not)
    answer["labels_before"] = trace.labels[: step + 1]
    answer["surprise_track"] = answer["surprise_track"][first:]  # -log p of what came next, per shown step
    answer["first"] = first
    answer["trajectory"] = {"x": coords[first:, 0].round(4).tolist(), "y": coords[first:, 1].round(4).tolist(),
                            "share": share.tolist(), "first": first, "labels": trace.labels[first:],
                            "layer_name": trace.layer_name(layer), "quantity": "h"}
    return answer


def explain_api(loaded_by_domain: dict):
    """The /explain endpoint: why one step of a sequence came out, for any domain, as JSON.

    domain: "text", "music", ...; model: a model name of that domain ("" = the first);
    text: the input for the text domain; file: an uploaded file in the domain's format (used when
    given); step, layer, unit: ints; target: a next value to explain instead of the actual one
    ("" = the actual); method: "gradient_x_input" or "integrated_gradients". Answers like
    `python -m studio explain`."""

    def explain_endpoint(domain: str, model: str, text: str, file: str | None, step: float, layer: float,
                         unit: float, target: str, method: str) -> dict:
        module, loaded = endpoint_model(loaded_by_domain, domain, model)
        try:
            sequence = endpoint_input(module, loaded, text, file)
            scored, ex = module.explainable(loaded, sequence)
            trace = scored.trace
            args = (clamp_int(step, 0, trace.steps - 1, 0), clamp_int(layer, 0, trace.num_layers - 1, 0),
                    clamp_int(unit, 0, trace.hidden_size - 1, 0),
                    target.strip() if isinstance(target, str) and target.strip() else None,
                    method if method in dict(METHODS).values() else "gradient_x_input")
            if args[-1] == "integrated_gradients":  # the long one: in a lent GPU call on ZeroGPU (studio.gpu)
                return gpu.long_call(explain.explain_sequence, module, loaded, sequence, *args)
            return explain.explain(trace, ex, *args)
        except ValueError as error:
            raise gr.Error(str(error)) from None

    return explain_endpoint
