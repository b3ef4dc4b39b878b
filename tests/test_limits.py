"""studio/limits.py: the caps every reader of a user's file applies before any work, the plain
sentences for parser failures, and the per-request deadline the generation loops obey."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile

import numpy as np
import pytest

from studio import limits
from studio.domains.handwriting.data import StrokeFileError, load_stroke_file
from studio.domains.music.codec import PitchCodec
from studio.domains.music.data import read_primer
from studio.domains.speech.generate import SpeechSettings
from studio.domains.text.generate import TextSettings


def zip_bomb(path, member: str = "train.npy", unpacked: int = 100_000_000):
    """A small archive whose one member unpacks to `unpacked` bytes of zeros (written in pieces)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive, archive.open(member, "w", force_zip64=True) as out:
        if member.endswith(".npy"):
            header = io.BytesIO()
            rows = (unpacked - 128) // 24
            np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (rows, 3)})
            out.write(header.getvalue())
        chunk = bytes(1_000_000)
        for _ in range(unpacked // len(chunk)):
            out.write(chunk)
    return path


def test_zip_unpacked_size_is_checked_before_unpacking(tmp_path):
    bomb = zip_bomb(tmp_path / "bomb.zip", "a.mid")
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(limits.LimitError, match=r"unpacks to 100 MB; at most 50 MB"):
        limits.check_zip(bomb)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(bomb.read_bytes()[:300])
    with pytest.raises(ValueError, match="not a readable zip archive"):
        limits.check_zip(cut)


def test_npz_headers_give_shapes_without_loading(tmp_path):
    np.savez(tmp_path / "ok.npz", train=np.zeros((1, 40, 3)), other=np.arange(5))
    shapes = limits.npz_headers(tmp_path / "ok.npz")
    assert shapes["train"][0] == (1, 40, 3) and shapes["other"][0] == (5,)
    limits.check_array_shape("ok.npz", shapes["train"][0])
    with pytest.raises(limits.LimitError, match="rows"):
        limits.check_array_shape("big.npz", (1, 10**6, 3))
    with pytest.raises(limits.LimitError, match="dimensions"):
        limits.check_array_shape("deep.npz", (1, 1, 1, 3))
    bomb = zip_bomb(tmp_path / "bomb.npz", unpacked=100_000_000)
    started = time.perf_counter()
    with pytest.raises(limits.LimitError, match="unpacks to"):
        limits.npz_headers(bomb)
    assert time.perf_counter() - started < 1  # refused from the directory, nothing inflated


def test_json_depth_and_size():
    assert limits.json_depth(b'{"strokes": [[[0, 1]]], "text": "[[[[[["}') == 4  # brackets in strings don't count
    limits.check_json_text("ok.json", b"[[[0, 1]]]")
    with pytest.raises(limits.LimitError, match="nests its JSON 5000 levels deep; at most 20"):
        limits.check_json_text("deep.json", b"[" * 5000 + b"]" * 5000)
    with pytest.raises(limits.LimitError, match="at most 0.001 MB"):
        limits.check_json_text("big.json", b"[" + b"1," * 1000 + b"1]", max_bytes=1000)


def test_load_json_says_what_is_wrong(tmp_path):
    (tmp_path / "cut.json").write_text('{"strokes": [[1, 2')
    with pytest.raises(limits.LimitError, match=r"cut.json is not valid JSON: expecting"):
        limits.load_json(tmp_path / "cut.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(limits.LimitError, match="levels deep"):
        limits.load_json(tmp_path / "deep.json")
    (tmp_path / "ok.json").write_text(json.dumps({"a": [1]}))
    assert limits.load_json(tmp_path / "ok.json") == {"a": [1]}


def test_coordinates_and_seeds():
    limits.check_coordinates("ok.json", [[0, 1], [-99_999, 5]])
    with pytest.raises(limits.LimitError, match=r"coordinate of 1e\+30"):
        limits.check_coordinates("huge.json", [[0, 1e30]])
    with pytest.raises(limits.LimitError, match="not finite"):
        limits.check_coordinates("inf.json", [[0, np.inf]])
    assert limits.seed32(2**32) == 0 and limits.seed32(2**32 + 5) == 5 and limits.seed32(7) == 7


def test_parser_failures_in_plain_words():
    import xml.etree.ElementTree as ET

    assert limits.unreadable("a.mid", "MIDI file", EOFError()) == "a.mid is not a MIDI file this studio can read: it ends too early (the file is cut short)."
    try:
        ET.fromstring(b"<a><b>")
    except ET.ParseError as error:
        assert "not well-formed XML (line 1, column 6)" in limits.plain_reason(error)
    humdrum = type("HumdrumException", (Exception,), {})("Could not determine spineType for spine with id 0")
    assert limits.plain_reason(humdrum) == "it is not a Humdrum (**kern) score music21 can read"
    assert "Exception" not in limits.plain_reason(RuntimeError("internal detail"))


def test_deadline_is_off_outside_a_request_and_stops_within_one():
    assert not limits.out_of_time()
    with limits.deadline(0.01):
        assert not limits.out_of_time()
        time.sleep(0.02)
        assert limits.out_of_time()
        with limits.deadline(0):  # 0: no deadline
            assert not limits.out_of_time()
    assert not limits.out_of_time()
    assert "LSTM_STUDIO_DEADLINE_S" in limits.time_note("the first 3 lines")


def test_generation_stops_at_the_deadline_with_a_note(tiny_text):
    from studio.domains import text

    loaded = tiny_text(0)
    with limits.deadline(1e-6):
        generation = text.generate(loaded, TextSettings(length=2000))
    assert len(generation.result.text) < 2000
    assert any("Stopped early" in note for note in generation.result.notes)
    assert generation.trace.steps >= len(generation.result.text)
    assert len(text.generate(loaded, TextSettings(length=50)).result.text) == 50  # no deadline outside a request


@pytest.mark.parametrize("name, content, message", [
    ("deep.json", b"[" * 50_000 + b"]" * 50_000, "levels deep"),
    ("huge.json", json.dumps({"strokes": [[[0, 0], [1e30, 2]]], "text": "hi"}).encode(), "within"),
    ("deep.ndjson", b'{"drawing": ' + b"[" * 5000 + b"]" * 5000 + b"}\n", "levels deep"),
])
def test_handwriting_style_files_over_a_cap_get_a_sentence(tmp_path, name, content, message):

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(StrokeFileError, match=message):
        load_stroke_file(path)


def test_handwriting_npz_bomb_and_huge_shapes_are_refused_before_loading(tmp_path):

    with pytest.raises(StrokeFileError, match="unpacks to"):
        load_stroke_file(zip_bomb(tmp_path / "bomb.npz", unpacked=100_000_000))
    np.savez_compressed(tmp_path / "long.npz", train=np.zeros((1, 200_000, 3), np.float32))
    with pytest.raises(StrokeFileError, match="rows"):
        load_stroke_file(tmp_path / "long.npz")


def test_music_parser_failures_are_sentences(tmp_path):

    cases = {"cut.mid": b"MThd\x00\x00\x00\x06\x00\x01", "bad.xml": b"<?xml version='1.0'?><score-partwise>\x00",
             "bad.krn": bytes(range(256))}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError) as caught:
            read_primer(tmp_path / name, PitchCodec())
        message = str(caught.value)
        assert "Error" not in message and "Exception" not in message, message
    with pytest.raises(ValueError, match="unpacks to"):
        read_primer(zip_bomb(tmp_path / "bomb.mxl", "score.xml"), PitchCodec())


def test_a_speech_seed_of_2_to_the_32_speaks(tmp_path):
    """numpy's RandomState (librosa's Griffin-Lim) takes seeds below 2**32; the studio takes any."""
    from studio.domains import speech

    model, codec = speech.tiny(seed=0)
    speech.save(tmp_path / "tiny", model, codec, {"name": "tiny"})
    loaded = speech.load(tmp_path / "tiny")
    settings = SpeechSettings(text="hi.", seed=2**32, griffin_lim_iters=2, max_steps=3)
    assert len(speech.generate(loaded, settings).result.audio) > 0


def test_a_long_prompt_keeps_the_trace_of_its_last_characters_only(tiny_text):
    """Tracing and drawing 20,000 prompt steps would take a request's whole deadline: the older part
    sets the state through the fused kernel, the trace covers the last MAX_TRACED_PROMPT."""
    from studio.domains import text
    from studio.domains.text.generate import MAX_TRACED_PROMPT

    loaded = tiny_text(0)
    prompt = "".join(loaded.codec.chars[k % loaded.codec.size] for k in range(MAX_TRACED_PROMPT + 500))
    generation = text.generate(loaded, TextSettings(prompt=prompt, length=7))
    assert generation.trace.steps == MAX_TRACED_PROMPT + 7 and generation.trace.prompt_length == MAX_TRACED_PROMPT
    assert any("first 500 characters were read without keeping" in note for note in generation.result.notes)
    assert generation.result.prompt == prompt[-MAX_TRACED_PROMPT:]


def test_trim_malloc_runs_at_most_every_few_seconds(monkeypatch):
    """Freed pages go back to the system after a request (glibc's malloc_trim), not more often than asked."""
    monkeypatch.setattr(limits, "_last_trim", [0.0])
    limits.trim_malloc()
    first = limits._last_trim[0]
    assert first > 0
    limits.trim_malloc(every_seconds=60)  # too soon: nothing done
    assert limits._last_trim[0] == first
    limits.trim_malloc(every_seconds=0)
    assert limits._last_trim[0] >= first


def test_usable_cores_follow_a_cgroup_quota(tmp_path):
    """A container's CPU quota (cgroup v2 cpu.max, v1 cfs quota / period), rounded up, caps the
    cores the affinity gives; no quota, or an unreadable one, leaves the affinity."""
    affinity = len(os.sched_getaffinity(0))

    def cores(files: dict) -> int:
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        for name, content in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(content)
        root.mkdir(exist_ok=True)
        return limits.usable_cores(root)

    assert cores({"cpu.max": "100000 100000\n"}) == 1
    assert cores({"cpu.max": "150000 100000\n"}) == min(2, affinity)
    assert cores({"cpu.max": "max 100000\n"}) == affinity
    assert cores({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}) == 1
    assert cores({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}) == affinity
    assert cores({"cpu.max": "garbage\n"}) == affinity
    assert cores({}) == affinity
