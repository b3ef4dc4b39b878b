"""The blocks every tab is built from: the model header and the gate panel (the browser trace viewer,
the gate-saturation plot, "units worth a look", what a click on the viewer selected, exports of the
viewer's current view). A tab adds only its domain's inputs and outputs."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio import analysis, viz
from studio.domains.base import LoadedModel, View
from studio.trace import QUANTITY_TITLES, Trace
from studio.ui import inputs
from studio.ui.common import OUTPUT_ROOT, clamp_int, notes_markdown, output_dir
from studio.ui.experiments_panel import ExperimentsPanel, experiments_panel, wire_experiments
from studio.ui.explain_panel import ExplainPanel, explain_panel, explanation
from studio.ui.viewer import TraceViewer, trace_viewer, viewer_value

HEATMAP_UNITS = 48  # rows per heatmap: enough to see structure, small enough to read
UNITS_WORTH_A_LOOK = 6


# ---------------------------------------------------------------- model header
def describe(loaded: LoadedModel) -> str:
    card = loaded.card
    return f"**{loaded.name}** ({card['kind']}): {loaded.summary}. Data: {card['data']['source']}."


def model_header(models: dict[str, LoadedModel], problems: list[str], no_model_hint: str, prefix: str | None = None):
    """The model dropdown (`{prefix}-model`) and its description, or None (with the reason shown)
    when no model loads."""
    if problems:
        gr.Markdown("**Some checkpoints could not be loaded:**\n\n" + notes_markdown(problems))
    if not models:
        gr.Markdown(no_model_hint)
        return None
    names = list(models)
    # custom values allowed: a model trained after start-up is not among the choices the page was built with
    # (loaded_or_error checks every name against the loaded models)
    dropdown = inputs.Dropdown(names, value=names[0], label="Model", elem_id=f"{prefix}-model" if prefix else None,
                           allow_custom_value=True)
    # folded: a model's description runs to a dozen lines, and would push the tab's main button below the fold
    with gr.Accordion("About this model", open=False):
        info = gr.Markdown(describe(models[names[0]]))
    return dropdown, info


def follow_model(dropdown: gr.Dropdown, info: gr.Markdown, models: dict[str, LoadedModel]) -> None:
    """Describe whichever model is picked."""
    dropdown.change(lambda name: describe(loaded_or_error(models, name)), dropdown, info, api_visibility="private")


def downloads(*labels: str) -> list[gr.File]:
    """A row of download slots with these labels (the trace's is the gate panel's, made when asked)."""
    with gr.Row():
        return [gr.File(label=label) for label in labels]


def loaded_or_error(models: dict[str, LoadedModel], name) -> LoadedModel:
    if not isinstance(name, str) or name not in models:
        raise gr.Error(f"Unknown model {name!r}; pick one from the list.")
    return models[name]


# ---------------------------------------------------------------- a finished example at load
def _files_exist(value) -> bool:
    """Every output file a cached answer names is still there (outputs are pruned)."""
    if isinstance(value, str):
        return not value.startswith(str(OUTPUT_ROOT)) or Path(value).exists()
    if isinstance(value, dict):
        return all(_files_exist(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_files_exist(v) for v in value)
    return True


def example_on_load(button: gr.Button, handler, inputs: list, outputs: list) -> None:
    """The page opens with a finished example: `handler` run with the inputs' first values when a
    page loads, the answer kept per distinct values (one generation per model and settings for
    every visitor), so the first screen shows gates, not an empty viewer. It runs after the page is
    served (never delays it); a click on `button` before it is done cancels it, so it never
    overwrites the user's own result; a failure leaves the outputs as they are, silently."""
    answers: dict[str, tuple] = {}
    lock = threading.Lock()

    def first_example(*values):
        key = repr(values)
        with lock:
            answer = answers.get(key)
        if answer is None or not _files_exist(answer):
            try:
                answer = handler(*values)
            except Exception:  # noqa: BLE001 (the user's own click says what is wrong)
                return tuple(gr.skip() for _ in outputs)
            with lock:
                if len(answers) > 16:
                    answers.clear()
                answers[key] = answer
        return answer

    root = gr.context.Context.root_block
    if root is None:  # a tab built outside a gr.Blocks (some tests): nothing to load into
        return
    # its progress on the first output only: the page re-renders every output any event has shown in
    # progress on every later status change of any event (Gradio 6), so each one counts on every click
    shown = root.load(first_example, inputs, outputs, api_visibility="private", show_progress="minimal",
                      show_progress_on=outputs[:1])
    button.click(None, cancels=[shown], queue=False, api_visibility="private")


# ---------------------------------------------------------------- views of a trace
def read_view(trace: Trace, layer, quantity, unit, order) -> View:
    """The controls' values as a View that fits `trace` (anything odd falls back to a default)."""
    return View(
        layer=clamp_int(layer, 0, trace.num_layers - 1, 0),
        unit=clamp_int(unit, 0, trace.hidden_size - 1, 0),
        quantity=quantity if quantity in QUANTITY_TITLES else "tanh_c",
        order=order if order in analysis.ORDERINGS else "variance",
    )


def units_markdown(trace: Trace, layer: int) -> str:
    notes = analysis.interesting_units(trace, layer, k=UNITS_WORTH_A_LOOK, start=trace.shown_from)
    return (f"**Units worth a look ({trace.layer_name(layer)})**: type one into *Unit*.\n\n"
            + "\n".join(f"- {note.reason}" for note in notes))


def paint_heatmaps(trace: Trace, view: View, start: int | None = None, end: int | None = None):
    """The chosen unit's lines over the heatmaps of its layer (rows in the view's order)."""
    units = analysis.order_units(trace, view.layer, by=view.order, start=trace.shown_from)[:HEATMAP_UNITS]
    start = trace.shown_from if start is None else start
    return viz.gate_heatmaps(trace, view.layer, units=units, start=start, end=end, unit=view.unit)


# ---------------------------------------------------------------- the browser viewer and its panels
@dataclass
class GatePanel:
    """The interactive viewer (studio/ui/viewer.py: heatmaps, unit lines, the domain strip, gate
    saturation), the units worth a look, what answers the viewer's events (the selection, "ask
    why" for a step, exports), and the trace as a file, written when asked: a 400-character text's
    is 3.9 MB that few open, and an API client downloads every file an answer names."""

    viewer: TraceViewer
    selection: gr.Markdown
    why: ExplainPanel | None  # None for a domain that offers no `explainable`
    units: gr.Markdown
    export: gr.File
    experiments: ExperimentsPanel | None  # probe, pattern match, intervene, compare (needs the tab's models)
    save_trace: gr.Button
    trace_file: gr.File
    prefix: str  # the tab's, in element ids and the trace's API name

    @property
    def outputs(self) -> list:
        """What gate_values fills, in order (the trace file is emptied: it was the last generation's)."""
        return [self.viewer.html, self.units, self.trace_file]


def gate_panel(prefix: str, domain=None, models: dict | None = None) -> GatePanel:
    viewer = trace_viewer(prefix, link=f"{prefix}-compare-viewer")
    selection = gr.Markdown(elem_id=f"{prefix}-selection")
    why = explain_panel(prefix, viewer.html.elem_id) if domain is not None else None
    experiments = experiments_panel(prefix, domain, models, viewer.html.elem_id) if domain is not None and models else None
    units = gr.Markdown(elem_id=f"{prefix}-units")
    export = gr.File(label="Exported view (PNG / SVG)", elem_id=f"{prefix}-export")
    with gr.Row():
        save_trace = gr.Button("Download the whole trace (.npz, float16)", size="sm", elem_id=f"{prefix}-save-trace")
        trace_file = gr.File(label="Trace (.npz, float16)", elem_id=f"{prefix}-trace")
    return GatePanel(viewer, selection, why, units, export, experiments, save_trace, trace_file, prefix)


def gate_values(trace: Trace, track: dict, title: str = "") -> tuple:
    """(viewer value, units worth a look in every layer, no trace file yet) for GatePanel.outputs."""
    units = "\n\n".join(units_markdown(trace, layer) for layer in range(trace.num_layers))
    return viewer_value(trace, track, title), units, None


def save_trace(generation) -> str:
    """The generation's whole trace, float16 (`Trace.load_npz` reads it back), as a file to download."""
    if generation is None or getattr(generation, "trace", None) is None:
        raise gr.Error("Generate something first: there is no trace to save yet.")
    trace = generation.trace
    return str(trace.save_npz(output_dir() / f"{trace.domain or 'lstm'}-trace.npz", dtype="float16"))


def describe_selection(trace: Trace, event: dict) -> str:
    """A viewer event in words: the step's label and the unit's six values, or the brushed range."""
    layer = clamp_int(event.get("layer"), 0, trace.num_layers - 1, 0)
    unit = clamp_int(event.get("unit"), 0, trace.hidden_size - 1, 0)
    if event.get("kind") == "range":
        start = clamp_int(event.get("start"), 0, trace.steps - 1, 0)
        end = clamp_int(event.get("end"), start, trace.steps - 1, start)
        shown = "".join(trace.labels[start : end + 1]) if max(map(len, trace.labels or [""])) <= 1 else ""
        return f"**Selected steps {start}–{end}** ({end - start + 1} steps)" + (f": `{shown[:200]!r}`" if shown else ".")
    step = clamp_int(event.get("step"), 0, trace.steps - 1, 0)
    values = ", ".join(f"{name} {trace.quantity(layer, name)[step, unit]:+.3f}" for name in ("i", "f", "g", "o", "c", "h"))
    return f"**Step {step}** ({trace.labels[step]!r}), {trace.layer_name(layer)}, unit {unit}: {values}."


def export_view(trace: Trace, event: dict, folder) -> str:
    """The viewer's current view as a matplotlib picture (PNG or SVG), the same rows and steps."""
    view = read_view(trace, event.get("layer"), "tanh_c", event.get("unit"), event.get("order"))
    start = clamp_int(event.get("start"), trace.shown_from, trace.steps - 1, trace.shown_from)
    end = clamp_int(event.get("end"), start + 1, trace.steps, trace.steps)
    figure = paint_heatmaps(trace, view, start, end)
    suffix = "svg" if event.get("format") == "svg" else "png"
    path = folder / f"{trace.domain or 'trace'}-layer{view.layer}-unit{view.unit}-steps{start}-{end - 1}.{suffix}"
    figure.savefig(path, format=suffix, dpi=120)
    return str(path)


def wire_panel(panel: GatePanel, state: gr.State, domain=None, models: dict | None = None) -> None:
    """Answer the viewer's events: a step is described and, where the domain offers it, explained
    ("ask why"); a unit or range is described; an export is drawn and offered. The state holds the
    tab's Generation."""
    last_step = gr.State()  # the viewer event the explanation answers (the target/method controls re-ask it)

    def ask_why(generation, event, target, method, progress=gr.Progress()):  # noqa: B008 (its tracker)
        if panel.why is None or generation is None or not isinstance(event, dict) or event.get("kind") != "step":
            return gr.skip()
        loaded = (models or {}).get(generation.trace.model)
        if loaded is None:
            return {"message": "The model that made this output is no longer loaded; generate again."}
        try:
            return explanation(domain, loaded, generation, event, target, method, progress)
        except ValueError as error:
            return {"message": str(error)}

    def on_event(generation, event, target, method, progress=gr.Progress()):  # noqa: B008 (its tracker)
        trace = generation.trace if generation is not None else None
        if trace is None or not isinstance(event, dict):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if event.get("kind") == "export":
            return gr.skip(), export_view(trace, event, output_dir()), gr.skip(), gr.skip()
        remembered = event if event.get("kind") == "step" else gr.skip()
        why = ask_why(generation, event, target, method, progress)
        return describe_selection(trace, event), gr.skip(), why, remembered

    panel.save_trace.click(save_trace, state, panel.trace_file, api_name=f"{panel.prefix.replace('-', '_')}_trace")
    why_outputs = [panel.why.html] if panel.why is not None else [gr.State()]
    controls = [panel.why.target, panel.why.method] if panel.why is not None else [gr.State(), gr.State()]
    panel.viewer.events.select(on_event, [state, panel.viewer.events, *controls],
                               [panel.selection, panel.export, *why_outputs, last_step], api_visibility="private",
                               trigger_mode="always_last")  # the step the user stopped on is answered last
    if panel.why is not None:
        for control in controls:
            control.change(ask_why, [state, last_step, *controls], why_outputs, api_visibility="private")
    if panel.experiments is not None:
        wire_experiments(panel.experiments, state, domain, models or {}, panel.viewer.events)
