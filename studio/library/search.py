"""Searching the library: keywords (FTS5, bm25), "more like this" (cosine over embeddings held in
memory, a numpy scan) and both fused by reciprocal rank fusion (docs/library.md, Search)."""

from __future__ import annotations

import threading

import numpy as np

from studio.library.schema import COLUMNS, Stored

RRF_K = 60  # reciprocal rank fusion: a hit's score is the sum of 1 / (RRF_K + rank) over the ranked lists
SIMILAR_CANDIDATES = 2_000  # the nearest vectors that filters (rating, date, ...) are then applied to
RANKED_MATCHES = 5_000  # keyword search ranks at most the newest this many matches (and 4 x the limit)


def fts_query(text: str) -> str:
    """A user's words as an FTS5 query: every word must occur (a trailing * keeps its prefix meaning);
    quotes and operators are taken as plain text, so no input is a syntax error."""
    terms = []
    for word in text.split():
        prefix = word.endswith("*") and len(word) > 1
        word = word.rstrip("*") if prefix else word
        terms.append('"' + word.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(terms)


def search(store, owner: str, query: str = "", *, like: int | None = None, domain: str | None = None,
           model: str | None = None, min_rating: int | None = None, since: float | None = None,
           until: float | None = None, limit: int = 50, kind: str | None = None) -> list[Stored]:
    """The owner's records, best first. `query`: keyword search (FTS5 bm25 over prompt, output, tags,
    note, weighted 2, 1, 4, 2: what the user wrote about an output counts more than its text); `like`:
    a record id whose output the hits should resemble (cosine of the embeddings, among records of the
    same model); both: one list by reciprocal rank fusion; neither: newest first. Filters narrow
    every list."""
    filters, args = ["r.owner = ?"], [owner]
    for column, value in (("r.domain", domain), ("r.model", model), ("r.kind", kind)):
        if value:
            filters.append(f"{column} = ?")
            args.append(value)
    if min_rating is not None:
        filters.append("r.rating >= ?")
        args.append(int(min_rating))
    if since is not None:
        filters.append("r.created >= ?")
        args.append(float(since))
    if until is not None:
        filters.append("r.created < ?")
        args.append(float(until))
    where = " AND ".join(filters)
    columns = ", ".join("r." + c.strip() for c in COLUMNS.split(","))
    lists: list[list[tuple[int, float]]] = []
    if query.strip():
        quoted = owner.replace('"', '""')
        match = f'owner : "{quoted}" AND ({fts_query(query)})'
        # bm25 is computed for every match it orders; the newest RANKED_MATCHES matches (found in
        # rowid order, without scoring) bound that work when a word occurs in nearly every record
        ranked_matches = max(RANKED_MATCHES, 4 * limit)
        cutoff = store.db.execute("SELECT rowid FROM records_fts WHERE records_fts MATCH ? ORDER BY rowid DESC "
                                 "LIMIT 1 OFFSET ?", (match, ranked_matches - 1)).fetchone()
        rows = store.db.execute(
            f"SELECT r.id, bm25(records_fts, 0.0, 2.0, 1.0, 4.0, 2.0) AS rank FROM records_fts "
            f"JOIN records r ON r.id = records_fts.rowid WHERE records_fts MATCH ? AND records_fts.rowid >= ? "
            f"AND {where} ORDER BY rank LIMIT ?",
            [match, cutoff[0] if cutoff else 0, *args, max(limit, 1) * 4]).fetchall()
        lists.append([(row[0], -row[1]) for row in rows])
    if like is not None:
        target = store.get(like, owner)
        vector = store.embedding(target.id)
        nearest = store._vectors.nearest(store, vector, owner, target.model,
                                         SIMILAR_CANDIDATES) if vector is not None else []
        nearest = [(record_id, score) for record_id, score in nearest if record_id != target.id]
        if nearest and len(filters) > 1:
            # NOT INDEXED: look the candidates up by id (the owner index would scan all the owner's rows)
            ids = [record_id for record_id, _ in nearest]
            allowed = {row[0] for row in store.db.execute(
                f"SELECT r.id FROM records r NOT INDEXED WHERE r.id IN ({','.join('?' * len(ids))}) AND {where}",
                [*ids, *args])}
            nearest = [(record_id, score) for record_id, score in nearest if record_id in allowed]
        lists.append(nearest[:max(limit, 1) * 4])
    if not lists:
        rows = store.db.execute(f"SELECT {columns} FROM records r WHERE {where} ORDER BY r.created DESC, r.id DESC "
                               "LIMIT ?", [*args, limit]).fetchall()
        return [Stored(*row) for row in rows]
    if len(lists) == 1:
        ranked = lists[0][:limit]
    else:
        fused: dict[int, float] = {}
        for ranking in lists:
            for rank, (record_id, _) in enumerate(ranking):
                fused[record_id] = fused.get(record_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        ranked = sorted(fused.items(), key=lambda item: -item[1])[:limit]
    if not ranked:
        return []
    by_id = {record.id: record for record in store._read(
        f"id IN ({','.join('?' * len(ranked))})", [record_id for record_id, _ in ranked])}
    hits = []
    for record_id, score in ranked:
        if record_id in by_id:
            by_id[record_id].score = float(score)
            hits.append(by_id[record_id])
    return hits


class VectorCache:
    """Every embedding in memory, one matrix per (owner, model): "more like this" is one matrix-vector
    product over the owner's records of the same model. New rows are read by id; after a deletion
    (a counter the delete trigger bumps) everything is read again."""

    def __init__(self):
        self.lock = threading.Lock()
        self.last_id = 0
        self.deletions = -1
        self.pending: dict[tuple, tuple[list, list]] = {}  # (owner, model) -> (ids, vectors) not yet stacked
        self.groups: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # (owner, model) -> (ids, matrix)

    def refresh(self, store) -> None:
        deletions = store.db.execute("SELECT value FROM counters WHERE name = 'embedding_deletions'").fetchone()[0]
        if deletions != self.deletions:
            self.__init__()
            self.deletions = deletions
        rows = store.db.execute("SELECT e.record_id, e.vector, r.owner, r.model FROM embeddings e "
                                "JOIN records r ON r.id = e.record_id WHERE e.record_id > ? ORDER BY e.record_id",
                                (self.last_id,)).fetchall()
        for record_id, blob, owner, model in rows:
            ids, vectors = self.pending.setdefault((owner, model), ([], []))
            ids.append(record_id)
            vectors.append(np.frombuffer(blob, np.float32))
            self.last_id = record_id

    def matrix(self, key) -> tuple[np.ndarray, np.ndarray] | None:
        if key in self.pending:
            ids, vectors = self.pending.pop(key)
            lengths = {len(v) for v in vectors}
            if key in self.groups:
                lengths.add(self.groups[key][1].shape[1])
            if len(lengths) > 1:  # a model file replaced by one of another size under the same name
                length = len(vectors[-1])
                keep = [k for k, v in enumerate(vectors) if len(v) == length]
                ids, vectors = [ids[k] for k in keep], [vectors[k] for k in keep]
                self.groups.pop(key, None)
            new_ids, new_rows = np.array(ids, np.int64), np.stack(vectors)
            if key in self.groups:
                old_ids, old_rows = self.groups[key]
                new_ids, new_rows = np.concatenate([old_ids, new_ids]), np.concatenate([old_rows, new_rows])
            self.groups[key] = (new_ids, new_rows)
        return self.groups.get(key)

    def nearest(self, store, vector: np.ndarray, owner: str, model: str, count: int) -> list[tuple[int, float]]:
        with self.lock:
            self.refresh(store)
            group = self.matrix((owner, model))
        if group is None or group[1].shape[1] != len(vector):
            return []
        ids, matrix = group
        scores = matrix @ vector
        if len(scores) > count:
            top = np.argpartition(-scores, count)[:count]
            top = top[np.argsort(-scores[top])]
        else:
            top = np.argsort(-scores)
        return [(int(ids[k]), float(scores[k])) for k in top]
