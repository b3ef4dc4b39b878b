"""The command line, run as users run it: `python -m studio COMMAND DOMAIN ...` in a subprocess
from the repository root (derived from this file, so it works in any clone)."""

from __future__ import annotations

import re

import pytest
import torch

from studio import checkpoint
from studio.domains import ALL, text
from studio.domains.text.data import split_train_val
from studio.domains.text.evaluate import nats_per_char
from studio.domains.text.generate import TextSettings
from studio.sampling import SamplingConfig
from studio.trace import Trace

FLOAT = r"[0-9]+\.[0-9]+"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus, run_cli):
    """A tiny model trained through the CLI once for this module: (stem, corpus path, process)."""
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "rhyme.txt"
    data.write_text(corpus, encoding="utf-8")
    stem = folder / "models" / "tiny"
    result = run_cli(
        "train", "text", "--data", data, "--out", stem, "--steps", "6", "--batch-size", "4", "--seq-len", "16",
        "--hidden-size", "16", "--embed-size", "8", "--eval-every", "3", "--warmup-steps", "2", "--device", "cpu",
    )
    return stem, data, result


def test_train(trained):
    stem, data, result = trained
    assert result.returncode == 0, result.stderr[-3000:]
    *_, best, last = result.stdout.strip().splitlines()
    assert re.fullmatch(rf"best_val_nats_per_char: {FLOAT}", best)
    assert re.fullmatch(rf"trained: steps=6 tokens_per_s=[0-9]+ best_val={FLOAT} out={re.escape(str(stem))}", last)
    assert re.search(rf"step 3: train_loss {FLOAT} val_nats_per_char {FLOAT}", result.stdout)
    loaded = text.load(stem)
    model, codec, card = loaded.model, loaded.codec, loaded.card
    assert loaded.name == "tiny"
    assert model.config.hidden_size == 16 and model.config.embed_size == 8 and model.config.num_layers == 2
    assert codec.chars == "".join(sorted(set(data.read_text())))
    assert card["metrics"]["best_step"] in (3, 6)
    assert card["hyperparameters"] == {"batch_size": 4, "seq_len": 16}
    assert card["training"]["steps"] == 6
    assert card["reproduce"].startswith("python -m studio train text --data ")
    assert card["data"]["file"] == "rhyme.txt" and card["data"]["characters"] == len(data.read_text())
    assert card["name"] == "tiny" and card["parameters"] == sum(p.numel() for p in model.parameters())
    assert "2-layer LSTM with 16 units" in card["description"]
    assert card["metrics"]["val_nats_per_char"] == round(card["metrics"]["best_val_loss"], 4)
    assert checkpoint.list_models("text", stem.parent) == {"tiny": stem}


def test_generate_to_file(trained, tmp_path, run_cli):
    stem, _, _ = trained
    out, trace_out = tmp_path / "out.txt", tmp_path / "gen.npz"
    result = run_cli(
        "generate", "text", "--model", stem, "--prompt", "Twin€kle", "--length", "40", "--temperature", "0.9",
        "--top-k", "5", "--seed", "11", "--out", out, "--trace-out", trace_out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == ""  # the text went to the file
    assert "note:" in result.stderr and "'€'" in result.stderr
    written = out.read_text(encoding="utf-8")
    assert written.startswith("Twinkle") and len(written) == len("Twinkle") + 40

    # the same request in-process gives the same text: the CLI adds nothing of its own
    settings = TextSettings("Twin€kle", 40, SamplingConfig(temperature=0.9, top_k=5), seed=11)
    expected = text.generate(text.load(stem), settings).result
    assert written == expected.prompt + expected.text

    trace = Trace.load_npz(trace_out)
    assert "".join(trace.labels) == written
    assert trace.num_layers == 2 and trace.hidden_size == 16


def test_eval_last_line(trained, run_cli):
    stem, data, _ = trained
    result = run_cli("eval", "text", "--model", stem, "--data", data)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(rf"val_nats_per_char: ({FLOAT})", last)
    assert match, result.stdout
    loaded = text.load(stem)
    ids = loaded.codec.encode(split_train_val(data.read_text())[1])[0]
    assert float(match.group(1)) == pytest.approx(nats_per_char(loaded.model, ids), abs=2e-4)


def test_trace_command(trained, tmp_path, run_cli):
    stem, _, _ = trained
    source = tmp_path / "input.txt"
    source.write_text("How I wonder€ what you are!\n", encoding="utf-8")
    out = tmp_path / "trace.npz"
    result = run_cli("trace", "text", "--model", stem, "--input", source, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "€" in result.stderr  # the dropped character is reported
    trace = Trace.load_npz(out)
    expected = "How I wonder what you are!\n"
    assert trace.steps == len(expected) and "".join(trace.labels) == expected
    assert trace.num_layers == 2 and trace.hidden_size == 16
    assert trace.layers[0]["h"].shape == (len(expected), 16)
    assert f"{len(expected)} steps x 2 layers x 16 units" in result.stdout

    # the stored gates are the model's teacher-forced trace
    loaded = text.load(stem)
    _, _, gates = loaded.model.trace(torch.tensor([loaded.codec.encode(expected)[0]]))
    assert abs(trace.layers[1]["c"] - gates[1]["c"][0].numpy()).max() <= 1e-5


@pytest.mark.parametrize("domain", [domain.NAME for domain in ALL])
def test_every_domain_reports_a_missing_model_clearly(domain, tmp_path, run_cli):
    for command in ("train", "trace"):  # generate runs below; eval parses like train
        result = run_cli(command, domain, "--help")
        assert result.returncode == 0 and "--" in result.stdout  # every command exists for every domain
    result = run_cli("generate", domain, "--model", tmp_path / "nope", "--out", tmp_path / "x")
    assert result.returncode != 0
    assert "nope" in result.stderr and "Traceback" not in result.stderr


def test_missing_model_is_a_clear_error(tmp_path, run_cli):
    missing = tmp_path / "nope"
    result = run_cli("generate", "text", "--model", missing, "--length", "5")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") and str(missing) + ".json" in result.stderr


@pytest.mark.parametrize("domain", [d for d in ALL if hasattr(d, "explainable")], ids=lambda d: d.NAME)
def test_explain_a_shipped_model_from_outside(domain, tmp_path, run_cli):
    """`explain --json` on the shipped model: the anatomy's numbers rebuild c_t and h_t of the
    trace, checked from the JSON alone, and the pre-activation parts add up."""
    import json
    import math

    if not checkpoint.paths(domain.DEFAULT_MODEL)[1].exists():
        pytest.skip(f"{domain.DEFAULT_MODEL} is not here")
    out = tmp_path / "why.json"
    result = run_cli("explain", domain.NAME, "--seed", "3", "--step", "12", "--layer", "1", "--unit", "5",
                     "--json", out, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(out.read_text())
    a = answer["anatomy"]
    assert a["step"] == 12 and a["layer"] == 1 and a["unit"] == 5 and len(answer["saliency"]) == 13
    assert abs(a["f"] * a["c_prev"] + a["i"] * a["g"] - a["c"]) <= 1e-5
    assert abs(a["o"] * math.tanh(a["c"]) - a["h"]) <= 1e-5
    for gate in ("i", "f", "g", "o"):
        pre = a["pre"][gate]
        assert abs(pre["input"] + pre["recurrent"] + pre["bias"] - pre["total"]) <= 1e-5
        squashed = math.tanh(pre["total"]) if gate == "g" else 1 / (1 + math.exp(-pre["total"]))
        assert abs(squashed - a[gate]) <= 1e-5
    assert answer["topk"] and all(0 <= g["p"] <= 1 for g in answer["topk"])


def test_probe_intervene_and_compare_commands(trained, tmp_path, run_cli):
    stem, data, _ = trained
    result = run_cli("probe", "text", "--model", stem, "--feature", "newline", "--input", data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.fullmatch(rf"best: layer \d unit \d+ quantity [ifgoch] score {FLOAT}", result.stdout.strip().splitlines()[-1])
    fast_best = result.stdout.strip().splitlines()[-1]
    result = run_cli("probe", "text", "--model", stem, "--feature", "newline", "--input", data, "--exact")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1].rsplit(" ", 1)[0] == fast_best.rsplit(" ", 1)[0]  # the same unit
    result = run_cli("probe", "text", "--model", stem, "--feature", "[A-Z]", "--input", data)  # a regex
    assert result.returncode == 0 and result.stdout.strip().splitlines()[-1].startswith("best: ")
    result = run_cli("intervene", "text", "--model", stem, "--seed", "2", "--ablate", "1:0,1:3", "--clamp", "0:2:f=1",
                     "--from", "5")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("original: ") and lines[1].startswith("changed: ")
    assert re.fullmatch(r"first_divergence: (\d+|none)", lines[-1])
    result = run_cli("intervene", "text", "--model", stem, "--clamp", "0:2:z=1")
    assert result.returncode != 0 and "'z' is not one of" in result.stderr
    result = run_cli("compare", "text", "--model", stem, "--input", data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines() == [line for line in result.stdout.strip().splitlines() if line.startswith("cka ")]
    assert "cka 0 0: 1.0000" in result.stdout


def test_train_fits_a_small_corpus_and_a_time_budget(tmp_path, corpus, run_cli):
    """No options but the data, a folder and --minutes: batch and steps fitted to the corpus, the run
    stops on time with a checkpoint named after the folder, the last line says what was done."""
    data = tmp_path / "essays.txt"
    data.write_text(corpus * 4, encoding="utf-8")
    result = run_cli("train", "text", "--data", data, "--out", f"{tmp_path / 'mine'}/", "--minutes", "0.1",
                     "--hidden-size", "16", "--embed-size", "8", "--device", "cpu", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training on" in result.stderr and "stopping after 0.1 minutes" in result.stderr
    match = re.fullmatch(rf"trained: steps=([0-9]+) tokens_per_s=([0-9]+) best_val=({FLOAT}) out=(.+)",
                         result.stdout.strip().splitlines()[-1])
    assert match and int(match[1]) >= 1 and int(match[2]) > 0
    stem = tmp_path / "mine" / "mine"
    assert match[4] == str(stem) and text.load(stem).card["metrics"]["best_val_loss"] == pytest.approx(float(match[3]), abs=1e-4)


def test_train_help_gives_every_option_a_meaning_and_a_default(run_cli):
    result = run_cli("train", "text", "--help")
    assert result.returncode == 0
    blocks = re.split(r"\n  (?=--)", result.stdout)  # one block per option: its flag, meaning and default
    for flag in ("--minutes", "--steps", "--batch-size", "--hidden-size", "--lr", "--eval-every", "--threads", "--seq-len"):
        block = " ".join(next(b for b in blocks if b.startswith(flag + " ")).split())
        assert "default" in block and len(block.split()) > 4, block


def test_generate_says_which_model_it_uses_and_what_to_do_with_unknown_characters(trained, run_cli):
    stem, _, _ = trained
    result = run_cli("generate", "text", "--length", "5", "--seed", "1")
    assert "using the shipped model shakespeare-char" in result.stderr
    result = run_cli("generate", "text", "--model", stem, "--prompt", "TWINKLE", "--length", "5")
    assert result.returncode == 0 and "using the shipped model" not in result.stderr
    assert "type them in lowercase" in result.stderr


# each domain's generation options, as a user gives them (short runs of a tiny model)
GENERATION_OPTIONS = {
    "text": ["--prompt", "ROMEO:", "--length", "20", "--temperature", "0.9"],
    "music": ["--bars", "1", "--top-k", "5"],
    "handwriting": ["--text", "hi", "--bias", "1.0", "--max-points", "40"],
    "speech": ["--text", "hi there.", "--max-steps", "20", "--stop-threshold", "1"],
}


@pytest.fixture(params=ALL, ids=lambda domain: domain.NAME)
def tiny_model(request, tmp_path):
    """(domain, the stem of a tiny random model of it saved in tmp_path)."""
    domain = request.param
    model, codec = domain.tiny(seed=0)
    domain.save(tmp_path / "tiny", model, codec, {"name": "tiny"})
    return domain, tmp_path / "tiny"


def test_explain_and_intervene_take_the_generation_settings(tiny_model, tmp_path, run_cli):
    """`explain` and `intervene` are written once against the contract and take the fields of the
    domain's Settings as flags: what they generate follows them."""
    import json

    domain, stem = tiny_model
    options = GENERATION_OPTIONS.get(domain.NAME, [])  # a domain not listed: its Settings' defaults
    out = tmp_path / "why.json"
    result = run_cli("explain", domain.NAME, "--model", stem, *options, "--seed", "2", "--step", "3", "--json", out, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(out.read_text())["anatomy"]["step"] == 3
    result = run_cli("explain", domain.NAME, "--model", stem, *options, "--step", "100000", "--json", out, timeout=120)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith("error: Step 100000 is not in")
    result = run_cli("intervene", domain.NAME, "--model", stem, *options, "--seed", "2", "--ablate", "1:0,1:3", "--from", "2",
                     timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("original: ") and lines[1].startswith("changed: ")
    assert re.fullmatch(r"first_divergence: (\d+|none)", lines[-1])
    if domain.NAME == "text":
        assert lines[0].startswith("original: ROMEO:")  # the prompt it was given, then 20 characters
        assert len(lines[0]) == len("original: ROMEO:") + 20


def test_settings_flags_follow_the_settings_dataclass():
    from studio.cli_common import settings_fields

    paths = {path for path, _, _ in settings_fields(TextSettings())}
    assert {("prompt",), ("length",), ("seed",), ("sampling", "temperature"), ("sampling", "top_k")} <= paths
    hw = {path[-1] for domain in ALL if domain.NAME == "handwriting" for path, _, _ in settings_fields(domain.Settings())}
    assert {"text", "bias", "style", "seed"} <= hw and not hw & {"primer_strokes", "primer_text"}  # a primer is a file's


def test_flags_are_given_whole(run_cli, tmp_path):
    """No parser takes an abbreviation (`--data-di` for `--data-dir`, `--temp` for `--temperature`)."""
    result = run_cli("train", "handwriting", "--data-di", tmp_path, "--out", tmp_path / "m")
    assert result.returncode == 2 and "unrecognized arguments: --data-di" in result.stderr
    result = run_cli("generate", "text", "--temp", "0.5", "--length", "5")
    assert result.returncode == 2 and "--temp" in result.stderr
