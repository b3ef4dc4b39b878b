"""The Time series tab: upload a series (or pick a packaged one), forecast H steps as sampled paths
(fan chart), a rolling-origin backtest against statsforecast's seasonal naive, AutoETS and
AutoARIMA, the trace viewer over the history and the median path, and "ask why" on a step: which
past points drove it, painted on the history, and which lag weighed most."""

from __future__ import annotations

import gradio as gr

from studio import workers
from studio.domains import timeseries
from studio.domains.timeseries import evaluate
from studio.domains.timeseries.data import SHIPPED, read_series, read_table, shipped, value_columns
from studio.domains.timeseries.evaluate import BACKTEST_COLUMNS, backtest, drivers, strongest_lags
from studio.domains.timeseries.generate import MAX_HORIZON, MAX_PATHS, ForecastSettings
from studio.domains.timeseries.render import fan_chart_svg
from studio.ui import blocks, inputs, keep_bar
from studio.ui.common import clamp_int, notes_markdown, output_dir

INTRO = ("Upload a series (CSV, TSV or JSON with a date column and value columns) or pick one that ships with "
         "statsmodels / statsforecast. The LSTM reads it normalised on its own history (log, seasonal indices, last "
         "level, spread) and samples future paths from its Gaussian head; the fan chart shows their 50 / 80 / 95% "
         "bands. The backtest forecasts the last stretches from earlier origins, against well-kept statistical models. "
         "Click a step in the viewer to see which past points drove its prediction.")
NO_MODEL = ("No time-series model is available in `models/`. "
            "Train one with `python -m studio train timeseries --out models/NAME`.")
NO_SHIPPED = "(none: use the upload)"
BACKTEST_FOLDS = 2
CHART_LABEL = "Forecast: history, median, 50 / 80 / 95% bands"
# Between the forecast and its backtest, in the page: wait (at most 3 s) until the viewer has drawn
# the new trace. A step that runs no Python sets no loading status, so the page's status pass over
# every output of every tab, which the backtest's start costs, and the backtest's CPU come after
# the drawing instead of before it (docs/timeseries.md, Speed).
AFTER_DRAWN = """() => new Promise((resolve) => {
  const start = performance.now();
  const check = () => {
    const root = document.querySelector('#timeseries-viewer .lv-root');
    if (!root || root.dataset.ready !== 'loading' || performance.now() - start > 3000) resolve([]);
    else setTimeout(check, 20);
  };
  requestAnimationFrame(() => setTimeout(check, 0));
})"""


def read_choice(path, label, column, season=0):
    """The series the form names: the upload (its `column`), else the packaged one."""
    try:
        if isinstance(path, str) and path:
            return read_series(path, column if isinstance(column, str) and column else None, season)
        if isinstance(label, str) and label in SHIPPED:
            return shipped(label)
    except ValueError as error:
        raise gr.Error(str(error)) from None
    raise gr.Error("Upload a series file or pick a packaged series first.")


def on_upload(path):
    """The value columns of an uploaded file, for the column picker."""
    if not isinstance(path, str) or not path:
        return gr.update(choices=[], value=None)
    try:
        header, rows = read_table(path)
        columns = value_columns(header, rows)
    except ValueError as error:
        raise gr.Error(str(error)) from None
    return gr.update(choices=columns, value=columns[0] if columns else None)


def why_markdown(generation, step: int, amounts) -> str:
    """Which past points and which seasonal lag drove the prediction made at `step`, in words."""
    history = generation.trace.prompt_length
    found = strongest_lags(amounts, step, generation.result.series.season)
    target = (f"forecast step {step + 2 - history}" if step + 1 >= history else f"history point {step + 2}")
    lines = [f"**The prediction made after step {step + 1} ({generation.trace.labels[step]}), for {target}:** "
             "how far it "
             "moves per unit moved of each past point (painted on the chart); the strongest lags:"]
    lines += [f"- lag {lag['lag']}: {lag['share']:.0%}" for lag in found["top"]]
    if found["seasonal"] is not None:
        lag = found["seasonal"]
        lines.append(f"- the seasonal lag it looked at most: {lag['lag']} ({lag['share']:.0%}); the season's "
                     "shape itself "
                     "comes from the per-series seasonal indices the model reads the series through")
    return "\n".join(lines)


def create_tab(models: dict, problems: list[str]) -> None:
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            if (header := blocks.model_header(models, problems, NO_MODEL)) is None:
                return
            model_name, model_info = header
            packaged = inputs.Dropdown([NO_SHIPPED, *SHIPPED], value=next(iter(SHIPPED)),
                                       label="A packaged series (or upload your own below)",
                                       elem_id="timeseries-shipped")
            horizon = inputs.Number(24, label=f"Horizon (steps, up to {MAX_HORIZON})", precision=0,
                                    elem_id="timeseries-horizon")
            # the main button in the first screen; the user's own file and the finer settings after it
            forecast = gr.Button("Forecast", variant="primary", elem_id="timeseries-generate")
            upload = gr.File(label="Series file (CSV, TSV or JSON)", file_types=[".csv", ".tsv", ".txt", ".json"],
                             elem_id="timeseries-upload", height=110)
            column = inputs.Dropdown([], label="Value column", allow_custom_value=True, elem_id="timeseries-column")
            paths = inputs.Number(100, label=f"Sample paths (up to {MAX_PATHS})", precision=0)
            seed = inputs.Number(0, label="Seed", precision=0, elem_id="timeseries-seed")
            download_json, download_csv = blocks.downloads("Forecast (.json)", "Forecast (.csv)")
        with gr.Column(scale=3):
            notes = gr.Markdown(elem_id="timeseries-notes")
            chart = gr.HTML(label=CHART_LABEL, show_label=True, container=True, js_on_load=None,
                            elem_id="timeseries-chart")  # an inline SVG (render.fan_chart_svg)
            table = gr.Dataframe(headers=BACKTEST_COLUMNS, label="Rolling-origin backtest (mean over the origins)",
                                 elem_id="timeseries-backtest", interactive=False)
            why = gr.Markdown(elem_id="timeseries-why")
            keep = keep_bar.keep_bar("timeseries")  # each forecast kept in the library: rate, tag, share
            panel = blocks.gate_panel("timeseries", timeseries, models)
    generation_state = gr.State()

    def on_forecast(name, path, label, column_name, horizon_value, paths_value, seed_value):
        loaded = blocks.loaded_or_error(models, name)
        series = read_choice(path, label, column_name)
        settings = ForecastSettings(series, clamp_int(horizon_value, 1, MAX_HORIZON, 24),
                                    clamp_int(paths_value, 2, MAX_PATHS, 100), 0, clamp_int(seed_value, 0, 2**62, 0))
        generation, files = workers.generate_files(timeseries, loaded, settings, output_dir())
        result = generation.result
        summary = (f"{series.name}: {len(series)} points, season {series.season} ({series.frequency}); "
                   f"{len(result.forecast)} steps forecast from {result.paths.shape[0]} paths.")
        values = blocks.gate_values(generation.trace, timeseries.track(generation), f"{name}:")
        return (notes_markdown(result.notes + [summary]), fan_chart_svg(generation), *values, "",
                str(files["forecast (JSON)"]), str(files["forecast (CSV)"]), generation, None, "")

    def on_backtest(generation, name):
        if generation is None:
            return None
        loaded = blocks.loaded_or_error(models, name)
        series = generation.result.series
        try:
            found = backtest(loaded, series, len(generation.result.forecast), folds=BACKTEST_FOLDS,
                             run_folds=lambda calls: workers.call_all(evaluate, loaded, "backtest_fold", calls))
        except ValueError as error:
            raise gr.Error(str(error)) from None
        return found.table()

    def on_step(generation, event):
        """A clicked step: the fan chart with the points that drove its prediction painted on the history."""
        if generation is None or not isinstance(event, dict) or event.get("kind") != "step":
            return gr.skip(), gr.skip()
        loaded = models.get(generation.trace.model)
        if loaded is None:
            return gr.skip(), "The model that made this forecast is no longer loaded; forecast again."
        step = clamp_int(event.get("step"), 0, generation.trace.steps - 1, generation.trace.steps - 1)
        try:
            amounts = drivers(loaded, timeseries.sequence_of(generation), step)
        except ValueError as error:
            return gr.skip(), str(error)
        return fan_chart_svg(generation, saliency=amounts, step=step), why_markdown(generation, step, amounts)

    blocks.follow_model(model_name, model_info, models)
    upload.change(on_upload, upload, column, api_name="timeseries_columns")
    forecast_inputs = [model_name, upload, packaged, column, horizon, paths, seed]
    forecast_outputs = [notes, chart, *panel.outputs, panel.selection, download_json, download_csv, generation_state,
                        table, why]
    # shown in progress: the chart and the viewer only (each output shown so costs the page at every
    # later status change, docs/timeseries.md, Speed)
    forecasted = forecast.click(on_forecast, forecast_inputs, forecast_outputs, api_name="forecast",
                                show_progress_on=[chart, panel.viewer.html])
    forecasted.then(None, js=AFTER_DRAWN).then(on_backtest, [generation_state, model_name], table, api_name="backtest")
    keep_bar.wire(keep, forecasted, generation_state, timeseries, models, uploads={"series file": upload})
    blocks.example_on_load(forecast, on_forecast, forecast_inputs, forecast_outputs)  # the fan chart and gates at once
    blocks.wire_panel(panel, generation_state, timeseries, models)
    panel.viewer.events.select(on_step, [generation_state, panel.viewer.events], [chart, why], api_visibility="private")
