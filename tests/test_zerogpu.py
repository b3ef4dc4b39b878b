"""The app on ZeroGPU hardware (studio/gpu.py), with a stand-in `spaces` module whose GPU decorator records
each call (the real package exists only on Spaces): a training job goes through lent GPU calls, in slices
that resume one another, and goes on on the CPU when a call is refused for quota; a Generate click stays
on the CPU; a probe goes through a lent call. Without `spaces` every call is a plain one."""

from __future__ import annotations

import importlib
import pickle
import sys
import time
import types

import gradio as gr
import pytest

from studio import checkpoint, gpu, gpu_slices, jobs, train_progress
from studio.domains import text
from studio.domains.text.data import split_train_val
from studio.domains.text.model import make_card
from studio.domains.text.train import TextTask


class StandInSpaces:
    """What `spaces` offers the app: GPU(duration=S) decorates a function; each call is recorded (the
    function's name and its duration), its answer crosses back by pickle as on ZeroGPU, and calls after
    `refuse_after` are refused as ZeroGPU refuses a spent quota."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self.refuse_after: int | None = None

    def module(self) -> types.ModuleType:
        module = types.ModuleType("spaces")
        module.GPU = self.GPU
        return module

    def GPU(self, fn=None, duration=60):
        def decorate(function):
            def lent(*args, **kwargs):
                self.calls.append((function.__name__, duration))
                if self.refuse_after is not None and len(self.calls) > self.refuse_after:
                    raise gr.Error("You have exceeded your free GPU quota (120s requested vs. 31s left). Try again in 0:12:00",
                                   title="ZeroGPU quota exceeded")
                return pickle.loads(pickle.dumps(function(*args, **kwargs)))

            return lent

        return decorate(fn) if fn is not None else decorate


@pytest.fixture
def zero_gpu(monkeypatch):
    """studio.gpu as on a ZeroGPU Space, with the stand-in's decorator; as before afterwards."""
    stand_in = StandInSpaces()
    monkeypatch.setitem(sys.modules, "spaces", stand_in.module())
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    importlib.reload(gpu)
    assert gpu.available()
    yield stand_in
    monkeypatch.undo()
    importlib.reload(gpu)


def wait(trainer, job_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = trainer.status(job_id)
        if status["status"] not in ("queued", "running"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"training {job_id} still {trainer.status(job_id)['status']} after {timeout} s")


def steps_of(progress) -> list[int]:
    return [line["step"] for line in train_progress.read(progress) if "step" in line]


def test_without_spaces_a_long_call_is_a_plain_call():
    assert "spaces" not in sys.modules or not gpu.available()
    assert not gpu.available() and gpu.long_call(divmod, 7, 2) == (3, 1)


def test_the_app_trains_through_the_gpu_decorator_and_generates_without_it(zero_gpu, serve, tmp_path_factory, corpus, caplog):
    from gradio_client import Client

    import app

    models_dir, user_dir = tmp_path_factory.mktemp("models"), tmp_path_factory.mktemp("user-models")
    model, codec = text.tiny(seed=0)
    text.save(models_dir / "tiny", model, codec, {"data": {"source": "made by the test", "licence": "none"}})
    client = Client(serve(app.build_demo(models_dir, user_dir)), verbose=False)

    started = client.predict("start", "", "text", corpus * 30, None, "lent", "tiny", 0.06, "", api_name="/train")
    status, deadline = started, time.time() + 120
    while status["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
        status = client.predict("progress", started["job"], "", "", None, "", "", 0, "", api_name="/train")
    assert status["status"] == "done", status["message"]
    assert (user_dir / "lent.safetensors").is_file()
    assert zero_gpu.calls and all(call == ("lent_gpu_120s", 120) for call in zero_gpu.calls)  # the training's slices
    card = checkpoint.read_card(user_dir / "lent")
    assert "--slice-seconds" not in card["reproduce"] and "--resume" not in card["reproduce"]

    before = len(zero_gpu.calls)
    answer = client.predict("lent", "Twinkle", 30, 0.8, 0, 1.0, 1, api_name="/generate_text")
    assert "Twinkle" in open(answer[-1], encoding="utf-8").read()
    assert len(zero_gpu.calls) == before  # sampling for a click stays on the CPU

    with caplog.at_level("WARNING", logger="studio.gpu"):
        probed = client.predict("text", "tiny", corpus, None, "space", 5, api_name="/probe")
    assert probed["hits"] and zero_gpu.calls[before:] == [("lent_gpu_60s", 60)]  # an analysis borrows the GPU
    assert "runs on the CPU" not in caplog.text  # its arguments crossed over by pickle


def make_job(tmp_path, corpus, minutes: float) -> jobs.Job:
    """A tiny text job (as the Trainer makes them) without the Trainer."""
    data = tmp_path / "corpus.txt"
    data.write_text(corpus * 30, encoding="utf-8")
    out, progress = tmp_path / "models" / "sliced", tmp_path / "progress.jsonl"
    request = jobs.TrainRequest("text", [str(data)], "sliced", "tiny", minutes)
    return jobs.Job("test", request, tmp_path, out, jobs.command_for(request, [data], out, progress), [])


def test_a_training_longer_than_a_slice_runs_as_slices_that_continue_one_schedule(zero_gpu, tmp_path, corpus):
    job = make_job(tmp_path, corpus, minutes=0.08)  # 4.8 s of training in slices of 1 s
    outcome = gpu_slices.train_in_slices(job.command[3:], job.progress_path, tmp_path / "train.log", tmp_path / "stop",
                                  slice_seconds=1)
    log = (tmp_path / "train.log").read_text()
    assert outcome == "done", log
    assert len(zero_gpu.calls) >= 3 and set(zero_gpu.calls) == {("lent_gpu_60s", 60)}
    assert log.count("slice ended at step") == len(zero_gpu.calls) - 1
    steps = steps_of(job.progress_path)
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # each slice goes on from the last one's step
    lines = train_progress.read(job.progress_path)
    assert sum(1 for line in lines if line.get("done")) == 1  # one run, one end
    # one schedule: the learning rate, past its warmup, only decays (a slice starting over would warm up again)
    rates = [line["lr"] for line in lines if "lr" in line]
    peak = rates.index(max(rates))
    assert all(b <= a * 1.0001 for a, b in zip(rates[peak:], rates[peak + 1 :], strict=False)), rates
    spent = checkpoint.read_card(str(job.out) + ".resume")["resume"]
    assert spent["budget_seconds"] == pytest.approx(4.8) and spent["spent_seconds"] >= 4.8
    assert text.load(job.out).card["metrics"]["best_val_loss"] > 0


def test_a_spent_quota_moves_the_rest_of_the_training_to_the_cpu(zero_gpu, tmp_path, corpus, monkeypatch):
    monkeypatch.setattr(gpu, "SLICE_SECONDS", 1.0)
    zero_gpu.refuse_after = 1  # one slice on the GPU, then the quota is spent
    made = []
    trainer = jobs.Trainer(tmp_path / "user-models", on_done=lambda job, stem: made.append(stem))
    data = tmp_path / "essay.txt"
    data.write_text(corpus * 30, encoding="utf-8")
    job = trainer.submit(jobs.TrainRequest("text", [str(data)], "fallback", "tiny", 0.08))
    status = wait(trainer, job.id)
    assert status["status"] == "done", status["message"]
    assert zero_gpu.calls == [("lent_gpu_60s", 60)] * 2  # one slice ran, the next was refused
    log = (job.folder / "train.log").read_text()
    assert "slice ended at step" in log and "training goes on on the CPU" in log
    assert job.process is not None and job.process.returncode == 0  # the rest ran in the CPU process, resumed
    steps = steps_of(job.progress_path)
    assert steps == sorted(steps) and len(set(steps)) == len(steps) and made == [job.out]  # resumed, not restarted


def test_a_cancel_reaches_a_slice_through_its_stop_file(zero_gpu, tmp_path, corpus):
    trainer = jobs.Trainer(tmp_path / "user-models")
    data = tmp_path / "essay.txt"
    data.write_text(corpus * 30, encoding="utf-8")
    job = trainer.submit(jobs.TrainRequest("text", [str(data)], "stopped", "tiny", 2.0))
    deadline = time.time() + 60  # until it has validated once (a checkpoint exists)
    while not checkpoint.paths(job.out)[1].exists() and time.time() < deadline:
        time.sleep(0.2)
    trainer.cancel(job.id)
    status = wait(trainer, job.id, timeout=60)
    assert status["status"] == "done" and "Cancelled; the best checkpoint so far is kept" in status["message"]
    assert job.process is None and len(zero_gpu.calls) == 1  # stopped inside its one lent call
    assert any(line.get("interrupted") for line in train_progress.read(job.progress_path))


def test_integrated_gradients_borrow_the_gpu_and_answer_as_on_the_cpu(zero_gpu, text_loaded, caplog):
    from studio import explain
    from studio.ui.explain_panel import explanation

    generation = text.generate(text_loaded, text.Settings("Twinkle", 20))
    event = {"step": 12, "layer": 1, "unit": 3}
    with caplog.at_level("WARNING", logger="studio.gpu"):
        lent = explanation(text, text_loaded, generation, event, None, "integrated_gradients")
    assert zero_gpu.calls == [("lent_gpu_60s", 60)] and "runs on the CPU" not in caplog.text
    explanation(text, text_loaded, generation, event, None, "gradient_x_input")
    assert len(zero_gpu.calls) == 1  # the quick method stays on the CPU
    here = explain.explain_sequence(text, text_loaded, text.sequence_of(generation), 12, 1, 3, None, "integrated_gradients")
    assert lent["topk"] == here["topk"] and lent["saliency"] == pytest.approx(here["saliency"], abs=1e-6)
    assert next(text_loaded.model.parameters()).device.type == "cpu"  # the lent call had its own copy


def test_a_refused_analysis_runs_on_the_cpu(zero_gpu, caplog):
    zero_gpu.refuse_after = 0
    with caplog.at_level("WARNING", logger="studio.gpu"):
        assert gpu.long_call(divmod, 7, 2) == (3, 1)
    assert zero_gpu.calls == [("lent_gpu_60s", 60)] and "the GPU call was refused" in caplog.text
    with caplog.at_level("WARNING", logger="studio.gpu"):
        assert gpu.long_call(lambda x: x + 1, 1) == 2  # a lambda cannot be pickled to a lent call: it runs here
    assert len(zero_gpu.calls) == 1 and "cannot go to a GPU call" in caplog.text


def test_a_resumed_budget_goes_on_where_it_stopped_and_a_spent_one_starts_afresh(tmp_path, codec, corpus, model_factory):
    """studio.train with --minutes: a slice stops with the budget's clock in the resume state; resuming goes on
    with the time left (no second warmup); resuming a run that spent its budget starts a fresh schedule."""
    from studio.train import TrainConfig, train

    split = split_train_val(corpus)
    task = TextTask(codec.encode(split[0])[0], codec.encode(split[1])[0], 8, 32)
    config = TrainConfig(steps=100_000, lr=1e-2, eval_every=10_000, device="cpu", seed=0, minutes=0.02)  # 1.2 s
    out, card = tmp_path / "m", make_card(model_factory(codec.size), codec)
    first, second, third = [], [], []
    metrics = train(model_factory(codec.size), task, config, out=out, card=card, on_progress=first.append, slice_seconds=0.4)
    assert metrics["sliced"] and checkpoint.read_card(str(out) + ".resume")["resume"]["spent_seconds"] < 1.2
    metrics = train(model_factory(codec.size), task, config, out=out, card=card, resume=True, on_progress=second.append)
    assert "sliced" not in metrics and second[0].step == first[-1].step + 1
    assert second[0].lr <= first[-1].lr * 1.0001 and second[-1].lr == pytest.approx(config.lr * config.min_lr_ratio, rel=0.05)
    spent = checkpoint.read_card(str(out) + ".resume")["resume"]["spent_seconds"]
    assert spent >= 1.2 and spent < 1.2 + 0.6 + 0.5  # one budget, however it was cut
    train(model_factory(codec.size), task, config, out=out, card=card, resume=True, on_progress=third.append)
    assert third[0].step == second[-1].step + 1 and third[0].lr < 0.5 * config.lr  # a fresh warmup
