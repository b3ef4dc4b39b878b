"""Training jobs (studio/jobs.py), the /train endpoint and the Train tab, with tiny models trained on
text the tests make."""

from __future__ import annotations

import threading
import time
import zipfile
from pathlib import Path

import pytest

from studio import checkpoint, jobs
from studio.domains import text
from studio.domains.text.generate import TextSettings


def wait(trainer, job_id, timeout=120):
    """The job's status once it has ended."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = trainer.status(job_id)
        if status["status"] not in ("queued", "running"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"training {job_id} still {trainer.status(job_id)['status']} after {timeout} s")


@pytest.fixture
def essay(tmp_path, corpus) -> Path:
    path = tmp_path / "essay.txt"
    path.write_text(corpus * 30, encoding="utf-8")
    return path


@pytest.fixture
def trainer(tmp_path):
    made = []
    return jobs.Trainer(tmp_path / "user-models", on_done=lambda job, stem: made.append(stem)), made


def request(files, **kwargs) -> jobs.TrainRequest:
    return jobs.TrainRequest("text", [str(f) for f in files], **{"preset": "tiny", "minutes": 0.06, **kwargs})


def test_a_training_makes_a_model_that_loads_and_generates(trainer, essay):
    trainer, made = trainer
    job = trainer.submit(request([essay], name="My Essays!"))
    status = wait(trainer, job.id)
    assert status["status"] == "done", status["message"]
    assert made == [job.out] and job.out.name == "my-essays"
    loaded = text.load(job.out)
    assert loaded.card["data"]["files"][0]["name"] == "essay.txt" and len(loaded.card["data"]["files"][0]["sha256"]) == 64
    assert "essay.txt" in loaded.card["data"]["source"]
    generation = text.generate(loaded, TextSettings("Twinkle", 20))
    assert len(generation.result.text) == 20
    assert status["progress"] and any("val" in p for p in status["progress"]) and status["samples"]
    assert all(Path(p).is_file() for p in status["pictures"]) and len(status["files"]) == 2


def test_a_second_training_waits_in_line_and_cancel_keeps_the_best_checkpoint(trainer, essay):
    trainer, _ = trainer
    first = trainer.submit(request([essay], name="first", minutes=2))
    second = trainer.submit(request([essay], name="second"))
    assert trainer.status(second.id)["status"] == "queued" and trainer.status(second.id)["position"] >= 1
    deadline = time.time() + 60  # until the first has validated once (a checkpoint exists)
    while not checkpoint.paths(first.out)[1].exists() and time.time() < deadline:
        time.sleep(0.3)
    assert trainer.status(second.id)["status"] == "queued"  # one at a time
    trainer.cancel(first.id)
    status = wait(trainer, first.id)
    assert status["status"] == "done" and "Cancelled; the best checkpoint so far is kept" in status["message"]
    assert text.load(first.out).card["metrics"]["best_val_loss"] > 0
    assert wait(trainer, second.id)["status"] == "done"  # the queued one ran after it, not lost


def test_a_queued_training_can_be_cancelled_before_it_starts(trainer, essay):
    trainer, _ = trainer
    first = trainer.submit(request([essay], name="first", minutes=0.3))
    second = trainer.submit(request([essay], name="second"))
    assert trainer.cancel(second.id)["status"] == "cancelled"
    trainer.cancel(first.id)
    wait(trainer, first.id)
    assert trainer.status(second.id)["status"] == "cancelled" and not checkpoint.paths(second.out)[1].exists()


def test_a_cancel_after_the_queue_and_before_the_start_never_starts_it(trainer, essay, monkeypatch):
    """The worker has taken the job from the queue but not started its process: a cancel then
    used to fail (the job was 'queued' but not in the queue) or be lost (no process to signal)."""
    trainer, _ = trainer
    taken, release = threading.Event(), threading.Event()
    run = trainer._run

    def held(job):  # the worker holds the job here, between the queue and the process
        taken.set()
        release.wait(30)
        run(job)

    monkeypatch.setattr(trainer, "_run", held)
    job = trainer.submit(request([essay], name="held"))
    assert taken.wait(30)
    assert trainer.cancel(job.id)["status"] == "running"
    release.set()
    status = wait(trainer, job.id)
    assert status["status"] == "cancelled" and job.process is None and "before it started" in status["message"]


def test_bad_uploads_get_a_clear_message(trainer, tmp_path, essay, monkeypatch):
    trainer, _ = trainer
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00" * 400)
    short = tmp_path / "short.txt"
    short.write_text("too short", encoding="utf-8")
    nothing = tmp_path / "nothing.zip"
    with zipfile.ZipFile(nothing, "w") as archive:
        archive.writestr("picture.png", b"\x89PNG")
    not_zip = tmp_path / "broken.zip"
    not_zip.write_bytes(b"PK\x03\x04 not really")
    cases = {empty: "is empty", binary: "not a text file", short: "give at least", nothing: "holds no",
             not_zip: "not a readable zip"}
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message):
            trainer.submit(request([path]))
    with pytest.raises(ValueError, match="Upload at least one file"):
        trainer.submit(request([]))
    with pytest.raises(ValueError, match="between 0.05 and"):
        trainer.submit(request([essay], minutes=10_000))
    monkeypatch.setattr(jobs, "MAX_UPLOAD_MB", 0.001)
    with pytest.raises(ValueError, match="larger than 0.001 MB"):
        trainer.submit(request([essay]))
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.txt", "a" * 200_000)
    with pytest.raises(ValueError, match="unzips to more than"):
        trainer.submit(request([bomb]))
    assert trainer.queue == []


def test_a_zip_of_texts_is_one_corpus(trainer, tmp_path, corpus):
    trainer, _ = trainer
    bundle = tmp_path / "essays.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("a/one.txt", corpus * 15)
        archive.writestr("two.md", corpus * 15)
        archive.writestr("__MACOSX/.hidden.txt", "x")
    job = trainer.submit(request([bundle], minutes=0.05))
    assert [d["name"] for d in job.data] == ["one.txt", "two.md"]  # their own names; the hidden one left out
    trainer.cancel(job.id)
    wait(trainer, job.id)


def test_every_domain_trains_with_its_own_preset_flags(tmp_path):
    """The job list is studio.domains.ALL; a size preset becomes the domain's own shape flags, and
    fine-tuning gives none (the base model's shape is kept)."""
    from studio.domains import ALL

    assert jobs.DOMAINS == tuple(domain.NAME for domain in ALL)
    for domain in ALL:
        command = jobs.command_for(jobs.TrainRequest(domain.NAME, preset="tiny"), [tmp_path], tmp_path / "m", tmp_path / "p")
        assert command[command.index("train") + 1] == domain.NAME
        assert command[command.index("--hidden-size") + 1] == "64" and "--threads" in command
        tuned = jobs.command_for(jobs.TrainRequest(domain.NAME, base="models/x"), [tmp_path], tmp_path / "m", tmp_path / "p")
        assert tuned[-2:] == ["--init", "models/x"] and "--hidden-size" not in tuned


def test_names_are_made_safe_and_unique(tmp_path):
    assert jobs.safe_name("My Essays!", tmp_path) == "my-essays"
    (tmp_path / "my-essays.json").write_text("{}")
    assert jobs.safe_name("My Essays!", tmp_path) == "my-essays-2"
    assert jobs.safe_name("../../etc", tmp_path) == "etc" and jobs.safe_name("", tmp_path) == "mine"


# ---------------------------------------------------------------- through the app
@pytest.fixture(scope="module")
def studio(tmp_path_factory, serve):
    """The real app with one tiny text model and an empty user models folder: (url, user folder)."""
    import app

    models_dir, user_dir = tmp_path_factory.mktemp("models"), tmp_path_factory.mktemp("user-models")
    model, codec = text.tiny(seed=0)
    text.save(models_dir / "tiny", model, codec, {"data": {"source": "made by the test", "licence": "none"}})
    return serve(app.build_demo(models_dir, user_dir)), user_dir


def test_the_train_endpoint_starts_reports_and_its_model_generates(studio, corpus):
    from gradio_client import Client

    url, user_dir = studio
    client = Client(url, verbose=False)
    started = client.predict("start", "", "text", corpus * 30, None, "from the api", "tiny", 0.06, "", api_name="/train")
    assert started["status"] in ("queued", "running") and started["name"] == "from-the-api"
    deadline = time.time() + 120
    status = started
    while status["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
        status = client.predict("progress", started["job"], "", "", None, "", "", 0, "", api_name="/train")
    assert status["status"] == "done", status["message"]
    assert (user_dir / "from-the-api.safetensors").is_file()
    answer = client.predict("from-the-api", "Twinkle", 30, 0.8, 0, 1.0, 1, api_name="/generate_text")
    assert "Twinkle" in Path(answer[-1]).read_text(encoding="utf-8")  # the text download
    with pytest.raises(Exception, match="is empty|holds no text|Upload at least one"):
        client.predict("start", "", "text", "", None, "x", "tiny", 0.1, "", api_name="/train")
    with pytest.raises(Exception, match="No training"):
        client.predict("cancel", "nope", "", "", None, "", "", 0, "", api_name="/train")


@pytest.mark.browser
def test_upload_train_watch_and_generate_with_the_new_model(studio, chromium_page, tmp_path, corpus):
    """Upload a small text, train it for 30 s: the progress and the loss plot grow, samples and
    pictures of the gates appear; the model joins the Text tab's list and generates."""
    url, _ = studio
    data = tmp_path / "poems.txt"
    data.write_text(corpus * 30, encoding="utf-8")
    page = chromium_page
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-files input[type=file]").set_input_files(str(data))
    page.fill("#train-name textarea", "poems")
    page.get_by_label("tiny (1 × 64)").check()
    page.fill("#train-minutes input", "0.5")  # 30 s
    page.wait_for_timeout(500)
    page.click("#train-start")
    status = "#train-status .train-status"
    page.wait_for_function(f"document.querySelector('{status}').dataset.status === 'running'", timeout=60_000)
    page.wait_for_function(f"Number(document.querySelector('{status}').dataset.step) > 0", timeout=60_000)
    first = int(page.get_attribute(status, "data-step"))
    page.wait_for_function(f"Number(document.querySelector('{status}').dataset.step) > {first}", timeout=60_000)
    page.wait_for_function(f"document.querySelector('{status}').dataset.status === 'done'", timeout=120_000)
    page.wait_for_function("document.querySelectorAll('#train-gallery img').length >= 1", timeout=20_000)
    assert "Sample at step" in page.inner_text("#train-samples")
    assert page.locator("#train-loss canvas, #train-loss svg").count() >= 1
    page.get_by_role("tab", name="Text").click()
    page.locator("#text-model input").click()
    page.get_by_role("option", name="poems").click()
    page.get_by_label("Prompt", exact=False).fill("Twinkle")
    page.click("#text-generate")
    # the tab opened with its example drawn: wait for the new model's own trace
    page.wait_for_function("""() => { const v = document.querySelector('#text-viewer .lv-root');
        return v.dataset.ready === 'yes' && v.querySelector('.lv-status').innerText.includes('poems'); }""", timeout=60_000)


def test_music_from_midi_files_and_text_fine_tuned_with_new_characters(trainer, tmp_path, saved_text_model):
    """A music model from two uploaded MIDI files; a text model fine-tuned from a saved one on text
    with characters it never saw (the vocabulary grows, the model loads and generates them)."""
    from test_finetune import chorale

    from studio.domains import music

    trainer, _ = trainer
    midis = [chorale(tmp_path / f"piece{k}.mid", shift=k) for k in range(2)]
    job = trainer.submit(jobs.TrainRequest("music", [str(m) for m in midis], "tunes", "tiny", 0.06))
    status = wait(trainer, job.id)
    assert status["status"] == "done", status["message"]
    assert music.load(job.out).card["data"]["files"][1]["name"] == "piece1.mid"
    new_text = tmp_path / "new.txt"
    new_text.write_text("Zebras {quickly} jump over #42 fences; " * 80, encoding="utf-8")
    job = trainer.submit(jobs.TrainRequest("text", [str(new_text)], "tuned", minutes=0.06, base=str(saved_text_model)))
    status = wait(trainer, job.id)
    assert status["status"] == "done", status["message"]
    tuned = text.load(job.out)
    assert {"Z", "{", "#", "4"} <= set(tuned.codec.chars) and len(text.generate(tuned, TextSettings("Ze", 10)).result.text) == 10
