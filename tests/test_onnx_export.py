"""ONNX export (studio.onnx_export): the shipped text and music models, run step by step in
onnxruntime with the state carried as explicit inputs and outputs, give the studio's own next-step
outputs within 1e-4 over 500 teacher-forced steps; a network that is more than a stack and a head is
refused in one sentence."""

from __future__ import annotations

import pytest
import torch

from studio import onnx_export
from studio.domains import by_name

pytest.importorskip("onnxruntime")
STEPS = 500


def test_shipped_text_model_matches_onnxruntime(tmp_path):
    domain = by_name("text")
    loaded = domain.load(domain.DEFAULT_MODEL)
    text = ("ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n" * 8)
    tokens, _ = loaded.codec.encode(text)
    tokens = torch.tensor(tokens[:STEPS])
    assert len(tokens) == STEPS
    path = onnx_export.export(loaded.model, tmp_path / "text.onnx")
    with torch.no_grad():
        expected = loaded.model.trace(tokens[None])[0][0].numpy()  # the studio's own teacher-forced logits
    got = onnx_export.run_steps(path, tokens.numpy(), None, loaded.model.core.config.num_layers,
                                loaded.model.core.config.hidden_size)
    assert abs(expected - got).max() < 1e-4
    assert abs(torch.softmax(torch.tensor(expected), -1) - torch.softmax(torch.tensor(got), -1)).max() < 1e-4


def test_shipped_music_model_matches_onnxruntime(tmp_path):
    domain = by_name("music")
    loaded = domain.load(domain.DEFAULT_MODEL)
    model = loaded.model
    chords = [[60, 64, 67], [62, 65, 69], [], [59, 62, 67, 74], [60, 64, 67, 72], [57, 60, 64, 69]]
    tokens = torch.tensor(model.codec.encode(chords * 40)[:STEPS])
    assert len(tokens) == STEPS
    with torch.no_grad():
        expected = model.trace(tokens[None])[0][0].numpy()
        features = model.inputs(tokens[None])[0, :, model.embed.embedding_dim :].numpy()  # the frame context
    path = onnx_export.export(model, tmp_path / "music.onnx")
    got = onnx_export.run_steps(path, tokens.numpy(), features, model.core.config.num_layers, model.core.config.hidden_size)
    assert abs(expected - got).max() < 1e-4


def test_a_network_with_attention_is_refused_in_a_sentence():
    from studio.domains.handwriting.model import SynthesisConfig, SynthesisModel

    with pytest.raises(onnx_export.ExportError, match="more than an LSTM stack and a head") as error:
        onnx_export.build(SynthesisModel(SynthesisConfig(vocab_size=10, hidden_size=8, mixtures=2, window_gaussians=2)))
    assert "\n" not in str(error.value)


def test_the_command_writes_and_checks(tmp_path, capsys):
    from studio.__main__ import main

    assert main(["onnx", "text", "--model", "shakespeare-char", "--out", str(tmp_path / "t.onnx"), "--check-steps", "50"]) == 0
    assert "largest difference" in capsys.readouterr().out
    assert (tmp_path / "t.onnx").stat().st_size > 1000
