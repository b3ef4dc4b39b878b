"""Fine-tuning and training on your own files (issue 14): `train text --init` (the vocabulary grows
by the new text's characters, the base's predictions kept), `train music --init`, and `train music
--data` over MIDI / MusicXML files, folders and zips, with a one-line error for each bad input.
Tiny models and data made here; every CLI run takes a few seconds."""

from __future__ import annotations

import json
import zipfile

import pretty_midi
import pytest
import torch

from studio import __main__ as studio_main
from studio.domains import music, text
from studio.domains.music.cli import CHUNK_BARS, split_pieces
from studio.domains.music.codec import PitchCodec
from studio.domains.music.data import MusicInputError
from studio.domains.text.model import extend_vocabulary

NEW_TEXT = "Ünïcode {braces} and 1234567890 digits ~ tilde\n"
TINY_MUSIC = ("--steps", "2", "--batch-size", "2", "--eval-every", "2", "--warmup-steps", "1", "--device", "cpu")
TINY_TEXT = ("--steps", "3", "--batch-size", "2", "--seq-len", "8", "--eval-every", "3", "--warmup-steps", "1",
             "--device", "cpu")
CHORDS = [(60, 64, 67), (62, 65, 69), (59, 62, 67), (60, 64, 67)]


def write_midi(path, notes, tempo=100.0):
    """notes: (pitch, start_quarter, end_quarter); a real MIDI file."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    piano = pretty_midi.Instrument(program=0)
    seconds = 60.0 / tempo
    piano.notes = [pretty_midi.Note(90, p, s * seconds, e * seconds) for p, s, e in notes]
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


def chorale(path, quarters=32, shift=0):
    """A four-chord progression, one chord per quarter note, `quarters` long."""
    return write_midi(path, [(p + shift, q, q + 1) for q in range(quarters) for p in CHORDS[q % 4]])


def cli_error(*args) -> str:
    """The one line a bad invocation exits with (in-process: any other exception fails the test)."""
    with pytest.raises(SystemExit) as exit_info:
        studio_main.main([str(a) for a in args])
    message = exit_info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    return message


# ---------------------------------------------------------------- text: the vocabulary grows
def test_extend_vocabulary_keeps_the_base_predictions(text_model, codec, corpus):
    before = {k: v.clone() for k, v in text_model.state_dict().items()}
    model, extended = extend_vocabulary(text_model, codec, NEW_TEXT)
    added = "".join(sorted(set(NEW_TEXT) - set(codec.chars)))
    assert added and extended.chars == codec.chars + added  # the base's tokens keep their ids
    assert model.config.vocab_size == extended.size and model.embed.weight.shape[0] == extended.size
    assert all(torch.equal(before[k], v) for k, v in text_model.state_dict().items())  # the base is left alone
    old = codec.size
    assert torch.equal(model.embed.weight[:old], text_model.embed.weight)
    assert torch.equal(model.head.weight[:old], text_model.head.weight)
    assert torch.equal(model.head.bias[:old], text_model.head.bias)
    # new rows: initialised as a fresh model's (small, not zero, not copies)
    assert model.head.weight[old:].abs().max() <= 1 / text_model.config.hidden_size ** 0.5 + 1e-6
    assert model.embed.weight[old:].abs().sum() > 0

    ids = torch.tensor([codec.encode(corpus[:200])[0]])
    with torch.no_grad():
        base_logits, _ = text_model(ids)
        logits, _ = model(ids)
    assert torch.allclose(logits[..., :old], base_logits, atol=1e-6)  # the old characters' logits are the base's
    renormalised = torch.softmax(logits, -1)[..., :old]
    renormalised = renormalised / renormalised.sum(-1, keepdim=True)
    assert torch.allclose(renormalised, torch.softmax(base_logits, -1), atol=1e-6)
    # the new characters read and predict: the extended model runs over text with them
    new_ids, dropped = extended.encode(NEW_TEXT)
    assert dropped == "" and model(torch.tensor([new_ids]))[0].shape == (1, len(NEW_TEXT), extended.size)


def test_extend_vocabulary_with_nothing_new_is_a_copy(text_model, codec, corpus):
    model, same = extend_vocabulary(text_model, codec, corpus)
    assert same.chars == codec.chars and model is not text_model
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), text_model.state_dict().values(), strict=True))


def test_train_text_init_fine_tunes_with_new_characters(tmp_path, saved_text_model, codec, corpus, run_cli):
    data = tmp_path / "mine.txt"
    data.write_text((corpus[:600] + NEW_TEXT) * 4, encoding="utf-8")
    stem = tmp_path / "tuned"
    result = run_cli("train", "text", "--data", data, "--out", stem, "--init", saved_text_model, "--hidden-size", "32",
                     *TINY_TEXT, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    added = "".join(sorted(set(NEW_TEXT) - set(codec.chars)))
    assert f"added {len(added)} character(s) it lacked: {added!r}" in result.stderr
    assert "note: ignoring --hidden-size 32: fine-tuning keeps tiny's 16" in result.stderr
    loaded = text.load(stem)
    assert loaded.codec.chars == codec.chars + added
    assert loaded.model.config.hidden_size == 16 and loaded.model.config.embed_size == 8
    assert loaded.card["hyperparameters"]["init"] == "tiny"
    assert loaded.card["hyperparameters"]["init_chars_added"] == added
    assert "--init" in loaded.card["reproduce"]
    assert result.stdout.strip().splitlines()[-1].startswith("trained: steps=3 ")


def test_train_text_init_names_a_missing_checkpoint(tmp_path, corpus_file):
    message = cli_error("train", "text", "--data", corpus_file, "--out", tmp_path / "x", "--init", tmp_path / "nope")
    assert message.startswith("error: --init: ") and "nope" in message


# ---------------------------------------------------------------- music: MIDI / MusicXML corpora
def test_split_pieces_holds_out_the_last_tenth_and_cuts_long_pieces():
    codec = PitchCodec(36, 84, 1)
    pieces = [[[60 + k]] * 20 for k in range(12)]
    data = split_pieces(pieces, codec)
    assert data["valid"] == pieces[-1:] and data["train"] == pieces[:-1]
    single = split_pieces([[[60]] * 100], codec)  # one piece: cut by frames, its last tenth validates
    assert [len(p) for p in single["valid"]] == [10]
    long = split_pieces([[[60]] * 300, [[62]] * 8], codec)
    size = CHUNK_BARS * codec.steps_per_bar
    assert [len(p) for p in long["train"]] == [size] * 4 + [300 - 4 * size] and long["valid"] == [[[62]] * 8]
    with pytest.raises(MusicInputError, match="at least 16"):
        split_pieces([[[60]] * 15], codec)


def test_train_music_on_midi_files_then_fine_tune_from_a_zip_and_a_folder(tmp_path, run_cli):
    files = [chorale(tmp_path / f"p{k}.mid", shift=k) for k in range(3)]
    stem = tmp_path / "mine"
    result = run_cli("train", "music", "--data", *files, "--out", stem, "--hidden-size", "8", "--embed-size", "4",
                     "--min-pitch", "48", "--max-pitch", "84", *TINY_MUSIC, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "read 3 file(s): 64 training and 32 validation frames" in result.stderr
    base = music.load(stem)
    assert base.card["data"]["files"] == ["p0.mid", "p1.mid", "p2.mid"]
    assert base.card["data"]["pieces"] == {"train": 2, "valid": 1}
    assert (base.model.config.hidden_size, base.codec.min_pitch) == (8, 48)

    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(files[0], "inside/a.mid")
        zipped.write(files[1], "b.mid")
        zipped.writestr("readme.txt", "not music")
        zipped.writestr("__MACOSX/._b.mid", "resource fork")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    write_midi(folder / "sub" / "low.mid", [(30 + q % 5, q, q + 1) for q in range(24)])  # below 48: moved by octaves
    tuned = tmp_path / "tuned"
    result = run_cli("train", "music", "--data", archive, folder, "--out", tuned, "--init", stem, "--hidden-size", "16",
                     *TINY_MUSIC, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "note: ignoring --hidden-size 16: fine-tuning keeps mine's 8" in result.stderr
    assert "moved by octaves" in result.stderr
    loaded = music.load(tuned)
    assert loaded.card["hyperparameters"]["init"] == "mine"
    assert loaded.card["data"]["files"] == ["a.mid", "b.mid", "low.mid"]
    assert loaded.model.config == base.model.config and loaded.codec == base.codec


def test_train_music_reads_musicxml(tmp_path, run_cli):
    from music21 import chord, stream

    score = stream.Stream()
    for q in range(24):
        score.append(chord.Chord([60 + q % 3, 64, 67], quarterLength=1))
    path = tmp_path / "song.musicxml"
    score.write("musicxml", str(path))
    result = run_cli("train", "music", "--data", path, "--out", tmp_path / "song", "--hidden-size", "8",
                     "--embed-size", "4", *TINY_MUSIC, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "read 1 file(s): 20 training and 4 validation frames" in result.stderr  # one piece: cut by frames


def test_train_music_bad_inputs_say_what_is_wrong_in_one_line(tmp_path, run_cli):
    out = tmp_path / "bad"
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "words.mid").write_text("not a midi file")
    with zipfile.ZipFile(tmp_path / "nomusic.zip", "w") as zipped:
        zipped.writestr("readme.txt", "nothing to hear")
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("big.mid", b"\0" * 51_000_000)  # ~50 KB packed
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    (tmp_path / "nothing").mkdir()
    short = write_midi(tmp_path / "short.mid", [(60, 0, 1), (64, 1, 2)])
    jsb = tmp_path / "c.json"
    jsb.write_text(json.dumps({"train": [], "valid": []}))
    cases = {
        ("empty.mid",): "empty.mid is empty",
        ("words.mid",): "words.mid is not a MIDI file",
        ("nomusic.zip",): "nomusic.zip holds no MIDI or MusicXML files",
        ("bomb.zip",): "bomb.zip unpacks to 51 MB; at most 50 MB",
        ("broken.zip",): "broken.zip is not a readable zip",
        ("nothing",): "the folder nothing holds no MIDI or MusicXML files",
        ("short.mid",): "at least 16 (4 bars) are needed",
        ("short.mid", "c.json"): "a JSON corpus is read on its own",
        ("empty.mid", "words.mid"): "none of the 2 files could be used",
    }
    for names, expected in cases.items():
        message = cli_error("train", "music", "--data", *[tmp_path / n for n in names], "--out", out, "--steps", "1")
        assert expected in message, (names, message)
    assert short.exists() and not (tmp_path / "bad.json").exists()

    result = run_cli("train", "music", "--data", tmp_path / "bomb.zip", "--out", out)  # the real exit: one line, rc 1
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "error: bomb.zip unpacks to 51 MB; at most 50 MB are read."]


def test_train_music_skips_an_unreadable_file_among_good_ones(tmp_path, run_cli):
    good = [chorale(tmp_path / f"g{k}.mid") for k in range(2)]
    (tmp_path / "bad.mid").write_text("oops")
    result = run_cli("train", "music", "--data", *good, tmp_path / "bad.mid", "--out", tmp_path / "m", "--hidden-size", "8",
                     "--embed-size", "4", *TINY_MUSIC, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "note: skipped bad.mid is not a MIDI file" in result.stderr


def test_train_music_init_names_a_text_checkpoint(tmp_path, saved_text_model):
    data = chorale(tmp_path / "p.mid")
    message = cli_error("train", "music", "--data", data, "--out", tmp_path / "x", "--init", saved_text_model)
    assert message.startswith("error: --init: ") and "not 'music'" in message
