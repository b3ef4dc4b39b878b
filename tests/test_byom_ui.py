"""'Open your model' in the Text tab, in Debian chromium: upload a .keras file and its training text,
generate with it, click a step, and "ask why" answers; a bad file gets its one sentence; the ONNX
button writes the picked model's step graph."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest
import torch

keras = pytest.importorskip("keras")

TEXT = "the quick brown fox jumps over the lazy dog\nand the cat sat on the mat\n" * 30


@pytest.fixture(scope="module")
def byom_url(tmp_path_factory, serve):
    import app
    from studio import jobs
    from studio.domains import text
    from studio.domains.text.codec import TextCodec
    from studio.domains.text.model import TextModel, TextModelConfig

    folder = tmp_path_factory.mktemp("byom")
    jobs.USER_MODELS_DIR = folder / "user-models"  # opened models land here, not in the user's home
    models_dir = folder / "models"
    torch.manual_seed(0)
    codec = TextCodec.from_text("abcdefghijklmnopqrstuvwxyz \n")
    text.save(models_dir / "tiny", TextModel(TextModelConfig(codec.size, 8, 16, 1)), codec,
              {"data": {"source": "made by the test", "licence": "none"}})
    keras.utils.set_random_seed(0)
    chars = sorted(set(TEXT))
    model = keras.Sequential([keras.Input((40, len(chars))), keras.layers.LSTM(32),
                              keras.layers.Dense(len(chars), activation="softmax")])
    model.save(folder / "tutorial.keras")
    (folder / "input.txt").write_text(TEXT)
    (folder / "junk.keras").write_bytes(os.urandom(2000))
    return serve(app.build_demo(models_dir, jobs.USER_MODELS_DIR)), folder


@pytest.mark.browser
def test_open_a_keras_model_generate_and_ask_why(byom_url, chromium_page):
    url, folder = byom_url
    page = chromium_page
    page.goto(url)
    page.locator("#text-byom").get_by_text("Open your model").first.click()
    page.locator("#text-byom-file").wait_for(state="visible", timeout=30_000)
    # a random binary first: one sentence, nothing opened
    page.locator("#text-byom-file input[type=file]").set_input_files(str(folder / "junk.keras"))
    page.locator("#text-byom-vocab input[type=file]").set_input_files(str(folder / "input.txt"))
    page.click("#text-byom-open")
    page.wait_for_function("document.querySelector('#text-byom-message').innerText.includes('Not opened')", timeout=60_000)
    assert "neither a Keras .keras archive nor an HDF5" in page.inner_text("#text-byom-message")
    page.locator("#text-byom-file button[aria-label='Clear']").click()  # the upload box again
    page.locator("#text-byom-file input[type=file]").set_input_files(str(folder / "tutorial.keras"))
    page.click("#text-byom-open")
    page.wait_for_function("document.querySelector('#text-byom-message').innerText.includes('Opened')", timeout=60_000)
    assert (folder / "user-models" / "tutorial.json").exists()
    # its card's training window (the Input's 40 steps) is offered as the sampling window
    page.wait_for_function("document.querySelector('#text-window input').value === '40'", timeout=30_000)
    page.get_by_label("Prompt", exact=False).fill("the cat")
    page.click("#text-generate")
    # the tab opens with its example drawn: wait for this prompt's own trace
    page.wait_for_function("""() => { const v = document.querySelector('#text-viewer .lv-root');
        return v.dataset.ready === 'yes' && v.querySelector('.lv-text').innerText.startsWith('the cat'); }""",
                           timeout=60_000)
    assert "tutorial" in page.inner_text("#text-viewer") or page.locator("#text-viewer .lv-ch").count() == len("the cat") + 400
    page.locator("#text-viewer .lv-ch[data-step='10']").click()
    panel = "#text-explain .ex-root"
    page.wait_for_function(f"document.querySelector('{panel}') && document.querySelector('{panel}').dataset.step === '10'",
                           timeout=60_000)
    assert page.locator(f"{panel} .ex-guesses tr").count() == 5
    # the ONNX button exports the opened model
    page.click("#text-onnx")
    page.wait_for_function("[...document.querySelectorAll('#text-onnx-file a')].some(a => a.href.includes('.onnx'))",
                           timeout=60_000)


@pytest.mark.browser
def test_open_a_model_in_the_train_tab(byom_url, chromium_page):
    """The Train tab's box opens a model too: listed in the Text tab, and a start to fine-tune from."""
    url, folder = byom_url
    page = chromium_page
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-text-byom").get_by_text("Open your model").first.click()
    page.locator("#train-text-byom-file").wait_for(state="visible", timeout=30_000)
    page.locator("#train-text-byom-file input[type=file]").set_input_files(str(folder / "tutorial.keras"))
    page.locator("#train-text-byom-vocab input[type=file]").set_input_files(str(folder / "input.txt"))
    page.click("#train-text-byom-open")
    page.wait_for_function("document.querySelector('#train-text-byom-message').innerText.includes('Opened')", timeout=60_000)
