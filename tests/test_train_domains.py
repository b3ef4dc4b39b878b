"""Training every domain from a user's files: the zip reader (studio.limits.extract_zip), the
handwriting and speech readers of training data, `python -m studio train handwriting|speech --data`,
and jobs / the Train tab's data made in the page (drawings, recordings); tiny models, seconds of training."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from studio import jobs, limits
from studio.domains import ALL, handwriting, speech
from studio.domains.handwriting.data import render_phrase
from studio.domains.handwriting.train import read_samples
from studio.domains.speech.train import read_recordings

PHRASES = ["hello world", "the quick fox", "my own hand", "writing lines", "a small test", "good night"]  # six


def stroke_lines(count=6) -> list[tuple[list, str]]:
    """(strokes in pixel-like units, text) of short synthetic written lines."""
    rng = np.random.default_rng(0)
    return [([s * 3.0 + 50 for s in render_phrase(p, rng)], p) for p in PHRASES[:count]]


def stroke_zip(path: Path, count=6) -> Path:
    """JSON {strokes, text} files, and bare stroke lists with a name.txt beside them, zipped."""
    with zipfile.ZipFile(path, "w") as archive:
        for k, (strokes, text) in enumerate(stroke_lines(count)):
            points = [s.round(2).tolist() for s in strokes]
            if k % 2:
                archive.writestr(f"lines/{k}.json", json.dumps({"strokes": points, "text": text}))
            else:
                archive.writestr(f"lines/{k}.json", json.dumps(points))
                archive.writestr(f"lines/{k}.txt", text)
        archive.writestr("__MACOSX/lines/._0.json", "junk")
    return path


def tone(seconds=0.5, pitch=140.0, rate=22050) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * pitch * t) * np.sin(np.pi * t / seconds)).astype(np.float32)


def recordings_folder(folder: Path, count=5, rate=22050) -> Path:
    """name.wav (at another rate than the model's) + name.txt pairs."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        soundfile.write(str(folder / f"clip{k}.wav"), tone(0.4 + 0.05 * k, 120 + 20 * k, rate), rate)
        (folder / f"clip{k}.txt").write_text(PHRASES[k % len(PHRASES)], encoding="utf-8")
    return folder


# ---------------------------------------------------------------- the zip reader
def test_extract_zip_keeps_relative_paths_inside_the_folder_and_checks_caps(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x/one.json", "{}")
        z.writestr("x/one.txt", "hi")
        z.writestr("../../escape.json", "{}")
        z.writestr("__MACOSX/x/._one.json", "junk")
        z.writestr("notes.png", "png")
    found = limits.extract_zip(archive, tmp_path / "out", lambda n: n.endswith((".json", ".txt")))
    names = sorted(str(p.relative_to(tmp_path / "out")) for p in found)
    assert names == ["x/one.json", "x/one.txt"]  # side by side; a name climbing out (..) is never written
    assert not list(tmp_path.rglob("escape.json"))
    with pytest.raises(ValueError, match="holds no pictures"):
        limits.extract_zip(archive, tmp_path / "o2", lambda n: n.endswith(".gif"), what="pictures")
    with pytest.raises(ValueError, match="unzips to more than"):
        limits.extract_zip(archive, tmp_path / "o3", lambda n: True, max_bytes=3)
    broken = tmp_path / "b.zip"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        limits.extract_zip(broken, tmp_path / "o4", lambda n: True)


def test_every_domain_says_how_it_trains():
    for domain in ALL:
        training = domain.TRAINING
        assert training.what and training.suffixes and all(s == s.lower() for s in training.suffixes)
        assert all(isinstance(flag, str) for flag in training.shape_flags(jobs.PRESETS["tiny"]))
    assert handwriting.TRAINING.drawn is not None and speech.TRAINING.recorded is not None


# ---------------------------------------------------------------- readers
def test_stroke_files_with_transcripts_in_the_file_or_beside_it(tmp_path):
    samples, notes = read_samples([stroke_zip(tmp_path / "s.zip")], tmp_path / "scratch")
    assert sorted(s.text for s in samples) == sorted(PHRASES) and not notes
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([[[0, 0], [1, 1], [2, 0]]]), encoding="utf-8")
    ndjson = tmp_path / "q.ndjson"
    ndjson.write_text(json.dumps({"drawing": [[[0, 5, 10], [0, 5, 0]]], "text": "hi"}) + "\n", encoding="utf-8")
    samples, notes = read_samples([bare, ndjson], tmp_path / "scratch2")
    assert [s.text for s in samples] == ["hi"] and "without a transcript" in notes[0]
    with pytest.raises(ValueError, match="None of the stroke files has a transcript"):
        read_samples([bare], tmp_path / "scratch3")
    with pytest.raises(ValueError, match="not a stroke file"):
        read_samples([tmp_path / "photo.png"], tmp_path / "scratch4")


def test_recordings_from_a_folder_a_csv_and_a_zip(tmp_path):
    folder = recordings_folder(tmp_path / "clips", 4)
    found, _ = read_recordings([folder], tmp_path / "s1")
    assert [r.text for r in found] == [p for p in PHRASES[:4]]
    listing = tmp_path / "clips" / "list.csv"
    listing.write_text("file,text\nclip0.wav,First one!\nclip1.wav,\"Second, with a comma\"\n", encoding="utf-8")
    found, _ = read_recordings([listing, *sorted(folder.glob("*.wav"))], tmp_path / "s2")
    assert [r.text for r in found] == ["first one!", "second, with a comma", *PHRASES[2:4]]  # the list's text first
    bundle = tmp_path / "clips.zip"
    with zipfile.ZipFile(bundle, "w") as z:
        for path in folder.iterdir():
            if path.suffix != ".csv":
                z.write(path, f"set/{path.name}")
    assert len(read_recordings([bundle], tmp_path / "s3")[0]) == 4
    (folder / "clip0.txt").unlink()
    listing.unlink()
    found, notes = read_recordings([folder], tmp_path / "s4")
    assert len(found) == 3 and "without a transcript" in notes[0]
    lonely = tmp_path / "lonely.wav"
    lonely.write_bytes((folder / "clip1.wav").read_bytes())
    with pytest.raises(ValueError, match="No recording has a transcript"):
        read_recordings([lonely], tmp_path / "s5")


# ---------------------------------------------------------------- the command line
def test_cli_trains_handwriting_from_a_zip_and_fine_tunes_a_styled_model(tmp_path, run_cli):
    data = stroke_zip(tmp_path / "strokes.zip")
    out = tmp_path / "mine" / "mine"
    done = run_cli("train", "handwriting", "--data", data, "--out", out, "--minutes", "0.05", "--threads", "1",
                   "--hidden-size", "16", "--layers", "1", "--mixtures", "3", "--window-gaussians", "2",
                   "--progress", tmp_path / "progress.jsonl", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained: " in done.stdout
    loaded = handwriting.load(out)
    assert "the user's stroke files" in loaded.card["data"]["source"]
    result = handwriting.generate(loaded, handwriting.Settings(text="hi", max_points=40)).result
    assert len(result.offsets) > 0
    model, codec = handwriting.tiny(styles=2)
    handwriting.save(tmp_path / "styled", model, codec)
    tuned = tmp_path / "tuned"
    done = run_cli("train", "handwriting", "--data", data, "--init", tmp_path / "styled", "--hand", "print", "--out", tuned,
                   "--minutes", "0.05", "--threads", "1", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = handwriting.load(tuned)
    assert loaded.model.config.styles == 2 and loaded.model.config.hidden_size == 16
    assert loaded.card["data"]["style"] == "print" and loaded.codec.offset_scale == codec.offset_scale
    assert len(handwriting.generate(loaded, handwriting.Settings(text="hi", max_points=40)).result.offsets)
    few = run_cli("train", "handwriting", "--data", stroke_zip(tmp_path / "few.zip", 2), "--out", tmp_path / "x",
                  "--minutes", "0.05", timeout=60)
    assert few.returncode != 0 and "give at least" in few.stderr and "Traceback" not in few.stderr


def test_cli_trains_speech_from_a_folder_and_fine_tunes(tmp_path, run_cli):
    folder = recordings_folder(tmp_path / "clips", 5)
    out = tmp_path / "voice"
    done = run_cli("train", "speech", "--data", folder, "--out", out, "--minutes", "0.05", "--threads", "1",
                   "--hidden-size", "16", "--progress", tmp_path / "progress.jsonl", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained: " in done.stdout
    loaded = speech.load(out)
    result = speech.generate(loaded, speech.Settings(text="hi", max_steps=10, griffin_lim_iters=2)).result
    assert len(result.log_mel) > 0
    model, codec = speech.tiny()
    speech.save(tmp_path / "base", model, codec)
    done = run_cli("train", "speech", "--data", folder, "--init", tmp_path / "base", "--out", tmp_path / "tuned",
                   "--minutes", "0.05", "--threads", "1", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert speech.load(tmp_path / "tuned").model.config.hidden_size == model.config.hidden_size
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "a.wav").write_bytes((folder / "clip0.wav").read_bytes())
    failed = run_cli("train", "speech", "--data", bare, "--out", tmp_path / "y", "--minutes", "0.05", timeout=60)
    assert failed.returncode != 0 and "transcript" in failed.stderr and "Traceback" not in failed.stderr


# ---------------------------------------------------------------- jobs (the Train tab's work)
def wait(trainer, job_id, timeout=150):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = trainer.status(job_id)
        if status["status"] not in ("queued", "running"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"training {job_id} still running after {timeout} s")


def test_jobs_train_handwriting_from_drawings_and_speech_from_recordings(tmp_path, monkeypatch):
    """Drawings made on the pad and recordings made in the page become data files; uploads of
    name.wav and name.txt (each in its own upload folder, as gradio stores them) pair up."""
    monkeypatch.setattr(jobs, "JOBS_DIR", tmp_path / "jobs")
    made = []
    trainer = jobs.Trainer(tmp_path / "user-models", on_done=lambda job, stem: made.append(stem))
    folder = jobs.page_folder()
    drawings = []
    for strokes, text in stroke_lines(4):
        value = {"strokes": [np.c_[s, np.arange(len(s))].tolist() for s in strokes], "text": text}
        drawings.append(str(handwriting.TRAINING.drawn(value, folder)))
    with pytest.raises(ValueError, match="Type what you wrote"):
        handwriting.TRAINING.drawn({"strokes": [[[0, 0, 0], [1, 1, 5]]], "text": ""}, folder)
    job = trainer.submit(jobs.TrainRequest("handwriting", drawings, "my hand", "tiny", 0.05))
    assert job.command[job.command.index("--hidden-size") + 1] == "64"
    status = wait(trainer, job.id)
    assert status["status"] == "done", status["message"]
    assert "Handwriting tab" in status["message"] and [d["name"] for d in status["data"]][0] == "drawing-001.json"
    loaded = handwriting.load(job.out)
    assert len(handwriting.generate(loaded, handwriting.Settings(text="hi", max_points=30)).result.offsets)

    clips = recordings_folder(tmp_path / "clips", 4)
    uploads = []
    for k, path in enumerate(sorted(clips.iterdir())):  # each upload in a folder of its own
        (tmp_path / f"upload{k}").mkdir()
        uploads.append(str(tmp_path / f"upload{k}" / path.name))
        Path(uploads[-1]).write_bytes(path.read_bytes())
    recorded = speech.TRAINING.recorded((16000, (tone(0.5, 200, 16000) * 32767).astype(np.int16)), "Made in the page.",
                                        jobs.page_folder())
    job = trainer.submit(jobs.TrainRequest("speech", uploads + [str(p) for p in recorded], "my voice", "tiny", 0.05))
    assert len(list((job.folder / "recordings").glob("*.wav"))) == 5
    status = wait(trainer, job.id)
    assert status["status"] == "done", status["message"]
    assert len(speech.generate(speech.load(job.out), speech.Settings(text="hi", max_steps=8,
                                                                         griffin_lim_iters=2)).result.log_mel)
    assert made == [trainer.jobs[k].out for k in trainer.jobs]


def test_jobs_refuse_too_little_or_untranscribed_data(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "JOBS_DIR", tmp_path / "jobs")
    trainer = jobs.Trainer(tmp_path / "user-models")
    with pytest.raises(ValueError, match="give at least 4"):
        trainer.submit(jobs.TrainRequest("handwriting", [str(stroke_zip(tmp_path / "two.zip", 2))], "x", "tiny", 0.05))
    clips = recordings_folder(tmp_path / "clips", 2)
    with pytest.raises(ValueError, match="give at least 4"):
        trainer.submit(jobs.TrainRequest("speech", [str(p) for p in clips.iterdir()], "x", "tiny", 0.05))
    with pytest.raises(ValueError, match="No recording has a transcript"):
        trainer.submit(jobs.TrainRequest("speech", [str(clips / "clip0.wav")], "x", "tiny", 0.05))
    with pytest.raises(ValueError, match="not one of them"):
        trainer.submit(jobs.TrainRequest("smell", [str(clips / "clip0.wav")], "x", "tiny", 0.05))
    with pytest.raises(ValueError, match="not on this server"):
        trainer.submit(jobs.TrainRequest("speech", [], "x", "tiny", 0.05, corpus="tinyshakespeare.txt"))
    assert trainer.queue == []


# ---------------------------------------------------------------- through the page
@pytest.fixture(scope="module")
def studio(tmp_path_factory, serve):
    """The real app with one tiny handwriting model and an empty user models folder: (url, user folder)."""
    import app

    models_dir, user_dir = tmp_path_factory.mktemp("models"), tmp_path_factory.mktemp("user-models")
    model, codec = handwriting.tiny(seed=0)
    handwriting.save(models_dir / "tiny-hand", model, codec, {"data": {"source": "made by the test", "licence": "none"}})
    return serve(app.build_demo(models_dir, user_dir)), user_dir


@pytest.mark.browser
def test_train_handwriting_in_the_page_from_a_zip_and_a_drawing(studio, chromium_page, tmp_path):
    """Pick Handwriting, upload a zip of stroke files, add a word drawn on the pad, train a tiny model
    for a few seconds: it finishes with pictures of its gates, and joins the Handwriting tab's list."""
    from test_handwriting_ui import draw_word

    url, user_dir = studio
    page = chromium_page
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-domain").get_by_label("Handwriting").check()
    page.wait_for_selector("#train-pad .dp-canvas", state="visible")
    page.locator("#train-files input[type=file]").set_input_files(str(stroke_zip(tmp_path / "strokes.zip")))
    canvas = "#train-pad .dp-canvas"
    page.locator(canvas).scroll_into_view_if_needed()
    draw_word(page, canvas)
    page.wait_for_function("document.querySelector('#train-pad .dp-status').innerText.startsWith('4 strokes')")
    page.fill("#train-pad .dp-text", "hi")
    page.wait_for_timeout(300)
    page.click("#train-add-drawing")
    page.wait_for_function("document.querySelector('#train-made').innerText.includes('Added in the page: 1')",
                           timeout=20_000)
    page.fill("#train-name textarea", "my hand")
    page.get_by_label("tiny (1 × 64)").check()
    page.fill("#train-minutes input", "0.1")
    page.wait_for_timeout(500)
    page.click("#train-start")
    status = "#train-status .train-status"
    page.wait_for_function(f"['running', 'done'].includes(document.querySelector('{status}').dataset.status)",
                           timeout=60_000)
    page.wait_for_function(f"document.querySelector('{status}').dataset.status === 'done'", timeout=120_000)
    assert "Handwriting tab" in page.inner_text(status)
    page.wait_for_function("document.querySelectorAll('#train-gallery img').length >= 1", timeout=20_000)
    loaded = handwriting.load(user_dir / "my-hand")
    assert "drawing-001.json" in [d["name"] for d in loaded.card["data"]["files"]]
    page.get_by_role("tab", name="Handwriting").click()
    page.locator("input[aria-label='Model']:visible").click()
    page.get_by_role("option", name="my-hand").click()
