"""The library in the app, on a shared server: the /library_* endpoints keep two browsers apart, and
in Debian chromium a Text generation is kept, rated five stars, found again by a word after a reload,
and its share link opens a page that makes it again and says "reproduced exactly"."""

from __future__ import annotations

import math
import os

import pytest
import torch

from studio import library, owners
from studio.domains import text, timeseries
from studio.domains.text.codec import TextCodec
from studio.domains.text.generate import TextSettings
from studio.domains.text.model import TextModel, TextModelConfig

NOT_YOURS = "in your library"


@pytest.fixture(scope="module")
def shared_studio(tmp_path_factory, serve):
    """(url, models folder): the real app on a shared server (owner keys required), a tiny text model."""
    import app

    patch = pytest.MonkeyPatch()
    patch.setenv(owners.SHARED_ENV, "1")
    patch.setenv(owners.HOME_ENV, str(tmp_path_factory.mktemp("home")))
    models_dir = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    codec = TextCodec.from_text("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,:;!?'\n")
    model = TextModel(TextModelConfig(codec.size, embed_size=8, hidden_size=16, num_layers=2))
    text.save(models_dir / "tiny", model, codec, {"data": {"source": "made by the test", "licence": "none"}})
    series_model, series_codec = timeseries.tiny(seed=0)
    timeseries.save(models_dir / "tiny-ts", series_model, series_codec)
    url = serve(app.build_demo(models_dir, user_models_dir=tmp_path_factory.mktemp("user-models")))
    yield url, models_dir
    patch.undo()


def keep_text(models_dir, key: str, prompt: str, seed: int) -> int:
    """A record of a tiny-model generation for the owner of `key` (what the Text tab's bar does)."""
    loaded = text.load(models_dir / "tiny")
    settings = TextSettings(prompt=prompt, length=30, seed=seed)
    return library.record_generation(text, loaded, settings, text.generate(loaded, settings), None,
                                     owners.owner_of(key), stem=models_dir / "tiny")


def refusal(client, endpoint: str, *args) -> str:
    try:
        client.predict(*args, api_name=endpoint)
    except Exception as error:  # gradio_client's AppError carries the app's sentence
        return str(error)
    raise AssertionError(f"{endpoint}{args} answered")


def test_endpoints_keep_two_browsers_apart(shared_studio):
    from gradio_client import Client

    url, models_dir = shared_studio
    client = Client(url, verbose=False)
    alice, bob = client.predict(api_name="/library_new_key"), client.predict(api_name="/library_new_key")
    assert alice != bob and owners.KEY_PATTERN.fullmatch(alice)
    mine = keep_text(models_dir, alice, "Alice wrote this", 1)
    keep_text(models_dir, bob, "Bob wrote that", 2)

    found = client.predict(alice, "Alice", None, "", "", None, 10, api_name="/library_search")
    assert [hit["id"] for hit in found] == [mine] and found[0]["prompt"] == "Alice wrote this"
    assert client.predict(bob, "Alice", None, "", "", None, 10, api_name="/library_search") == []
    assert [hit["prompt"] for hit in client.predict(bob, "", None, "", "", None, 10, api_name="/library_search")] == [
        "Bob wrote that"]

    # Bob can neither read nor change Alice's record: the same sentence as for a record that does not exist
    for endpoint, args in [("/library_show", ()), ("/library_rate", (5,)), ("/library_tag", ("mine",)),
                           ("/library_note", ("x",)), ("/library_delete", ()), ("/library_share", ()),
                           ("/library_unshare", ())]:
        assert f"No record {mine} {NOT_YOURS}" in refusal(client, endpoint, bob, mine, *args), endpoint
    assert f"No record {mine} {NOT_YOURS}" in refusal(client, "/library_replay", bob, mine, "")
    # no key, or a malformed one, on a shared server: a sentence
    assert "owner key" in refusal(client, "/library_search", "", "", None, "", "", None, 10)
    assert "owner key" in refusal(client, "/library_show", "short", mine)
    assert "whole number" in refusal(client, "/library_show", alice, "abc")

    # Alice rates, tags, notes, shares; the link lets anyone make it again, read-only
    assert client.predict(alice, mine, 5, api_name="/library_rate")["rating"] == 5
    assert client.predict(alice, mine, "keeper, best", api_name="/library_tag")["tags"] == ["keeper", "best"]
    assert client.predict(alice, mine, "a note", api_name="/library_note")["note"] == "a note"
    token = client.predict(alice, mine, api_name="/library_share")["token"]
    replayed = client.predict(bob, None, token, api_name="/library_replay")
    assert replayed["reproduced"] is True and replayed["record"]["id"] == mine
    assert client.predict(alice, mine, "", api_name="/library_replay")["reproduced"] is True
    assert f"No record {mine} {NOT_YOURS}" in refusal(client, "/library_delete", bob, mine)
    client.predict(alice, mine, api_name="/library_unshare")
    assert "No shared record" in refusal(client, "/library_replay", bob, None, token)
    assert client.predict(alice, mine, api_name="/library_delete") == {"deleted": mine}
    assert client.predict(alice, "", None, "", "", None, 10, api_name="/library_search") == []


@pytest.mark.browser
def test_generate_rate_reload_find_and_share_reproduces(shared_studio, chromium_page):
    url, _ = shared_studio
    page = chromium_page
    page.goto(url)
    page.get_by_label("Prompt", exact=False).fill("Wherefore")
    page.get_by_label("Seed").first.fill("11")
    page.click("#text-generate")
    status = page.locator("#text-keep-status")
    status.get_by_text("Kept in your library as").wait_for(timeout=60_000)
    record_id = status.inner_text().split("record ")[1].split(":")[0].split()[0]
    assert "made 2 times" not in status.inner_text()  # the page's own call is kept once (by its keep event only)
    page.locator("#text-keep-stars").get_by_text("★★★★★", exact=True).click()
    status.get_by_text(f"Rated record {record_id}: ★★★★★").wait_for(timeout=30_000)

    page.reload()
    page.get_by_role("tab", name="Library").click()
    page.locator("#library-query textarea, #library-query input").first.fill("Wherefore")
    page.click("#library-search")
    results = page.locator("#library-results")
    results.get_by_test_id("cell-0-3").get_by_text("★★★★★").wait_for(timeout=30_000)
    results.get_by_test_id("cell-0-3").click()  # picks the row and shows the record
    page.locator("#library-record").get_by_text(f"Record {record_id}:").wait_for(timeout=30_000)
    page.click("#library-share")
    link = page.locator("#library-link a")
    link.wait_for(timeout=30_000)
    href = link.get_attribute("href")
    assert "?run=" in href

    shared = page.context.browser.new_page()  # another browser: the link alone is the permission
    shared.goto(href)
    shared.locator("#shared-status").get_by_text("Reproduced exactly").wait_for(timeout=60_000)
    assert "Wherefore" in shared.locator("#shared-about").inner_text()
    assert os.environ.get(owners.SHARED_ENV) == "1"


def test_api_generations_are_kept_for_the_key_they_pass(shared_studio, tmp_path):
    """A /generate_* call (no page, no chained keep event) is kept for the owner key it passes last;
    /library_last gives its record; a call without a key on a shared server is not kept."""
    from gradio_client import Client, handle_file

    from studio.domains.timeseries.data import example_series

    url, _ = shared_studio
    client = Client(url, verbose=False)
    alice, bob = client.predict(api_name="/library_new_key"), client.predict(api_name="/library_new_key")
    client.predict("tiny", "Thither", 20, 0.8, 0, 1.0, 7, 0, alice, api_name="/generate_text")
    kept = client.predict(alice, api_name="/library_last")["record"]
    assert kept["domain"] == "text" and kept["prompt"] == "Thither" and kept["seed"] == 7 and kept["kind"] == "generation"
    assert client.predict(bob, api_name="/library_last") == {"record": None}
    client.predict("tiny", "Nobody's", 20, 0.8, 0, 1.0, 8, api_name="/generate_text")  # no key: answered, not kept
    assert client.predict(alice, api_name="/library_last")["record"]["id"] == kept["id"]
    assert client.predict(alice, "Nobody*", None, "", "", None, 10, api_name="/library_search") == []

    series = example_series(48)
    data = tmp_path / "sales.csv"
    data.write_text("Month,Sales\n" + "\n".join(f"{d},{v:.2f}" for d, v in zip(series.dates, series.values, strict=True)))
    client.predict("tiny-ts", handle_file(str(data)), "(none: use the upload)", "Sales", 6, 20, 3, bob,
                   api_name="/forecast")
    forecast = client.predict(bob, api_name="/library_last")["record"]
    assert forecast["domain"] == "timeseries" and "6-step forecast" in forecast["output"]
    assert {(f["role"], f["label"]) for f in forecast["files"]} >= {("input", "series file"), ("output", "json")}
    assert client.predict(bob, forecast["id"], "", api_name="/library_replay")["reproduced"] is True
    found = client.predict(bob, "forecast", None, "timeseries", "", None, 10, "generation", api_name="/library_search")
    assert [hit["id"] for hit in found] == [forecast["id"]]


@pytest.mark.browser
def test_a_forecasts_link_opens_the_time_series_tab_and_reproduces(shared_studio, chromium_page, tmp_path):
    from gradio_client import Client, handle_file

    from studio.domains.timeseries.data import example_series

    url, _ = shared_studio
    client = Client(url, verbose=False)
    key = client.predict(api_name="/library_new_key")
    series = example_series(40)
    data = tmp_path / "visits.csv"
    data.write_text("Month,Visits\n" + "\n".join(f"{d},{v:.2f}" for d, v in zip(series.dates, series.values, strict=True)))
    client.predict("tiny-ts", handle_file(str(data)), "(none: use the upload)", "Visits", 5, 10, 2, key, api_name="/forecast")
    record = client.predict(key, api_name="/library_last")["record"]
    query = client.predict(key, record["id"], api_name="/library_share")["query"]
    page = chromium_page
    page.goto(url.rstrip("/") + "/" + query)
    page.locator("#shared-status").get_by_text("Reproduced exactly").wait_for(timeout=60_000)
    assert "5-step forecast" in page.locator("#shared-about").inner_text()
    tab = page.get_by_role("tab", name="Time series")
    page.wait_for_function("() => [...document.querySelectorAll('button[role=tab]')].some("
                           "(b) => b.innerText.trim() === 'Time series' && b.getAttribute('aria-selected') === 'true')",
                           timeout=30_000)
    assert tab.get_attribute("aria-selected") == "true"
    page.locator("#timeseries-keep-status").wait_for(state="attached", timeout=30_000)  # the tab's own keep bar


@pytest.mark.browser
def test_a_training_in_the_train_tab_is_kept_rated_and_found_by_kind(shared_studio, chromium_page, tmp_path, corpus):
    """Train a tiny text model in the Train tab: when it ends, the keep bar under it shows its record;
    five stars there, and the Library tab filtered to kind "model" lists it with five stars."""
    url, _ = shared_studio
    data = tmp_path / "rhyme.txt"
    data.write_text(corpus * 4, encoding="utf-8")
    page = chromium_page
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-files input[type=file]").set_input_files(str(data))
    page.fill("#train-name textarea", "kept rhyme")
    page.get_by_label("tiny (1 × 64)").check()
    page.fill("#train-minutes input", "0.05")  # 3 s
    page.wait_for_timeout(500)
    page.click("#train-start")
    status = page.locator("#train-keep-status")
    status.get_by_text("Kept in your library as").wait_for(timeout=120_000)
    assert "(a model)" in status.inner_text()
    record_id = status.inner_text().split("record ")[1].split()[0]
    page.locator("#train-keep-stars").get_by_text("★★★★★", exact=True).click()
    status.get_by_text(f"Rated record {record_id}: ★★★★★").wait_for(timeout=30_000)

    page.get_by_role("tab", name="Library").click()
    page.locator("#library-kind input").click()
    page.get_by_role("option", name="model", exact=True).click()
    page.click("#library-search")
    results = page.locator("#library-results")
    results.get_by_test_id("cell-0-3").get_by_text("★★★★★").wait_for(timeout=30_000)
    assert results.get_by_test_id("cell-0-0").inner_text().strip() == record_id
    assert results.get_by_test_id("cell-0-2").inner_text().strip() == "kept-rhyme"
    assert results.get_by_test_id("cell-1-0").count() == 0  # only the model: no generation of the other tests



@pytest.fixture(scope="module")
def lab_page(tmp_path_factory, serve):
    """A page with the lab tab alone (and an owner key), not shared, on its own job queue and library."""
    import gradio as gr

    from studio import jobs
    from studio.lab import tab as lab_tab
    from studio.ui import owner

    folder = tmp_path_factory.mktemp("lab")
    patch = pytest.MonkeyPatch()
    patch.setenv(owners.HOME_ENV, str(folder / "home"))
    patch.setenv(owners.SHARED_ENV, "0")
    patch.setattr(jobs, "JOBS_DIR", folder / "jobs")
    with gr.Blocks() as demo:
        owner.browser_key()
        with gr.Tab("Why LSTM"):
            lab_tab.create_tab(jobs.Trainer(folder / "models"))
    yield serve(demo)
    patch.undo()


@pytest.mark.browser
def test_a_lab_run_is_kept_under_its_result(lab_page, chromium_page):
    """The lab's page says "done" from the run's result file before its process has kept the run: the
    bar under the result still comes to stand for the record, rates it and exports it as one HTML page."""
    page = chromium_page
    page.goto(lab_page)
    page.fill("#lab-length input", "10")
    page.fill("#lab-minutes input", "0.05")
    page.wait_for_timeout(300)
    page.click("#lab-start")
    status = page.locator("#lab-keep-status")
    status.get_by_text("Kept in your library as").wait_for(timeout=120_000)
    assert "(a lab run)" in status.inner_text()
    record_id = status.inner_text().split("record ")[1].split()[0]
    page.locator("#lab-keep-stars").get_by_text("★★★★", exact=True).click()
    status.get_by_text(f"Rated record {record_id}: ★★★★.").wait_for(timeout=30_000)
    page.click("#lab-keep-html")
    page.locator("#lab-keep-html-file a").first.wait_for(timeout=30_000)
    assert f"lab-record-{record_id}" in page.locator("#lab-keep-html-file").inner_text()


BAD = ["abc", [1, 2], None, math.nan, math.inf, -1e30, 2**40, {"a": 1}, ""]


def test_bad_values_in_every_library_parameter_get_words(shared_studio, capfd):
    """Each /library_* parameter sent the kinds of bad values scripts send: an answer, or a sentence;
    never a bare error or a traceback in the server's log."""
    from gradio_client import Client

    url, models_dir = shared_studio
    client = Client(url, verbose=False)
    key = client.predict(api_name="/library_new_key")
    record = keep_text(models_dir, key, "fuzzed", 3)
    valid = {"/library_search": [key, "fuzzed", None, "text", "", None, 10, "generation"], "/library_last": [key],
             "/library_show": [key, record],
             "/library_rate": [key, record, 4], "/library_tag": [key, record, "a b"], "/library_note": [key, record, "n"],
             "/library_share": [key, record], "/library_unshare": [key, record], "/library_replay": [key, record, ""]}
    capfd.readouterr()
    for endpoint, args in valid.items():
        client.predict(*args, api_name=endpoint)  # the valid call answers
        for position in range(len(args)):
            for value in BAD:
                try:
                    client.predict(*[value if k == position else a for k, a in enumerate(args)], api_name=endpoint)
                except Exception as error:  # noqa: BLE001 (the app's sentence)
                    message = str(error).strip()
                    assert len(message) >= 12 and message not in ("None", "Error") and "has raised" not in message, (
                        endpoint, position, value, message)
    log = capfd.readouterr()
    assert "Traceback" not in log.err + log.out
