"""The experiments panel under a tab's trace viewer: test a hypothesis about units.

- Probe: rank every (layer, unit, quantity) against a feature of a long reference; the top units'
  activations drawn next to the feature; a click opens a unit in the viewer.
- Pattern match: brush steps in the viewer, set a threshold: the units above it throughout, and
  every other place in the reference where they are on together, with context.
- Intervene: switch units off (or hold a gate or a state) from a step on, generate again with the
  same settings and seed: the two outputs side by side, the first divergence, KL per step.
- Compare: a second model (or this one's other layers) reads the same output: linear CKA per layer
  pair and a second viewer whose cursor follows the first.

Results are drawn in the browser (experiments_panel.js) from one answer dict per experiment; the
work is studio/reference.py and studio/experiments.py, written once for every domain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from studio import cli_experiments, experiments, gpu, reference
from studio.domains import member
from studio.domains.base import Generation
from studio.lstm import GATE_NAMES
from studio.ui import inputs
from studio.ui.common import clamp_int, number_or, output_dir
from studio.ui.viewer import TraceViewer, trace_viewer, viewer_value

HERE = Path(__file__).resolve().parent
PANEL_JS = (HERE / "experiments_panel.js").read_text(encoding="utf-8")
PANEL_CSS = (HERE / "experiments_panel.css").read_text(encoding="utf-8")
ACTIONS = [("ablate: h = 0", "h=0"), ("hold the forget gate open: f = 1", "f=1"), ("shut the input gate: i = 0", "i=0"),
           ("shut the output gate: o = 0", "o=0"), ("reset the cell: c = 0", "c=0"), ("clamp h to the value", "h"),
           ("clamp c to the value", "c")]
SAME_MODEL = "(this model: its layers with each other)"
PATTERN_QUANTITIES = [*GATE_NAMES, "tanh_c"]  # the viewer's quantities: a brush passes its own
# an empty threshold is set from the selection: just under the level this many units keep through all of it (a
# fixed 0.5 found no unit on most selections: h and tanh(c) seldom stay above it for many steps)
AUTO_UNITS = 3


@dataclass
class ExperimentsPanel:
    results: gr.HTML  # value: an answer dict ({"kind": "probe" | "pattern" | "intervene" | "compare", ...})
    reference: gr.Radio
    upload: gr.File
    limit: gr.Number
    feature: gr.Dropdown
    probe: gr.Button
    steps: gr.Textbox
    layer: gr.Number
    quantity: gr.Dropdown
    threshold: gr.Textbox
    match: gr.Button
    units: gr.Textbox
    units_note: gr.Markdown  # says when a shift-click on the viewer added a unit
    action: gr.Dropdown
    value: gr.Number
    from_step: gr.Number
    intervene: gr.Button
    model_b: gr.Dropdown
    compare: gr.Button
    compare_viewer: TraceViewer
    accordion: gr.Accordion


_feature_names: dict[tuple[str, int], list[str]] = {}  # (domain, id of the model) -> names


def features_of(domain, loaded) -> list[str]:
    """The feature tracks the probe offers for this model: the domain's `feature_names` of it (a text
    model of words has its own), else those of the domain's example as the model reads it (a
    scored read included, where it gives some). Remembered: a domain's example may take seconds the
    first time (speech imports librosa for its mel), so the page is built without them and they
    fill the list when the panel opens (app.py works them out in the background after the page is
    served)."""
    key = (domain.NAME, id(loaded))
    if key not in _feature_names:
        names = member(domain, "feature_names")
        if names is not None and loaded is not None:
            _feature_names[key] = list(names(loaded))
            return _feature_names[key]
        sequence, _ = domain.example()
        try:
            scored = domain.score(loaded, sequence) if loaded is not None else None
        except ValueError:
            scored = None
        _feature_names[key] = list(domain.features(
            scored.sequence if scored is not None and scored.sequence is not None else sequence, scored))
    return _feature_names[key]


def feature_names(domain, models: dict) -> list[str]:
    """features_of the first model (the one a tab opens with)."""
    return features_of(domain, next(iter(models.values()), None))


def known_feature_names(domain, models: dict) -> list[str]:
    """feature_names if already worked out, else [] (never slow)."""
    return _feature_names.get((domain.NAME, id(next(iter(models.values()), None))), [])


def experiments_panel(prefix: str, domain, models: dict, viewer_id: str) -> ExperimentsPanel:
    first = next(iter(models.values()), None)
    with gr.Accordion("Experiment on units: probe, pattern match, intervene, compare", open=False,
                      elem_id=f"{prefix}-experiments") as accordion:
        with gr.Row():
            refs = reference.choices(domain, first)
            reference_choice = inputs.Radio(refs, value=refs[0][1], label="Reference for the probe and the pattern match",
                                        elem_id=f"{prefix}-xp-reference", scale=3)
            upload = gr.File(label="Uploaded reference (the domain's format)", scale=2, elem_id=f"{prefix}-xp-upload")
            limit = inputs.Number(100_000, label="Read at most (the model's steps)", precision=0, scale=1,
                                  info=("a step is what the model reads at once: a character, or a word for a "
                                        "word model"),
                                  elem_id=f"{prefix}-xp-limit")
        with gr.Tabs():
            with gr.Tab("Probe", elem_id=f"{prefix}-xp-probe-tab"):
                names = known_feature_names(domain, models)  # filled when the panel opens
                with gr.Row():
                    feature = inputs.Dropdown(names, value=names[0] if names else None,
                                              allow_custom_value=member(domain, "custom_feature") is not None,
                                              label="Feature" + member(domain, "CUSTOM_FEATURE_HINT"),
                                              elem_id=f"{prefix}-xp-feature")
                    probe = gr.Button("Find the units that track it", elem_id=f"{prefix}-xp-probe")
            with gr.Tab("Pattern match", elem_id=f"{prefix}-xp-pattern-tab"):
                with gr.Row():
                    steps = gr.Textbox(label="Steps (drag across the viewer's heatmap, or type 120-140)", elem_id=f"{prefix}-xp-steps")
                    layer = inputs.Number(0, label="Layer", precision=0, minimum=0)
                    quantity = inputs.Dropdown(PATTERN_QUANTITIES, value="h", label="Quantity")
                    # text, not a Number: a Number field cannot show "empty" (it shows 0)
                    threshold = gr.Textbox("", label="On above (empty: set from your selection)", placeholder="auto",
                                           elem_id=f"{prefix}-xp-threshold")
                    match = gr.Button("Find where they are on together", elem_id=f"{prefix}-xp-match")
            with gr.Tab("Intervene", elem_id=f"{prefix}-xp-intervene-tab"):
                with gr.Row():
                    units = gr.Textbox(label="Units (layer:unit, …; shift-click a heatmap row's label to add it)",
                                       elem_id=f"{prefix}-xp-units")
                    action = inputs.Dropdown(ACTIONS, value="h=0", label="Change")
                    value = inputs.Number(0.0, label="Value (for a clamp)")
                    from_step = inputs.Number(0, label="From step (a click on a step sets it)", precision=0, minimum=0,
                                          elem_id=f"{prefix}-xp-from")
                    intervene = gr.Button("Generate both", elem_id=f"{prefix}-xp-intervene")
                units_note = gr.Markdown(elem_id=f"{prefix}-xp-units-note")
            with gr.Tab("Compare", elem_id=f"{prefix}-xp-compare-tab"):
                with gr.Row():
                    model_b = inputs.Dropdown([SAME_MODEL, *models], value=SAME_MODEL, label="Read the output with")
                    compare = gr.Button("Compare", elem_id=f"{prefix}-xp-compare")
                compare_viewer = trace_viewer(f"{prefix}-compare", link=viewer_id)
        results = gr.HTML(None, html_template='<div class="xp-root"></div>', css_template=PANEL_CSS, js_on_load=PANEL_JS,
                          elem_id=f"{prefix}-xp-results", viewer_id=viewer_id, apply_default_css=False)
    return ExperimentsPanel(results, reference_choice, upload, limit, feature, probe, steps, layer, quantity, threshold, match,
                            units, units_note, action, value, from_step, intervene, model_b, compare, compare_viewer,
                            accordion)


def fill_features(domain, models: dict, generation, chosen, quick: bool = False):
    """The feature menu for the model on screen (the one the probe reads with; before any output, the
    first): its own features, the choice kept where that model has it (a typed regex is kept too).
    quick: only where they are known or the domain says them at once (gr.skip() otherwise: a new
    output never waits on a domain's example; opening the panel works them out)."""
    on_screen = generation.trace.model if generation is not None and generation.trace is not None else None
    loaded = models.get(on_screen) or next(iter(models.values()), None)
    if quick and (domain.NAME, id(loaded)) not in _feature_names and member(domain, "feature_names") is None:
        return gr.skip()
    names = features_of(domain, loaded)
    custom = member(domain, "custom_feature") is not None
    others = set().union(*(_feature_names.get((domain.NAME, id(m)), []) for m in models.values())) - set(names)
    keep = isinstance(chosen, str) and chosen and (chosen in names or (custom and chosen not in others))
    return gr.update(choices=names, value=chosen if keep else (names[0] if names else None))


def probe_answer(domain, models: dict, generation, choice, file, limit, feature, progress=None) -> dict:
    """The probe's answer for the panel's fields, by the model on screen (before any output, the first).
    `progress` (a gr.Progress, or anything called as progress(fraction, desc=...)) hears the expected
    time first, then the share of the reference read."""
    on_screen = generation is not None and generation.trace is not None
    loaded = models.get(generation.trace.model) if on_screen else next(iter(models.values()))
    if loaded is None:
        raise ValueError("The model that made this output is no longer loaded; generate again.")
    if not isinstance(feature, str) or not feature.strip():
        raise ValueError("Pick a feature (or, for text, type a regex).")
    limit = clamp_int(limit, 100, 200_000, 100_000)
    found = reference.sources(domain, loaded, generation, choice, file, limit)
    told = None
    if progress is not None:
        seconds = max(1, round(reference.expected_seconds(loaded, found)))
        said = f"Probing '{feature.strip()}' over {_steps(found):,} steps: about {seconds} s"
        progress(0.0, desc=said)
        # a GPU call gets no callback (it could not cross over to it): the time alone is said there
        told = None if gpu.available() else (lambda done: progress(done, desc=said))
    return gpu.long_call(reference.probe, domain, loaded, found, feature.strip(), limit=limit, progress=told)


def _steps(found: list) -> int:
    return sum(source.trace.steps if source.trace is not None else reference.length(source.sequence)
               for source in found)


def auto_threshold(trace, layer: int, start: int, end: int, quantity: str) -> float:
    """A threshold the selection itself passes: under the AUTO_UNITS-th highest of the units' lowest values over
    steps start..end (the units that stay most on through it), floored to two decimals and one hundredth below."""
    lowest = np.sort(trace.quantity(layer, quantity)[start : end + 1].min(0))[::-1]
    return math.floor(float(lowest[min(AUTO_UNITS, len(lowest)) - 1]) * 100) / 100 - 0.01


def _failed(error: Exception) -> dict:
    return {"kind": "message", "message": str(error)}


def hooks_of(units_text: str, action: str, value, from_step: int) -> list:
    """The hooks of the Intervene tab's fields (ValueError with a sentence on a bad unit list)."""
    try:
        pairs = experiments.parse_units(units_text)
    except ValueError:
        raise ValueError(f"{units_text!r} is not a list of layer:unit pairs (e.g. 1:5, 0:12).") from None
    if not pairs:
        raise ValueError("Name the units to change, as layer:unit pairs (e.g. 1:5, 0:12).")
    quantity, _, fixed = str(action).partition("=")
    if quantity not in GATE_NAMES:
        quantity, fixed = "h", "0"
    amount = float(fixed) if fixed else number_or(value, 0.0)
    spec = ",".join(f"{layer}:{unit}:{quantity}={amount}" for layer, unit in pairs)
    return experiments.intervention_hooks(clamp=spec, from_step=from_step)


def _check_units(trace, pairs) -> None:
    for layer, unit in pairs:
        if not (0 <= layer < trace.num_layers and 0 <= unit < trace.hidden_size):
            raise ValueError(f"Unit {layer}:{unit} does not exist: this model has {trace.num_layers} layers of "
                             f"{trace.hidden_size} units (numbered from 0).")


def intervention(domain, loaded, generation: Generation, units_text, action, value, from_step) -> dict:
    """Both outputs (shown labels, and the domain's files for a picture or a sound), the first
    divergence in shown steps, and the KL per step from the intervention on."""
    trace = generation.trace
    start = clamp_int(from_step, 0, trace.steps - 1, 0)
    hooks = hooks_of(units_text, action, value, start)
    _check_units(trace, experiments.parse_units(units_text))
    plain, changed = cli_experiments.generate_both(domain, loaded, generation.settings, hooks)
    first = plain.trace.shown_from
    outputs = []
    for name, made in (("original", plain), ("changed", changed)):
        files = domain.write_files(made, output_dir())
        media = {kind: f"gradio_api/file={path}" for kind, path in files.items() if Path(path).suffix in (".svg", ".wav", ".png")}
        outputs.append({"name": name, "labels": [str(x) for x in made.trace.labels[first:]], "media": media})
    found = cli_experiments.differences(domain, plain, changed)
    divergence, kl = found["first_divergence"], found["kl"]
    return {"kind": "intervene", "domain": domain.NAME, "units": units_text, "action": dict((v, k) for k, v in ACTIONS).get(action, action),
            "from_step": start, "first": first, "outputs": outputs, "measure": found["measure"],
            "first_divergence": None if divergence is None else max(divergence - first, 0),
            "kl": None if kl is None else [float(f"{x:.4g}") for x in kl[first:]],
            # no picture or sound and a character per step: the labels are the output itself, shown as running text
            "joined": not any(output["media"] for output in outputs)
                      and all(len(label) <= 1 for output in outputs for label in output["labels"])}


def comparison(domain, models: dict, loaded, generation: Generation, model_b: str) -> tuple[dict, dict]:
    """(answer with CKA per layer pair, the second viewer's value: model B's trace of the same output)."""
    other = loaded if model_b == SAME_MODEL or model_b not in models else models[model_b]
    sequence = domain.sequence_of(generation)
    trace_a = gpu.long_call(domain.score, loaded, sequence).trace
    trace_b = trace_a if other is loaded else gpu.long_call(domain.score, other, sequence).trace
    pairs = cli_experiments.compare(trace_a, trace_b)
    track = domain.track(Generation(generation.result, trace_b, {}))
    answer = {"kind": "compare", "model_a": loaded.name, "model_b": other.name, "steps": min(trace_a.steps, trace_b.steps),
              "names_a": [trace_a.layer_name(k) for k in range(trace_a.num_layers)],
              "names_b": [trace_b.layer_name(k) for k in range(trace_b.num_layers)],
              "cka": [{"a": a, "b": b, "cka": round(v, 6)} for a, b, v in pairs]}
    return answer, viewer_value(trace_b, track, f"{other.name} reading the same output:")


def fill_from_viewer(event, units_text):
    """A brush fills the pattern's steps, a shift-click on a heatmap row's label the intervention's units
    (said in a note: a plain click only picks the unit to look at), a step its start."""
    skip = gr.skip()
    if not isinstance(event, dict):
        return skip, skip, skip, skip, skip, skip
    kind = event.get("kind")
    if kind == "range":
        quantity = event.get("quantity") if event.get("quantity") in PATTERN_QUANTITIES else "h"
        return f"{event.get('start')}-{event.get('end')}", event.get("layer", 0), quantity, skip, skip, skip
    if kind == "unit" and event.get("add"):
        pair = f"{event.get('layer', 0)}:{event.get('unit', 0)}"
        listed = [p.strip() for p in str(units_text or "").split(",") if p.strip()]
        if pair in listed:
            return skip, skip, skip, skip, skip, f"Unit {pair} is already in the Intervene units."
        return (skip, skip, skip, ", ".join([*listed, pair]), skip,
                f"Added unit {pair} to the Intervene units (shift-click on a row's label adds one).")
    if kind == "step":
        return skip, skip, skip, skip, event.get("step", 0), skip
    return skip, skip, skip, skip, skip, skip


def wire_experiments(panel: ExperimentsPanel, state: gr.State, domain, models: dict, events: gr.HTML) -> None:
    """Answer the panel's buttons, and fill its fields from the viewer's clicks and brushes."""
    def loaded_of(generation):
        if generation is None or generation.trace is None:
            raise ValueError("Generate first: experiments start from the output on screen.")
        loaded = models.get(generation.trace.model)
        if loaded is None:
            raise ValueError("The model that made this output is no longer loaded; generate again.")
        return loaded

    def run_probe(generation, choice, file, limit, feature, progress=gr.Progress()):  # noqa: B008 (its tracker)
        try:
            return probe_answer(domain, models, generation, choice, file, limit, feature, progress)
        except (ValueError, IndexError) as error:
            return _failed(error)

    def run_match(generation, choice, file, limit, steps_text, layer, quantity, threshold):
        try:
            loaded = loaded_of(generation)
            trace = generation.trace
            steps = reference.parse_steps(steps_text)
            if steps is None:
                raise ValueError("Select steps first: drag across the viewer's heatmap, or type them (e.g. 120-140).")
            start, end = (clamp_int(s, trace.shown_from, trace.steps - 1, trace.shown_from) for s in steps)
            found = reference.sources(domain, loaded, generation, choice, file, clamp_int(limit, 100, 200_000, 100_000))
            if found[0].trace is not trace:  # the selection itself is always shown among the matches
                found.insert(0, reference.Source("this output", None, trace))
            layer = clamp_int(layer, 0, trace.num_layers - 1, 0)
            quantity = quantity if quantity in PATTERN_QUANTITIES else "h"
            chosen = number_or(threshold, math.nan)
            level = auto_threshold(trace, layer, start, end, quantity) if math.isnan(chosen) else chosen
            answer = gpu.long_call(reference.pattern, domain, loaded, trace, layer, start, end, level, quantity, found)
            answer["auto_threshold"] = math.isnan(chosen)
            return answer
        except ValueError as error:
            return _failed(error)

    def run_intervention(generation, units_text, action, value, from_step):
        try:
            return intervention(domain, loaded_of(generation), generation, units_text, action, value, from_step)
        except ValueError as error:
            return _failed(error)

    def run_compare(generation, model_b):
        try:
            return comparison(domain, models, loaded_of(generation), generation, model_b)
        except ValueError as error:
            return _failed(error), gr.skip()

    private = {"api_visibility": "private"}
    # the menu follows the model on screen: when the panel opens and whenever a new output comes
    panel.accordion.expand(lambda generation, chosen: fill_features(domain, models, generation, chosen),
                           [state, panel.feature], panel.feature, **private)
    state.change(lambda generation, chosen: fill_features(domain, models, generation, chosen, quick=True),
                 [state, panel.feature], panel.feature, **private)
    panel.probe.click(run_probe, [state, panel.reference, panel.upload, panel.limit, panel.feature], panel.results, **private)
    panel.match.click(run_match, [state, panel.reference, panel.upload, panel.limit, panel.steps, panel.layer, panel.quantity,
                                  panel.threshold], panel.results, **private)
    panel.intervene.click(run_intervention, [state, panel.units, panel.action, panel.value, panel.from_step], panel.results,
                          **private)
    panel.compare.click(run_compare, [state, panel.model_b], [panel.results, panel.compare_viewer.html], **private)
    events.select(fill_from_viewer, [events, panel.units],
                  [panel.steps, panel.layer, panel.quantity, panel.units, panel.from_step, panel.units_note],
                  trigger_mode="always_last",
                  **private)
