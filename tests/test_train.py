"""The generic trainer on a tiny text task: LR schedule, learning, best checkpoint, resume, DDP."""

from __future__ import annotations

import math
import time
from itertools import pairwise

import pytest
import torch

from studio import checkpoint
from studio.domains import text
from studio.domains.text.data import split_train_val
from studio.domains.text.evaluate import nats_per_char
from studio.domains.text.model import make_card
from studio.domains.text.train import TextTask
from studio.train import TrainConfig, learning_rate, resume_paths, train


# ---------------------------------------------------------------- learning-rate schedule
def test_learning_rate_warmup_then_cosine():
    config = TrainConfig(steps=110, lr=1e-2, warmup_steps=10, min_lr_ratio=0.1)
    rates = [learning_rate(step, config) for step in range(config.steps + 1)]
    # linear warmup from lr/warmup to the peak
    assert rates[0] == pytest.approx(1e-3)
    assert rates[4] == pytest.approx(5e-3)
    assert rates[9] == pytest.approx(1e-2)
    assert all(b > a for a, b in pairwise(rates[:10]))
    # cosine: peak right after warmup, half-way at the middle, lr * min_lr_ratio at the end
    assert rates[10] == pytest.approx(1e-2)
    assert rates[60] == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5))
    assert rates[110] == pytest.approx(1e-3)
    assert all(b <= a for a, b in pairwise(rates[10:]))
    assert min(rates[10:]) >= 1e-3 - 1e-12
    assert learning_rate(500, config) == pytest.approx(1e-3)  # stays at the floor past the end


def test_learning_rate_without_warmup():
    config = TrainConfig(steps=10, lr=1.0, warmup_steps=0, min_lr_ratio=0.0)
    assert learning_rate(0, config) == pytest.approx(1.0)
    assert learning_rate(5, config) == pytest.approx(0.5)
    assert learning_rate(10, config) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- training a tiny model
def make_task(codec, corpus, batch_size=8, seq_len=32):
    train_text, val_text = split_train_val(corpus)
    return TextTask(codec.encode(train_text)[0], codec.encode(val_text)[0], batch_size, seq_len)


def tiny_config(**kwargs) -> TrainConfig:
    return TrainConfig(**{"steps": 60, "lr": 2e-2, "warmup_steps": 5, "eval_every": 20, "device": "cpu", "seed": 0, **kwargs})


def test_trainer_lowers_loss_and_saves_best(tmp_path, codec, corpus, model_factory):
    model = model_factory(codec.size, hidden_size=32, num_layers=1)
    task = make_task(codec, corpus)
    out = tmp_path / "m"
    initial_val = nats_per_char(model, task.val_ids)
    assert initial_val == pytest.approx(math.log(codec.size), rel=0.1)  # random model: about uniform

    progress = []
    metrics = train(model, task, tiny_config(), out=out, card=make_card(model, codec, data={"file": "rhyme", "source": "a rhyme", "licence": "public domain"}), on_progress=progress.append)

    assert [p.step for p in progress] == list(range(1, 61))
    assert all(p.steps == 60 for p in progress)
    assert [p.step for p in progress if p.val_loss is not None] == [20, 40, 60]
    first = sum(p.loss for p in progress[:3]) / 3
    last = sum(p.loss for p in progress[-5:]) / 5
    assert last < 0.5 * first, (first, last)  # about 3.4 -> 0.4..0.8 nats
    assert progress[-1].best_val_loss < 0.5 * initial_val
    assert progress[0].lr == pytest.approx(2e-2 / 5)

    # best checkpoint: loads, card carries metrics + training config, metrics match a re-evaluation
    assert metrics["best_val_loss"] == pytest.approx(progress[-1].best_val_loss)
    reloaded = text.load(out)
    loaded, loaded_codec, card = reloaded.model, reloaded.codec, reloaded.card
    assert loaded_codec.chars == codec.chars
    assert card["metrics"]["best_val_loss"] == pytest.approx(metrics["best_val_loss"])
    assert card["metrics"]["best_step"] in (20, 40, 60)
    assert card["training"]["steps"] == 60 and card["training"]["lr"] == 2e-2
    assert card["data"]["file"] == "rhyme"
    assert nats_per_char(loaded, task.val_ids) == pytest.approx(card["metrics"]["best_val_loss"], rel=1e-5)

    # the resume state sits beside the model but is not offered as a model
    resume_card = checkpoint.read_card(resume_paths(out))
    assert resume_card["resume"]["step"] == 60
    assert checkpoint.list_models("text", tmp_path) == {"m": tmp_path / "m"}


def test_resume_continues_from_saved_step(tmp_path, codec, corpus, model_factory):
    out = tmp_path / "m"
    def small_model(seed):
        return model_factory(codec.size, hidden_size=32, num_layers=1, seed=seed)

    def config(steps):
        return tiny_config(steps=steps, eval_every=5, warmup_steps=2)

    card = make_card(small_model(0), codec)
    first_run = []
    train(small_model(1), make_task(codec, corpus), config(16), out=out, card=card, on_progress=first_run.append)
    assert first_run[-1].step == 16
    # the last resume state is written at the last step (16), after validation
    saved_tensors, saved_card = checkpoint.load(resume_paths(out))
    assert saved_card["resume"]["step"] == 16
    assert any(k.startswith("optim.") for k in saved_tensors)

    # resuming with nothing left to do restores the saved weights exactly
    restored = small_model(2)
    progress = []
    train(restored, make_task(codec, corpus), config(16), out=out, card=card, resume=True, on_progress=progress.append)
    assert progress == []
    for name, value in restored.state_dict().items():
        assert torch.equal(value, saved_tensors[f"model.{name}"]), name

    # resuming with more steps continues right after the saved step, with the weights loaded
    resumed = []
    metrics = train(small_model(3), make_task(codec, corpus), config(24), out=out, card=card, resume=True, on_progress=resumed.append)
    assert [p.step for p in resumed] == list(range(17, 25))
    assert resumed[0].lr == pytest.approx(learning_rate(16, config(24)))
    assert resumed[0].loss < first_run[0].loss - 0.4  # about 2.6 vs 3.4: a fresh model starts near log(V)
    assert resumed[0].best_val_loss == pytest.approx(first_run[-1].best_val_loss)
    assert metrics["best_val_loss"] <= first_run[-1].best_val_loss
    assert checkpoint.read_card(resume_paths(out))["resume"]["step"] == 24


def test_resume_without_saved_state_starts_at_zero(tmp_path, codec, corpus, model_factory):
    progress = []
    train(model_factory(codec.size), make_task(codec, corpus), tiny_config(steps=3, eval_every=3), out=tmp_path / "m", resume=True, on_progress=progress.append)
    assert [p.step for p in progress] == [1, 2, 3]


def test_train_without_output_saves_nothing(tmp_path, codec, corpus, model_factory, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metrics = train(model_factory(codec.size), make_task(codec, corpus), tiny_config(steps=2, eval_every=1))
    assert math.isfinite(metrics["best_val_loss"])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- DDP
@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path, corpus_file, run_cli):
    out = tmp_path / "m"
    result = run_cli(
        "--standalone", "--nproc_per_node=2", "-m", "studio", "train", "text",
        "--data", corpus_file, "--out", out, "--steps", "6", "--batch-size", "4", "--seq-len", "16",
        "--hidden-size", "16", "--eval-every", "3", "--device", "cpu",
        module=("-m", "torch.distributed.run"), timeout=300,  # slow only on a starved machine
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reloaded = text.load(out)
    model, card = reloaded.model, reloaded.card
    assert model.config.hidden_size == 16
    assert card["metrics"]["best_step"] in (3, 6)
    assert checkpoint.read_card(resume_paths(out))["resume"]["step"] == 6
    assert "best_val_nats_per_char:" in result.stdout


# ---------------------------------------------------------------- fitted to the machine and a time budget
def test_training_threads_fit_the_cores():
    from studio.train import training_threads

    assert training_threads(1) == 1 and training_threads(2) == 1  # two threads on two cores fight
    assert training_threads(4) == 2 and training_threads(64) == 8


def test_a_time_budget_fits_the_steps_and_ends_the_schedule_on_time(tmp_path, codec, corpus, model_factory):
    model = model_factory(codec.size, hidden_size=16, num_layers=1)
    progress = []
    started = time.perf_counter()
    metrics = train(model, make_task(codec, corpus), tiny_config(steps=10**6, minutes=0.03, warmup_steps=200, eval_every=10**6),
                    out=tmp_path / "m", card=make_card(model, codec), on_progress=progress.append)
    seconds = time.perf_counter() - started
    assert seconds < 0.03 * 60 + 5
    total = progress[-1].steps
    assert total < 10**6 and progress[-1].step == metrics["steps_done"] <= total
    assert progress[-1].val_loss is not None  # the last step validated and saved
    assert checkpoint.read_card(tmp_path / "m")["metrics"]["best_val_loss"] == pytest.approx(metrics["best_val_loss"])
    # the warmup was cut to a tenth of the fitted run, and the cosine nearly ran out by the end
    assert progress[-1].lr < 0.3 * 2e-2 and metrics["tokens_per_s"] > 0


def test_a_run_stopped_by_hand_keeps_what_it_learnt(tmp_path, codec, corpus, model_factory):
    model = model_factory(codec.size, hidden_size=16, num_layers=1)

    def stop_at_step_7(p):
        if p.step == 7:
            raise KeyboardInterrupt

    metrics = train(model, make_task(codec, corpus), tiny_config(eval_every=1000), out=tmp_path / "m",
                    card=make_card(model, codec), on_progress=stop_at_step_7)
    assert metrics["interrupted"] and metrics["steps_done"] == 7
    card = checkpoint.read_card(tmp_path / "m")
    assert card["metrics"]["best_step"] == 7 and math.isfinite(card["metrics"]["best_val_loss"])


def test_validation_at_least_every_checkpoint_seconds(tmp_path, codec, corpus, model_factory):
    model = model_factory(codec.size, hidden_size=16, num_layers=1)
    progress = []
    train(model, make_task(codec, corpus), tiny_config(steps=5, eval_every=1000, checkpoint_seconds=0.0), out=tmp_path / "m",
          on_progress=progress.append)
    assert [p.step for p in progress if p.val_loss is not None] == [1, 2, 3, 4, 5]
