"""The Train tab: train a model of any domain on your own data (or fine-tune a shipped one) and
watch it learn: the loss as it falls, a sample from the current weights at each validation, and
the same prompt's gates at each checkpoint side by side. What each domain reads, and whether the
drawing pad or the microphone feeds it, is its TRAINING record (studio.domains.base.Training); the
work is studio/jobs.py (one training at a time, in its own process with one thread); this file only
lays it out and polls it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from studio import domains, jobs
from studio.ui import byom, inputs
from studio.ui.drawing_pad import drawing_pad

FROM_SCRATCH = "(from scratch)"
MY_UPLOADS = "(my uploaded files)"
SAMPLES_SHOWN = 4  # the latest samples from the current weights, newest first
PRESET_LABELS = [(f"{name} ({layers} × {hidden})", name) for name, (hidden, layers, _) in jobs.PRESETS.items()]


def corpora(domain, data_dir: Path | None) -> list[str]:
    return [MY_UPLOADS] + [name for name in domain.TRAINING.corpora if data_dir and (data_dir / name).is_file()]


def upload_label(domain) -> str:
    return domain.TRAINING.hint or f"Your data: {domain.TRAINING.what} (a zip of them too)"


def made_markdown(made: list[str] | None) -> str:
    """What was added in the page (drawings, recordings) and will train with the uploads."""
    names = sorted({Path(path).stem for path in made or []})
    return f"Added in the page: {len(names)} ({', '.join(names[:8])}{' …' if len(names) > 8 else ''})" if names else ""


def status_html(status: dict | None) -> str:
    """A progress bar with the step, speed and time left, or the place in line, or the outcome."""
    if not status:
        return '<div class="train-status" data-status="idle">Start a training to see its progress here.</div>'
    state = status["status"]
    if state == "queued":
        text = f"Waiting: number {status['position']} in line (one training runs at a time on this server)."
    elif state == "running":
        steps, eta = status.get("steps") or 0, status.get("eta_seconds")
        speed = f" · {status['tokens_per_s']:,.0f} tokens/s" if status.get("tokens_per_s") else ""
        left = f" · about {int(eta // 60)}:{int(eta % 60):02d} left" if eta is not None else ""
        text = (f'<progress max="{max(steps, 1)}" value="{status["step"]}"></progress> '
                f"step {status['step']:,} of {steps:,}{speed}{left}" + (f" · {status['message']}" if status["message"] else ""))
    else:
        text = status["message"]
    return f'<div class="train-status" data-status="{state}" data-step="{status.get("step", 0)}">{text}</div>'


def loss_frame(status: dict | None) -> pd.DataFrame:
    rows = []
    for point in (status or {}).get("progress", []):
        rows.append({"step": point["step"], "loss": point["loss"], "kind": "train"})
        if "val" in point:
            rows.append({"step": point["step"], "loss": point["val"], "kind": "validation"})
    frame = pd.DataFrame(rows, columns=["step", "loss", "kind"])
    return frame.astype({"step": int, "loss": float})  # numbers, or the plot treats them as categories


def samples_markdown(status: dict | None) -> str:
    samples = (status or {}).get("samples", [])
    shown = list(reversed(samples))[:SAMPLES_SHOWN]
    return "\n\n".join(f"**Sample at step {s['step']}**\n\n```\n{s['sample']}\n```" for s in shown)


def create_tab(trainer: jobs.Trainer, stems, dropdowns: dict, loaded: dict, data_dir: Path | None) -> None:
    """stems(domain name) -> {name: checkpoint stem} of the models one may fine-tune; dropdowns: {domain
    module: its tab's model list}, refreshed from loaded ({domain module: {model name: LoadedModel}})
    when a training leaves a model."""
    first = domains.ALL[0]
    gr.Markdown(
        "Train a model of any tab on your own data, or fine-tune a shipped one, and watch it learn. "
        f"Uploads: up to {jobs.MAX_UPLOAD_MB:g} MB; up to {jobs.MAX_MINUTES:g} minutes per training; one training at a "
        "time on this server (others wait in line), with one thread at a lower priority so that generation stays quick. "
        f"Models are saved in `{jobs.USER_MODELS_DIR}` (set `LSTM_STUDIO_USER_MODELS` to move it) and appear in their tab.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            domain = inputs.Radio([(d.TITLE, d.NAME) for d in domains.ALL], value=first.NAME, label="Domain",
                                  elem_id="train-domain")
            files = gr.File(file_count="multiple", label=upload_label(first), elem_id="train-files")
            with gr.Group(visible=first.TRAINING.drawn is not None) as drawing:
                pad = drawing_pad("train-pad")
                add_drawing = gr.Button("Add this drawing (with its text) to the data", elem_id="train-add-drawing")
            with gr.Group(visible=first.TRAINING.recorded is not None) as recording:
                microphone = gr.Audio(sources=["microphone", "upload"], type="numpy", label="Record a sentence",
                                      elem_id="train-microphone")
                transcript = gr.Textbox(label="What the recording says", elem_id="train-transcript")
                add_recording = gr.Button("Add this recording (with its transcript) to the data", elem_id="train-add-recording")
            made_note = gr.Markdown(elem_id="train-made")
            corpus = inputs.Dropdown(corpora(first, data_dir), value=MY_UPLOADS, label="Or a shipped corpus")
            name = gr.Textbox("mine", label="Name of the new model", elem_id="train-name")
            preset = inputs.Radio(PRESET_LABELS, value="medium", label="Size")
            minutes = inputs.Number(5, label=f"Minutes (up to {jobs.MAX_MINUTES:g})", elem_id="train-minutes")
            base = inputs.Dropdown([FROM_SCRATCH, *stems(first.NAME)], value=FROM_SCRATCH, label="Start from")
            # a model made elsewhere, opened into the user models folder: listed in its tab, and a start to fine-tune from
            for opener in (d for d in domains.ALL if domains.member(d, "from_network") and d in dropdowns):
                byom.open_model_box(opener, loaded[opener], dropdowns[opener], None, f"train-{opener.NAME}",
                                    f" for the {opener.TITLE} tab").then(
                    lambda chosen: gr.update(choices=[FROM_SCRATCH, *stems(chosen)]), domain, base, api_visibility="private")
            with gr.Row():
                start = gr.Button("Train", variant="primary", elem_id="train-start")
                cancel = gr.Button("Cancel (keeps the best checkpoint)", elem_id="train-cancel")
        with gr.Column(scale=2):
            status = gr.HTML(status_html(None), elem_id="train-status")
            plot = gr.LinePlot(loss_frame(None), x="step", y="loss", color="kind", title="Loss (training and validation)",
                               elem_id="train-loss", height=260)
            gallery = gr.Gallery(label="Watch it learn: the same prompt's gates at each checkpoint", columns=3,
                                 height=260, elem_id="train-gallery")
            samples = gr.Markdown(elem_id="train-samples")
            download = gr.File(label="The model (.safetensors + card .json)", file_count="multiple", elem_id="train-download")
    job = gr.State()
    made = gr.State([])  # files made in the page (drawings, recordings) for the chosen domain
    timer = gr.Timer(1.0, active=False)
    modules = list(dropdowns)
    targets = [dropdowns[d] for d in modules]
    # each list's names as built, and the models trained since (a tab may list only some of its models:
    # speech lists its text-to-mel ones)
    listed = [[c[1] if isinstance(c, tuple) else c for c in dropdowns[d].choices] for d in modules]

    def on_domain(chosen):
        picked = jobs.trainable(chosen)
        return (gr.update(choices=corpora(picked, data_dir), value=MY_UPLOADS),
                gr.update(choices=[FROM_SCRATCH, *stems(chosen)], value=FROM_SCRATCH),
                gr.update(label=upload_label(picked), value=None), gr.update(visible=picked.TRAINING.drawn is not None),
                gr.update(visible=picked.TRAINING.recorded is not None), [], "")

    def added(chosen, before, make):
        """A file (or files) made in the page joins the list; a problem is said in the note."""
        try:
            folder = Path(before[0]).parent if before else jobs.page_folder()
            new = make(jobs.trainable(chosen).TRAINING, folder)
        except ValueError as error:
            return before, f"**{error}**"
        after = [*before, *map(str, new)]
        return after, made_markdown(after)

    def on_drawing(chosen, before, value):
        return added(chosen, before or [], lambda training, folder: [training.drawn(value, folder)])

    def on_recording(chosen, before, audio, said):
        return added(chosen, before or [], lambda training, folder: training.recorded(audio, said, folder))

    def on_start(chosen, uploads, in_page, shipped, model_name, size, budget, start_from):
        given = [getattr(f, "name", f) for f in uploads or []] + list(in_page or [])
        request = jobs.TrainRequest(chosen, given, model_name, size, budget,
                                    stems(chosen).get(start_from) if start_from != FROM_SCRATCH else None,
                                    shipped if shipped and shipped != MY_UPLOADS else None)
        try:
            submitted = trainer.submit(request)
        except ValueError as error:
            return None, status_html({"status": "failed", "message": str(error)}), gr.Timer(active=False)
        return submitted.id, status_html(trainer.status(submitted.id)), gr.Timer(active=True)

    def on_tick(job_id):
        if not job_id:
            return (gr.skip(),) * 5 + (gr.Timer(active=False),) + (gr.skip(),) * len(targets)
        found = trainer.status(job_id)
        finished = found["status"] not in ("queued", "running")
        trained = jobs.trainable(found["domain"])
        lists = [gr.skip()] * len(modules)
        if finished and trained in modules and found["name"] in loaded[trained]:
            k = modules.index(trained)
            listed[k] += [] if found["name"] in listed[k] else [found["name"]]
            lists[k] = gr.update(choices=listed[k])
        return (status_html(found), loss_frame(found), found["pictures"], samples_markdown(found),
                found["files"] or None, gr.Timer(active=not finished), *lists)

    def on_cancel(job_id):
        return status_html(trainer.cancel(job_id)) if job_id else gr.skip()

    private = {"api_visibility": "private"}
    domain.change(on_domain, domain, [corpus, base, files, drawing, recording, made, made_note], **private)
    add_drawing.click(on_drawing, [domain, made, pad], [made, made_note], **private)
    add_recording.click(on_recording, [domain, made, microphone, transcript], [made, made_note], **private)
    start.click(on_start, [domain, files, made, corpus, name, preset, minutes, base], [job, status, timer], **private)
    timer.tick(on_tick, job, [status, plot, gallery, samples, download, timer, *targets], **private)
    cancel.click(on_cancel, job, status, **private)


def train_api(trainer: jobs.Trainer, stems):
    """The /train endpoint: action "start" (domain, text or file (a zip for several), name, preset, minutes, base),
    "progress" or "cancel" (job); every answer is the job's status as JSON."""

    def train_endpoint(action: str, job: str, domain: str, text: str, file: str | None, name: str, preset: str,
                       minutes: float, base: str) -> dict:
        try:
            if not all(isinstance(x, str | None) for x in (action, job, domain, text, name, preset, base)):
                raise ValueError("action, job, domain, text, name, preset and base are strings")
            if action == "start":
                uploads = [file] if isinstance(file, str) and file else []
                if isinstance(text, str) and text:
                    jobs.JOBS_DIR.mkdir(parents=True, exist_ok=True)
                    folder = Path(tempfile.mkdtemp(dir=jobs.JOBS_DIR))
                    (folder / "text.txt").write_text(text, encoding="utf-8")
                    uploads.append(str(folder / "text.txt"))
                base_stem = stems(domain).get(base) if base else None
                if base and base_stem is None:
                    raise ValueError(f"No {domain} model {base!r} to start from; one of {', '.join(stems(domain))}.")
                request = jobs.TrainRequest(domain, uploads, name or "mine", preset or "medium", minutes, base_stem)
                return trainer.status(trainer.submit(request).id)
            if action == "progress":
                return trainer.status(job)
            if action == "cancel":
                return trainer.cancel(job)
            raise ValueError(f"action must be start, progress or cancel, not {action!r}")
        except ValueError as error:
            raise gr.Error(str(error)) from None

    return train_endpoint
