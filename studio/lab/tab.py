"""The "Why LSTM" tab: train a tanh RNN, a GRU and an LSTM side by side on a long-range task and
watch the gradient that reaches back k steps, measured. The only gradio in studio/lab.

    with gr.Tab("Why LSTM"):
        lab_tab.create_tab(trainer)
"""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pandas as pd

from studio.lab import explainer, plots, service
from studio.lab.cells import ALL_CELLS, CELLS, TITLES
from studio.lab.run import SWEEP_LENGTHS, load_cell
from studio.lab.tasks import make_task
from studio.ui import blocks, keep_bar
from studio.ui.explain_panel import explain_panel, explanation
from studio.ui.viewer import trace_viewer, viewer_value

# the finished run the tab opens with (its curves, table and trained LSTM in the viewer), made by the command in it
EXAMPLE_RUN = Path(__file__).resolve().parents[2] / "assets" / "lab-adding-50.json"
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
TASK_CHOICES = [("adding problem (Le et al. 2015)", "adding"), ("copy / recall", "copy"),
                ("close the quote (your text)", "quote")]
TASK_NAMES = {"adding": "adding problem", "copy": "copy task", "quote": "close-the-quote task"}

INTRO = """
### Why an LSTM remembers
A plain RNN squeezes its whole memory through one matrix and one squashing function at every step, so the
gradient that tells step *T − k* how to help the answer at *T* is a product of *k* Jacobians, and it
shrinks geometrically. The LSTM adds a cell path whose step is a multiplication by the forget gate. Here
three cells with about the same number of parameters (within 5%) learn the same task on the same batches
for the same number of steps, and the gradient is **measured** by autograd on real sequences (in float64), not drawn.
"""

EXPLAIN_LOSS = r"""
**The loss.** Each cell reads the whole sequence and answers from its last hidden state $h_T$. The dashed line
is the loss of always giving the best constant answer (adding: the mean sum, MSE $\approx 1/6$); a cell has
**learned** the task when its held-out loss is below a tenth of that (dotted line).
"""

EXPLAIN_GRADIENT = r"""
**The gradient.** Left: $\lVert \partial L_T / \partial h_{T-k} \rVert$, how much the loss at step $T$ can still
blame the state $k$ steps back; middle: $\lVert \partial L_T / \partial x_{T-k} \rVert$, the same for the input.
For the tanh RNN, $h_t = \tanh(W_{ih} x_t + W_{hh} h_{t-1} + b)$ and

$$\frac{\partial h_T}{\partial h_{T-k}} = \prod_{j=T-k+1}^{T} \operatorname{diag}(1 - h_j^2)\, W_{hh},$$

a product of $k$ factors that are usually smaller than 1: on a log axis the line falls straight down (it
*vanishes*). The LSTM's cell $c_t = f_t \odot c_{t-1} + i_t \odot g_t$ gives a second path on which

$$\frac{\partial c_T}{\partial c_{T-k}} = \prod_{j=T-k+1}^{T} f_j \quad\text{(elementwise)},$$

right panel: the forget gates' product, averaged over units and sequences. Where $f \approx 1$ the
gradient is carried unchanged (the "constant error carousel"), so the first marked number can still be
learned from. Dashed: at initialisation; solid: at the chosen checkpoint. The line under each picture,
$\log_{10}(\lVert\partial L_T/\partial x_1\rVert / \lVert\partial L_T/\partial x_T\rVert)$, is the CLI's
`log10_grad_ratio`.
"""

EXPLAIN_VIEWER = """
**The trained LSTM in the trace viewer.** One task sequence, its gates at every step: on the adding task
the input gate *i* opens at the two marked numbers (labelled `+0.42`) and the forget gate *f* holds the cell
between them. Click a step to ask why (which inputs the answer at that step came from, and that step's
equations with their numbers). The no-forget-gate LSTM shows f = 1 everywhere.
"""


def status_html(found: dict | None) -> str:
    if not found:
        return '<div class="lab-status" data-status="idle">Start a run to see the loss and the gradient here.</div>'
    state = found["status"]
    if state == "queued":
        text = f"Waiting: number {found['position']} in line (one training runs at a time on this server)."
    elif state == "running":
        steps, eta = max(found.get("steps") or 0, found.get("step") or 0, 1), found.get("eta_seconds")
        left = f" · about {int(eta // 60)}:{int(eta % 60):02d} left" if eta is not None else ""
        at = f" · T = {found['T']}" if found.get("T") else ""
        text = (f'<progress max="{steps}" value="{found.get("step", 0)}"></progress> '
                f'step {found.get("step", 0):,} of ~{steps:,}{at}{left}')
    else:
        text = found.get("message", state)
    return f'<div class="lab-status" data-status="{state}">{text}</div>'


def ratio_markdown(record: dict) -> str:
    parts = []
    for kind, cell in record.get("cells", {}).items():
        points = cell.get("gradients") or []
        if points:
            ratio = points[-1]["ratio"]
            parts.append(f"{TITLES.get(kind, kind)}: **{ratio:+.1f}**"
                         + (" (floored)" if points[-1].get("floored") else ""))
    return ("log10 of ‖∂L/∂x₁‖ / ‖∂L/∂x_T‖ now — " + " · ".join(parts)) if parts else ""


def result_frame(found: dict) -> pd.DataFrame:
    """The table under the plots: a run's final numbers per cell, or the sweep's longest T learned."""
    result = found.get("result") or {}
    if found.get("sweep") and result.get("runs"):
        rows = []
        for kind, longest in result["longest"].items():
            row = {"cell": TITLES.get(kind, kind), "longest T learned": longest if longest is not None else "none"}
            for run in result["runs"]:
                cell = run["cells"][kind]
                row[f"T={run['T']}"] = f"{cell['loss']:.3g}" + (" ✓" if cell["learned"] else "")
            rows.append(row)
        return pd.DataFrame(rows)
    rows = [{"cell": TITLES.get(k, k), "hidden": c["hidden"], "parameters": c["params"], "loss": round(c["loss"], 5),
             "baseline": round(c["baseline"], 5), "learned": "yes" if c["learned"] else "no",
             "log10_grad_ratio": round(c["log10_grad_ratio"], 2) if c.get("log10_grad_ratio") is not None else None}
            for k, c in result.get("cells", {}).items()]
    return pd.DataFrame(rows,
                        columns=["cell", "hidden", "parameters", "loss", "baseline", "learned", "log10_grad_ratio"])


def example_run() -> tuple[dict, explainer.LabGeneration]:
    """(service.state's record of the shipped example run, its LSTM on one task sequence)."""
    result = json.loads(EXAMPLE_RUN.read_text(encoding="utf-8"))
    task = result["task"]
    learned = [TITLES.get(k, k) for k, c in result["cells"].items() if c["learned"]]
    message = (f"An example run, shipped: the {TASK_NAMES.get(task['name'], task['name'])} at T = {task['length']}, "
               f"{result['seconds'] / 60:.0f} minutes; learned it: {', '.join(learned) or 'none'}. "
               "Start your own above.")
    found = {"status": "done", "message": message, "record": result, "result": result, "sweep": False}
    made = explainer.generation(load_cell(EXAMPLE_RUN, "lstm"), make_task(task["name"], task["length"]),
                                model="lab-lstm")
    return found, made


def create_tab(trainer) -> None:
    gr.Markdown(INTRO)
    with gr.Row():
        task = gr.Dropdown(TASK_CHOICES, value="adding", label="Task", elem_id="lab-task")
        length = gr.Number(50, label="Length T", precision=0, minimum=2, maximum=2000, elem_id="lab-length")
        minutes = gr.Number(1.0, label="Minutes (the whole run)", minimum=0.05, maximum=service.MAX_MINUTES,
                            elem_id="lab-minutes")
    cells = gr.CheckboxGroup([(TITLES[k], k) for k in ALL_CELLS], value=list(CELLS), elem_id="lab-cells",
                             label="Cells (the last two: the same LSTM without its forget gate, or with forget bias 0)")
    with gr.Row():  # the buttons in the first screen, the optional text file after them
        start = gr.Button("Start", variant="primary", elem_id="lab-start")
        sweep = gr.Button(f"Sweep T = {', '.join(map(str, SWEEP_LENGTHS))} (the minutes shared)", elem_id="lab-sweep")
        cancel = gr.Button("Cancel", elem_id="lab-cancel")
    text = gr.File(label="Close the quote: a text file (optional; Tiny Shakespeare otherwise)",
                   file_types=[".txt", ".md"],
                   elem_id="lab-text", height=110)
    status = gr.HTML(status_html(None), elem_id="lab-status")
    with gr.Row():
        with gr.Column(scale=2):
            loss_plot = gr.Plot(label="Loss", elem_id="lab-loss")
        with gr.Column(scale=1):
            gr.Markdown(EXPLAIN_LOSS, latex_delimiters=LATEX)
    gradient_plot = gr.Plot(label="Gradient against k", elem_id="lab-gradient")
    ratios = gr.Markdown(elem_id="lab-ratios")
    with gr.Row():
        checkpoint = gr.Slider(0, 1, value=1, step=1, scale=4, elem_id="lab-checkpoint",
                               label="Checkpoint shown (0 = initialisation; follows training while it runs)")
        replay = gr.Button("Replay the training", scale=1, elem_id="lab-replay")
    gr.Markdown(EXPLAIN_GRADIENT, latex_delimiters=LATEX)
    table = gr.Dataframe(label="Results (a sweep: the longest T each cell learned)", elem_id="lab-table",
                         interactive=False)
    kept = keep_bar.keep_bar("lab", "When a run ends, it is kept in your library (the Library tab): rate, tag or "
                                    "note it here.")
    gr.Markdown(EXPLAIN_VIEWER)
    with gr.Row():
        which = gr.Dropdown([(TITLES[k], k) for k in ALL_CELLS if k.startswith("lstm")], value="lstm",
                            label="Which LSTM", elem_id="lab-which")
        open_viewer = gr.Button("Open the LSTM in the viewer", elem_id="lab-open")
    viewer = trace_viewer("lab")
    selection = gr.Markdown(elem_id="lab-selection")
    why = explain_panel("lab", viewer.html.elem_id)

    job = gr.State()
    generation = gr.State()
    follow = gr.State(True)  # the slider follows the newest checkpoint until the learner moves it
    timer = gr.Timer(1.0, active=False)
    player = gr.Timer(0.8, active=False)  # Replay: one checkpoint after another, from initialisation
    private = {"api_visibility": "private"}

    def figures(found, shown):
        record = found["record"]
        counts = [len(c.get("gradients") or []) for c in record.get("cells", {}).values()]
        last = max(counts, default=1) - 1
        index = last if shown is None else min(int(shown), last)
        cells_of = found.get("result") or {}
        baseline = next((c.get("baseline") for c in cells_of.get("cells", {}).values()), None)
        loss_name = (cells_of.get("task") or {}).get("loss_name", "loss")
        return (plots.loss_figure(record, baseline, loss_name), plots.gradient_figure(record, index),
                ratio_markdown(record), gr.Slider(maximum=max(last, 1), value=index))

    def on_start(chosen, steps, kinds, budget, upload, is_sweep=False):
        try:
            submitted = service.start(trainer, chosen, steps if steps is not None else 0, kinds, budget,
                                      getattr(upload, "name", upload), sweep=is_sweep)
        except ValueError as error:
            return None, status_html({"status": "failed", "message": str(error)}), gr.Timer(active=False), True
        return submitted.id, status_html(service.state(trainer, submitted.id)), gr.Timer(active=True), True

    def on_sweep(chosen, steps, kinds, budget, upload):
        return on_start(chosen, steps, kinds, budget, upload, is_sweep=True)

    def on_tick(job_id, following, shown):
        if not job_id:
            return (gr.skip(),) * 6 + (gr.Timer(active=False),)
        found = service.state(trainer, job_id)
        finished = found["status"] not in ("queued", "running")
        loss, gradient, ratio, slider = figures(found, None if following else shown)
        return (status_html(found), loss, gradient, ratio, slider, result_frame(found) if finished else gr.skip(),
                gr.Timer(active=not finished))

    def on_checkpoint(job_id, shown):
        if not job_id:
            return gr.skip(), False
        found = service.state(trainer, job_id)
        return plots.gradient_figure(found["record"], int(shown)), False

    def on_replay(job_id):
        if not job_id:
            return gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False)
        found = service.state(trainer, job_id)
        return plots.gradient_figure(found["record"], 0), gr.Slider(value=0), False, gr.Timer(active=True)

    def on_play(job_id, shown):
        if not job_id:
            return gr.skip(), gr.skip(), gr.Timer(active=False)
        found = service.state(trainer, job_id)
        last = max((len(c.get("gradients") or []) for c in found["record"].get("cells", {}).values()), default=1) - 1
        index = min(int(shown or 0) + 1, last)
        return plots.gradient_figure(found["record"], index), gr.Slider(value=index), gr.Timer(active=index < last)

    def on_cancel(job_id):
        if not job_id:
            return gr.skip()
        try:
            trainer.cancel(job_id)
        except ValueError as error:
            return status_html({"status": "failed", "message": str(error)})
        return status_html(service.state(trainer, job_id))

    def on_open(job_id, kind):
        if not job_id:
            raise gr.Error("Start a run first: the viewer opens its trained LSTM.")
        try:
            made = service.lstm_generation(trainer, job_id, kind)
        except ValueError as error:
            raise gr.Error(str(error)) from None
        trace = made.trace
        return viewer_value(trace, {"kind": "labels"}, trace.layer_name(0)), made

    def on_event(made, event, target, method, progress=gr.Progress()):  # noqa: B008 (its tracker)
        if made is None or not isinstance(event, dict) or event.get("kind") != "step":
            return gr.skip(), gr.skip()
        trace = made.trace
        step = min(max(int(event.get("step") or 0), 0), trace.steps - 1)
        try:
            answer = explanation(None, None, made, event, target, method, progress)
        except ValueError as error:
            answer = {"message": str(error)}
        return f"**Step {step}** ({trace.labels[step]!r})", answer

    def on_example():
        found, made = example_run()
        loss, gradient, ratio, slider = figures(found, None)
        return (status_html(found), loss, gradient, ratio, slider, result_frame(found),
                viewer_value(made.trace, {"kind": "labels"}, made.trace.layer_name(0)), made)

    inputs = [task, length, cells, minutes, text]
    start.click(on_start, inputs, [job, status, timer, follow], **private)
    sweep.click(on_sweep, inputs, [job, status, timer, follow], **private)
    cancel.click(on_cancel, job, status, **private)
    polled = timer.tick(on_tick, [job, follow, checkpoint],
                        [status, loss_plot, gradient_plot, ratios, checkpoint, table, timer], **private)
    keep_bar.wire_job(kept, polled, job, trainer)  # the finished run's record (studio.library.events)
    replay.click(on_replay, job, [gradient_plot, checkpoint, follow, player], **private)
    player.tick(on_play, [job, checkpoint], [gradient_plot, checkpoint, player], **private)
    checkpoint.release(on_checkpoint, [job, checkpoint], [gradient_plot, follow], **private)
    open_viewer.click(on_open, [job, which], [viewer.html, generation], **private)
    viewer.events.select(on_event, [generation, viewer.events, why.target, why.method], [selection, why.html],
                         trigger_mode="always_last", **private)
    # the page opens on a finished run: curves, table and the trained LSTM's gates, before any click
    blocks.example_on_load(start, on_example, [],
                           [status, loss_plot, gradient_plot, ratios, checkpoint, table, viewer.html, generation])
    gr.api(lab_api(trainer), api_name="lab")


def lab_api(trainer):
    """The /lab endpoint. action "start": queue a run (task, length, cells "rnn,gru,lstm", minutes) and
    answer its job id; "status": where job stands (status, step, steps, eta_seconds, and once written
    the result: per cell loss, baseline, learned, log10_grad_ratio and the curves); "cancel": stop it,
    keeping the curves."""

    def lab_endpoint(action: str, task: str = "adding", length: float = 100, cells: str = "rnn,gru,lstm",
                     minutes: float = 2.0, job: str = "") -> dict:
        try:
            if action == "start":
                submitted = service.start(trainer, task, int(length), cells, minutes)
                return {"job": submitted.id, "status": "queued"}
            if action == "cancel":
                trainer.cancel(job)
            if action in ("status", "cancel"):
                found = service.state(trainer, job)
                return {k: found[k]
                        for k in ("status", "message", "position", "step", "steps", "eta_seconds", "result")}
            raise ValueError(f"Unknown action {action!r}: start, status or cancel.")
        except ValueError as error:
            raise gr.Error(str(error)) from None

    return lab_endpoint

