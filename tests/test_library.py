"""The library (studio.library): records of every domain replay exactly, owners stay apart, an old
schema upgrades, a killed writer corrupts nothing, many writers at once succeed, ranks on a planted set."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from studio import library, owners
from studio.domains import ALL
from studio.library import records as records_module
from studio.library.records import Record
from studio.library.store import SCHEMA_VERSION, Caps, LibraryFull, NotFound, Store

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv(owners.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.delenv(owners.SHARED_ENV, raising=False)
    monkeypatch.delenv(owners.SPACE_ENV, raising=False)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """{domain name: stem} of a tiny saved model per domain."""
    folder = tmp_path_factory.mktemp("models")
    stems = {}
    for domain in ALL:
        model, codec = domain.tiny(seed=0)
        domain.save(folder / domain.NAME, model, codec, {"name": f"tiny-{domain.NAME}"})
        stems[domain.NAME] = folder / domain.NAME
    return stems


def make(domain, stem, seed=None):
    loaded = domain.load(stem)
    settings = domain.example()[1]
    if seed is not None:
        settings = _with_seed(settings, seed)
    return loaded, settings, domain.generate(loaded, settings)


def _with_seed(settings, seed):
    if hasattr(settings, "seed"):
        return dataclasses.replace(settings, seed=seed)
    for f in dataclasses.fields(settings):  # settings that keep the seed in a nested config
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value) and hasattr(value, "seed"):
            return dataclasses.replace(settings, **{f.name: dataclasses.replace(value, seed=seed)})
    return settings


def record(domain, stem, store, owner=owners.LOCAL, seed=None, tmp=None):
    loaded, settings, generation = make(domain, stem, seed)
    files = None
    if tmp is not None:
        tmp.mkdir(parents=True, exist_ok=True)
        files = domain.write_files(generation, tmp)
    return library.record_generation(domain, loaded, settings, generation, files, owner, stem=stem, store=store), generation


def synthetic(text: str, vector=None, model="m", domain="d", tags="") -> Record:
    """A record with no model behind it, for the store's own tests."""
    import hashlib

    return Record(domain=domain, model=model, model_stem="/nowhere/m", weights_sha256="0" * 64,
                  settings_type="x:y", settings="{}", seed=0, prompt="", output=text,
                  content_hash=hashlib.sha256((text + repr(vector) + tags).encode()).hexdigest(), duration=None,
                  embedding=None if vector is None else np.asarray(vector, np.float32))


# ---------------------------------------------------------------- every domain: record, search, replay
@pytest.mark.parametrize("domain", ALL, ids=lambda d: d.NAME)
def test_every_domain_records_and_replays_exactly(domain, tiny_models, tmp_path):
    store = Store(tmp_path / "lib.sqlite3")
    record_id, generation = record(domain, tiny_models[domain.NAME], store, seed=3, tmp=tmp_path / "out")
    kept = store.get(record_id, owners.LOCAL)
    assert kept.domain == domain.NAME and kept.seed == 3 and kept.count == 1
    assert kept.weights_sha256 == records_module.weights_sha256(tiny_models[domain.NAME])
    assert {f["role"] for f in kept.files} >= {"output"}
    for f in kept.files:
        assert store.file_path(f["sha256"]).stat().st_size == f["size"]
    word = (kept.prompt or kept.output).split()[0].strip(".,;:!?")
    assert record_id in [hit.id for hit in store.search(owners.LOCAL, word)]
    replayed = library.replay(record_id, owners.LOCAL, store)
    assert replayed.reproduced, replayed.why
    assert records_module.content_hash(domain, replayed.generation) == kept.content_hash


@pytest.mark.parametrize("domain", ALL, ids=lambda d: d.NAME)
def test_settings_survive_the_round_trip(domain):
    settings = domain.example()[1]
    text, blobs = records_module.encode_settings(settings)
    back, notes = records_module.decode_settings(text, blobs.__getitem__)
    assert notes == [] and type(back) is type(settings)
    assert records_module.encode_settings(back)[0] == text


def test_replay_says_the_model_changed(tiny_models, tmp_path):
    domain = ALL[0]
    stem = tmp_path / "changing"
    model, codec = domain.tiny(seed=0)
    domain.save(stem, model, codec, {"name": "changing"})
    store = Store(tmp_path / "lib.sqlite3")
    record_id, _ = record(domain, stem, store)
    model, codec = domain.tiny(seed=1)  # other weights under the same name
    domain.save(stem, model, codec, {"name": "changing"})
    replayed = library.replay(record_id, owners.LOCAL, store)
    assert not replayed.reproduced and "the model changed" in replayed.why
    for suffix in (".safetensors", ".json"):
        Path(str(stem) + suffix).unlink()
    replayed = library.replay(record_id, owners.LOCAL, store)
    assert not replayed.reproduced and "no longer" in replayed.why


def test_replay_finds_a_moved_model_by_name(tmp_path, monkeypatch):
    domain = ALL[0]
    model, codec = domain.tiny(seed=0)
    domain.save(tmp_path / "before" / "moving", model, codec, {"name": "moving"})
    store = Store(tmp_path / "lib.sqlite3")
    record_id, _ = record(domain, tmp_path / "before" / "moving", store)
    (tmp_path / "before").rename(tmp_path / "after")  # the studio's folder moved
    monkeypatch.setenv(owners.USER_MODELS_ENV, str(tmp_path / "after"))
    loads = []
    replayed = library.replay(record_id, owners.LOCAL, store,
                              load=lambda domain, stem: loads.append(stem) or domain.load(stem))
    assert replayed.reproduced, replayed.why
    assert loads == [tmp_path / "after" / "moving"]


def test_identical_outputs_are_kept_once_and_counted(tiny_models, tmp_path):
    domain = ALL[0]
    store = Store(tmp_path / "lib.sqlite3")
    first, _ = record(domain, tiny_models[domain.NAME], store, seed=5)
    again, _ = record(domain, tiny_models[domain.NAME], store, seed=5)
    other, _ = record(domain, tiny_models[domain.NAME], store, owner="someone-else", seed=5)
    assert first == again != other
    assert store.get(first, owners.LOCAL).count == 2 and store.usage(owners.LOCAL)[0] == 1


# ---------------------------------------------------------------- owners
def test_two_browsers_records_stay_apart(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv(owners.SHARED_ENV, "1")
    alice, bob = owners.owner_of(owners.new_key()), owners.owner_of(owners.new_key())
    assert alice != bob
    domain = ALL[0]
    store = Store(tmp_path / "lib.sqlite3")
    mine, _ = record(domain, tiny_models[domain.NAME], store, owner=alice, seed=1)
    theirs, _ = record(domain, tiny_models[domain.NAME], store, owner=bob, seed=2)
    word = store.get(mine, alice).output.split()[0]
    assert [hit.id for hit in store.search(alice, "")] == [mine]
    assert [hit.id for hit in store.search(bob, "")] == [theirs]
    assert mine not in [hit.id for hit in store.search(bob, word)]
    assert store.search(bob, like=theirs) == [] or mine not in [hit.id for hit in store.search(bob, like=theirs)]
    for refused in (lambda: store.get(mine, bob), lambda: store.rate(mine, bob, 5), lambda: store.set_tags(mine, bob, "x"),
                    lambda: store.set_note(mine, bob, "x"), lambda: store.delete(mine, bob),
                    lambda: store.share(mine, bob), lambda: library.replay(mine, bob, store),
                    lambda: store.search(bob, like=mine)):
        with pytest.raises(NotFound):
            refused()
    assert store.get(mine, alice).rating is None and store.usage(alice)[0] == 1
    token = store.share(mine, alice)  # a link: read-only, for anyone who has it
    assert store.by_token(token).id == mine
    assert library.replay_shared(token, store).reproduced
    store.unshare(mine, alice)
    with pytest.raises(NotFound):
        store.by_token(token)


def test_the_shared_server_setting(monkeypatch, tmp_path):
    monkeypatch.delenv(owners.SHARED_ENV, raising=False)
    monkeypatch.delenv(owners.SPACE_ENV, raising=False)
    assert not owners.shared_server() and owners.owner_of(None) == owners.LOCAL
    monkeypatch.setenv(owners.SPACE_ENV, "someone/studio")
    assert owners.shared_server()
    with pytest.raises(owners.OwnerError):
        owners.owner_of(None)
    with pytest.raises(owners.OwnerError):
        owners.owner_of("short")
    key = owners.new_key()
    assert owners.owner_of(key) == owners.owner_of(key) and key not in owners.owner_of(key)
    monkeypatch.setenv(owners.SHARED_ENV, "0")
    assert not owners.shared_server()
    monkeypatch.setenv(owners.SHARED_ENV, "maybe")
    with pytest.raises(owners.OwnerError):
        owners.shared_server()
    monkeypatch.setattr(owners, "SPACE_STORAGE", tmp_path / "no-persistent-storage")
    monkeypatch.delenv(owners.HOME_ENV, raising=False)
    assert "lost" in owners.storage_note()  # a Space without persistent storage
    (tmp_path / "no-persistent-storage").mkdir()
    assert owners.storage_note() == "" and owners.home() == tmp_path / "no-persistent-storage" / "lstm-studio"
    monkeypatch.setenv(owners.HOME_ENV, str(tmp_path / "h"))
    monkeypatch.delenv(owners.USER_MODELS_ENV, raising=False)
    assert owners.home() == tmp_path / "h" and owners.user_models_dir() == tmp_path / "h" / "models"
    monkeypatch.setenv(owners.USER_MODELS_ENV, str(tmp_path / "um"))
    assert owners.user_models_dir() == tmp_path / "um"


# ---------------------------------------------------------------- schema upgrade
V1_SCHEMA = """
CREATE TABLE records (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, domain TEXT NOT NULL, model TEXT NOT NULL,
    model_stem TEXT NOT NULL, weights_sha256 TEXT NOT NULL, settings_type TEXT NOT NULL, settings TEXT NOT NULL,
    seed INTEGER, prompt TEXT NOT NULL DEFAULT '', output TEXT NOT NULL DEFAULT '', content_hash TEXT NOT NULL,
    created REAL NOT NULL, duration REAL, version TEXT NOT NULL, rating INTEGER, tags TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '', UNIQUE (owner, content_hash));
CREATE INDEX records_owner_created ON records (owner, created);
CREATE TABLE files (record_id INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE, role TEXT NOT NULL,
    label TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (record_id, role, label));
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
PRAGMA user_version = 1;
"""


def test_a_first_version_library_upgrades_keeping_every_record(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    for k in range(5):
        db.execute("INSERT INTO records (owner, domain, model, model_stem, weights_sha256, settings_type, settings, seed, "
                   "prompt, output, content_hash, created, version, rating, tags) VALUES (?, 'd', 'm', '/m', ?, 'x:y', "
                   "'{}', ?, ?, ?, ?, ?, '0.1.0', ?, ?)",
                   ("alice" if k < 3 else "bob", "0" * 64, k, f"prompt {k}", f"old output number{k} kestrel",
                    f"hash{k}", 1000.0 + k, 5 if k == 0 else None, "kept" if k == 1 else ""))
        db.execute("INSERT INTO files VALUES (?, 'output', 'text', 'generated.txt', ?, ?)", (k + 1, f"sha{k}", 10 * (k + 1)))
    db.commit()
    db.close()
    store = Store(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    alice = store.search("alice", "", limit=10)
    assert sorted(r.id for r in alice) == [1, 2, 3] and [r.id for r in store.search("bob", "")] == [5, 4]
    assert all(r.count == 1 and r.last_made == r.created for r in alice)
    assert store.get(1, "alice").rating == 5 and store.get(2, "alice").tag_list() == ["kept"]
    assert [r.id for r in store.search("alice", "kestrel number2")] == [3]
    assert [r.id for r in store.search("alice", "kept")] == [2]
    assert store.usage("alice") == (3, 60) and store.usage("bob") == (2, 90)
    assert store.integrity() == "ok"
    assert {r.kind for r in alice} == {"generation"}  # every record made before kinds were kept is a generation
    new_id = store.add(synthetic("a new one", [1, 0]), "alice")  # the upgraded library takes new records
    assert store.usage("alice")[0] == 4 and store.get(new_id, "alice").count == 1
    store.close()
    assert Store(path).migrate() == SCHEMA_VERSION  # opening again changes nothing


def test_a_second_version_library_upgrades_keeping_every_record(tmp_path):
    """Version 2 (counts, share tokens, embeddings, usage) -> the current one: kinds added, nothing lost."""
    from studio.library.schema import MIGRATIONS, statements

    path = tmp_path / "v2.sqlite3"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        for statement in statements(script):
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    for k in range(4):
        db.execute("INSERT INTO records (owner, domain, model, model_stem, weights_sha256, settings_type, settings, "
                   "seed, prompt, output, content_hash, created, version, rating, count, last_made, share_token, bytes) "
                   "VALUES (?, 'd', 'm', '/m', ?, 'x:y', '{}', ?, ?, ?, ?, ?, '0.1.0', ?, ?, ?, ?, 10)",
                   ("alice" if k < 2 else "bob", "0" * 64, k, f"prompt {k}", f"second output osprey{k}", f"hash{k}",
                    1000.0 + k, 4 if k == 1 else None, k + 1, 2000.0 + k, "tok" if k == 0 else None))
        db.execute("INSERT INTO files VALUES (?, 'output', 'text', 'generated.txt', ?, 10)", (k + 1, f"sha{k}"))
        db.execute("INSERT INTO embeddings VALUES (?, ?)", (k + 1, np.asarray([1, k], np.float32).tobytes()))
    db.commit()
    db.close()
    store = Store(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    alice = store.search("alice", "", limit=10)
    assert sorted(r.id for r in alice) == [1, 2] and sorted(r.id for r in store.search("bob", "")) == [3, 4]
    assert [r.kind for r in alice] == ["generation", "generation"] and [r.count for r in sorted(alice, key=lambda r: r.id)] == [1, 2]
    assert store.by_token("tok").id == 1 and store.get(2, "alice").rating == 4
    assert [r.id for r in store.search("alice", "osprey1")] == [2]
    assert [r.id for r in store.search("alice", "", kind="generation")] == [2, 1]
    assert store.search("alice", "", kind="model") == []
    assert store.embedding(4) is not None and store.usage("bob") == (2, 20)
    assert store.last("alice").id == 2 and store.integrity() == "ok"


# ---------------------------------------------------------------- crashes and concurrency
WRITER = textwrap.dedent("""
    import hashlib, sys, tempfile
    from pathlib import Path
    import numpy as np
    from studio.library.records import Record
    from studio.library.store import Caps, Store
    store = Store(sys.argv[1], caps=Caps(0, 0, 0, 0))
    name, count = sys.argv[2], int(sys.argv[3])
    folder = Path(tempfile.mkdtemp())
    for k in range(count):
        text = f"{name} writes record {k} " + "lorem ipsum " * 20
        data = folder / "out.txt"
        data.write_text(text * 50)
        record = Record(domain="d", model="m", model_stem="/m", weights_sha256="0" * 64, settings_type="x:y",
                        settings="{}", seed=k, prompt=name, output=text,
                        content_hash=hashlib.sha256(text.encode()).hexdigest(), duration=None,
                        embedding=np.random.default_rng(k).standard_normal(16).astype(np.float32))
        record_id = store.add(record, "local", {"text": data})
        print(record_id, flush=True)
""")


def _writer(tmp_path, db, name, count):
    script = tmp_path / "writer.py"
    if not script.exists():  # once: a writer starting must not read it half rewritten
        script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(db), name, str(count)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_a_killed_writer_loses_nothing_committed(tmp_path):
    db = tmp_path / "lib.sqlite3"
    Store(db).close()
    committed = []
    for round_, wanted in enumerate((25, 40, 55)):  # killed three times, each somewhere in a write
        writer = _writer(tmp_path, db, f"victim{round_}", 100_000)
        for _ in range(wanted):
            line = writer.stdout.readline()
            assert line, writer.stderr.read()
            committed.append(int(line))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        writer.stderr.close()
        store = Store(db)
        assert store.integrity() == "ok"
        kept = {r.id for r in store.search(owners.LOCAL, "", limit=1_000_000)}
        assert set(committed) <= kept
        for record_id in committed:
            for f in store.get(record_id, owners.LOCAL).files:
                assert store.file_path(f["sha256"]).exists()
        store.sweep()  # files of the write that was cut off, if any
        assert store.usage(owners.LOCAL)[0] == len(kept)
        store.close()


def test_ten_writers_at_once(tmp_path):
    db = tmp_path / "lib.sqlite3"
    Store(db).close()
    writers = [_writer(tmp_path, db, f"writer{k}", 15) for k in range(10)]
    outputs = [writer.communicate(timeout=300) for writer in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
        assert len(out.split()) == 15
    store = Store(db)
    assert store.usage(owners.LOCAL)[0] == 150 and store.integrity() == "ok"
    assert len(store.search(owners.LOCAL, "writer7", limit=100)) == 15


# ---------------------------------------------------------------- ranks, caps
def test_keyword_and_similarity_ranks_on_a_planted_set(tmp_path):
    store = Store(tmp_path / "lib.sqlite3")
    ids = {}
    planted = {
        "twice": ("the falcon saw a falcon over the sea", [1.0, 0.0, 0.0]),
        "once": ("a falcon and many other words about the sea and the land and the sky", [0.9, 0.1, 0.0]),
        "none": ("nothing about birds here at all", [0.0, 1.0, 0.0]),
        "near": ("a sparrow at dawn", [0.99, 0.05, 0.0]),
        "far": ("a crow at dusk", [-0.2, 0.0, 1.0]),
        "other model": ("falcon falcon falcon", [1.0, 0.0, 0.0]),
    }
    for name, (text, vector) in planted.items():
        vector = np.asarray(vector, np.float32) / np.linalg.norm(vector)
        ids[name] = store.add(synthetic(text, vector, model="other" if name == "other model" else "m"), owners.LOCAL)
    keyword = [hit.id for hit in store.search(owners.LOCAL, "falcon", model="m")]
    assert keyword == [ids["twice"], ids["once"]]
    assert [hit.id for hit in store.search(owners.LOCAL, "falc*", model="m")] == keyword
    store.set_tags(ids["none"], owners.LOCAL, ["falcon"])
    assert ids["none"] in [hit.id for hit in store.search(owners.LOCAL, "falcon", model="m")]
    store.warm_vectors()
    like = [hit.id for hit in store.search(owners.LOCAL, like=ids["twice"])]
    assert like == [ids["near"], ids["once"], ids["none"], ids["far"]]  # the same model's only, nearest first
    both = [hit.id for hit in store.search(owners.LOCAL, "sea", like=ids["twice"])]
    assert both[0] == ids["once"]  # in both lists beats first in one
    store.rate(ids["far"], owners.LOCAL, 4)
    assert [hit.id for hit in store.search(owners.LOCAL, like=ids["twice"], min_rating=4)] == [ids["far"]]
    assert store.search(owners.LOCAL, '" AND ( NEAR') == []  # operators are plain words: no syntax error
    assert len(store.search(owners.LOCAL, "falcon", since=0)) == 4 and store.search(owners.LOCAL, "falcon", until=0) == []
    assert [hit.id for hit in store.search(owners.LOCAL, "falcon", model="other")] == [ids["other model"]]
    store.delete(ids["near"], owners.LOCAL)
    assert ids["near"] not in [hit.id for hit in store.search(owners.LOCAL, like=ids["twice"])]


def test_caps_remove_the_oldest_unrated_first(tmp_path):
    store = Store(tmp_path / "lib.sqlite3", caps=Caps(owner_records=3, owner_bytes=0, total_records=0, total_bytes=0))
    first = store.add(synthetic("one"), "a")
    second = store.add(synthetic("two"), "a")
    store.rate(first, "a", 5)
    store.add(synthetic("three"), "a")
    store.add(synthetic("four"), "a")  # full: the oldest unrated (two) goes, the rated one stays
    kept = {r.output for r in store.search("a", "")}
    assert kept == {"one", "three", "four"}
    with pytest.raises(NotFound):
        store.get(second, "a")
    for record in store.search("a", ""):
        store.rate(record.id, "a", 3)
    with pytest.raises(LibraryFull):
        store.add(synthetic("five"), "a")
    store.add(synthetic("b's own"), "b")  # another owner's cap is their own


def test_deleting_removes_files_no_other_record_names(tmp_path):
    store = Store(tmp_path / "lib.sqlite3")
    shared = tmp_path / "same.txt"
    shared.write_text("same bytes")
    first = store.add(synthetic("first"), "a", {"text": shared})
    second = store.add(synthetic("second"), "a", {"text": shared})
    path = store.file_path(store.get(first, "a").files[0]["sha256"])
    store.delete(first, "a")
    assert path.exists()
    store.delete(second, "a")
    assert not path.exists()


def test_a_moved_field_finds_its_new_place(monkeypatch):
    monkeypatch.setattr(records_module, "SETTINGS_MODULES", "")
    stored = {"__dataclass__": f"{__name__}:Before", "fields": {
        "prompt": "hi", "sampling": {"__dataclass__": f"{__name__}:Config", "fields": {"temperature": 0.5, "seed": 7}},
        "gone": 1}}
    settings, notes = records_module.decode_settings(json.dumps({**stored, "__dataclass__": f"{__name__}:After"}), None)
    assert settings == After(prompt="hi", sampling=Config(temperature=0.5), seed=7)
    assert notes == ["the setting 'gone' no longer exists and was left out"]


@dataclasses.dataclass
class Config:
    temperature: float = 1.0


@dataclasses.dataclass
class After:
    prompt: str = ""
    sampling: Config = dataclasses.field(default_factory=Config)
    seed: int = 0


# ---------------------------------------------------------------- command line
def test_the_command_line(tiny_models, tmp_path, capsys, home):
    from studio.__main__ import main

    domain = ALL[0]
    loaded, settings, generation = make(domain, tiny_models[domain.NAME], seed=3)
    parser = argparse.ArgumentParser()
    library.add_save_flag(parser)
    args = parser.parse_args(["--save"])
    record_id = library.save_after(args, domain, loaded, settings, generation, stem=tiny_models[domain.NAME])
    assert f"saved: {record_id}" in capsys.readouterr().err
    assert library.save_after(parser.parse_args([]), domain, loaded, settings, generation) is None
    output = library.open_store().get(record_id, owners.LOCAL).output
    word = output.split()[0]
    assert main(["library", "search", word]) == 0
    assert capsys.readouterr().out.split("\t")[0] == str(record_id)
    assert main(["library", "replay", str(record_id)]) == 0
    assert capsys.readouterr().out.strip().endswith("reproduced: yes")
    assert main(["library", "rate", str(record_id), "5"]) == 0
    assert main(["library", "tag", str(record_id), "good", "demo"]) == 0
    assert main(["library", "list", "--min-rating", "5"]) == 0
    assert capsys.readouterr().out.startswith(f"{record_id}\t")
    out = tmp_path / "five.jsonl"
    assert main(["library", "export", "--jsonl", str(out), "--min-rating", "5"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["output"] == output and rows[0]["rating"] == 5 and rows[0]["tags"] == ["good", "demo"]
    assert main(["library", "export", "--files", str(tmp_path / "data"), "--min-rating", "5"]) == 0
    assert list((tmp_path / "data" / domain.NAME).glob(f"record-{record_id}-*"))  # what the Train tab takes
    assert main(["library", "show", "999"]) == 2
    assert "No record 999" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["library", "sea", "x"])  # no abbreviations


# ---------------------------------------------------------------- API functions, HTML page
def test_the_api_keeps_browsers_apart(tiny_models, tmp_path, monkeypatch):
    from studio.library import api

    monkeypatch.setenv(owners.SHARED_ENV, "1")
    domain = ALL[0]
    alice, bob = api.new_key(), api.new_key()
    loaded, settings, generation = make(domain, tiny_models[domain.NAME], seed=4)
    record_id = library.record_generation(domain, loaded, settings, generation, None, owners.owner_of(alice),
                                          stem=tiny_models[domain.NAME])
    assert [hit["id"] for hit in api.search(alice)] == [record_id] and api.search(bob) == []
    assert api.rate(alice, record_id, 5)["rating"] == 5
    assert api.tag(alice, record_id, "nice, short")["tags"] == ["nice", "short"]
    for refused in (lambda: api.show(bob, record_id), lambda: api.rate(bob, record_id, 1),
                    lambda: api.delete(bob, record_id), lambda: api.replay(bob, record_id),
                    lambda: api.share(bob, record_id)):
        with pytest.raises(NotFound):
            refused()
    with pytest.raises(owners.OwnerError):
        api.search(None)
    token = api.share(alice, record_id)["token"]
    assert api.shared(token)["id"] == record_id and api.replay(token=token)["reproduced"]
    rows = api.export_jsonl(alice, min_rating=5).read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["rating"] == 5
    assert api.delete(alice, record_id) == {"deleted": record_id} and api.search(alice) == []


def _html_page(tiny_models, tmp_path) -> Path:
    from studio.library.html import export_html

    domain = ALL[0]
    store = Store(tmp_path / "lib.sqlite3")
    record_id, _ = record(domain, tiny_models[domain.NAME], store, tmp=tmp_path / "out")
    path = export_html(store, store.get(record_id, owners.LOCAL), tmp_path / "page.html")
    page = path.read_text()
    assert "reproduced exactly" in page and "data:application/octet-stream;base64," in page
    assert "lv-root" in page and "src=\"http" not in page and "gradio_api" not in page  # nothing from a server
    return path


def test_a_record_as_one_html_page(tiny_models, tmp_path):
    _html_page(tiny_models, tmp_path)


def test_the_html_page_draws_its_trace_from_disk(tiny_models, tmp_path, chromium_page):
    path = _html_page(tiny_models, tmp_path)
    errors = []
    chromium_page.on("pageerror", lambda error: errors.append(str(error)))
    chromium_page.goto(path.as_uri())
    chromium_page.wait_for_selector(".lv-root[data-ready=yes]", timeout=20_000)
    assert "steps" in chromium_page.inner_text(".lv-status") and errors == []


def test_an_input_file_is_kept_and_given_back(tmp_path, monkeypatch):
    monkeypatch.setattr(records_module, "SETTINGS_MODULES", "")
    upload = tmp_path / "style.json"
    upload.write_text('{"strokes": []}')
    settings = WithFile(style=str(upload), primer=np.arange(6, dtype=np.float32).reshape(3, 2))
    text, blobs = records_module.encode_settings(settings, {"style": upload})
    assert str(upload) not in text and len(blobs) == 1
    store = Store(tmp_path / "lib.sqlite3")
    rec = synthetic("with an input")
    rec.settings, rec.blobs, rec.inputs = text, blobs, {"style": upload}
    record_id = store.add(rec, "a")
    kept = {f["role"]: f for f in store.get(record_id, "a").files}
    assert set(kept) == {"input", "array"} and store.file_path(kept["input"]["sha256"]).read_text() == '{"strokes": []}'
    moved = tmp_path / "elsewhere.json"
    back, _ = records_module.decode_settings(text, lambda sha: store.file_path(sha).read_bytes(), {"style": moved})
    assert back.style == str(moved) and np.array_equal(back.primer, settings.primer)


@dataclasses.dataclass
class WithFile:
    style: str | None = None
    primer: np.ndarray | None = None


# ---------------------------------------------------------------- forecasts, trained models, lab runs
def test_a_forecast_keeps_its_series_file_and_replays(tiny_models, tmp_path, capsys):
    from studio.__main__ import main
    from studio.domains import timeseries
    from studio.domains.timeseries.data import example_series

    series = example_series(48)
    data = tmp_path / "sales.csv"
    data.write_text("Month,Sales\n" + "\n".join(f"{d},{v:.2f}" for d, v in zip(series.dates, series.values, strict=True)))
    stem = str(tiny_models[timeseries.NAME])
    assert main(["generate", "timeseries", "--data", str(data), "--model", stem, "--horizon", "6", "--paths", "20",
                 "--seed", "4", "--out", str(tmp_path / "f.json"), "--save"]) == 0
    record_id = int(capsys.readouterr().err.split("saved: ")[1].split()[0])
    kept = library.open_store().get(record_id, owners.LOCAL)
    assert kept.kind == "generation" and kept.seed == 4 and "6-step forecast from 20 sampled paths" in kept.output
    files = {(f["role"], f["label"]): f for f in kept.files}
    assert library.open_store().file_path(files["input", "series file"]["sha256"]).read_bytes() == data.read_bytes()
    assert ("output", "forecast (JSON)") in files and ("output", "forecast (CSV)") in files
    assert main(["library", "search", "forecast"]) == 0
    assert capsys.readouterr().out.split("\t")[0] == str(record_id)
    assert main(["library", "replay", str(record_id)]) == 0
    assert capsys.readouterr().out.strip().endswith("reproduced: yes")


def test_trainings_and_lab_runs_are_kept(tmp_path, capsys):
    from studio.__main__ import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question. " * 200)
    out = tmp_path / "models" / "mine"
    assert main(["train", "text", "--data", str(corpus), "--out", str(out), "--steps", "4", "--hidden-size", "8",
                 "--layers", "1", "--seed", "2"]) == 0
    assert main(["lab", "--task", "adding", "--length", "10", "--cells", "rnn,lstm", "--minutes", "0.01",
                 "--hidden", "4", "--checkpoints", "0", "--seed", "5"]) == 0
    capsys.readouterr()
    store = library.open_store()
    (model,) = store.search(owners.LOCAL, "", kind="model")
    (lab,) = store.search(owners.LOCAL, "", kind="lab run")
    assert model.domain == "text" and model.model == "mine" and model.seed == 2 and model.duration > 0
    assert model.weights_sha256 == records_module.weights_sha256(out) and "trained on corpus.txt" in model.output
    settings = json.loads(model.settings)
    assert settings["metrics"]["steps_done"] == 4 and settings["data"][0]["name"] == "corpus.txt"
    files = {(f["role"], f["label"]) for f in store.get(model.id, owners.LOCAL).files}
    assert files == {("input", "data 1"), ("output", "card")}
    assert lab.domain == "lab" and lab.seed == 5 and "cell=lstm T=10" in lab.output and lab.prompt == "adding T=10"
    assert {f["label"] for f in store.get(lab.id, owners.LOCAL).files} >= {"run (JSON)"}
    assert [hit.id for hit in store.search(owners.LOCAL, "trained corpus")] == [model.id]
    assert [hit.id for hit in store.search(owners.LOCAL, "lstm", kind="lab run")] == [lab.id]
    replayed = library.replay(model.id)
    assert not replayed.reproduced and "only generations are made again" in replayed.why
    assert main(["library", "rate", str(lab.id), "5"]) == 0 and main(["library", "tag", str(model.id), "mine"]) == 0
    assert main(["library", "list", "--kind", "lab run", "--min-rating", "5"]) == 0
    assert capsys.readouterr().out.startswith(f"{lab.id}\t")
    assert main(["library", "export", "--files", str(tmp_path / "data")]) == 0  # a card is not training data
    assert not (tmp_path / "data" / "text").exists()
    assert main(["library", "delete", str(model.id)]) == 0 and store.search(owners.LOCAL, "", kind="model") == []


def test_a_shared_servers_jobs_keep_their_owners_records(tmp_path, monkeypatch, tiny_models):
    from studio.library import events

    monkeypatch.setenv(owners.SHARED_ENV, "1")
    alice = owners.owner_of(owners.new_key())
    stem = tmp_path / "user-models" / alice / "hers"
    stem.parent.mkdir(parents=True)
    for path in records_module.weights_path(tiny_models["text"]).parent.glob("text.*"):
        (stem.parent / f"hers{path.suffix}").write_bytes(path.read_bytes())
    args = argparse.Namespace(out=str(stem), data=None, seed=1, progress=str(tmp_path / "p.jsonl"))
    metrics = {"best_val_loss": 1.5, "steps_done": 3}
    record_id = events.record_training("text", args, metrics, 1.0)
    assert library.open_store().get(record_id, alice).kind == "model"
    assert library.open_store().search(owners.LOCAL, "", kind="model") == []
    # a job in no owner's folder on a shared server is nobody's: not kept; the command line is the local owner's
    stray = argparse.Namespace(**{**vars(args), "out": str(tiny_models["text"])})
    assert events.record_training("text", stray, metrics, 1.0) is None
    assert events.record_training("text", argparse.Namespace(**{**vars(stray), "progress": None}), metrics, 1.0)
    lab = argparse.Namespace(task="adding", cells="lstm", seed=0, progress="p", library_owner=alice)
    lab_id = events.record_lab_run({"config": {"task": "adding", "length": 5, "cells": ["lstm"]}}, ["cell=lstm"], lab, 1.0)
    assert library.open_store().get(lab_id, alice).kind == "lab run"
    assert events.record_lab_run({"config": {}}, ["x"], argparse.Namespace(**{**vars(lab), "library_owner": None}),
                                 1.0) is None


def test_a_models_and_a_lab_runs_record_as_one_html_page(tmp_path, capsys):
    """A training with a progress file keeps its loss curve; its record's page is its card with the curve
    as inline SVG, a lab run's is its result table and loss figure; both name what they keep, offline."""
    from studio.__main__ import main
    from studio.library import events
    from studio.library.html import export_html

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question. " * 200)
    assert main(["train", "text", "--data", str(corpus), "--out", str(tmp_path / "mine"), "--steps", "30",
                 "--hidden-size", "8", "--layers", "1", "--seed", "2", "--progress", str(tmp_path / "p.jsonl")]) == 0
    (tmp_path / "train.log").write_text(capsys.readouterr().err)  # what a job's log holds (studio.jobs)
    model_id = events.saved_id(tmp_path / "train.log")
    assert main(["lab", "--task", "adding", "--length", "10", "--cells", "rnn,lstm", "--minutes", "0.01",
                 "--hidden", "4", "--checkpoints", "0", "--seed", "5"]) == 0
    lab_id = int(capsys.readouterr().err.split("saved: ")[-1].split()[0])
    store = library.open_store()
    model = store.get(model_id, owners.LOCAL)
    curve = json.loads(model.settings)["curve"]
    assert model.kind == "model" and [step for step, _ in curve["train"]][-1] == 30 and curve["val"][-1][0] == 30

    page = export_html(store, model, tmp_path / "model.html").read_text()
    assert "text model mine" in page and "<svg" in page and 'class="curve-train"' in page and 'class="curve-val"' in page
    assert "best_val_loss" in page and "corpus.txt" in page and records_module.weights_sha256(tmp_path / "mine") in page
    assert "Trained for" in page and 'download="mine.json"' in page and "src=\"http" not in page

    page = export_html(store, store.get(lab_id, owners.LOCAL), tmp_path / "lab.html").read_text()
    assert "Lab run: adding T=10, cells rnn, lstm" in page and "<th>log10_grad_ratio</th>" in page
    assert "<td>tanh RNN</td>" in page and "<td>LSTM</td>" in page and 'src="data:image/png;base64,' in page
    assert events.saved_id(tmp_path / "no-such.log") is None


def test_a_jobs_record_is_found_once_it_has_ended(tmp_path):
    """The Train and lab tabs' keep bar: a job's record is the last `saved: ID` of its log, once it ended."""
    from types import SimpleNamespace

    from studio.ui.keep_bar import job_record

    job = SimpleNamespace(status="running", folder=tmp_path)
    trainer = SimpleNamespace(jobs={"j1": job})
    (tmp_path / "train.log").write_text("step 1\nsaved: 41\n")
    assert job_record(trainer, "j1") == (False, None)
    job.status = "done"
    (tmp_path / "train.log").write_text("step 1\nsaved: 41\nsaved: 42\nbest_val: 1.0\n")
    assert job_record(trainer, "j1") == (True, 42)
    job.status = "failed"
    (tmp_path / "train.log").write_text("error: no data\n")
    assert job_record(trainer, "j1") == (True, None) and job_record(trainer, "nope") == (True, None)
