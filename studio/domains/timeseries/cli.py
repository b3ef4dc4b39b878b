"""`python -m studio {train,generate,eval} timeseries`; `trace`, `explain`, ... are shared.

    python -m studio train timeseries --out models/ts-global --minutes 22          # pretrain (packaged + synthetic)
    python -m studio train timeseries --data sales.csv --init models/ts-global --out models/sales --minutes 1
    python -m studio generate timeseries --data sales.csv [--column C] --horizon 12 --out forecast.json [--save]
    python -m studio eval timeseries --data sales.csv --horizon 12
        # last line: mase=X smape=Y coverage80=Z seasonal_naive_mase=A ets_mase=B arima_mase=C
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from studio import checkpoint, cli_common, library
from studio.domains import timeseries
from studio.domains.timeseries.codec import SeriesCodec
from studio.domains.timeseries.data import SHIPPED_LICENCES, read_series
from studio.domains.timeseries.evaluate import backtest
from studio.domains.timeseries.generate import ForecastSettings
from studio.domains.timeseries.model import ForecastModel, ForecastModelConfig, make_card
from studio.domains.timeseries.train import WindowTask, fine_tune_task, real_training_series, synthetic

FINE_TUNE_STEPS = 300  # ~15-30 s on one core for a 100-point series
VAL_HOW = "Gaussian NLL per future point (normalised units) of the validation windows' last up to 24 points"
PRETRAIN_SOURCE = ("synthetic seasonal series (studio/domains/timeseries/train.py synthetic, generated while "
                   "training) and "
                   "packaged real series: statsmodels sunspots, nile, macrodata (10 quarterly columns), elnino "
                   "(all but "
                   "its last 10 years), co2 (all but its last 10 years)")


def add_commands(command: str, parser) -> None:
    if command == "train":
        parser.add_argument("--data", help="a series file to fine-tune on (CSV, TSV, JSON); without it: pretrain on "
                            "packaged and synthetic series")
        parser.add_argument("--column", help="the value column (default: the first column of numbers)")
        parser.add_argument("--season", type=int, default=0, help="points per season (default: from the dates)")
        parser.add_argument("--init", help="start from this checkpoint (default with --data: the shipped model)")
        cli_common.add_train_flags(parser, steps=None, lr=2e-3, eval_every=500, batch_size=32, hidden_size=64)
        parser.set_defaults(run=run_train)
    elif command == "generate":
        _data_flags(parser)
        cli_common.add_model_flag(parser, timeseries)
        parser.add_argument("--horizon", type=int, default=24, help="steps to forecast")
        parser.add_argument("--paths", type=int, default=100, help="sampled paths")
        parser.add_argument("--seed", type=int, default=0)
        cli_common.add_output_flags(parser, "the forecast .json (forecast: the median per step; quantiles: level "
                                            "-> list)")
        parser.add_argument("--plot", help="also write the fan chart (.png or .svg)")
        library.add_save_flag(parser)
        parser.set_defaults(run=run_generate)
    elif command == "eval":
        _data_flags(parser)
        cli_common.add_model_flag(parser, timeseries)
        parser.add_argument("--horizon", type=int, default=12, help="the last H points are held out and forecast")
        parser.add_argument("--paths", type=int, default=200, help="sampled paths")
        parser.add_argument("--seed", type=int, default=0)
        parser.set_defaults(run=run_eval)


def _data_flags(parser) -> None:
    parser.add_argument("--data", help="the series: a CSV, TSV or JSON file with a date column (required)")
    parser.add_argument("--column", help="the value column (default: the first column of numbers)")
    parser.add_argument("--season", type=int, default=0, help="points per season (default: from the dates)")


def _series(args):
    if not args.data:
        sys.exit("error: give the series with --data FILE (CSV, TSV or JSON)")
    try:
        return read_series(args.data, args.column, args.season)
    except ValueError as error:
        sys.exit(f"error: {error}")


def run_generate(args) -> int:
    loaded = cli_common.load_or_exit(timeseries, args.model)
    series = _series(args)
    settings = ForecastSettings(series, args.horizon, args.paths, 0, args.seed)
    generation, seconds = library.timed(timeseries.generate, loaded, settings)
    result = generation.result
    cli_common.print_notes(result.notes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.to_json(), indent=1))
    if args.trace_out:
        generation.trace.save_npz(args.trace_out)
    if args.plot:
        from studio.domains.timeseries.render import fan_chart

        fan_chart(generation).savefig(args.plot)
    print(f"wrote {out}: {len(result.forecast)} steps of {series.name} ({len(series)} points, season {series.season})")
    # the uploaded file is kept beside the series the settings hold (replay reads the settings' copy)
    library.save_after(args, timeseries, loaded, settings, generation, input_files={"series file": args.data},
                       duration=seconds)
    return 0


def run_eval(args) -> int:
    loaded = cli_common.load_or_exit(timeseries, args.model)
    series = _series(args)
    try:
        rows = backtest(loaded, series, args.horizon, folds=1, paths=args.paths, seed=args.seed).rows
    except ValueError as error:
        sys.exit(f"error: {error}")
    for method, row in rows.items():
        print(f"{method}: " + " ".join(f"{k}={v:.4f}" for k, v in row.items()))
    model = rows["model"]
    print(f"mase={model['mase']:.4f} smape={model['smape']:.4f} coverage80={model['coverage80']:.4f} "
          f"seasonal_naive_mase={rows['seasonal_naive']['mase']:.4f} ets_mase={rows['ets']['mase']:.4f} "
          f"arima_mase={rows['arima']['mase']:.4f}")
    return 0


def run_train(args) -> int:
    codec = SeriesCodec()
    base = None
    if args.data and not args.steps and not args.minutes:
        args.steps = FINE_TUNE_STEPS  # a user's series: a short run (the Train tab's default is its time budget)
    if args.data:
        series = _series(args)
        init = args.init or str(timeseries.DEFAULT_MODEL)
        try:
            base = timeseries.load(init)
        except checkpoint.CheckpointError as error:
            sys.exit(f"error: --init: {error}")
        config, codec = base.model.config, base.codec
        try:
            task = fine_tune_task(series, codec, seed=args.seed)
        except ValueError as error:
            sys.exit(f"error: {error}")
        data = {"source": args.source or f"{Path(args.data).name} ({len(series)} points)",
                "licence": args.licence or "the user's own data", "files": [str(Path(args.data).name)],
                "pretrained_on": base.card.get("data", {}).get("source", "")}
        print(f"fine-tuning {base.name} on {series.name}", file=sys.stderr)
    else:
        if args.init:
            base = cli_common.load_or_exit(timeseries, args.init)
        config = base.model.config if base else ForecastModelConfig(hidden_size=args.hidden_size,
                                                                    num_layers=args.layers)
        real = real_training_series()
        rng = np.random.default_rng(12345)
        valid = [synthetic(rng, int(rng.integers(60, 200))) for _ in range(64)] + real
        task = WindowTask(real, valid, codec, batch_size=args.batch_size or 32, synthetic_share=0.7, seed=args.seed)
        data = {"source": PRETRAIN_SOURCE, "licence": SHIPPED_LICENCES}
    torch.manual_seed(args.seed)
    model = ForecastModel(config)
    if base is not None:
        model.load_state_dict(base.model.state_dict())
    hyperparameters = {"batch_size": task.batch_size, "synthetic_share": task.synthetic_share,
                       **({"init": base.name} if base else {})}
    card = make_card(model, codec, reproduce=args.command_line, data=data, hyperparameters=hyperparameters)
    cli_common.run_training(timeseries.NAME, model, task, args, card, "valid_nll", VAL_HOW)
    return 0
