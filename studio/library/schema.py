"""The library's schema and its migrations: MIGRATIONS[k] upgrades version k to k+1 (PRAGMA
user_version), run in one transaction when a library is opened, so a later studio opens an older
library without losing a record. Version 1: records, their files, the keyword index. Version 2:
counts of identical outputs, share tokens, embeddings, per-owner usage for the caps. Version 3: a
record's kind (a generation, a trained model, a lab run)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

MIGRATIONS = [
    # 0 -> 1: records, their files, the keyword index
    """
    CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        domain TEXT NOT NULL,
        model TEXT NOT NULL,
        model_stem TEXT NOT NULL,
        weights_sha256 TEXT NOT NULL,
        settings_type TEXT NOT NULL,
        settings TEXT NOT NULL,
        seed INTEGER,
        prompt TEXT NOT NULL DEFAULT '',
        output TEXT NOT NULL DEFAULT '',
        content_hash TEXT NOT NULL,
        created REAL NOT NULL,
        duration REAL,
        version TEXT NOT NULL,
        rating INTEGER,
        tags TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT '',
        UNIQUE (owner, content_hash)
    );
    CREATE INDEX records_owner_created ON records (owner, created);
    CREATE TABLE files (
        record_id INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        label TEXT NOT NULL,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (record_id, role, label)
    );
    CREATE INDEX files_sha256 ON files (sha256);
    CREATE VIRTUAL TABLE records_fts USING fts5 (owner, prompt, output, tags, note, content='records', content_rowid='id');
    CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN
        INSERT INTO records_fts (rowid, owner, prompt, output, tags, note)
        VALUES (new.id, new.owner, new.prompt, new.output, new.tags, new.note);
    END;
    CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
        INSERT INTO records_fts (records_fts, rowid, owner, prompt, output, tags, note)
        VALUES ('delete', old.id, old.owner, old.prompt, old.output, old.tags, old.note);
    END;
    CREATE TRIGGER records_fts_update AFTER UPDATE OF owner, prompt, output, tags, note ON records BEGIN
        INSERT INTO records_fts (records_fts, rowid, owner, prompt, output, tags, note)
        VALUES ('delete', old.id, old.owner, old.prompt, old.output, old.tags, old.note);
        INSERT INTO records_fts (rowid, owner, prompt, output, tags, note)
        VALUES (new.id, new.owner, new.prompt, new.output, new.tags, new.note);
    END;
    """,
    # 1 -> 2: identical outputs counted, share tokens, embeddings, per-owner usage for the caps
    """
    ALTER TABLE records ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE records ADD COLUMN last_made REAL;
    ALTER TABLE records ADD COLUMN share_token TEXT;
    ALTER TABLE records ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE records SET last_made = created,
        bytes = (SELECT COALESCE(SUM(size), 0) FROM files WHERE files.record_id = records.id);
    CREATE UNIQUE INDEX records_share_token ON records (share_token) WHERE share_token IS NOT NULL;
    CREATE INDEX records_unrated ON records (owner, created) WHERE rating IS NULL;
    CREATE INDEX records_all_unrated ON records (created) WHERE rating IS NULL;
    CREATE TABLE embeddings (
        record_id INTEGER PRIMARY KEY REFERENCES records (id) ON DELETE CASCADE,
        vector BLOB NOT NULL
    );
    CREATE TABLE usage (owner TEXT PRIMARY KEY, records INTEGER NOT NULL, bytes INTEGER NOT NULL);
    INSERT INTO usage SELECT owner, COUNT(*), SUM(bytes) FROM records GROUP BY owner;
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO counters VALUES ('embedding_deletions', 0);
    CREATE TRIGGER usage_insert AFTER INSERT ON records BEGIN
        INSERT INTO usage VALUES (new.owner, 1, new.bytes)
        ON CONFLICT (owner) DO UPDATE SET records = records + 1, bytes = bytes + new.bytes;
    END;
    CREATE TRIGGER usage_delete AFTER DELETE ON records BEGIN
        UPDATE usage SET records = records - 1, bytes = bytes - old.bytes WHERE owner = old.owner;
    END;
    CREATE TRIGGER embeddings_delete AFTER DELETE ON embeddings BEGIN
        UPDATE counters SET value = value + 1 WHERE name = 'embedding_deletions';
    END;
    """,
    # 2 -> 3: what a record is: a generation (every record so far), a trained model or a lab run
    """
    ALTER TABLE records ADD COLUMN kind TEXT NOT NULL DEFAULT 'generation';
    CREATE INDEX records_owner_kind ON records (owner, kind, created);
    CREATE INDEX records_owner_last_made ON records (owner, last_made);
    """,
]
KINDS = ("generation", "model", "lab run")  # a record's kind; only a generation is made again by replay
SCHEMA_VERSION = len(MIGRATIONS)

COLUMNS = ("id, owner, domain, model, model_stem, weights_sha256, settings_type, settings, seed, prompt, output, "
           "content_hash, created, duration, version, rating, tags, note, count, last_made, share_token, bytes, kind")


def statements(script: str) -> list[str]:
    """A migration script split into statements (a trigger's body keeps its inner semicolons)."""
    statements, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


@dataclass
class Stored:
    """A record as read back from the store."""

    id: int
    owner: str
    domain: str
    model: str
    model_stem: str
    weights_sha256: str
    settings_type: str
    settings: str
    seed: int | None
    prompt: str
    output: str
    content_hash: str
    created: float
    duration: float | None
    version: str
    rating: int | None
    tags: str
    note: str
    count: int
    last_made: float
    share_token: str | None
    bytes: int
    kind: str = "generation"
    files: list[dict] = field(default_factory=list)  # {"role", "label", "name", "sha256", "size"}
    score: float = 0.0  # its rank score in a search

    def tag_list(self) -> list[str]:
        return [tag for tag in self.tags.split() if tag]
