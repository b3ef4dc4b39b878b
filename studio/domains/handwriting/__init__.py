"""Handwriting: Graves (2013) pen-stroke LSTMs, a synthesis network that writes a text through a
soft attention window and a prediction network that scribbles. The contract
(studio.domains.base) in one place: codec.py (strokes <-> offsets, the alphabet, the sample and
trace records), model.py (mixture density output, PredictionModel, SynthesisModel, load/save),
data.py (stroke-file importers, the Hershey-font corpus, read_input, features), train.py (the
training task), evaluate.py (NLL per point, finishing rate, score, fused), generate.py (writing and
scribbling), render.py (SVG, PNG, figures), cli.py and tab.py (imported by the CLI and the app only).

`score` reads a `Handwriting(strokes, text)` sample teacher-forced; `generate` takes
HandwritingSettings (`Settings`) and goes by the model's kind (card `kind`: "synthesis" or
"prediction")."""

from studio import checkpoint
from studio.domains.handwriting.codec import (
    DEFAULT_CHARS,
    MAX_SCORE_POINTS,
    MAX_TEXT,
    TRAINING_STATS,
    Handwriting,
    HandwritingAlphabet,
    HandwritingCodec,
    HandwritingDetail,
    bounds,
    curvature_of,
    expected_height,
    normalize_primer,
    normalize_strokes,
    offsets_to_strokes,
    slant_of,
    stroke_stats,
    strokes_to_offsets,
    training_stats,
)
from studio.domains.handwriting.data import (
    PROVENANCE,
    DataConfig,
    StrokeFileError,
    build_dataset,
    features,
    load_dataset,
    load_iam_xml,
    load_json_strokes,
    load_quickdraw_ndjson,
    load_sketch_rnn_npz,
    load_stroke_file,
    pad_strokes,
    phrases_from_text,
    read_input,
    render_phrase,
)
from studio.domains.handwriting.evaluate import (
    NLL_UNITS,
    StrokeBatch,
    batch_nll,
    explainable,
    finished_fraction,
    fused,
    make_batch,
    nll_per_point,
    score,
)
from studio.domains.handwriting.generate import (
    LINE_CHARS,
    MAX_POINTS,
    MAX_PRIMER_POINTS,
    HandwritingResult,
    HandwritingSettings,
    example,
    generate,
    max_steps_for,
    pick_style,
)
from studio.domains.handwriting.model import (
    NAME,
    PREDICTION,
    STYLE_NAMES,
    SYNTHESIS,
    MDNParams,
    PredictionConfig,
    PredictionModel,
    SynthesisConfig,
    SynthesisModel,
    WindowState,
    load,
    make_card,
    mdn_log_likelihood,
    mdn_sample,
    mdn_split,
    save,
    tiny,
)
from studio.domains.handwriting.render import (
    animated_svg,
    attention_html,
    render,
    render_figure,
    sequence_of,
    strokes_figure,
    strokes_to_svg,
    svg_to_strokes,
    track,
    unit_colors,
    write_files,
    write_png,
)
from studio.domains.handwriting.train import (
    EXTRA_CHARS,
    HELD_DRAWERS,
    OMNIGLOT,
    PRINT_PROVENANCE,
    TRAINING,  # how it trains from a user's files
    Hand,
    StrokeTask,
    build_mixed_dataset,
    compose_line,
    load_omniglot,
    random_hand,
    style_labels,
    warm_start,
)

TITLE = "Handwriting"
DEFAULT_MODEL = checkpoint.MODELS_DIR / "print-cursive-styled"  # the rule: docs/handwriting.md
Settings = HandwritingSettings

__all__ = ["TRAINING", "NAME", "TITLE", "DEFAULT_MODEL", "Settings", "load", "save", "make_card", "read_input", "score", "generate",
           "features", "render", "track", "write_files", "fused", "tiny", "example", "explainable", "sequence_of",
           "DEFAULT_CHARS", "MAX_TEXT", "MAX_SCORE_POINTS", "LINE_CHARS", "MAX_POINTS", "MAX_PRIMER_POINTS", "NLL_UNITS",
           "PROVENANCE", "SYNTHESIS", "PREDICTION",
           "Handwriting", "HandwritingAlphabet", "HandwritingCodec", "HandwritingDetail", "HandwritingSettings",
           "HandwritingResult", "StrokeFileError", "DataConfig", "MDNParams", "PredictionConfig", "PredictionModel",
           "SynthesisConfig", "SynthesisModel", "WindowState", "StrokeBatch", "StrokeTask",
           "strokes_to_offsets", "offsets_to_strokes", "normalize_strokes", "bounds", "load_stroke_file",
           "load_iam_xml", "load_quickdraw_ndjson", "load_sketch_rnn_npz", "load_json_strokes", "phrases_from_text",
           "render_phrase", "build_dataset", "load_dataset", "mdn_split", "mdn_log_likelihood", "mdn_sample",
           "make_batch", "batch_nll", "nll_per_point", "finished_fraction", "max_steps_for",
           "strokes_to_svg", "svg_to_strokes", "render_figure", "write_png", "unit_colors", "strokes_figure",
           "attention_html", "animated_svg", "pad_strokes", "TRAINING_STATS", "normalize_primer", "stroke_stats",
           "slant_of", "curvature_of", "expected_height", "training_stats", "EXTRA_CHARS", "HELD_DRAWERS", "OMNIGLOT",
           "PRINT_PROVENANCE", "Hand", "build_mixed_dataset", "compose_line", "load_omniglot", "random_hand",
           "warm_start", "style_labels", "STYLE_NAMES", "pick_style"]
