"""`python -m studio {train,generate,eval} handwriting`; `trace` is shared (studio.cli_common: it
reads a stroke file with its transcript, teacher-forced).

python -m studio train handwriting --corpus ../shared/data/tinyshakespeare.txt --data-dir runs/handwriting-data --out models/hershey-synthesis
python -m studio train handwriting --omniglot ../shared/data/omniglot-latin.json --init models/hershey-synthesis \
    --data-dir runs/hw-mixed/data --out models/print-cursive-synthesis ...   (cursive + real print; the card has the rest)
python -m studio train handwriting ... --init models/print-cursive-synthesis --styles 2 ...   (a cursive / print style input)
python -m studio train handwriting --data STROKES.zip [--init models/print-cursive-styled] --out runs/mine/ --minutes 5
    (your own stroke files with transcripts: .json {strokes, text}, IAM .xml, QuickDraw .ndjson, sketch-rnn .npz,
     a name.txt beside any without one; files, folders or zips of them)
python -m studio generate handwriting --text "hello" [--bias B] [--style FILE [--style-text S]] [--hand H] --out out.svg
python -m studio eval handwriting --data-dir runs/handwriting-data   (last line: finished_fraction: X)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from studio import checkpoint, cli_common, library
from studio.domains import handwriting as hw
from studio.domains.handwriting.codec import DEFAULT_CHARS, HandwritingAlphabet, HandwritingCodec
from studio.domains.handwriting.data import PROVENANCE, DataConfig, build_dataset, load_dataset
from studio.domains.handwriting.evaluate import NLL_UNITS, finished_fraction, nll_per_point
from studio.domains.handwriting.generate import HandwritingSettings
from studio.domains.handwriting.model import (
    PREDICTION,
    STYLE_NAMES,
    SYNTHESIS,
    PredictionConfig,
    PredictionModel,
    SynthesisConfig,
    SynthesisModel,
    make_card,
)
from studio.domains.handwriting.render import strokes_to_svg, write_png
from studio.domains.handwriting.train import (
    PRINT_PROVENANCE,
    StrokeTask,
    alphabet_for,
    build_mixed_dataset,
    held_out_split,
    read_samples,
    style_labels,
    user_set,
    warm_start,
)

TRAIN_LR = 3e-3
# --data with --init: a shipped model fine-tuned on 60 lines for a minute kept its legible hand at 5e-4
# (held-out NLL -1.68 per point) and lost it at 3e-3 (+0.33): bench/bench_train_domains.py
FINE_TUNE_LR = 5e-4
MODEL_OPTIONS = {  # train's model and data shape, beside the shared trainer flags
    "--mixtures": (20, "Gaussians of the output mixture"),
    "--window-gaussians": (10, "Gaussians of the soft window over the text (synthesis)"),
    "--max-points": (400, "training sequences are cut to this many points"),
    "--styles": (0, "one-hot styles (cursive, print) a synthesis model reads; needs a mixed set (--omniglot)"),
}


def add_commands(command: str, parser) -> None:
    if command == "train":
        parser.add_argument("--data", nargs="+", metavar="FILE", help="train on your own stroke files with transcripts "
                            "(.json {strokes, text}, IAM .xml, QuickDraw .ndjson, sketch-rnn .npz; a name.txt "
                            "beside any "
                            "without one; folders and .zip files of them; a tenth validates) instead of the "
                            "synthetic set")
        parser.add_argument("--hand", choices=list(STYLE_NAMES), default=STYLE_NAMES[0],
                            help="with --data and an --init model with styles: the style your lines teach (the default "
                            "hand of unprimed writing is the first)")
        parser.add_argument("--data-dir", default="runs/handwriting-data", help="cache of the rendered set (built if missing)")
        parser.add_argument("--corpus", default="../shared/data/tinyshakespeare.txt", help="text to cut phrases from when building")
        parser.add_argument("--samples", type=int, default=DataConfig.samples, help="handwriting samples drawn for "
                            "the corpus")
        parser.add_argument("--omniglot", help="also compose real print lines from these Omniglot strokes (builds a mixed "
                                               "set: Hershey cursive + print, alphabet with Q, X, Z and digits)")
        parser.add_argument("--init", help="start from this synthesis model's weights (the alphabet may grow)")
        parser.add_argument("--model", choices=[SYNTHESIS, PREDICTION], default=SYNTHESIS,
                            help="synthesis writes a text; prediction scribbles freely")
        cli_common.add_train_flags(parser, steps=3000, lr=TRAIN_LR, eval_every=50, batch_size=32, hidden_size=128,
                                   warmup_steps=50)
        cli_common.add_options(parser, MODEL_OPTIONS)
        parser.set_defaults(run=run_train)
    elif command == "generate":
        cli_common.add_model_flag(parser, hw)
        parser.add_argument("--text", default="", help="what to write (ignored by a free-scribble model)")
        parser.add_argument("--bias", type=float, default=0.5)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--style", help="stroke file to prime the style (.json {strokes, text}, IAM .xml, QuickDraw "
                                            ".ndjson, sketch-rnn .npz); a free-scribble model is primed too")
        parser.add_argument("--style-text", help="what the style sample says (overrides the file's own)")
        parser.add_argument("--raw-style", action="store_true", help="read the style sample as it is, without bringing "
                                                                     "it to the training data's scale")
        parser.add_argument("--points", type=int, default=600, help="free-scribble length")
        parser.add_argument("--hand", choices=list(STYLE_NAMES), help="a model with styles: write in this hand "
                                                                        "(default: the style sample's, else cursive)")
        cli_common.add_output_flags(parser, ".svg or .png")
        library.add_save_flag(parser)
        parser.set_defaults(run=run_generate)
    elif command == "eval":
        cli_common.add_model_flag(parser, hw)
        parser.add_argument("--data-dir", default="runs/handwriting-data", help="holds held_out.npz")
        parser.add_argument("--bias", type=float, default=0.5)
        parser.add_argument("--limit", type=int, default=50, help="held-out phrases to write")
        parser.add_argument("--record", action="store_true", help="also write the results into the model card")
        parser.set_defaults(run=run_eval)


def ensure_data(args) -> Path:
    data_dir = Path(args.data_dir)
    if not (data_dir / "train.npz").exists():
        try:
            corpus = Path(args.corpus).read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            sys.exit(f"error: cannot read {args.corpus}: {error.strerror or error}")
        print(f"building {args.samples} synthetic samples into {data_dir} ...", file=sys.stderr)
        try:
            if getattr(args, "omniglot", None):
                build_mixed_dataset(corpus, data_dir, args.omniglot, args.samples // 2, args.samples // 2)
            else:
                build_dataset(corpus, data_dir, DataConfig(samples=args.samples))
        except ValueError as error:
            sys.exit(f"error: {args.corpus}: {error}")
    return data_dir


def run_train(args) -> int:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.data:
        return run_train_files(args)
    data_dir = ensure_data(args)
    summary = json.loads((data_dir / "summary.json").read_text())
    texts, offsets = load_dataset(data_dir / "train.npz")
    val_texts, val_offsets = load_dataset(data_dir / "held_out.npz")
    alphabet = HandwritingAlphabet(summary["chars"])
    synthesis = args.model == SYNTHESIS
    scale = float(summary["offset_scale"])
    if getattr(args, "init", None):  # the started-from model reads offsets at its own scale
        scale = float(checkpoint.read_card(args.init)["codec"]["offset_scale"])
    codec = HandwritingCodec(scale, alphabet if synthesis else None)
    torch.manual_seed(args.seed)
    if synthesis:
        model = SynthesisModel(SynthesisConfig(alphabet.size, args.hidden_size, args.layers, args.mixtures,
                                                     args.window_gaussians, args.styles))
        if args.init:
            new = warm_start(model, args.init, alphabet.chars)
            print(f"started from {args.init}; new characters: {''.join(new) or 'none'}", file=sys.stderr)
    else:
        model = PredictionModel(PredictionConfig(args.hidden_size, args.layers, args.mixtures))
    styles = val_styles = None
    if synthesis and args.styles:
        if "hershey_samples" not in summary:
            sys.exit("error: --styles needs a mixed cursive + print set (--omniglot)")
        styles, val_styles = style_labels(summary, len(texts), len(val_texts))
    task = StrokeTask(texts, offsets, val_texts, val_offsets, codec, args.batch_size, args.seed, args.max_points,
                         styles, val_styles)
    mixed = "print_samples" in summary
    source = PROVENANCE["source"] + (" PLUS " + PRINT_PROVENANCE["source"] if mixed else "")
    licence = PROVENANCE["licence"] + ("; " + PRINT_PROVENANCE["licence"] if mixed else "")
    data = {"source": args.source or source, "licence": args.licence or licence,
            "samples": len(texts), "held_out_phrases": len(val_texts), "data_config": summary["config"],
            **{k: summary[k] for k in ("hershey_samples", "print_samples", "train_drawers", "held_drawers") if k in summary},
            "mean_points": summary["mean_points"]}
    card = make_card(model, codec, name=Path(args.out).name, data=data, reproduce=args.command_line,
                        hyperparameters={"batch_size": args.batch_size, "max_points": args.max_points,
                                         **({"init": args.init} if getattr(args, "init", None) else {})},
                        metrics={"nll_units": NLL_UNITS})
    cli_common.run_training("handwriting", model, task, args, card, "held_out_nll_per_point", hw.evaluate.VAL_HOW)
    return 0


def run_train_files(args) -> int:
    """Train a synthesis model (or fine-tune --init's, its shape, styles and scale kept) on the user's stroke files."""
    if args.model != SYNTHESIS:
        sys.exit("error: --data trains a synthesis model (it learns to write the transcripts); leave out --model")
    base = None
    if args.init:
        try:
            base = checkpoint.read_card(args.init)
        except checkpoint.CheckpointError as error:
            sys.exit(f"error: --init: {error}")
        if base.get("domain") != hw.NAME or base.get("kind") != SYNTHESIS:
            sys.exit(f"error: --init {args.init} is not a handwriting synthesis model")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            samples, notes = read_samples(args.data, scratch)
            alphabet = alphabet_for([s.text for s in samples], base["codec"]["chars"] if base else DEFAULT_CHARS)
            texts, offsets, cleaned = user_set(samples, alphabet)
        except ValueError as error:
            sys.exit(f"error: {error}")
    cli_common.print_notes(notes + cleaned)
    train_texts, train_offsets, val_texts, val_offsets = held_out_split(texts, offsets, args.seed)
    flat = np.concatenate(train_offsets)
    scale = float(base["codec"]["offset_scale"]) if base else float(np.std(flat[:, :2]))
    codec = HandwritingCodec(scale, alphabet)
    shape = {"hidden_size": args.hidden_size, "num_layers": args.layers, "mixtures": args.mixtures,
             "window_gaussians": args.window_gaussians, "styles": args.styles}
    if base and args.lr == TRAIN_LR:
        args.lr = FINE_TUNE_LR
        print(f"note: fine-tuning at --lr {FINE_TUNE_LR:g} (give --lr for another)", file=sys.stderr)
    if base:  # fine-tuning keeps the base model's shape (its styles too)
        kept = {k: v for k, v in base["config"].items() if k != "vocab_size"}
        for key, value in shape.items():
            if key in kept and kept[key] != value and key != "styles":
                print(f"note: ignoring --{key.replace('_', '-')} {value}: fine-tuning keeps {Path(args.init).name}'s "
                      f"{kept[key]}",
                      file=sys.stderr)
        shape = kept
    torch.manual_seed(args.seed)
    model = SynthesisModel(SynthesisConfig(alphabet.size, **shape))
    if base:
        new = warm_start(model, args.init, alphabet.chars)
        print(f"started from {args.init}; new characters: {''.join(new) or 'none'}", file=sys.stderr)
    styles = val_styles = None
    if model.config.styles:  # the user's lines teach one style
        style = min(list(STYLE_NAMES).index(args.hand), model.config.styles - 1)
        styles, val_styles = [style] * len(train_texts), [style] * len(val_texts)
    batch_size = max(1, min(args.batch_size, len(train_texts)))
    task = StrokeTask(train_texts, train_offsets, val_texts, val_offsets, codec, batch_size, args.seed, args.max_points,
                         styles, val_styles)
    names = [s.name for s in samples]
    print(f"training on {len(train_texts)} written line(s), validating on {len(val_texts)}; batch {batch_size}",
          file=sys.stderr)
    data = {"source": args.source or "the user's stroke files: " + ", ".join(names[:20])
            + (f" and {len(names) - 20} more" if len(names) > 20 else ""),
            "licence": args.licence or "as the stroke files' (not stated)", "samples": len(train_texts),
            "held_out_phrases": len(val_texts), "mean_points": float(np.mean([len(o) for o in offsets])),
            "normalised": "each line brought to the synthetic training data's letter height, baseline and point "
                          "spacing (its slant kept)",
            **({"style": STYLE_NAMES[styles[0]]} if styles else {})}
    card = make_card(model, codec, name=Path(args.out).name, data=data, reproduce=args.command_line,
                        hyperparameters={"batch_size": batch_size, "max_points": args.max_points,
                                         **({"init": args.init} if args.init else {})},
                        metrics={"nll_units": NLL_UNITS})
    cli_common.run_training("handwriting", model, task, args, card, "held_out_nll_per_point", hw.evaluate.VAL_HOW,
                            codec=codec)
    return 0


def run_generate(args) -> int:
    loaded = cli_common.load_or_exit(hw, args.model)
    settings = HandwritingSettings(text=args.text, bias=args.bias, seed=args.seed, style=args.style,
                                      max_points=args.points, primer_text=args.style_text or "",
                                      normalize_primer=not args.raw_style, hand=args.hand)
    try:
        generation, seconds = library.timed(hw.generate, loaded, settings)
    except ValueError as error:  # StrokeFileError too
        sys.exit(f"error: {error}")
    result = generation.result
    cli_common.print_notes(result.notes)
    library.save_after(args, hw, loaded, settings, generation,
                       input_files={"style": args.style} if args.style else None,
                       duration=seconds)
    out = Path(args.out)
    if out.suffix.lower() == ".png":
        write_png(result.strokes, out)
    else:
        out.write_text(strokes_to_svg(result.strokes), encoding="utf-8")
    if args.trace_out:
        generation.trace.save_npz(args.trace_out)
    print(f"wrote {out}: {len(result.offsets)} points, {len(result.strokes)} strokes, finished: {result.finished}")
    return 0


def run_eval(args) -> int:
    loaded = cli_common.load_or_exit(hw, args.model)
    path = Path(args.data_dir) / "held_out.npz"
    if not path.exists():
        sys.exit(f"error: {path} is missing (train once, or build the data, to make it)")
    texts, offsets = load_dataset(path)
    texts, offsets = texts[: args.limit], offsets[: args.limit]
    synthesis = loaded.card["kind"] == SYNTHESIS
    styles, summary = None, Path(args.data_dir) / "summary.json"
    if synthesis and loaded.model.config.styles and summary.exists():  # a mixed set: each phrase in its own style
        labels = json.loads(summary.read_text())
        if "hershey_samples" in labels:
            styles = style_labels(labels, 0, len(load_dataset(path)[0]))[1][: len(texts)]
    nll = nll_per_point(loaded.model, texts, offsets, loaded.codec, styles=styles)
    print(f"phrases: {len(texts)}" + (" (each read in its own style: cursive, print)" if styles else ""))
    print(f"held_out_nll_per_point: {nll:.4f}")
    fraction = finished_fraction(loaded, texts, bias=args.bias) if synthesis else float("nan")
    if args.record:
        metrics = {"held_out_phrases": len(texts), "held_out_nll_per_point": round(nll, 4), "nll_units": NLL_UNITS,
                   "eval_command": args.command_line}
        if synthesis:
            metrics.update(finished_fraction=round(fraction, 4), finished_bias=args.bias,
                           finished_how=hw.evaluate.FINISHED_HOW)
        saved = checkpoint.read_card(args.model)
        saved["metrics"].update(metrics)
        checkpoint.write_card(args.model, saved)
    print(f"finished_fraction: {fraction:.3f}")
    return 0
