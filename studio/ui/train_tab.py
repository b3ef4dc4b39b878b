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

from studio import domains, jobs, user_models
from studio.ui import byom, inputs, keep_bar, owner, train_advice
from studio.ui.drawing_pad import drawing_pad

FROM_SCRATCH = "(from scratch)"
MY_UPLOADS = "(my uploaded files)"
SAMPLES_SHOWN = 4  # the latest samples from the current weights, newest first
MIN_MINUTES = 0.05  # studio.jobs refuses less
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
    elif state == "running" and not status.get("steps"):
        text = "Starting: reading the data and building the model…"
    elif state == "running":
        steps, eta = status.get("steps") or 0, status.get("eta_seconds")
        speed = f" · {status['tokens_per_s']:,.0f} tokens/s" if status.get("tokens_per_s") else ""
        left = f" · about {int(eta // 60)}:{int(eta % 60):02d} left" if eta is not None else ""
        text = (f'<progress max="{max(steps, 1)}" value="{status["step"]}"></progress> '
                f"step {status['step']:,} of {steps:,}{speed}{left}" + (f" · {status['message']}" if status["message"] else ""))
    else:
        text = status["message"]
    return f'<div class="train-status" data-status="{state}" data-step="{status.get("step", 0)}">{text}</div>'


def loss_frame(status: dict | None) -> pd.DataFrame | None:
    """The loss points as the plot reads them, None before the first (a plot given an empty frame
    first draws its later lines with no stroke)."""
    rows = []
    for point in (status or {}).get("progress", []):
        rows.append({"step": point["step"], "loss": point["loss"], "kind": "train"})
        if "val" in point:
            rows.append({"step": point["step"], "loss": point["val"], "kind": "validation"})
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=["step", "loss", "kind"])
    return frame.astype({"step": int, "loss": float})  # numbers, or the plot treats them as categories


def captioned(pictures: list[str]) -> list[tuple[str, str]]:
    """(picture, "after step N") for the gallery (the step is in the file's name: learn-007-step25.png)."""
    return [(picture, f"after step {Path(picture).stem.rpartition('step')[2]}") for picture in pictures]


def samples_markdown(status: dict | None) -> str:
    samples = (status or {}).get("samples", [])
    shown = list(reversed(samples))[:SAMPLES_SHOWN]
    return "\n\n".join(f"**Sample at step {s['step']}**\n\n```\n{s['sample']}\n```" for s in shown)


def create_tab(trainer: jobs.Trainer, stems, dropdowns: dict, loaded: dict, data_dir: Path | None, users=None):
    """stems(domain name) -> {name: checkpoint stem} of the models one may fine-tune; dropdowns: {domain
    module: its tab's model list}, refreshed from loaded ({domain module: {model name: LoadedModel}})
    when a training leaves a model; users: the studio.user_models.UserModels that publishes a model
    on a shared server (None: no publish button). Returns (domain, files, incoming): what another tab
    fills to hand over data (the Library's "train on these": incoming {domain name: [paths]} survives
    the domain's change)."""
    first = domains.ALL[0]
    gr.Markdown(
        "Train a model of any tab on your own data, or fine-tune a shipped one, and watch it learn. "
        f"Uploads up to {jobs.MAX_UPLOAD_MB:g} MB; one training at a time on this server (others wait in line), on one "
        f"thread at a lower priority; models are saved in `{jobs.USER_MODELS_DIR}` and appear in their tab.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            # what a first run needs, and its button, in the first screen; the rest below
            domain = inputs.Radio([(d.TITLE, d.NAME) for d in domains.ALL], value=first.NAME, label="Domain",
                                  elem_id="train-domain")
            files = gr.File(file_count="multiple", label=upload_label(first), elem_id="train-files", height=110)
            with gr.Row():
                corpus = inputs.Dropdown(corpora(first, data_dir), value=MY_UPLOADS, label="Or a shipped corpus")
                minutes = inputs.Number(5, label=f"Minutes ({MIN_MINUTES:g} to {jobs.MAX_MINUTES:g})",
                                        minimum=MIN_MINUTES, maximum=jobs.MAX_MINUTES, elem_id="train-minutes")
            with gr.Row():
                start = gr.Button("Train", variant="primary", elem_id="train-start")
                cancel = gr.Button("Cancel (keeps the best checkpoint)", elem_id="train-cancel")
            # on a shared server a trained model is listed only in the browser that trained it until published
            publish = gr.Button("Publish the trained model to every visitor", size="sm", elem_id="train-publish",
                                visible=users is not None and users.shared)
            advice = gr.Markdown(train_advice.estimate("medium", 5, 0, False), elem_id="train-estimate")
            name = gr.Textbox("mine", label="Name of the new model", elem_id="train-name")
            preset = inputs.Radio(PRESET_LABELS, value="medium", label="Size")
            base = inputs.Dropdown([FROM_SCRATCH, *stems(first.NAME)], value=FROM_SCRATCH, label="Start from")
            # a model made elsewhere, opened into the user models folder: listed in its tab, and a start to fine-tune
            # from
            for opener in (d for d in domains.ALL if domains.member(d, "from_network") and d in dropdowns):
                byom.open_model_box(opener, loaded[opener], dropdowns[opener], None, f"train-{opener.NAME}",
                                    f" for the {opener.TITLE} tab").then(
                    lambda chosen: gr.update(choices=[FROM_SCRATCH, *stems(chosen)]), domain, base,
                    api_visibility="private")
            made_note = gr.Markdown(elem_id="train-made")
            with gr.Group(visible=first.TRAINING.drawn is not None) as drawing:
                pad = drawing_pad("train-pad")
                add_drawing = gr.Button("Add this drawing (with its text) to the data", elem_id="train-add-drawing")
            with gr.Group(visible=first.TRAINING.recorded is not None) as recording:
                microphone = gr.Audio(sources=["microphone", "upload"], type="numpy", label="Record a sentence",
                                      elem_id="train-microphone")
                transcript = gr.Textbox(label="What the recording says", elem_id="train-transcript")
                add_recording = gr.Button("Add this recording (with its transcript) to the data",
                                          elem_id="train-add-recording")
        with gr.Column(scale=2):
            status = gr.HTML(status_html(None), elem_id="train-status")
            verdict = gr.Markdown(elem_id="train-verdict")
            plot = gr.LinePlot(None, x="step", y="loss", color="kind", title="Loss (training and validation)",
                               elem_id="train-loss", height=260)
            # whole pictures (contain, not the default crop), two a row, each captioned with its step
            gallery = gr.Gallery(label="Watch it learn: the same prompt's gates at each checkpoint", columns=2,
                                 height="auto", object_fit="contain", elem_id="train-gallery")
            samples = gr.Markdown(elem_id="train-samples")
            download = gr.File(label="The model (.safetensors + card .json)", file_count="multiple", elem_id="train-download")
            kept = keep_bar.keep_bar("train", "When the training ends, its model is kept in your library (the Library "
                                              "tab): rate, tag or note it here.")
            history = gr.Markdown(elem_id="train-history")  # this browser's trainings, kept across restarts
    job = gr.State()
    job_data = gr.State([])  # the files the running job learns from (for the verdict)
    made = gr.State([])  # files made in the page (drawings, recordings) for the chosen domain
    incoming = gr.State({})  # {domain name: [paths]} handed over by another tab, shown when that domain is picked
    timer = gr.Timer(1.0, active=False)
    modules = list(dropdowns)
    targets = [dropdowns[d] for d in modules]
    # each list's shipped names as built (a tab may list only some of its models: speech lists its
    # text-to-mel ones); the asker's own models are added to them (never kept here: this is every browser's)
    listed = [[c[1] if isinstance(c, tuple) else c for c in dropdowns[d].choices
               if (c[1] if isinstance(c, tuple) else c) in getattr(loaded[d], "shipped", loaded[d])] for d in modules]

    def on_domain(chosen, handed=None):
        picked = jobs.trainable(chosen)
        return (gr.update(choices=corpora(picked, data_dir), value=MY_UPLOADS),
                gr.update(choices=[FROM_SCRATCH, *stems(chosen)], value=FROM_SCRATCH),
                gr.update(label=upload_label(picked), value=(handed or {}).get(chosen)),
                gr.update(visible=picked.TRAINING.drawn is not None),
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

    def data_paths(uploads, in_page, shipped) -> list[str]:
        given = [getattr(f, "name", f) for f in uploads or []] + list(in_page or [])
        if shipped and shipped != MY_UPLOADS and data_dir is not None:
            given.append(str(data_dir / shipped))
        return given

    def on_plan(uploads, in_page, shipped, size, budget, start_from):
        return train_advice.estimate(size, budget, train_advice.data_bytes(data_paths(uploads, in_page, shipped)),
                                     start_from != FROM_SCRATCH)

    def on_start(chosen, uploads, in_page, shipped, model_name, size, budget, start_from):
        given = [getattr(f, "name", f) for f in uploads or []] + list(in_page or [])
        request = jobs.TrainRequest(chosen, given, model_name, size, budget,
                                    stems(chosen).get(start_from) if start_from != FROM_SCRATCH else None,
                                    shipped if shipped and shipped != MY_UPLOADS else None)
        try:
            submitted = trainer.submit(request)
        except ValueError as error:
            return None, status_html({"status": "failed", "message": str(error)}), gr.Timer(active=False), [], ""
        return (submitted.id, status_html(trainer.status(submitted.id)), gr.Timer(active=True),
                data_paths(uploads, in_page, shipped), "")

    def on_tick(job_id, paths):
        if not job_id:
            return (gr.skip(),) * 5 + (gr.Timer(active=False), gr.skip()) + (gr.skip(),) * len(targets)
        found = trainer.status(job_id)
        finished = found["status"] not in ("queued", "running")
        trained = jobs.trainable(found["domain"])
        lists = [gr.skip()] * len(modules)
        if finished and trained in modules and found["name"] in loaded[trained]:
            k = modules.index(trained)
            lists[k] = gr.update(choices=own_choices(listed[k], loaded[trained]))
        frame = loss_frame(found)
        said = gr.skip()
        if found["status"] in ("done", "cancelled"):
            model = (loaded[trained][found["name"]]
                     if found["status"] == "done" and trained in modules and found["name"] in loaded[trained] else None)
            said = train_advice.verdict(found, paths, train_advice.prompt_effect(trained, model) if model else "")
        return (status_html(found), gr.skip() if frame is None else frame, captioned(found["pictures"]),
                samples_markdown(found),
                found["files"] or None, gr.Timer(active=not finished), said, *lists)

    def on_cancel(job_id):
        return status_html(trainer.cancel(job_id)) if job_id else gr.skip()

    private = {"api_visibility": "private"}
    domain.change(on_domain, [domain, incoming], [corpus, base, files, drawing, recording, made, made_note], **private)
    add_drawing.click(on_drawing, [domain, made, pad], [made, made_note], **private)
    add_recording.click(on_recording, [domain, made, microphone, transcript], [made, made_note], **private)
    plan = [files, made, corpus, preset, minutes, base]
    for control in plan:
        control.change(on_plan, plan, advice, **private)
    start.click(on_start, [domain, files, made, corpus, name, preset, minutes, base],
                [job, status, timer, job_data, verdict],
                **private)
    # no progress overlay of gradio's own: a tick each second would flicker its timer over the status
    polled = timer.tick(on_tick, [job, job_data], [status, plot, gallery, samples, download, timer, verdict, *targets],
                        show_progress="hidden", **private)
    keep_bar.wire_job(kept, polled, job, trainer)  # the finished training's record (studio.library.events)
    cancel.click(on_cancel, job, status, **private)

    def on_publish(job_id):
        if not job_id:
            raise gr.Error("Train a model first: there is none to publish yet.")
        found = trainer.status(job_id)
        if found["status"] != "done":
            raise gr.Error("The training has not left a model yet.")
        try:
            gr.Info(users.publish(found["domain"], user_models.current_owner.get(), found["name"]))
        except ValueError as error:
            raise gr.Error(str(error)) from None

    if users is not None:
        publish.click(on_publish, job, None, **private)
    def trainings_of(key):  # the browser's trainings, those from before a restart too (studio.job_records)
        return history_markdown(trainer.trainings(user_models.owner_or_none(key)))

    if owner.page_key() is not None:  # each page load lists them
        gr.context.Context.root_block.load(trainings_of, owner.page_key(), history, api_visibility="private",
                                           queue=False)
    return domain, files, incoming


def history_markdown(trainings: list[dict]) -> str:
    """This browser's trainings, newest first: name, tab, outcome and best validation loss."""
    if not trainings:
        return ""
    rows = []
    for found in trainings[:20]:
        vals = [point["val"] for point in found.get("progress") or [] if "val" in point]
        best = f"{min(vals):.3f}" if vals else "–"
        rows.append(f"| {found['name']} | {found['domain']} | {found['status']} | {found.get('step') or 0:,} | "
                    f"{best} | {found['message'].replace('|', '/')} |")
    return ("**Your trainings**\n\n| model | domain | status | steps | best validation loss | |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows))


def own_choices(shipped_names: list[str], table) -> list[str]:
    """A tab's list as one browser sees it: the shipped names it was built with, then the browser's own
    models (studio.user_models.ModelTable.user_names) and the published ones."""
    mine = table.user_names() if hasattr(table, "user_names") else []
    return [*shipped_names, *[name for name in mine if name not in shipped_names]]


def refresh_on_load(demo: gr.Blocks, key, dropdowns: dict, loaded: dict) -> None:
    """On each page load every model list is this browser's: the shipped models and its own (the page was
    built listing the models of no one in particular)."""
    modules = list(dropdowns)
    shipped = [[c[1] if isinstance(c, tuple) else c for c in dropdowns[d].choices
                if (c[1] if isinstance(c, tuple) else c) in getattr(loaded[d], "shipped", loaded[d])] for d in modules]

    def lists(_key):  # the owner was set from the key by studio.ui.common.apply_request_limits
        updates = [gr.update(choices=own_choices(shipped[k], loaded[d])) for k, d in enumerate(modules)]
        return updates[0] if len(updates) == 1 else tuple(updates)  # one output takes a value, not a list

    if modules:
        demo.load(lists, key, [dropdowns[d] for d in modules], api_visibility="private", queue=False)


def train_api(trainer: jobs.Trainer, stems):
    """The /train endpoint: action "start" (domain, text or file (a zip for several), name, preset, minutes, base),
    "progress" or "cancel" (job); every answer is the job's status as JSON. Action "list": {"trainings": the
    statuses of the caller's trainings, those from before a restart too}."""

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
            if action == "list":
                return {"trainings": trainer.trainings(user_models.current_owner.get())}
            raise ValueError(f"action must be start, progress, cancel or list, not {action!r}")
        except ValueError as error:
            raise gr.Error(str(error)) from None

    return train_endpoint
