"""The Library tab, the shared-record panel that a `?run=TOKEN` link opens, and the library's API
endpoints. Everything goes through studio.library.api (functions of the owner key) and the page's
owner key (studio.ui.owner): a browser sees, rates, tags, notes, shares and deletes only its own
records; a share link is read-only.

    shared_record(demo, loaded)                  # app.py, above the tabs: a ?run= link's record, made again
    with gr.Tab("Library"): create_tab(loaded, train_inbox)     # search, show, rate ... export, train on these
"""

from __future__ import annotations

import datetime
import functools
import json
import sys
import tempfile
import threading
from pathlib import Path

import gradio as gr
import pandas as pd

from studio import domains, library, owners
from studio.library import api
from studio.library.schema import KINDS
from studio.ui import keep_bar
from studio.ui.common import output_dir
from studio.ui.viewer import trace_viewer, viewer_value

RESULT_COLUMNS = ["id", "domain", "model", "rating", "tags", "made", "output"]
ANY = "any"
PRIVATE = {"api_visibility": "private"}


# ---------------------------------------------------------------- replaying with the app's models
def loader(loaded_by_domain: dict):
    """load(domain, stem) for library.replay: the app's loaded model of that name when it is the same
    checkpoint's name, else the checkpoint read from disk."""

    def load(domain, stem):
        models = loaded_by_domain.get(domain, ({}, []))[0]
        return models.get(Path(stem).name) or domain.load(stem)

    return load


def warm(loaded_by_domain: dict) -> None:
    """Open the library and hash each loaded model's weights (cached by path, size and time), so that
    the first output kept after start-up costs what the others do (its first record: ~100 ms, later
    ones ~5 ms), and read the "more like this" vectors. Run in a background thread."""
    try:
        store = library.open_store()
        for models, _ in loaded_by_domain.values():
            for loaded in models.values():
                if loaded.stem is not None:
                    library.weights_sha256(loaded.stem)
        store.warm_vectors()
    except (OSError, ValueError, library.LibraryFull) as error:  # the first record will say it again, in the page
        print(f"warning: the library: {error}", file=sys.stderr)


# ---------------------------------------------------------------- a ?run=TOKEN link
# the shared record's tab (its title) clicked open in the page's tab bar
OPEN_TAB = """(title) => { if (title) [...document.querySelectorAll("button[role=tab]")]
    .find((b) => b.innerText.trim() === title)?.click(); }"""


def shared_record(demo: gr.Blocks, loaded_by_domain: dict) -> None:
    """A panel above the tabs, shown only when the page is opened by a share link: the record's
    output, settings and model, made again with the same model and settings, checked against the
    stored output hash ("Reproduced exactly", or why not), with its trace in the viewer; the
    record's tab is opened below it."""
    load = loader(loaded_by_domain)
    with gr.Group(visible=False, elem_id="shared-record") as panel:
        status = gr.Markdown(elem_id="shared-status")
        about = gr.Markdown(elem_id="shared-about")
        files = gr.File(label="Its output, made again", file_count="multiple", elem_id="shared-files")
        with gr.Accordion("Inside the LSTM while it made this", open=True):
            viewer = trace_viewer("shared")
    tab_title = gr.Textbox(visible=False, elem_id="shared-tab")  # the record's tab, opened by the browser

    def on_load(request: gr.Request):
        token = (dict(getattr(request, "query_params", None) or {})).get("run")
        if not token:
            return gr.update(visible=False), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        store = library.open_store()
        try:
            record = store.by_token(token)
        except library.NotFound as error:
            return gr.update(visible=True), f"## {error}", "", None, gr.skip(), gr.skip()
        result = library.replay_shared(token, store, load=load)
        headline = ("## Reproduced exactly: the same model and settings made the same output again."
                    if result.reproduced else f"## Not reproduced: {result.why}.")
        about_text = (f"**{record.domain}**, model **{record.model}**, seed {record.seed}"
                      + (f", prompt: `{record.prompt[:300]}`" if record.prompt else "")
                      + "\n\n**Output**:\n\n" + fenced(record.output[:2000]) + "\n\n**Settings**:\n```json\n"
                      + json.dumps(api.shared(token)["settings"], indent=1)[:4000] + "\n```")
        if record.kind != "generation":  # a trained model or a lab run: what was kept, nothing made again
            headline, made = f"## A shared {record.kind} record", copies(store, record.files) or None
            return gr.update(visible=True), headline, about_text, made, gr.skip(), gr.skip()
        if result.generation is None:
            return gr.update(visible=True), headline, about_text, None, gr.skip(), gr.skip()
        domain = domains.by_name(record.domain)
        made = [str(path) for path in domain.write_files(result.generation, output_dir()).values()]
        value = viewer_value(result.generation.trace, domain.track(result.generation), f"{record.model}:")
        return gr.update(visible=True), headline, about_text, made, value, domain.TITLE

    demo.load(on_load, None, [panel, status, about, files, viewer.html, tab_title], **PRIVATE).then(
        None, tab_title, None, js=OPEN_TAB, **PRIVATE)


# ---------------------------------------------------------------- the Library tab
def copies(store, files: list[dict]) -> list[str]:
    """A record's output files copied where the page may serve them (the app's output folder)."""
    folder, copied = output_dir(), []
    for kept in files:
        if kept["role"] == "output" and store.file_path(kept["sha256"]).exists():
            target = folder / kept["name"]
            target.write_bytes(store.file_path(kept["sha256"]).read_bytes())
            copied.append(str(target))
    return copied


def fenced(text: str) -> str:
    """Text shown as it is (line breaks kept, nothing read as Markdown)."""
    return "```text\n" + text.replace("```", "'''") + "\n```"


def _date(text, end: bool = False) -> float | None:
    """A YYYY-MM-DD box as a timestamp (the day's end for `until`); blank: None; else a sentence."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        day = datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date; write it as YYYY-MM-DD.") from None
    moment = datetime.datetime.combine(day, datetime.time.max if end else datetime.time.min)
    return moment.timestamp()


def _filters(domain, model, min_rating, since, until, kind=ANY) -> dict:
    return {"domain": domain if domain and domain != ANY else None, "kind": kind if kind and kind != ANY else None,
            "model": model.strip() if isinstance(model, str) else None,
            "min_rating": int(min_rating) if min_rating not in (None, "", ANY) else None,
            "since": _date(since), "until": _date(until, end=True)}


def results_frame(hits: list[dict]) -> pd.DataFrame:
    rows = [[h["id"], h["domain"], h["model"], "★" * (h["rating"] or 0), " ".join(h["tags"]),
             datetime.datetime.fromtimestamp(h["created"]).strftime("%Y-%m-%d %H:%M"),
             h["output"][:120].replace("\n", " ")] for h in hits]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def record_markdown(record: dict, token: str | None) -> str:
    made = datetime.datetime.fromtimestamp(record["created"]).strftime("%Y-%m-%d %H:%M")
    kind = "" if record.get("kind", "generation") == "generation" else f" ({record['kind']})"
    lines = [f"### Record {record['id']}{kind}: {record['domain']}, {record['model']}",
             f"Seed {record['seed']} · made {made}" + (f" in {record['duration']:.2f} s" if record["duration"] else "")
             + (f" · made {record['count']} times" if record["count"] > 1 else "")
             + f" · rating {'★' * (record['rating'] or 0) or 'none'} · studio {record['version']}"]
    if record["prompt"]:
        lines.append(f"**Prompt**: `{record['prompt'][:500]}`")
    lines.append("**Output**:\n\n" + fenced(record["output"][:3000]))
    lines.append("**Shared** by a link (unshare to revoke it)." if token else "Not shared.")
    lines.append("**Settings**:\n```json\n" + json.dumps(record["settings"], indent=1)[:4000] + "\n```")
    return "\n\n".join(lines)


def create_tab(loaded_by_domain: dict, train_inbox=None) -> None:
    """Search, show, rate, tag, note, delete, share and export the browser's records; "train on these"
    hands the result's output files to the Train tab (train_inbox: train_tab.create_tab's (domain,
    files, incoming)). Registers the library's API endpoints too."""
    key = keep_bar.page_key()
    load = loader(loaded_by_domain)
    threading.Thread(target=warm, args=(loaded_by_domain,), daemon=True).start()
    gr.Markdown("Every output of every tab is kept here for this browser"
                + (" (records belong to the browser that made them; a share link is read-only)."
                   if owners.shared_server() else ".") + " Search by words, filter, rate, tag, share or export them.")
    if owners.storage_note():
        gr.Markdown(f"**{owners.storage_note()}**")
    with gr.Row():
        query = gr.Textbox(label="Words (every one must occur; word* for a prefix)", elem_id="library-query", scale=3)
        domain = gr.Dropdown([ANY, *(d.NAME for d in domains.ALL)], value=ANY, label="Domain", scale=1)
        model = gr.Textbox(label="Model", scale=1)
        min_rating = gr.Dropdown([ANY, "1", "2", "3", "4", "5"], value=ANY, label="At least ★", scale=1)
        since = gr.Textbox(label="From (YYYY-MM-DD)", scale=1)
        until = gr.Textbox(label="To (YYYY-MM-DD)", scale=1)
        kind = gr.Dropdown([ANY, *KINDS], value=ANY, label="Kind", scale=1, elem_id="library-kind")
    with gr.Row():
        search = gr.Button("Search", variant="primary", elem_id="library-search")
        like = gr.Button("More like the picked record", size="sm", elem_id="library-like")
        export = gr.Button("Export these as JSONL", size="sm", elem_id="library-export")
        train = gr.Button("Train on these (fills the Train tab)", size="sm", elem_id="library-train")
    summary = gr.Markdown(elem_id="library-summary")
    results = gr.Dataframe(results_frame([]), interactive=False, wrap=True, elem_id="library-results",
                           label="Your records (click a row to pick it)",
                           column_widths=["6%", "9%", "15%", "9%", "10%", "13%", "38%"])
    export_file = gr.File(label="The result as JSONL", visible=False, elem_id="library-export-file")
    with gr.Row():
        with gr.Column(scale=2):
            picked = gr.Number(label="Record", precision=0, elem_id="library-id")
            show = gr.Button("Show", elem_id="library-show")
            details = gr.Markdown(elem_id="library-record")
            files = gr.File(label="Its files", file_count="multiple", elem_id="library-files")
        with gr.Column(scale=1):
            stars = gr.Radio([("none", 0), *keep_bar.STARS], label="Rating", elem_id="library-stars")
            tags = gr.Textbox(label="Tags", elem_id="library-tags")
            note = gr.Textbox(label="Note", lines=2, elem_id="library-note")
            save = gr.Button("Keep the rating, tags and note", elem_id="library-save")
            with gr.Row():
                share = gr.Button("Share (link)", size="sm", elem_id="library-share")
                unshare = gr.Button("Unshare", size="sm", elem_id="library-unshare")
                delete = gr.Button("Delete", size="sm", variant="stop", elem_id="library-delete")
            link = gr.Markdown(elem_id="library-link")
            with gr.Row():
                replay = gr.Button("Make it again and check", size="sm", elem_id="library-replay")
                html = gr.Button("One HTML page", size="sm", elem_id="library-html")
            replayed = gr.Markdown(elem_id="library-replayed")
            html_file = gr.File(label="The record as one HTML page", visible=False, elem_id="library-html-file")
    found = gr.State([])  # the ids of the last search, for export and training

    def run_search(key_value, words, domain_value, model_value, rating, since_value, until_value, kind_value=ANY,
                   like_id=None):
        hits = api.search(key_value, words or "", like=like_id, limit=200,
                          **_filters(domain_value, model_value, rating, since_value, until_value, kind_value))
        what = f"{len(hits)} record{'s' * (len(hits) != 1)}" + (" (the first 200)" if len(hits) == 200 else "")
        return results_frame(hits), [h["id"] for h in hits], what

    def on_like(key_value, record_id, *filters):
        if record_id is None:
            raise ValueError("Pick a record first (click a row, or type its number).")
        return run_search(key_value, filters[0], *filters[1:], like_id=int(record_id))

    def on_show(key_value, record_id):
        record = api.show(key_value, keep_bar._record_id(record_id))
        store = library.open_store()
        token = store.get(record["id"], owners.owner_of(key_value)).share_token
        return (record_markdown(record, token), copies(store, record["files"]) or None, record["rating"] or 0,
                " ".join(record["tags"]), record["note"], "", "")

    def on_pick(frame, event: gr.SelectData):
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        try:
            return int(frame.iloc[row]["id"])
        except (IndexError, KeyError, ValueError, TypeError):
            return gr.skip()

    def on_save(key_value, record_id, rating, tag_text, note_text):
        record_id = keep_bar._record_id(record_id)
        api.rate(key_value, record_id, rating or None)
        api.tag(key_value, record_id, tag_text if isinstance(tag_text, str) else "")
        api.note(key_value, record_id, note_text if isinstance(note_text, str) else "")
        return f"Kept: rating {'★' * (rating or 0) or 'none'}, tags and note of record {record_id}."

    def on_unshare(key_value, record_id):
        api.unshare(key_value, keep_bar._record_id(record_id))
        return "Unshared: the link no longer opens it."

    def on_delete(key_value, record_id):
        record_id = keep_bar._record_id(record_id)
        api.delete(key_value, record_id)
        return None, f"Deleted record {record_id}.", None, 0, "", "", ""

    def on_replay(key_value, record_id):
        answer = api.replay(key_value, keep_bar._record_id(record_id))
        return "**Reproduced exactly.**" if answer["reproduced"] else f"**Not reproduced**: {answer['why']}."

    def on_export(key_value, ids):
        if not ids:
            raise ValueError("Search first: the export is the search's result.")
        store, owner = library.open_store(), owners.owner_of(key_value)
        from studio.library.datasets import export_jsonl

        out = output_dir() / "library.jsonl"
        export_jsonl([store.get(i, owner) for i in ids], out)
        return gr.update(value=str(out), visible=True)

    def on_train(key_value, ids, handed):
        if not ids:
            raise ValueError("Search first (for example: at least ★★★★★, domain text): the Train tab gets its result.")
        from studio.library.datasets import export_training_files

        store, owner = library.open_store(), owners.owner_of(key_value)
        written = export_training_files(store, [store.get(i, owner) for i in ids], tempfile.mkdtemp(dir=output_dir()))
        if not written:
            raise ValueError("None of these records has an output file its domain trains from.")
        chosen = max(written, key=lambda name: len(written[name]))  # one domain trains at a time
        paths = [str(p) for p in written[chosen]]
        others = f" ({', '.join(n for n in written if n != chosen)} records left out: one domain trains at a time)" \
            if len(written) > 1 else ""
        message = (f"The Train tab has {len(paths)} {chosen} file(s) from these records{others}: open it, name the "
                   "model and press Train.")
        return message, chosen, paths, {**(handed or {}), chosen: paths}

    words = keep_bar.in_words
    filters = [query, domain, model, min_rating, since, until, kind]
    for trigger in (search.click, query.submit):
        trigger(words(run_search), [key, *filters], [results, found, summary], **PRIVATE)
    like.click(words(on_like), [key, picked, *filters], [results, found, summary], **PRIVATE)
    results.select(on_pick, results, picked, **PRIVATE).then(
        words(on_show), [key, picked], [details, files, stars, tags, note, link, replayed], **PRIVATE)
    show.click(words(on_show), [key, picked], [details, files, stars, tags, note, link, replayed], **PRIVATE)
    picked.submit(words(on_show), [key, picked], [details, files, stars, tags, note, link, replayed], **PRIVATE)
    save.click(words(on_save), [key, picked, stars, tags, note], summary, **PRIVATE)
    share.click(keep_bar.share, [key, picked], link, **PRIVATE)
    unshare.click(words(on_unshare), [key, picked], link, **PRIVATE)
    delete.click(words(on_delete), [key, picked], [picked, summary, details, stars, tags, note, link], **PRIVATE)
    replay.click(words(on_replay), [key, picked], replayed, **PRIVATE)
    html.click(keep_bar.html, [key, picked], html_file, **PRIVATE)
    export.click(words(on_export), [key, found], export_file, **PRIVATE)
    if train_inbox is not None:
        train_domain, train_files, incoming = train_inbox
        train.click(words(on_train), [key, found, incoming], [summary, train_domain, train_files, incoming], **PRIVATE)
    else:
        train.visible = False
    register_api(load)


# ---------------------------------------------------------------- API endpoints
def register_api(load=None) -> None:
    """/library_* endpoints, each taking the owner key (ask /library_new_key once on a shared server;
    off one it is ignored). Refusals are one sentence."""
    words = keep_bar.in_words

    def number(value, what="record") -> int:
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"The {what} is a whole number, not {value!r}.") from None
        if abs(number) >= 2**62:  # SQLite's integers
            raise ValueError(f"The {what} {value!r} is out of range.")
        return number

    def library_new_key() -> str:
        """A fresh owner key: keep it and pass it to every other /library_* call."""
        return api.new_key()

    def library_search(key: str, query: str, like: float | None, domain: str, model: str, min_rating: float | None,
                       limit: float, kind: str | None = None) -> list:
        """The owner's records, best first: words (all must occur), "more like" a record, filters ("" = any;
        kind: generation, model or lab run)."""
        return api.search(key if isinstance(key, str) else None, query if isinstance(query, str) else "",
                          like=None if like in (None, "") else number(like),
                          domain=domain if isinstance(domain, str) and domain else None,
                          model=model if isinstance(model, str) and model else None,
                          min_rating=None if min_rating in (None, "") else number(min_rating, "rating"),
                          limit=number(limit or 50, "limit"), kind=kind if isinstance(kind, str) and kind else None)

    def library_last(key: str) -> dict:
        """{"record": your most recently made record, or None}: the id a /generate_* call was kept as."""
        return api.last(key)

    def library_show(key: str, record: float) -> dict:
        return api.show(key, number(record))

    def library_rate(key: str, record: float, stars: float | None) -> dict:
        """1 to 5 stars; 0 or none clears."""
        stars = None if stars in (None, "") else number(stars, "rating")
        return api.rate(key, number(record), stars)

    def library_tag(key: str, record: float, tags: str) -> dict:
        return api.tag(key, number(record), tags if isinstance(tags, str) else "")

    def library_note(key: str, record: float, note: str) -> dict:
        return api.note(key, number(record), note if isinstance(note, str) else "")

    def library_delete(key: str, record: float) -> dict:
        return api.delete(key, number(record))

    def library_share(key: str, record: float) -> dict:
        """The record's read-only link query, ?run=TOKEN."""
        return api.share(key, number(record))

    def library_unshare(key: str, record: float) -> dict:
        return api.unshare(key, number(record))

    def library_replay(key: str, record: float | None, token: str) -> dict:
        """Make a record again (yours by number, or anyone's by its share token) and compare its output hash."""
        store = library.open_store()
        if isinstance(token, str) and token:
            result, found = library.replay_shared(token, store, load=load), store.by_token(token)
        else:
            owner = owners.owner_of(key if isinstance(key, str) else None)
            result, found = library.replay(number(record), owner, store, load=load), store.get(number(record), owner)
        return {"reproduced": result.reproduced, "why": result.why, "record": library.as_json(found)}

    def keyed(endpoint):
        """An endpoint whose first argument, the owner key, is a string or nothing."""

        @functools.wraps(endpoint)
        def run(key, *args):
            return endpoint(key if isinstance(key, str) else None, *args)

        return run

    gr.api(words(library_new_key), api_name="library_new_key")
    for endpoint in (library_search, library_last, library_show, library_rate, library_tag, library_note,
                     library_delete, library_share, library_unshare, library_replay):
        gr.api(words(keyed(endpoint)), api_name=endpoint.__name__)
