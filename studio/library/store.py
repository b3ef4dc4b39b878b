"""The library's store: one SQLite database (WAL, FTS5) plus a folder of files named by their sha256.

    HOME/library/library.sqlite3     records, their files, per-owner usage, the keyword index
    HOME/library/files/ab/abcd...    every kept file once (outputs, uploaded inputs, arrays of settings)

Writes are short transactions (BEGIN IMMEDIATE) under a busy timeout, so several processes may write
at once; WAL keeps every committed record when a writer is killed. Files are written and removed
only while the write lock is held, so a file a record names is never removed under it; a writer
killed between writing a file and committing leaves an unreferenced file that `sweep` removes.

Every read and write names an owner; a record of another owner is "not found" (never "not yours"),
and a shared record is reached only read-only through its token (`by_token`).

The schema and its migrations are in schema.py; searching is search.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio import owners
from studio.library import search
from studio.library.records import Record, plain_settings
from studio.library.schema import COLUMNS, MIGRATIONS, SCHEMA_VERSION, Stored, statements

BUSY_TIMEOUT_S = 30.0  # a writer waits this long for another's transaction before giving up


class NotFound(LookupError):
    """No record of that id for this owner (or no record shares that token)."""


class LibraryFull(RuntimeError):
    """The caps are reached and every record that could make room is rated."""


@dataclass(frozen=True)
class Caps:
    """How much the library keeps (0 = no cap). When a new record would pass a cap, the oldest
    unrated records are removed first (the owner's own for the owner's caps, anyone's for the
    totals); when only rated records are left, the new record is refused."""

    owner_records: int = 5_000
    owner_bytes: int = 1_000_000_000
    total_records: int = 200_000
    total_bytes: int = 20_000_000_000

    @classmethod
    def from_env(cls) -> Caps:
        def number(name, default):
            return int(float(os.environ.get(name, default)))

        shared = owners.shared_server()
        return cls(owner_records=number("LSTM_STUDIO_LIBRARY_OWNER_RECORDS", 2_000 if shared else 0),
                   owner_bytes=number("LSTM_STUDIO_LIBRARY_OWNER_MB", 500 if shared else 0) * 1_000_000,
                   total_records=number("LSTM_STUDIO_LIBRARY_RECORDS", 200_000),
                   total_bytes=number("LSTM_STUDIO_LIBRARY_MB", 20_000) * 1_000_000)


def default_path() -> Path:
    return owners.home() / "library" / "library.sqlite3"


class Store:
    """The library at `path` (created on first use). One Store per process is enough; it is safe to
    use from several threads (one connection each)."""

    def __init__(self, path=None, caps: Caps | None = None):
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.files_dir = self.path.parent / "files"
        self.caps = caps if caps is not None else Caps.from_env()
        self._local = threading.local()
        self._vectors = search.VectorCache()
        self.migrate()

    # ------------------------------------------------------------ connection, schema
    @property
    def db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a killed process loses no commit
            connection.execute("PRAGMA foreign_keys = ON")
            self._local.connection = connection
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def migrate(self) -> int:
        """Bring the schema to SCHEMA_VERSION; returns the version it was at."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            found = db.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} was written by a newer studio (schema {found}, this one knows "
                                   f"{SCHEMA_VERSION}); upgrade the studio to open it.")
            for version in range(found, SCHEMA_VERSION):
                for statement in statements(MIGRATIONS[version]):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return found

    def _write(self):
        return _Transaction(self.db)

    # ------------------------------------------------------------ files
    def file_path(self, sha256: str) -> Path:
        return self.files_dir / sha256[:2] / sha256

    def _keep(self, sha256: str, source: Path | None = None, data: bytes | None = None) -> None:
        """Put one file in the folder (under the write lock; atomic: a reader never sees half of it)."""
        target = self.file_path(sha256)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        with os.fdopen(handle, "wb") as out:
            if data is not None:
                out.write(data)
            else:
                with open(source, "rb") as file:
                    shutil.copyfileobj(file, out)
        os.replace(temporary, target)

    def _unlink_unreferenced(self, shas) -> None:
        for sha in set(shas):
            if self.db.execute("SELECT 1 FROM files WHERE sha256 = ? LIMIT 1", (sha,)).fetchone() is None:
                self.file_path(sha).unlink(missing_ok=True)

    def sweep(self) -> int:
        """Remove kept files no record names (left by a writer killed before its commit); returns how many."""
        removed = 0
        with self._write():
            named = {row[0] for row in self.db.execute("SELECT DISTINCT sha256 FROM files")}
            for path in self.files_dir.glob("*/*"):
                if path.name not in named:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    # ------------------------------------------------------------ writing
    def add(self, record: Record, owner: str, files: dict[str, Path] | None = None) -> int:
        """Keep a record and its files; returns its id. An output this owner already has (same
        content hash) is kept once: its count goes up and its id is returned."""
        files = {label: Path(path) for label, path in (files or {}).items() if path is not None}
        rows = []  # (role, label, name, sha256, size, source path or None, bytes or None)
        for label, path in files.items():
            rows.append(("output", label, path.name, _sha256_file(path), path.stat().st_size, path, None))
        for name, path in record.inputs.items():
            rows.append(("input", name, path.name, _sha256_file(path), path.stat().st_size, path, None))
        for sha, data in record.blobs.items():
            rows.append(("array", sha, sha + ".npy", sha, len(data), None, data))
        size = sum(row[4] for row in rows)
        now = time.time()
        with self._write():
            existing = self.db.execute("SELECT id FROM records WHERE owner = ? AND content_hash = ?",
                                       (owner, record.content_hash)).fetchone()
            if existing is not None:
                self.db.execute("UPDATE records SET count = count + 1, last_made = ? WHERE id = ?", (now, existing[0]))
                return existing[0]
            removed = self._make_room(owner, size)
            for _, _, _, sha, _, source, data in rows:
                self._keep(sha, source, data)
            cursor = self.db.execute(
                "INSERT INTO records (owner, domain, model, model_stem, weights_sha256, settings_type, settings, seed, "
                "prompt, output, content_hash, created, duration, version, count, last_made, bytes, kind) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (owner, record.domain, record.model, record.model_stem, record.weights_sha256, record.settings_type,
                 record.settings, record.seed, record.prompt, record.output, record.content_hash, now, record.duration,
                 record.version, now, size, record.kind))
            record_id = cursor.lastrowid
            self.db.executemany("INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                                [(record_id, role, label, name, sha, length)
                                 for role, label, name, sha, length, _, _ in rows])
            if record.embedding is not None:
                self.db.execute("INSERT INTO embeddings VALUES (?, ?)",
                                (record_id, np.asarray(record.embedding, np.float32).tobytes()))
            self._unlink_unreferenced(removed)
        return record_id

    def _make_room(self, owner: str, size: int) -> list[str]:
        """Remove the oldest unrated records until one more record of `size` bytes fits the caps;
        returns the sha256s of the files the removed records named. Inside the write transaction."""
        caps, removed = self.caps, []

        def over(scope_owner):
            if scope_owner is None:
                records, stored = self.db.execute("SELECT COALESCE(SUM(records), 0), COALESCE(SUM(bytes), 0) "
                                                  "FROM usage").fetchone()
                cap_records, cap_bytes = caps.total_records, caps.total_bytes
            else:
                row = self.db.execute("SELECT records, bytes FROM usage WHERE owner = ?", (scope_owner,)).fetchone()
                records, stored = row if row else (0, 0)
                cap_records, cap_bytes = caps.owner_records, caps.owner_bytes
            return (cap_records and records + 1 > cap_records) or (cap_bytes and stored + size > cap_bytes)

        for scope_owner in (owner, None):
            while over(scope_owner):
                if scope_owner is None:
                    victim = self.db.execute("SELECT id FROM records WHERE rating IS NULL ORDER BY "
                                             "created LIMIT 1").fetchone()
                else:
                    victim = self.db.execute("SELECT id FROM records WHERE owner = ? AND rating IS NULL "
                                             "ORDER BY created LIMIT 1", (scope_owner,)).fetchone()
                if victim is None:
                    whose = "yours" if scope_owner is not None else "the server's"
                    raise LibraryFull(f"The library is full ({whose}) and every record in it is rated: delete some "
                                      "records to keep new ones.")
                removed += self._delete_row(victim[0])
        return removed

    def _delete_row(self, record_id: int) -> list[str]:
        shas = [row[0] for row in self.db.execute("SELECT sha256 FROM files WHERE record_id = ?", (record_id,))]
        self.db.execute("DELETE FROM records WHERE id = ?", (record_id,))
        return shas

    def _owned(self, record_id, owner) -> None:
        if self.db.execute("SELECT 1 FROM records WHERE id = ? AND owner = ?",
                           (int(record_id), owner)).fetchone() is None:
            raise NotFound(f"No record {record_id} in your library.")

    def rate(self, record_id: int, owner: str, rating: int | None) -> None:
        """1-5 stars (a thumbs up is 5, a thumbs down 1), None to clear."""
        if rating is not None and not (isinstance(rating, int) and 1 <= rating <= 5):
            raise ValueError("A rating is 1 to 5 stars (or none).")
        with self._write():
            self._owned(record_id, owner)
            self.db.execute("UPDATE records SET rating = ? WHERE id = ?", (rating, int(record_id)))

    def set_tags(self, record_id: int, owner: str, tags) -> None:
        """Replace the tags (words; a string is split at spaces and commas)."""
        if isinstance(tags, str):
            tags = tags.replace(",", " ").split()
        text = " ".join(dict.fromkeys(str(tag).strip() for tag in tags if str(tag).strip()))
        with self._write():
            self._owned(record_id, owner)
            self.db.execute("UPDATE records SET tags = ? WHERE id = ?", (text, int(record_id)))

    def set_note(self, record_id: int, owner: str, note: str) -> None:
        with self._write():
            self._owned(record_id, owner)
            self.db.execute("UPDATE records SET note = ? WHERE id = ?", (str(note), int(record_id)))

    def delete(self, record_id: int, owner: str) -> None:
        with self._write():
            self._owned(record_id, owner)
            shas = self._delete_row(int(record_id))
            self._unlink_unreferenced(shas)

    def share(self, record_id: int, owner: str) -> str:
        """The record's share token (made on first share): whoever has it may view and replay the record."""
        with self._write():
            self._owned(record_id, owner)
            token = self.db.execute("SELECT share_token FROM records WHERE id = ?", (int(record_id),)).fetchone()[0]
            if token is None:
                token = secrets.token_urlsafe(18)
                self.db.execute("UPDATE records SET share_token = ? WHERE id = ?", (token, int(record_id)))
        return token

    def unshare(self, record_id: int, owner: str) -> None:
        with self._write():
            self._owned(record_id, owner)
            self.db.execute("UPDATE records SET share_token = NULL WHERE id = ?", (int(record_id),))

    # ------------------------------------------------------------ reading
    def _read(self, where: str, args) -> list[Stored]:
        rows = self.db.execute(f"SELECT {COLUMNS} FROM records WHERE {where}", args).fetchall()
        return [Stored(*row) for row in rows]

    def with_files(self, record: Stored) -> Stored:
        record.files = [dict(zip(("role", "label", "name", "sha256", "size"), row, strict=True))
                        for row in self.db.execute(
            "SELECT role, label, name, sha256, size FROM files WHERE record_id = ? ORDER BY role, label", (record.id,))]
        return record

    def get(self, record_id, owner: str) -> Stored:
        try:
            record_id = int(record_id)
        except (TypeError, ValueError):
            raise NotFound(f"No record {record_id} in your library.") from None
        found = self._read("id = ? AND owner = ?", (record_id, owner))
        if not found:
            raise NotFound(f"No record {record_id} in your library.")
        return self.with_files(found[0])

    def by_token(self, token: str) -> Stored:
        """A shared record, read-only (the token is the permission)."""
        found = self._read("share_token = ?", (str(token),)) if token else []
        if not found:
            raise NotFound("No shared record has this link (it may have been unshared or deleted).")
        return self.with_files(found[0])

    def last(self, owner: str) -> Stored | None:
        """The owner's record made (or made again) most recently, None when there is none."""
        found = self._read("owner = ? ORDER BY last_made DESC, id DESC LIMIT 1", (owner,))
        return self.with_files(found[0]) if found else None

    def embedding(self, record_id: int) -> np.ndarray | None:
        row = self.db.execute("SELECT vector FROM embeddings WHERE record_id = ?", (int(record_id),)).fetchone()
        return None if row is None else np.frombuffer(row[0], np.float32)

    def usage(self, owner: str) -> tuple[int, int]:
        row = self.db.execute("SELECT records, bytes FROM usage WHERE owner = ?", (owner,)).fetchone()
        return tuple(row) if row else (0, 0)
    def search(self, owner: str, query: str = "", **filters) -> list[Stored]:
        """The owner's records, best first (studio.library.search.search: keywords, like=ID, filters)."""
        return search.search(self, owner, query, **filters)

    def warm_vectors(self) -> None:
        """Read every embedding into memory now (the app may call it in a thread at start), so the
        first "more like this" does not pay for it (docs/benchmarks.md, Library)."""
        with self._vectors.lock:
            self._vectors.refresh(self)

    def integrity(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an error): one writer at a time, waiting its turn."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, error, trace):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


def _sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

def as_json(record: Stored) -> dict:
    """A record as the API and the JSONL export give it."""
    return {"id": record.id, "domain": record.domain, "model": record.model, "weights_sha256": record.weights_sha256,
            "seed": record.seed, "prompt": record.prompt, "output": record.output,
            "settings": plain_settings(record.settings),
            "rating": record.rating, "tags": record.tag_list(), "note": record.note, "created": record.created,
            "duration": record.duration, "version": record.version, "count": record.count,
            "content_hash": record.content_hash, "kind": record.kind, "files": record.files}
