"""Checkpoints: NAME.safetensors + NAME.json round-trip, clear errors naming the file, registry."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from studio import checkpoint
from studio.domains import text
from studio.domains.text.model import TextModel, make_card
from studio.train import resume_paths


def card_of(stem) -> dict:
    return json.loads(checkpoint.paths(stem)[1].read_text())


def test_save_load_round_trip(saved_text_model, text_model, codec):
    weights_path, card_path = checkpoint.paths(saved_text_model)
    assert weights_path.name == "tiny.safetensors" and weights_path.exists()
    assert card_path.name == "tiny.json" and card_path.exists()

    loaded_model = text.load(saved_text_model)
    model, loaded_codec, card = loaded_model.model, loaded_model.codec, loaded_model.card
    assert not model.training
    original = text_model.state_dict()
    loaded = model.state_dict()
    assert loaded.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(loaded[name], tensor), name
    assert loaded_codec.chars == codec.chars

    tokens = torch.tensor([codec.encode("Twinkle, little star")[0]])
    with torch.no_grad():
        assert torch.equal(model(tokens)[0], text_model(tokens)[0])

    assert card == card_of(saved_text_model)
    assert card["format_version"] == checkpoint.FORMAT_VERSION
    assert card["domain"] == "text"
    assert card["config"] == asdict(text_model.config)
    assert card["codec"] == {"chars": codec.chars}
    assert card["data"]["file"] == "corpus.txt"  # extra card fields are kept


@pytest.mark.parametrize("given", ["stem", ".json", ".safetensors"])
def test_load_accepts_stem_or_either_file(saved_text_model, given):
    path = str(saved_text_model) + ("" if given == "stem" else given)
    tensors, card = checkpoint.load(path, domain="text")
    assert card["domain"] == "text" and "embed.weight" in tensors


def test_paths_keep_inner_dots(tmp_path):
    weights, card = checkpoint.paths(tmp_path / "shakespeare.resume")
    assert weights.name == "shakespeare.resume.safetensors"
    assert card.name == "shakespeare.resume.json"


def assert_error_names(error: pytest.ExceptionInfo, path: Path):
    assert str(path) in str(error.value), str(error.value)


def test_missing_card(saved_text_model):
    card_path = checkpoint.paths(saved_text_model)[1]
    card_path.unlink()
    with pytest.raises(checkpoint.CheckpointError) as error:
        text.load(saved_text_model)
    assert_error_names(error, card_path)
    assert "missing" in str(error.value)


def test_missing_weights(saved_text_model):
    weights_path = checkpoint.paths(saved_text_model)[0]
    weights_path.unlink()
    with pytest.raises(checkpoint.CheckpointError) as error:
        text.load(saved_text_model)
    assert_error_names(error, weights_path)
    assert "missing" in str(error.value)


@pytest.mark.parametrize(
    "garbage",
    [b"", b"not a safetensors file at all", bytes(range(256)) * 4, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      "],
)
def test_corrupt_weights(saved_text_model, garbage):
    weights_path = checkpoint.paths(saved_text_model)[0]
    weights_path.write_bytes(garbage)
    with pytest.raises(checkpoint.CheckpointError) as error:
        text.load(saved_text_model)
    assert_error_names(error, weights_path)


def test_truncated_weights(saved_text_model):
    weights_path = checkpoint.paths(saved_text_model)[0]
    data = weights_path.read_bytes()
    weights_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError) as error:
        text.load(saved_text_model)
    assert_error_names(error, weights_path)


def test_corrupt_card(saved_text_model):
    card_path = checkpoint.paths(saved_text_model)[1]
    card_path.write_bytes(b"\xff\xfe{garbage")
    with pytest.raises(checkpoint.CheckpointError) as error:
        text.load(saved_text_model)
    assert_error_names(error, card_path)


def test_wrong_domain(saved_text_model):
    card_path = checkpoint.paths(saved_text_model)[1]
    card = card_of(saved_text_model)
    card_path.write_text(json.dumps({**card, "domain": "music"}))
    with pytest.raises(checkpoint.CheckpointError) as error:
        text.load(saved_text_model)
    assert_error_names(error, card_path)
    assert "music" in str(error.value) and "text" in str(error.value)


def test_wrong_format_version(saved_text_model):
    card_path = checkpoint.paths(saved_text_model)[1]
    card_path.write_text(json.dumps({**card_of(saved_text_model), "format_version": 99}))
    with pytest.raises(checkpoint.CheckpointError) as error:
        text.load(saved_text_model)
    assert_error_names(error, card_path)
    assert "99" in str(error.value)


def test_weights_not_matching_card(saved_text_model):
    card_path = checkpoint.paths(saved_text_model)[1]
    card = card_of(saved_text_model)
    card["config"]["hidden_size"] = 20
    card_path.write_text(json.dumps(card))
    with pytest.raises(checkpoint.CheckpointError) as error:
        text.load(saved_text_model)
    assert_error_names(error, checkpoint.paths(saved_text_model)[0])


def test_list_models_finds_text_models_only(tmp_path, text_model, codec):
    models = tmp_path / "models"
    text.save(models / "alpha", text_model, codec)
    text.save(models / "beta", text_model, codec)
    # A trainer resume state next to its model: same format, but not a model to offer.
    checkpoint.save(
        resume_paths(models / "alpha"),
        {f"model.{k}": v for k, v in text_model.state_dict().items()},
        {**make_card(text_model, codec), "resume": {"step": 3}},
    )
    checkpoint.save(models / "tune", {"w": torch.zeros(2)}, {**make_card(text_model, codec), "domain": "music"})
    (models / "notes.json").write_text("{ this is not json")
    (models / "list.json").write_text("[1, 2]")

    found = checkpoint.list_models("text", models)
    assert found == {"alpha": models / "alpha", "beta": models / "beta"}
    assert checkpoint.list_models("music", models) == {"tune": models / "tune"}
    assert checkpoint.list_models("speech", models) == {}
    assert checkpoint.list_models("text", tmp_path / "nowhere") == {}
    # What the registry returns loads.
    assert isinstance(text.load(found["alpha"]).model, TextModel)


@pytest.mark.parametrize("field", list(checkpoint.CARD_FIELDS))
def test_card_without_a_schema_field_is_refused_by_name(saved_text_model, field):
    card_path = checkpoint.paths(saved_text_model)[1]
    card = card_of(saved_text_model)
    del card[field]
    card_path.write_text(json.dumps(card))
    with pytest.raises(checkpoint.CheckpointError) as error:
        text.load(saved_text_model)
    assert_error_names(error, card_path)
    assert f"'{field}'" in str(error.value)


@pytest.mark.parametrize(("field", "value", "named"), [
    ("parameters", "many", "'parameters' should be an integer"),
    ("config", [1], "'config' should be an object"),
    ("data", {"source": "somewhere"}, "'data.licence'"),
])
def test_card_with_a_bad_field_is_refused_by_name(saved_text_model, field, value, named):
    card_path = checkpoint.paths(saved_text_model)[1]
    card_path.write_text(json.dumps({**card_of(saved_text_model), field: value}))
    with pytest.raises(checkpoint.CheckpointError) as error:
        text.load(saved_text_model)
    assert_error_names(error, card_path)
    assert named in str(error.value)


def test_every_shipped_card_keeps_the_schema(repo_root):
    for card_path in (repo_root / "models").glob("*.json"):
        checkpoint.check_card(json.loads(card_path.read_text()), card_path)
