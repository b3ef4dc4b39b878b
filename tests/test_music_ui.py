"""The Music tab end to end: through the API (gradio_client) and in Debian chromium (playwright)."""

from __future__ import annotations

import json
from pathlib import Path

import pretty_midi
import pytest
import torch

from studio.domains.music.codec import MusicTraceDetail
from studio.domains.music.model import MusicModel, MusicModelConfig, make_card

SCRATCH, UPLOAD, CORPUS = "Compose from scratch", "Continue an uploaded file", "Continue a chorale from music21's corpus"


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory, serve):
    """The real app, serving a tiny untrained music model plus one broken music checkpoint."""
    import app
    from studio.domains import music

    models_dir = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = MusicModel(MusicModelConfig(36, 96, 1, embed_size=4, hidden_size=16, num_layers=2))
    music.save(models_dir / "tiny-chorales", model, model.codec,
               {"data": {"source": "made by the test", "licence": "none"}})
    broken = make_card(model, name="broken-chorales")
    broken["format_version"] = 1
    (models_dir / "broken-chorales.json").write_text(json.dumps(broken))  # no weights next to it
    demo = app.build_demo(models_dir)
    return serve(demo)


def call_generate(client, **overrides):
    args = dict(name="tiny-chorales", source_value=SCRATCH, upload_path=None, chorale_name="bach/bwv65.2",
                primer_bars_value=2, bars_value=2, temp=1.0, k=0, seed_value=3, tempo_value=120)
    args.update(overrides)
    return client.predict(*args.values(), api_name="/generate_music")


def test_music_endpoint_answers_through_gradio_client(studio_url, tmp_path):
    from gradio_client import Client, handle_file

    from studio.trace import Trace

    client = Client(studio_url, verbose=False)
    notes, wav, payload, units_md, no_trace_yet, selection, midi_file = call_generate(client)
    assert no_trace_yet is None  # written when asked for
    assert "Composed 8 frames (2 bars)" in notes
    assert Path(wav).stat().st_size > 44 and "unit" in units_md
    assert payload["track"]["kind"] == "roll" and len(payload["track"]["pitches"]) == payload["steps"]
    midi = pretty_midi.PrettyMIDI(midi_file)
    assert midi.instruments[0].notes and midi.get_end_time() <= 8 * 0.5 + 1e-6
    trace = Trace.load_npz(client.predict(api_name="/music_trace"), detail_type=MusicTraceDetail)
    assert trace.domain == "music" and trace.model == "tiny-chorales" and trace.labels.count("end") == 8
    assert trace.detail.tokens.count(trace.detail.num_pitches) == 8
    assert call_generate(client)[0] == notes  # same seed, same piece

    # continue an uploaded MIDI; out-of-range bars are clamped with a note
    primer = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(90, 60 + k, k * 0.6, k * 0.6 + 0.6) for k in range(6)]
    primer.instruments.append(piano)
    primer.write(str(tmp_path / "primer.mid"))
    notes, *_ = call_generate(client, source_value=UPLOAD, upload_path=handle_file(str(tmp_path / "primer.mid")),
                                        bars_value=0)
    assert "Continued 6 frames of *primer.mid*" in notes and "below 1" in notes
    assert Trace.load_npz(client.predict(api_name="/music_trace"), detail_type=MusicTraceDetail).detail.primer_frames == 6

    # bad input: a clear message, not a traceback
    (tmp_path / "fake.mid").write_text("this is not a MIDI file")
    with pytest.raises(Exception, match="not a MIDI file") as error:
        call_generate(client, source_value=UPLOAD, upload_path=handle_file(str(tmp_path / "fake.mid")))
    assert "Traceback" not in str(error.value)
    with pytest.raises(Exception, match="Upload a primer file first"):
        call_generate(client, source_value=UPLOAD)

    # garbage from the API: words, not a traceback; odd view values fall back to defaults
    with pytest.raises(Exception, match="Unknown model"):
        call_generate(client, name=None)
    notes, *_ = call_generate(client, source_value=CORPUS, chorale_name=None, primer_bars_value=None, bars_value=None,
                              seed_value=None, tempo_value=None)
    assert "Continued 16 frames of *bach/bwv2.6*" in notes and "Tempo None is not a number" in notes


def test_broken_music_checkpoint_is_named(studio_url):
    import httpx

    page = httpx.get(studio_url, timeout=30).text
    assert "broken-chorales.safetensors" in page


@pytest.mark.browser
def test_browser_composes_with_audio_and_the_viewer(studio_url, chromium_page, viewer, tmp_path):
    page = chromium_page
    page.goto(studio_url)
    page.get_by_role("tab", name="Music (MIDI)").click()
    page.get_by_label("Bars to generate", exact=False).fill("4")
    page.click("#music-generate")
    audio = page.locator("#music-audio audio[src]")
    audio.first.wait_for(state="attached", timeout=60_000)
    assert audio.first.get_attribute("src")
    music_viewer = viewer(page, "music")
    music_viewer.check_everything(tmp_path, 9, "music")
    # clicking a note step on the roll strip selects that step
    music_viewer.click_step(7)
    music_viewer.wait_selected(7)
