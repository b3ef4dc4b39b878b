"""The library as plain functions of (owner key, ...) -> JSON-ready values: what the app registers as
API endpoints and the Library tab calls. No gradio here. `key` is the browser's (or API client's)
owner key; off a shared server it is ignored and everything belongs to the local owner
(studio.owners). Errors are NotFound / OwnerError / ValueError with one sentence for the user."""

from __future__ import annotations

import tempfile
from pathlib import Path

from studio import owners
from studio.library import as_json, open_store, replay_shared
from studio.library import replay as replay_record


def new_key() -> str:
    """A fresh owner key: a browser keeps it in local storage, an API client asks once and passes it."""
    return owners.new_key()


def search(key: str | None, query: str = "", like: int | None = None, domain: str | None = None,
           model: str | None = None, min_rating: int | None = None, since: float | None = None,
           until: float | None = None, limit: int = 50, kind: str | None = None) -> list[dict]:
    """The owner's records, best first (see Store.search): keyword, "more like this", filters
    (kind: "generation", "model" or "lab run")."""
    store = open_store()
    hits = store.search(owners.owner_of(key), query or "", like=like, domain=domain or None, model=model or None,
                        min_rating=min_rating, since=since, until=until, limit=max(1, min(int(limit), 1000)),
                        kind=kind or None)
    return [as_json(hit) for hit in hits]


def last(key: str | None) -> dict:
    """{"record": the owner's most recently made record, or None}: what an API client reads after a
    /generate_* call to learn the id its generation was kept as."""
    found = open_store().last(owners.owner_of(key))
    return {"record": None if found is None else as_json(found)}


def show(key: str | None, record_id: int) -> dict:
    return as_json(open_store().get(record_id, owners.owner_of(key)))


def rate(key: str | None, record_id: int, stars: int | None) -> dict:
    """1-5 stars, 0 or None clears (thumbs up = 5, thumbs down = 1)."""
    store, owner = open_store(), owners.owner_of(key)
    store.rate(record_id, owner, int(stars) if stars else None)
    return as_json(store.get(record_id, owner))


def tag(key: str | None, record_id: int, tags) -> dict:
    store, owner = open_store(), owners.owner_of(key)
    store.set_tags(record_id, owner, tags)
    return as_json(store.get(record_id, owner))


def note(key: str | None, record_id: int, text: str) -> dict:
    store, owner = open_store(), owners.owner_of(key)
    store.set_note(record_id, owner, text)
    return as_json(store.get(record_id, owner))


def delete(key: str | None, record_id: int) -> dict:
    open_store().delete(record_id, owners.owner_of(key))
    return {"deleted": int(record_id)}


def share(key: str | None, record_id: int) -> dict:
    """The record's link query (?run=TOKEN): read-only, for whoever has it."""
    token = open_store().share(record_id, owners.owner_of(key))
    return {"token": token, "query": f"?run={token}"}


def unshare(key: str | None, record_id: int) -> dict:
    open_store().unshare(record_id, owners.owner_of(key))
    return {"unshared": int(record_id)}


def shared(token: str) -> dict:
    """A shared record, read-only (what a ?run= link opens before it makes it again)."""
    record = as_json(open_store().by_token(token))
    return {key: value for key, value in record.items() if key not in ("note",)}


def replay(key: str | None = None, record_id: int | None = None, token: str | None = None) -> dict:
    """Make a record again (the owner's by id, or anyone's by its share token) and compare:
    {"reproduced": bool, "why": str, "record": ...}; the generation itself stays on the server."""
    store = open_store()
    if token:
        result, record = replay_shared(token, store), store.by_token(token)
    else:
        owner = owners.owner_of(key)
        result, record = replay_record(record_id, owner, store), store.get(record_id, owner)
    return {"reproduced": result.reproduced, "why": result.why, "record": as_json(record)}


def export_jsonl(key: str | None, query: str = "", **filters) -> Path:
    """The search result as a JSONL file (prompt, output, settings, model, rating, tags per line)."""
    from studio.library.datasets import export_jsonl as write

    store = open_store()
    hits = store.search(owners.owner_of(key), query or "", limit=filters.pop("limit", 1_000_000), **filters)
    out = Path(tempfile.mkdtemp(prefix="lstm-studio-export-")) / "library.jsonl"
    write(hits, out)
    return out
