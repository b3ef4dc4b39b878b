"""The keep bar under every tab's output: each generation is kept in the library (studio.library) for
the browser that made it, and the bar rates it (1 to 5 stars), tags it, notes it, shares it by a
link, downloads it as one self-contained HTML page, or deletes it.

    bar = keep_bar.keep_bar("text")                              # in the tab's layout, under its output
    event = button.click(on_generate, inputs, [..., state], ...)
    keep_bar.wire(bar, event, state, text, models)               # after it: record, then fill the bar

A training's or a lab run's bar (`wire_job`) shows the record the job's own process kept when it
ended (studio.library.events prints `saved: ID` into the job's log), found after the page's poll.

`wire` records after the tab's handler returns, in the app's process (generation itself may run in a
worker, studio/workers.py): it wraps the handler to note the files it returned (what the tab wrote
anyway) and how long it took, then a chained event keeps the generation under the page's owner key
(studio.ui.owner). The library's answers to the user are sentences; nothing here raises a traceback.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import gradio as gr

from studio import library, owners
from studio.domains.base import Generation
from studio.library import api
from studio.ui import owner
from studio.ui.common import OUTPUT_ROOT, output_dir

STARS = [("★" * n, n) for n in range(1, 6)]
INTRO = "Each output is kept in your library (the Library tab)."
KEPT = "_library_kept"  # a Generation's attribute: (files, seconds) noted by the wrapped handler
PRIVATE = {"api_visibility": "private"}


def hidden() -> dict:
    """The HTML page's slot, empty and hidden until a page is made."""
    return gr.update(value=None, visible=False)

USER_ERRORS = (library.NotFound, library.LibraryFull, owners.OwnerError, ValueError, OSError)


@dataclass
class KeepBar:
    record: gr.State  # the record id the bar stands for (None: nothing kept)
    status: gr.Markdown
    stars: gr.Radio
    tags: gr.Textbox
    note: gr.Textbox
    share: gr.Button
    html: gr.Button
    delete: gr.Button
    link: gr.Markdown
    html_file: gr.File
    prefix: str
    intro: str = INTRO  # what the bar says before anything is kept

    def outputs(self) -> list:
        """What a keep or a delete fills: the record id, the words, stars, tags, note, link and page."""
        return [self.record, self.status, self.stars, self.tags, self.note, self.link, self.html_file]


def keep_bar(prefix: str, intro: str = INTRO) -> KeepBar:
    with gr.Group(elem_id=f"{prefix}-keep"):
        status = gr.Markdown(intro, elem_id=f"{prefix}-keep-status")
        with gr.Row():
            stars = gr.Radio(STARS, label="Rating", elem_id=f"{prefix}-keep-stars", scale=4, min_width=400)
            tags = gr.Textbox(label="Tags (Enter keeps them)", placeholder="words, separated by spaces or commas",
                              elem_id=f"{prefix}-keep-tags", scale=2, min_width=160)
            note = gr.Textbox(label="Note (kept when you leave the box)", elem_id=f"{prefix}-keep-note", scale=2,
                              min_width=160)
        with gr.Row():
            share = gr.Button("Share: make a link", size="sm", elem_id=f"{prefix}-keep-share")
            html = gr.Button("Download as one HTML page", size="sm", elem_id=f"{prefix}-keep-html")
            delete = gr.Button("Delete from the library", size="sm", elem_id=f"{prefix}-keep-delete")
        link = gr.Markdown(elem_id=f"{prefix}-keep-link")
        html_file = gr.File(label="The record as one HTML page (opens without a server)", visible=False,
                            elem_id=f"{prefix}-keep-html-file")  # shown with its file
    return KeepBar(gr.State(), status, stars, tags, note, share, html, delete, link, html_file, prefix, intro)


# ---------------------------------------------------------------- what the bar and the Library tab both do
def in_words(function):
    """A library call whose refusals (no such record, a full library, no owner key) become gr.Error."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from None

    return run


def _record_id(record_id) -> int:
    if record_id is None or record_id == "":
        raise ValueError("Generate something, or pick a record, first.")
    try:
        number = int(record_id)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{record_id!r} is not a record number.") from None
    if abs(number) >= 2**62:  # SQLite's integers
        raise ValueError(f"There is no record {record_id!r}.")
    return number


def page_url(request: gr.Request | None) -> str:
    """The page's address without its query (where a ?run= link points)."""
    headers = getattr(request, "headers", None) or {}
    referer = headers.get("referer") or ""
    if referer.startswith(("http://", "https://")):
        parts = urlsplit(referer)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    host = headers.get("x-forwarded-host") or headers.get("host") or "127.0.0.1:7860"
    scheme = headers.get("x-forwarded-proto") or "http"
    return f"{scheme}://{host}/"


def share_markdown(key, record_id, request: gr.Request | None = None) -> str:
    token = api.share(key, _record_id(record_id))["token"]
    url = f"{page_url(request)}?run={token}"
    return (f"**Share link** (read-only: whoever has it sees this record and makes it again; unshare it in the "
            f"Library tab): [{url}]({url})")


def html_page(key, record_id) -> dict:
    """The record as one self-contained HTML page (made again, for its trace), shown as a file to download."""
    from studio.library.html import export_html

    store = library.open_store()
    record = store.get(_record_id(record_id), owners.owner_of(key))
    path = export_html(store, record, output_dir() / f"{record.domain}-record-{record.id}.html")
    return gr.update(value=str(path), visible=True)


def _rate(key, record_id, stars) -> str:
    stars = int(stars) if stars not in (None, "", 0, "0") else None
    api.rate(key, _record_id(record_id), stars)
    return f"Rated record {int(record_id)}: {'★' * stars}." if stars else f"Record {int(record_id)} is not rated."


def _tag(key, record_id, tags) -> str:
    kept = api.tag(key, _record_id(record_id), tags if isinstance(tags, str) else "")["tags"]
    return f"Record {int(record_id)} tagged: {' '.join(kept)}." if kept else f"Record {int(record_id)} has no tags."


def _note(key, record_id, text) -> str:
    api.note(key, _record_id(record_id), text if isinstance(text, str) else "")
    return f"Kept the note of record {int(record_id)}."


rate, tag, note, share, html = map(in_words, (_rate, _tag, _note, share_markdown, html_page))


def _on_kept(function):
    """A bar control: nothing kept yet is said in the bar, not raised."""

    @functools.wraps(function)
    def run(key, record_id, *args):
        if record_id is None:
            return "Generate something first: the bar keeps what the tab made."
        return function(key, record_id, *args)

    return run


# ---------------------------------------------------------------- recording a tab's generations
def api_call() -> bool:
    """Whether the running handler answers an API client rather than the page: the page's own events
    send `x-gradio-user: app` (gradio_client and the JS client send `api`; a bare HTTP client sends
    none). The page keeps its outputs in a chained event; an API call runs no chained event, so its
    generation is kept in the handler."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None)
    if headers is None:  # not a request (a test calling the handler itself)
        return False
    return headers.get("x-gradio-user") != "app"


def remembering(handler, uploads: dict[str, int] | None = None, on_api=None):
    """The tab's handler, noting on the Generation it returns the files it returned (paths under the
    app's output folder, labelled by their type: "txt", "mid", "wav", "png"), the uploaded files among
    its arguments (uploads: {label: argument position}) and the seconds the whole answer took; for an
    API call, on_api(generation) keeps it at once."""

    @functools.wraps(handler)  # keeps the signature (gradio reads it) and marks like batch_size
    def run(*args, **kwargs):
        start = time.perf_counter()
        result = handler(*args, **kwargs)
        values = result if isinstance(result, tuple) else (result,)
        generation = next((value for value in values if isinstance(value, Generation)), None)
        if generation is not None:
            files = {}
            for value in values:
                if isinstance(value, str) and value.startswith(str(OUTPUT_ROOT)) and len(value) < 1024:
                    path = Path(value)
                    if path.is_file():  # labelled by type (a chorale's .mid and .wav share a name)
                        files[path.name if path.suffix[1:] in files else path.suffix[1:] or path.name] = path
            given = {label: args[at] for label, at in (uploads or {}).items()
                     if at < len(args) and isinstance(args[at], str) and args[at] and Path(args[at]).is_file()}
            setattr(generation, KEPT, (files, time.perf_counter() - start, given))
            if on_api is not None and api_call():
                on_api(generation)
        return result

    return run


def record(domain, models: dict, generation, owner_id: str) -> int | None:
    """Keep a Generation the wrapped handler noted (None when it has no model or settings to make it
    again); the library's refusals are raised (USER_ERRORS, TypeError)."""
    kept = generation.__dict__.pop(KEPT, None) if isinstance(generation, Generation) else None
    loaded = models.get(generation.trace.model) if kept is not None and generation.trace is not None else None
    if loaded is None or generation.settings is None:
        return None
    files, seconds, given = kept
    return library.record_generation(domain, loaded, generation.settings, generation, files, owner_id,
                                     input_files=given, stem=loaded.stem, duration=seconds)


def keep_for_api(domain, models: dict):
    """on_api for remembering: keep an API call's generation for the owner its `owner_key` names
    (studio.user_models.current_owner, set for every handler by studio.ui.common); a shared server's
    call without a key is not kept. The client reads the record with /library_last. Never fails the
    generation: a refusal is printed on the server's console."""
    from studio import user_models

    def keep(generation) -> None:
        owner_id = user_models.current_owner.get()
        if owner_id is None:
            return
        try:
            record(domain, models, generation, owner_id)
        except Exception as error:  # noqa: BLE001 (the answer is made: a library's failure must not lose it)
            print(f"warning: an API generation was not kept in the library: {error}", file=sys.stderr)

    return keep


def page_key():
    """The page's owner key component (a State holding no key where the page has none: a tab built alone)."""
    return owner.page_key() or gr.State("")


def wire(bar: KeepBar, event, state: gr.State, domain, models: dict, uploads: dict | None = None) -> None:
    """Keep each generation `event` makes (its handler's last output `state` holds the Generation)
    and answer the bar's controls. uploads: {label: an input component of the event holding an
    uploaded file} kept with the record by hash (a forecast's series file)."""
    block_fn = gr.context.Context.root_block.fns[event["id"]]
    positions = {label: block_fn.inputs.index(component) for label, component in (uploads or {}).items()}
    block_fn.fn = remembering(block_fn.fn, positions, keep_for_api(domain, models))
    key = page_key()

    def keep(generation, key_value):
        try:
            record_id = record(domain, models, generation, owners.owner_of(key_value))
            if record_id is None:
                return cleared("This output was not kept (it has no model or settings to make it again).")
            return shown(record_id, owners.owner_of(key_value))
        except (*USER_ERRORS, TypeError) as error:
            return cleared(f"Not kept in the library: {error}")

    # no spinner: keeping takes milliseconds, and every output ever shown in progress costs the page at each
    # later status change (docs/timeseries.md, Speed)
    event.success(keep, [state, key], bar.outputs(), show_progress="hidden", **PRIVATE)
    wire_controls(bar, key)


def cleared(status: str) -> tuple:
    """The bar standing for no record, saying `status`."""
    return None, status, None, "", "", "", hidden()


def shown(record_id: int, owner_id: str) -> tuple:
    """The bar standing for the owner's record (NotFound when it is not theirs)."""
    kept = library.open_store().get(record_id, owner_id)
    what = "" if kept.kind == "generation" else f" (a {kept.kind})"
    again = f" (made {kept.count} times)" if kept.count > 1 else ""
    status = (f"Kept in your library as **record {record_id}**{what}{again}: rate, tag or note it here, find it in the "
              "Library tab.")
    return record_id, status, kept.rating, " ".join(kept.tag_list()), kept.note, "", hidden()


def wire_controls(bar: KeepBar, key) -> None:
    """The bar's stars, tags, note, share, page and delete act on the record it stands for."""
    bar.stars.input(_on_kept(rate), [key, bar.record, bar.stars], bar.status, **PRIVATE)
    bar.tags.submit(_on_kept(tag), [key, bar.record, bar.tags], bar.status, **PRIVATE)
    bar.note.blur(lambda k, r, text: gr.skip() if r is None else note(k, r, text), [key, bar.record, bar.note],
                  bar.status, **PRIVATE)
    bar.share.click(_on_kept(share), [key, bar.record], bar.link, **PRIVATE)
    bar.html.click(html, [key, bar.record], bar.html_file, **PRIVATE)

    @in_words
    def delete(key_value, record_id):
        record_id = _record_id(record_id)
        api.delete(key_value, record_id)
        return cleared(f"Deleted record {record_id} from your library.")

    bar.delete.click(delete, [key, bar.record], bar.outputs(), **PRIVATE)


# ---------------------------------------------------------------- a training's or a lab run's record
def job_record(trainer, job_id) -> tuple[bool, int | None]:
    """(whether the trainer's job has ended, the record its process kept: the last `saved: ID` line of
    its log, studio.jobs' train.log; None when nothing was kept)."""
    from studio.library.events import saved_id

    job = trainer.jobs.get(job_id) if isinstance(job_id, str) else None
    if job is None:
        return True, None
    if job.status in ("queued", "running"):
        return False, None
    return True, saved_id(job.folder / "train.log")


def wire_job(bar: KeepBar, poll, job: gr.State, trainer) -> None:
    """The bar under a job's output (the Train tab's training, the lab's run): after each answer of the
    page's `poll` event, and then each second of the bar's own timer until the job's process has ended
    (a page may say "done" from the job's result file a second before its process has kept the record),
    the bar stands for the record that process kept; a new job clears it. Only the record's owner sees
    it (shown() reads it as theirs)."""
    key = page_key()
    watch = gr.Timer(1.0, active=False)
    same = (gr.skip(),) * 7

    def fill(job_id, record_id, key_value):
        if not job_id:
            return *same, gr.Timer(active=False)
        ended, kept = job_record(trainer, job_id)
        if not ended:  # a new job runs: the bar no longer stands for the last one's record
            return *(cleared(bar.intro) if record_id is not None else same), gr.Timer(active=True)
        if kept is None or kept == record_id:
            return *same, gr.Timer(active=False)
        try:
            return *shown(kept, owners.owner_of(key_value)), gr.Timer(active=False)
        except USER_ERRORS as error:
            return *cleared(f"Not found in your library: {error}"), gr.Timer(active=False)

    for event in (poll.then, watch.tick):
        event(fill, [job, bar.record, key], [*bar.outputs(), watch], show_progress="hidden", **PRIVATE)
    wire_controls(bar, key)
