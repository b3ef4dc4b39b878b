"""The "Why LSTM" lab (studio/lab): gradients against finite differences, matched parameter counts,
the no-forget LSTM's f held at 1, cancel keeping the curves, the CLI's lines, the job queue."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from studio.lab import cells as lab_cells
from studio.lab import explainer, gradients
from studio.lab.run import LabConfig, load_cell, run, save, summary_line
from studio.lab.tasks import TASKS, make_task

LINE = re.compile(r"^cell=(\S+) T=(\d+) loss=(\S+) baseline=(\S+) log10_grad_ratio=(\S+)$")


def tiny(kind, task, hidden=3, seed=0):
    return lab_cells.build((kind,), task.input_size, task.output_size, hidden, seed)[kind]


@pytest.mark.parametrize("kind", lab_cells.ALL_CELLS)
def test_gradient_norms_equal_finite_differences(kind):
    task = make_task("adding", 6)
    cell = tiny(kind, task)
    x, y = task.sample(2, torch.Generator().manual_seed(3))
    measured = gradients.measure(cell, task, x, y)
    exact = cell.double()
    x64, y64 = x.double(), y.double()
    eps = 1e-6

    def loss(inputs, nudge=None):
        with torch.no_grad():
            return float(task.loss(exact.unrolled(inputs, nudge)[0], y64))

    steps = task.length
    grad_x = np.zeros(x.shape)
    for index in np.ndindex(*x.shape):
        plus, minus = x64.clone(), x64.clone()
        plus[index] += eps
        minus[index] -= eps
        grad_x[index] = (loss(plus) - loss(minus)) / (2 * eps)
    by_k = np.linalg.norm(grad_x, axis=(0, 2))[::-1]  # k = 0 is the last step
    np.testing.assert_allclose(measured["x"], by_k, rtol=1e-5, atol=1e-10)
    hidden = exact.hidden_size
    for t in range(steps):
        grad_h = np.zeros((2, hidden))
        for b, u in np.ndindex(2, hidden):
            bump = torch.zeros(2, hidden, dtype=torch.float64)
            bump[b, u] = eps
            grad_h[b, u] = (loss(x64, {t: bump}) - loss(x64, {t: -bump})) / (2 * eps)
        assert measured["h"][steps - 1 - t] == pytest.approx(np.linalg.norm(grad_h), rel=1e-5, abs=1e-10)
    # the fused kernel (training) and the unrolled steps (measurement) are the same function
    with torch.no_grad():
        np.testing.assert_allclose(exact(x64).numpy(), exact.unrolled(x64)[0].numpy(), rtol=1e-10, atol=1e-12)
    ratio = math.log10(measured["x"][-1] / measured["x"][0])
    assert measured["ratio"] == pytest.approx(ratio)


@pytest.mark.parametrize("task_name", TASKS)
@pytest.mark.parametrize("hidden", [16, 64, 128])
def test_parameter_counts_match_within_five_percent(task_name, hidden):
    task = make_task(task_name, 20)
    built = lab_cells.build(lab_cells.CELLS, task.input_size, task.output_size, hidden)
    lstm = built["lstm"].parameters_count
    for kind, cell in built.items():
        assert cell.parameters_count == lab_cells.count(kind, task.input_size, cell.hidden_size, task.output_size)
        assert abs(cell.parameters_count - lstm) <= lab_cells.MATCH * lstm, (kind, cell.parameters_count, lstm)


def test_the_no_forget_lstm_holds_f_at_one_through_training():
    result = run(LabConfig(task="adding", length=12, cells=("lstm-nof", "lstm-fb0"), minutes=0.12, hidden=8,
                           checkpoints=1, eval_size=50))
    assert result["steps"] > 0
    cell = result["_models"]["lstm-nof"]
    task = make_task("adding", 12)
    trace = explainer.lab_trace(cell, task, explainer.example(task)[0])
    forget = trace.layers[0]["f"]
    assert np.all(forget == 1.0)  # exactly, in the fused kernel's own float32 trace
    c, i, g = trace.layers[0]["c"], trace.layers[0]["i"], trace.layers[0]["g"]
    np.testing.assert_allclose(c[1:], c[:-1] + i[1:] * g[1:], atol=1e-5)  # c_t = c_{t-1} + i_t g_t
    assert result["cells"]["lstm-nof"]["gradients"][-1]["forget_product"] == [1.0] * 12
    # the other ablation's forget gate does move, and its bias started at 0
    assert not np.all(explainer.lab_trace(result["_models"]["lstm-fb0"], task, explainer.example(task)[0]).layers[0]["f"] == 1.0)
    fresh = lab_cells.LabCell("lstm-fb0", 2, 8, 1).core.layers[0]
    assert float((fresh.bias_ih_l0 + fresh.bias_hh_l0)[8:16].abs().max().detach()) == 0.0
    fresh = lab_cells.LabCell("lstm", 2, 8, 1).core.layers[0]
    assert torch.equal(fresh.bias_ih_l0[8:16] + fresh.bias_hh_l0[8:16], torch.ones(8))


def test_a_vanished_gradient_is_a_large_negative_number_not_minus_infinity():
    task = make_task("adding", 300)
    cell = tiny("rnn", task, hidden=16)
    with torch.no_grad():
        cell.rnn.weight_hh_l0.mul_(0.05)
    x, y = task.sample(4, torch.Generator().manual_seed(0))
    measured = gradients.measure(cell, task, x, y)
    # dL/dx_1 is below float64's smallest number here: the measurement with the loss scaled finds it
    assert measured["x"][-1] == 0.0
    assert -620 < measured["ratio"] < -300 and not measured["floored"]
    shorter = make_task("adding", 200)
    cell = tiny("rnn", shorter, hidden=16)
    with torch.no_grad():
        cell.rnn.weight_hh_l0.mul_(0.1)
    milder = gradients.measure(cell, shorter, *shorter.sample(4, torch.Generator().manual_seed(0)))
    assert 0 < milder["x"][-1] < 1e-160  # a plain norm would have squared this to 0
    assert milder["ratio"] == pytest.approx(math.log10(milder["x"][-1] / milder["x"][0]))


def test_a_cancelled_lab_keeps_its_curves(tmp_path):
    seen = []

    def progress(line):
        seen.append(line)
        if sum("loss" in item and "checkpoint" not in item for item in seen) >= 2:
            raise KeyboardInterrupt  # as the job queue's cancel (SIGINT) arrives mid-training

    result = run(LabConfig(task="copy", length=10, cells=("rnn", "gru", "lstm"), minutes=1.0, hidden=8, eval_size=50),
                 progress)
    assert result["interrupted"]
    for cell in result["cells"].values():
        assert cell["curve"] and len(cell["gradients"]) >= 2 and math.isfinite(cell["loss"])
    path = save(result, tmp_path / "cancelled.json")
    kept = json.loads(path.read_text())
    assert kept["interrupted"] and kept["cells"]["lstm"]["curve"]
    assert load_cell(path, "lstm").hidden_size == 8


def test_ctrl_c_on_the_command_writes_the_json(run_cli, repo_root, tmp_path):
    out, progress = tmp_path / "run.json", tmp_path / "progress.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "studio", "lab", "--task", "adding", "--length", "20",
                                "--cells", "rnn,lstm", "--hidden", "8", "--minutes", "1", "--json", str(out),
                                "--progress", str(progress)], cwd=repo_root, stdout=subprocess.PIPE, text=True,
                               env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root)})
    deadline = time.time() + 60
    while time.time() < deadline and not (progress.exists() and '"steps"' in progress.read_text()):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0, stdout
    assert "interrupted" in stdout
    kept = json.loads(out.read_text())
    assert kept["interrupted"] and kept["cells"]["rnn"]["curve"] and kept["cells"]["lstm"]["gradients"]
    assert json.loads(progress.read_text().splitlines()[-1])["done"]


def test_the_command_prints_a_line_per_cell_and_keeps_the_curves(run_cli, tmp_path):
    out = tmp_path / "lab.json"
    done = run_cli("lab", "--task", "adding", "--length", "10", "--cells", "lstm,rnn,gru", "--hidden", "8",
                   "--minutes", "0.1", "--json", out, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("cell=")]
    assert [LINE.match(line).group(1) for line in lines] == ["rnn", "gru", "lstm"]
    for line in lines:
        name, length, loss, baseline, ratio = LINE.match(line).groups()
        assert length == "10" and float(loss) >= 0 and 0.05 < float(baseline) < 0.3 and math.isfinite(float(ratio))
    kept = json.loads(out.read_text())
    lstm = kept["cells"]["lstm"]
    assert lstm["curve"] and len(lstm["gradients"][0]["h"]) == 10 and len(lstm["gradients"][0]["forget_product"]) == 10
    assert kept["seconds"] < 0.1 * 60 + 5  # --minutes is the whole run's wall time
    assert summary_line("lstm", 10, lstm) in done.stdout


@pytest.mark.parametrize("args, words", [
    (["--cells", "rnn,lstmm"], "Unknown cell"),
    (["--length", "abc"], "whole number"),
    (["--length", "1"], "between 2 and 2,000"),
    (["--minutes", "0"], "--minutes"),
    (["--task", "quote", "--text", "/nonexistent.txt"], "not a file"),
])
def test_bad_input_gets_one_sentence(run_cli, args, words):
    done = run_cli("lab", *args, "--minutes" if "--minutes" not in args else "", *([] if "--minutes" in args else ["0.05"]))
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_every_task_makes_sequences_whose_baseline_is_the_constant_answers_loss():
    generator = torch.Generator().manual_seed(0)
    adding = make_task("adding", 50)
    x, y = adding.sample(4000, generator)
    assert x.shape == (4000, 50, 2) and torch.all(x[..., 1].sum(1) == 2)
    assert torch.all(x[:, :25, 1].sum(1) == 1)  # one mark in each half
    assert adding.baseline(y) == pytest.approx(1 / 6, abs=0.01)
    copy = make_task("copy", 20)
    x, y = copy.sample(500, generator)
    assert copy.baseline(y) == pytest.approx(math.log(8), abs=0.05)
    assert copy.labels(x[0])[-1] == "?" and copy.labels(x[0])[5] == "_"
    quote = make_task("quote", 40, "the quick brown fox jumps over the lazy dog. " * 60)
    x, y = quote.sample(500, generator)
    opened = (x.argmax(-1) == quote.input_size - 2).any(1)
    closed = (x.argmax(-1) == quote.input_size - 1).any(1)
    assert torch.equal(y[:, 0].bool(), opened & ~closed)
    assert quote.baseline(y) == pytest.approx(math.log(2), abs=0.01)
    with pytest.raises(ValueError, match="characters"):
        make_task("quote", 40, "too short")


def test_the_trained_lstm_opens_in_the_trace_viewer_with_ask_why():
    from studio import explain
    from studio.ui.payload import trace_payload

    task = make_task("adding", 16)
    cell = tiny("lstm", task, hidden=8)
    generation = explainer.generation(cell, task)
    trace = generation.trace
    assert trace.steps == 16 and trace.hidden_size == 8 and sum(label != "·" for label in trace.labels) == 2
    description, blob = trace_payload(trace, {"kind": "labels"})
    assert description["steps"] == 16 and blob
    scored, ex = generation.explained
    answer = explain.explain(scored.trace, ex, 15, 0, 3)
    assert len(answer["saliency"]) == 16 and answer["topk"][0]["token"].startswith("sum ")
    assert answer["anatomy"]["f"] == pytest.approx(float(trace.layers[0]["f"][15, 3]))


def test_the_job_queue_runs_a_lab_and_cancel_keeps_its_curves(tmp_path, monkeypatch):
    from studio import jobs

    monkeypatch.setattr(jobs, "JOBS_DIR", tmp_path / "jobs")
    trainer = jobs.Trainer(tmp_path / "models")
    out = tmp_path / "lab"
    job = trainer.submit_command("lab", ["lab", "--task", "adding", "--length", "20", "--cells", "rnn,lstm", "--hidden", "8",
                                         "--minutes", "1", "--json", str(out / "run.json")], out, 1)
    deadline = time.time() + 60
    while time.time() < deadline and not any("loss" in p for p in trainer.status(job.id)["progress"]):
        time.sleep(0.2)
    status = trainer.status(job.id)
    assert status["status"] == "running" and status["eta_seconds"] is not None
    trainer.cancel(job.id)
    while time.time() < deadline and trainer.status(job.id)["status"] == "running":
        time.sleep(0.2)
    kept = json.loads((out / "run.json").read_text())
    assert kept["interrupted"] and kept["cells"]["lstm"]["curve"]


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory, serve):
    """A page with the lab tab alone, on its own job queue."""
    import gradio as gr

    from studio import jobs
    from studio.lab import tab as lab_tab

    folder = tmp_path_factory.mktemp("lab")
    kept, jobs.JOBS_DIR = jobs.JOBS_DIR, folder / "jobs"  # this module's jobs only
    trainer = jobs.Trainer(folder / "models")
    with gr.Blocks() as demo:
        with gr.Tab("Why LSTM"):
            lab_tab.create_tab(trainer)
    yield serve(demo)
    jobs.JOBS_DIR = kept


def plot_source(page, elem_id: str) -> str:
    """What a gr.Plot shows now (its picture's source, or its markup where it is drawn inline)."""
    return page.evaluate(f"(() => {{ const el = document.querySelector('#{elem_id}'); const img = el && el.querySelector('img');"
                         f" return img ? img.src : (el ? el.innerHTML : ''); }})()")


@pytest.mark.browser
def test_the_tab_trains_three_cells_and_opens_the_lstm_in_the_viewer(lab_url, chromium_page, viewer):
    page = chromium_page
    page.goto(lab_url)
    page.get_by_role("tab", name="Why LSTM").click()
    page.fill("#lab-length input", "50")
    page.fill("#lab-minutes input", "0.35")
    page.wait_for_timeout(300)
    page.click("#lab-start")
    status = "#lab-status .lab-status"
    page.wait_for_function(f"document.querySelector('{status}').dataset.status === 'running'", timeout=60_000)
    page.wait_for_function("document.querySelector('#lab-loss img, #lab-loss svg') !== null", timeout=60_000)
    first_gradient = plot_source(page, "lab-gradient")
    page.wait_for_function(f"['done', 'cancelled'].includes(document.querySelector('{status}').dataset.status)",
                           timeout=120_000)
    page.wait_for_timeout(1500)  # the last tick's figures
    assert plot_source(page, "lab-gradient") != first_gradient  # the gradient plot followed the checkpoints
    assert "LSTM" in page.inner_text("#lab-table") and "tanh RNN" in page.inner_text("#lab-table")
    assert "LSTM" in page.inner_text("#lab-ratios")
    # replay: the slider goes back to initialisation and walks forward through the checkpoints
    page.click("#lab-replay")
    slider = "#lab-checkpoint input[type=number]"
    page.wait_for_function(f"Number(document.querySelector('{slider}').value) <= 1", timeout=30_000)
    page.wait_for_function(f"Number(document.querySelector('{slider}').value) >= 3", timeout=30_000)
    page.click("#lab-open")
    lab_viewer = viewer(page, "lab")
    lab_viewer.wait_ready()
    assert "LSTM on adding, T = 50" in page.inner_text("#lab-viewer .lv-status")
    # ask why at the last step: which inputs the answer came from, and the step's equations
    page.locator("#lab-viewer .lv-ch[data-step='49']").click()
    panel = "#lab-explain .ex-root"
    page.wait_for_function(f"document.querySelector('{panel}').dataset.step === '49'", timeout=30_000)
    assert page.locator(f"{panel} svg.ex-sal rect").count() == 50
    assert "sum " in page.inner_text(panel)


def test_the_lab_endpoint_starts_reports_and_refuses_in_a_sentence(lab_url):
    from gradio_client import Client

    client = Client(lab_url, verbose=False)
    started = client.predict("start", "adding", 10, "rnn,lstm", 0.1, "", api_name="/lab")
    deadline, status = time.time() + 120, {"status": "queued"}
    while status["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
        status = client.predict("status", "adding", 10, "", 0.1, started["job"], api_name="/lab")
    assert status["status"] == "done", status["message"]
    assert set(status["result"]["cells"]) == {"rnn", "lstm"} and status["result"]["cells"]["lstm"]["curve"]
    with pytest.raises(Exception, match="Unknown cell"):
        client.predict("start", "adding", 10, "lstn", 0.1, "", api_name="/lab")
    with pytest.raises(Exception, match="No lab run"):
        client.predict("status", "adding", 10, "", 0.1, "nope", api_name="/lab")


def test_the_sweep_fills_the_table_of_the_longest_t_learned(run_cli, tmp_path):
    from studio.lab.run import sweep

    result = sweep(LabConfig(task="adding", cells=("rnn", "lstm"), minutes=0.1, hidden=8, eval_size=50), [6, 3])
    assert result["lengths"] == [3, 6] and [row["T"] for row in result["runs"]] == [3, 6]
    for kind in ("rnn", "lstm"):
        learned = [row["T"] for row in result["runs"] if row["cells"][kind]["learned"]]
        assert result["longest"][kind] == (max(learned) if learned else None)
    done = run_cli("lab", "--task", "copy", "--sweep", "6,8", "--cells", "lstm", "--hidden", "8", "--minutes", "0.1",
                   timeout=120)
    assert done.returncode == 0, done.stderr
    assert [LINE.match(line).group(2) for line in done.stdout.splitlines() if line.startswith("cell=")] == ["6", "8"]
    assert re.search(r"^longest T learned: lstm=(\d+|none)$", done.stdout, re.MULTILINE)


def test_the_tab_queues_the_quote_task_on_an_uploaded_text(tmp_path, monkeypatch):
    from studio import jobs
    from studio.lab import service

    monkeypatch.setattr(jobs, "JOBS_DIR", tmp_path / "jobs")
    monkeypatch.setattr(service, "LAB_DIR", tmp_path / "lab")
    trainer = jobs.Trainer(tmp_path / "models")
    trainer.worker = type("Idle", (), {"is_alive": lambda self: True})()  # queued, never started here
    upload = tmp_path / "essay.txt"
    upload.write_text("Some words (and brackets) and \"quotes\" to read. " * 80, encoding="utf-8")
    job = service.start(trainer, "quote", 30, ["lstm", "rnn"], 0.5, str(upload))
    assert job.command[job.command.index("--cells") + 1] == "rnn,lstm"
    copied = job.command[job.command.index("--text") + 1]
    assert copied != str(upload) and open(copied, encoding="utf-8").read() == upload.read_text(encoding="utf-8")
    assert trainer.status(job.id)["status"] == "queued"
    for args, words in [(("adding", 1, "rnn", 1), "between 2"), (("adding", 10, "", 1), "at least one cell"),
                        (("adding", 10, "rnn", 99), "minutes"), (("quote", 30, "rnn", 1, str(tmp_path / "none.txt")), "file")]:
        with pytest.raises(ValueError, match=words):
            service.start(trainer, *args)


def test_the_sweep_table_names_the_longest_t_each_cell_learned():
    from studio.lab.tab import result_frame

    runs = [{"T": t, "cells": {"rnn": {"loss": 0.01 if t == 25 else 0.17, "learned": t == 25},
                               "lstm": {"loss": 0.001, "learned": True}}} for t in (25, 50)]
    frame = result_frame({"sweep": True, "result": {"runs": runs, "longest": {"rnn": 25, "lstm": 50}}})
    assert frame.set_index("cell").loc["LSTM", "longest T learned"] == 50
    assert frame.set_index("cell").loc["tanh RNN", "T=50"] == "0.17"
    assert frame.set_index("cell").loc["tanh RNN", "T=25"] == "0.01 ✓"
