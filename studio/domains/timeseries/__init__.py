"""Time series: probabilistic forecasts (sampled paths, quantiles, a fan chart) from an LSTM with a
Gaussian head that reads each series normalised on its own history. The package exposes the
contract (studio.domains.base); internals are imported from their modules: codec.py (Series, the
per-series Scaling), model.py (ForecastModel, load/save), data.py (CSV/TSV/JSON readers, the
packaged and synthetic series), train.py (pretraining and fine-tuning windows), evaluate.py
(MASE, sMAPE, pinball, coverage, the statsforecast baselines and backtest, score, fused, features,
explainable, the tiny model and example), generate.py (the forecast), render.py (fan chart, files),
cli.py and tab.py (imported by the CLI and the app only)."""

from studio import checkpoint
from studio.domains.timeseries.data import read_input
from studio.domains.timeseries.evaluate import example, explainable, features, fused, score, step_divergence, tiny
from studio.domains.timeseries.generate import ForecastSettings, generate
from studio.domains.timeseries.model import NAME, load, save
from studio.domains.timeseries.render import sequence_of, summary_of, track, write_files
from studio.domains.timeseries.train import TRAINING

TITLE = "Time series"
DEFAULT_MODEL = checkpoint.MODELS_DIR / "ts-global"
Settings = ForecastSettings

# the contract: studio.domains.base.REQUIRED and the OPTIONAL members this domain has
__all__ = ["NAME", "TITLE", "DEFAULT_MODEL", "Settings", "TRAINING", "load", "save", "read_input", "score", "generate",
           "features", "write_files", "fused", "tiny", "example", "explainable", "track", "sequence_of",
           "step_divergence", "summary_of"]
