"""A word-level PyTorch model (word_language_model's layout) in the Text tab of the page, in Debian
chromium: beside a character model listed first, pick it, generate, and probe a word feature from
the experiments panel, whose menu offers the word model's own features, over an uploaded text read
up to a number of words."""

from __future__ import annotations

import pytest
import torch
from test_import_words import TEXT, RNNModel  # the text and word_language_model's layout, as the CLI test builds them


@pytest.fixture(scope="module")
def words_url(tmp_path_factory, serve):
    import app
    from studio import import_cli, jobs
    from studio.domains import text
    from studio.domains.text.codec import TextCodec
    from studio.domains.text.model import TextModel, TextModelConfig

    folder = tmp_path_factory.mktemp("words-ui")
    jobs.USER_MODELS_DIR = folder / "user-models"
    models_dir = folder / "models"
    torch.manual_seed(0)
    codec = TextCodec.from_text(TEXT)  # "chars" is listed first: the tab opens with a character model
    text.save(models_dir / "chars", TextModel(TextModelConfig(codec.size, 8, 16, 1)), codec,
              {"data": {"source": "made by the test", "licence": "none"}})
    path = folder / "input.txt"
    path.write_text(TEXT)
    words = import_cli.read_vocabulary(vocab_text=path, tokens="words")
    torch.save(RNNModel(len(words), 8, 12, 2).state_dict(), folder / "w.pt")
    import_cli.import_file(text, folder / "w.pt", "torch", models_dir / "words", vocab_text=path, tokens="words")
    return serve(app.build_demo(models_dir, jobs.USER_MODELS_DIR)), path


def options(page) -> list[str]:
    """The feature menu's choices as a person sees them (the list opens on a click)."""
    page.locator("#text-xp-feature input").click()
    listed = page.locator("#text-xp-feature li[role=option]")
    listed.first.wait_for(timeout=10_000)
    shown = [option.get_attribute("aria-label") for option in listed.all()]
    page.keyboard.press("Escape")
    return shown


@pytest.mark.browser
def test_probe_a_word_feature_of_a_word_model_from_the_panel(words_url, chromium_page):
    url, path = words_url
    page = chromium_page
    page.goto(url)
    page.locator("#text-viewer .lv-root[data-ready='yes']").wait_for(timeout=60_000)  # the example, by "chars"
    page.locator("#text-experiments").get_by_text("Experiment on units").click()
    page.wait_for_function("document.querySelector('#text-xp-feature input').value === 'space'", timeout=30_000)
    assert {"space", "vowel"} <= set(options(page))  # a character model's features
    # the word model: pick it, generate
    page.locator("#text-model input").click()
    page.get_by_role("option", name="words").click()
    page.get_by_label("Prompt", exact=False).fill("the cat sat")
    page.click("#text-generate")
    page.wait_for_function("""() => { const v = document.querySelector('#text-viewer .lv-root');
        return v.dataset.ready === 'yes' && v.querySelector('.lv-text').innerText.startsWith('the cat sat'); }""",
                           timeout=60_000)
    # the menu now offers the word model's features: no "space" or "vowel", "punctuation" among them
    page.wait_for_function("document.querySelector('#text-xp-feature input').value === 'newline'", timeout=30_000)
    shown = options(page)
    assert "punctuation" in shown and "space" not in shown and "vowel" not in shown
    assert "the model's steps" in page.inner_text("#text-experiments")  # "read at most" counts words here
    page.locator("#text-xp-feature input").fill("punctuation")
    page.locator("#text-xp-feature input").press("Enter")
    # the uploaded text, read up to 200 steps (words and line ends)
    page.locator("#text-experiments").get_by_text("an uploaded file").click()
    page.locator("#text-xp-upload input[type=file]").set_input_files(str(path))
    page.locator("#text-xp-limit input").fill("200")
    page.click("#text-xp-probe")
    results = "#text-xp-results .xp-root"
    page.wait_for_function(f"document.querySelector('{results}').dataset.kind === 'probe'", timeout=60_000)
    heading = page.inner_text(f"{results} h4")
    assert "Units that track “punctuation”: AUC over 200 steps" in heading and "input.txt" in heading
    assert page.locator(f"{results} tr.xp-hit").count() == 10
    assert page.locator(f"{results} svg.xp-spark").count() == 5  # the top units drawn next to the feature
