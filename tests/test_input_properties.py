"""Property tests (hypothesis) of every domain's file reader: whatever bytes a user uploads, under any
name the tabs accept, `read_input` either gives a sequence or raises ValueError with a sentence
(the tabs show it as it is): never another exception, which would reach the user as a traceback."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.domains import ALL

SUFFIXES = {"text": [".txt"], "music": [".mid", ".midi", ".xml", ".mxl", ".krn", ".abc"],
            "handwriting": [".json", ".npz", ".ndjson", ".xml"], "speech": [".wav", ".mp3", ".flac", ".npz"]}
# what broken uploads look like: a format's first bytes, then anything
HEADERS = [b"", b"MThd", b"MThd\x00\x00\x00\x06\x00\x01", b"PK\x03\x04", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"{\"strokes\": ",
           b"<?xml version='1.0'?><score-partwise>", b"\x93NUMPY", b"X:1\nK:C\n", b"**kern\n", b"\xff\xfb", b"fLaC"]


@pytest.fixture(scope="module")
def loaded_models():
    """One tiny model per domain (read_input may need the model: its alphabet, its grid)."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    models = {}
    for domain in ALL:
        model, codec = domain.tiny(seed=0)
        domain.save(folder / domain.NAME, model, codec, {"name": domain.NAME})
        models[domain.NAME] = domain.load(folder / domain.NAME)
    return models


@pytest.mark.parametrize("domain", ALL, ids=lambda d: d.NAME)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from(HEADERS), body=st.binary(max_size=400), pick=st.integers(0, 10))
def test_any_bytes_give_a_sequence_or_a_sentence(domain, loaded_models, tmp_path, header, body, pick):
    suffixes = SUFFIXES.get(domain.NAME) or sorted(domain.TRAINING.suffixes)  # a domain not listed: its training files
    path = tmp_path / f"upload{suffixes[pick % len(suffixes)]}"
    path.write_bytes(header + body)
    try:
        domain.read_input(path, loaded_models[domain.NAME])
    except ValueError as error:
        assert len(str(error)) > 10, repr(error)  # a sentence, not a bare exception name
