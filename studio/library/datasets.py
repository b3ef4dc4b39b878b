"""A search result as a dataset: JSONL (one record per line) for people and other tools, and the
records' own output files in the form the domain trains from, for the Train tab ("train on my
five-star texts")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from studio.library.store import as_json

JSONL_KEYS = ("id", "kind", "domain", "model", "seed", "prompt", "output", "settings", "rating", "tags", "note")


def export_jsonl(hits, out) -> int:
    """One record per line: prompt, output, settings, model, rating, tags (and id, domain, seed, note)."""
    with open(out, "w", encoding="utf-8") as file:
        for record in hits:
            row = as_json(record)
            file.write(json.dumps({key: row[key] for key in JSONL_KEYS}, ensure_ascii=False) + "\n")
    return len(hits)


def export_training_files(store, hits, folder) -> dict[str, list[Path]]:
    """Copy each record's output files that its domain trains from (the suffixes of its TRAINING
    record) into folder/DOMAIN/, named by record id: {domain: [paths]} for `train DOMAIN --data` or
    the Train tab. Records whose domain is unknown here, or has no such file, are skipped."""
    from studio.domains import by_name

    folder = Path(folder)
    written: dict[str, list[Path]] = {}
    for record in hits:
        if record.kind != "generation":  # a model's card or a lab run's curves are not training data
            continue
        try:
            domain = by_name(record.domain)
        except ValueError:
            continue
        training = getattr(domain, "TRAINING", None)
        suffixes = set(training.suffixes) if training is not None else None
        for kept in store.with_files(record).files:  # a search's hits come without their files
            suffix = Path(kept["name"]).suffix.lower()
            if kept["role"] != "output" or (suffixes is not None and suffix not in suffixes):
                continue
            target = folder / record.domain / f"record-{record.id}-{kept['label']}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(store.file_path(kept["sha256"]), target)
            written.setdefault(record.domain, []).append(target)
    return written
