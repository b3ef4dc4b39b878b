"""The Time series tab end to end: through the API (gradio_client) and in Debian chromium
(playwright): upload a CSV, see the fan chart and the backtest table, click a forecast step, see
which past points mattered. A tiny untrained model; the page is built from the tab alone."""

from __future__ import annotations

import pytest

from studio.domains.timeseries.data import example_series


@pytest.fixture(scope="module")
def timeseries_url(serve, tmp_path_factory):
    import gradio as gr

    from studio.domains import timeseries
    from studio.domains.timeseries.tab import create_tab

    model, codec = timeseries.tiny(seed=0)
    folder = tmp_path_factory.mktemp("models")
    timeseries.save(folder / "tiny-ts", model, codec)
    with gr.Blocks() as demo:
        create_tab({"tiny-ts": timeseries.load(folder / "tiny-ts")}, [])
    return serve(demo)


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory):
    series = example_series(60)
    path = tmp_path_factory.mktemp("data") / "sales.csv"
    path.write_text("Month,Sales,Returns\n" + "\n".join(
        f"{d},{v:.2f},{v / 10:.2f}" for d, v in zip(series.dates, series.values, strict=True)))
    return path


def test_forecast_and_backtest_through_gradio_client(timeseries_url, series_csv, tmp_path):
    import json

    from gradio_client import Client, handle_file

    client = Client(timeseries_url, verbose=False)
    columns = client.predict(handle_file(str(series_csv)), api_name="/timeseries_columns")
    assert columns["value"] == "Sales" and [c[0] for c in columns["choices"]] == ["Sales", "Returns"]
    answer = client.predict("tiny-ts", handle_file(str(series_csv)), "(none: use the upload)", "Returns", 6, 20, 0,
                            api_name="/forecast")
    notes = answer[0]
    assert "sales: Returns" in notes and "6 steps" in notes
    files = [a for a in answer if isinstance(a, str) and a.endswith("forecast.json")]
    data = json.loads(open(files[0]).read())
    assert len(data["forecast"]) == 6 and "0.9" in data["quantiles"]
    bad = tmp_path / "bad.csv"
    bad.write_text("date,value\n2000-01,5\n")
    with pytest.raises(Exception, match="at least 8 points"):
        client.predict("tiny-ts", handle_file(str(bad)), "(none: use the upload)", "", 6, 20, 0, api_name="/forecast")


@pytest.mark.browser
def test_upload_forecast_backtest_and_ask_why_in_the_browser(timeseries_url, series_csv, chromium_page, viewer):
    page = chromium_page
    page.goto(timeseries_url)
    page.locator("#timeseries-upload input[type=file]").set_input_files(str(series_csv))
    page.wait_for_timeout(1500)
    page.click("#timeseries-generate")
    ts_viewer = viewer(page, "timeseries")
    ts_viewer.wait_ready()
    chart = page.wait_for_selector("#timeseries-chart svg[aria-label]", timeout=60_000)
    assert "step forecast" in chart.get_attribute("aria-label") and chart.is_visible()
    # the backtest table follows the forecast: the four methods' rows
    page.wait_for_function("document.querySelector('#timeseries-backtest').innerText.includes('AutoARIMA')", timeout=90_000)
    assert "seasonal naive" in page.inner_text("#timeseries-backtest")
    # a click on a forecast step (after the 60 history steps): which past points drove it
    ts_viewer.click_step(62)
    page.wait_for_function("document.querySelector('#timeseries-why').innerText.includes('lag')", timeout=60_000)
    assert "forecast step" in page.inner_text("#timeseries-why")
    page.wait_for_selector("#timeseries-chart svg circle", timeout=30_000)  # the points that drove it, painted
