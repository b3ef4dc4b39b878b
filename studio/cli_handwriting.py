"""CLI commands for the handwriting domain (wired into studio/__main__.py).

python -m studio train handwriting --corpus ../shared/data/tinyshakespeare.txt --data-dir runs/handwriting-data --out models/hershey-synthesis
python -m studio generate handwriting --text "hello" [--bias B] --out out.svg
python -m studio eval handwriting --data-dir runs/handwriting-data   (last line: finished_fraction: X)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from studio import checkpoint
from studio.cli_common import is_main_process, load_or_exit, training_progress
from studio.domains import handwriting as hw
from studio.train import TrainConfig, pick_device, train

DEFAULT_MODEL = checkpoint.MODELS_DIR / "hershey-synthesis"
DATA_PROVENANCE = {
    "source": "SYNTHETIC handwriting: phrases cut from Tiny Shakespeare, drawn as pen trajectories from the Hershey "
              "cursive fonts 'scripts' and 'scriptc' (pip hershey-fonts) with random slant, scale, baseline drift, "
              "rotation, jitter and pen speed. The model learned this synthetic handwriting, not real people's.",
    "licence": "Hershey fonts: free use (hershey-fonts package, MIT); Shakespeare's text is in the public domain",
}


def add_handwriting_commands(command: str, parser) -> None:
    if command == "train":
        parser.add_argument("--data-dir", default="runs/handwriting-data", help="cache of the rendered set (built if missing)")
        parser.add_argument("--corpus", default="../shared/data/tinyshakespeare.txt", help="text to cut phrases from when building")
        parser.add_argument("--samples", type=int, default=hw.DataConfig.samples)
        parser.add_argument("--out", required=True, help="checkpoint stem, e.g. models/hershey-synthesis")
        parser.add_argument("--model", choices=["synthesis", "prediction"], default="synthesis")
        parser.add_argument("--steps", type=int, default=3000)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--hidden-size", type=int, default=128)
        parser.add_argument("--layers", type=int, default=2)
        parser.add_argument("--mixtures", type=int, default=20)
        parser.add_argument("--window-gaussians", type=int, default=10)
        parser.add_argument("--max-points", type=int, default=400, help="training sequences are cut to this many points")
        parser.add_argument("--lr", type=float, default=3e-3)
        parser.add_argument("--warmup-steps", type=int, default=50)
        parser.add_argument("--eval-every", type=int, default=50)
        parser.add_argument("--seed", type=int, default=1337)
        parser.add_argument("--device", default="auto")
        parser.add_argument("--resume", action="store_true")
        parser.set_defaults(run=run_train)
    elif command == "generate":
        parser.add_argument("--model", default=str(DEFAULT_MODEL), help="checkpoint stem")
        parser.add_argument("--text", default="", help="what to write (ignored by a free-scribble model)")
        parser.add_argument("--bias", type=float, default=0.5)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--style", help="stroke file with a transcript to prime the style (.json {strokes, text})")
        parser.add_argument("--points", type=int, default=600, help="free-scribble length")
        parser.add_argument("--out", required=True, help=".svg or .png")
        parser.add_argument("--trace-out", help="also write the generation's trace .npz")
        parser.set_defaults(run=run_generate)
    elif command == "eval":
        parser.add_argument("--model", default=str(DEFAULT_MODEL))
        parser.add_argument("--data-dir", default="runs/handwriting-data", help="holds held_out.npz")
        parser.add_argument("--bias", type=float, default=0.5)
        parser.add_argument("--limit", type=int, default=50, help="held-out phrases to write")
        parser.add_argument("--record", action="store_true", help="also write the results into the model card")
        parser.set_defaults(run=run_eval)
    elif command == "trace":
        parser.add_argument("--model", default=str(DEFAULT_MODEL))
        parser.add_argument("--text", default="")
        parser.add_argument("--out", required=True, help="trace .npz of one generation")
        parser.add_argument("--seed", type=int, default=0)
        parser.set_defaults(run=run_trace)


def ensure_data(args) -> Path:
    data_dir = Path(args.data_dir)
    if not (data_dir / "train.npz").exists():
        try:
            corpus = Path(args.corpus).read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            sys.exit(f"error: cannot read {args.corpus}: {error.strerror or error}")
        print(f"building {args.samples} synthetic samples into {data_dir} ...", file=sys.stderr)
        try:
            hw.build_dataset(corpus, data_dir, hw.DataConfig(samples=args.samples))
        except ValueError as error:
            sys.exit(f"error: {args.corpus}: {error}")
    return data_dir


def run_train(args) -> int:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data_dir = ensure_data(args)
    summary = json.loads((data_dir / "summary.json").read_text())
    texts, offsets = hw.load_dataset(data_dir / "train.npz")
    val_texts, val_offsets = hw.load_dataset(data_dir / "held_out.npz")
    codec = hw.CharCodec(summary["chars"])
    scale = float(summary["offset_scale"])
    synthesis = args.model == "synthesis"
    torch.manual_seed(args.seed)
    if synthesis:
        model = hw.SynthesisModel(hw.SynthesisConfig(codec.size, args.hidden_size, args.layers, args.mixtures, args.window_gaussians))
    else:
        model = hw.PredictionModel(hw.PredictionConfig(args.hidden_size, args.layers, args.mixtures))
    task = hw.StrokeTask(texts, offsets, val_texts, val_offsets, codec, scale, args.batch_size, synthesis, args.seed, args.max_points)
    config = TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=args.warmup_steps, eval_every=args.eval_every,
                         seed=args.seed, device=args.device)
    card = hw.make_card(args.model, model, codec if synthesis else None, scale, {
        "data": {**DATA_PROVENANCE, "samples": len(texts), "held_out_phrases": len(val_texts),
                 "data_config": summary["config"], "mean_points": summary["mean_points"]},
        "hyperparameters": {"batch_size": args.batch_size, "max_points": args.max_points},
        "reproduce": args.command_line,
    })

    on_progress, close_progress = training_progress("handwriting", config.steps, "held_out_nll_per_point")
    metrics = train(model, task, config, out=args.out, card=card, resume=args.resume, on_progress=on_progress)
    close_progress()
    if is_main_process() and checkpoint.paths(args.out)[1].exists():
        saved = checkpoint.read_card(args.out)
        saved["metrics"]["held_out_nll_per_point"] = round(metrics["best_val_loss"], 4)
        saved["metrics"]["nll_units"] = "nats per pen point, offsets divided by codec.offset_scale"
        checkpoint.write_card(args.out, saved)
    print(f"best_held_out_nll_per_point: {metrics['best_val_loss']:.4f}")
    return 0


def _load(stem):
    return load_or_exit(hw.load_model, stem, device=pick_device("cpu"))


def run_generate(args) -> int:
    model, codec, card = _load(args.model)
    settings = hw.HandwritingSettings(text=args.text, bias=args.bias, seed=args.seed, style=args.style, max_points=args.points)
    try:
        result, trace = hw.generate(model, codec, card, settings)
    except (ValueError, hw.StrokeFileError) as error:
        sys.exit(f"error: {error}")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    out = Path(args.out)
    if out.suffix.lower() == ".png":
        hw.write_png(result.strokes, out)
    else:
        out.write_text(hw.strokes_to_svg(result.strokes), encoding="utf-8")
    if args.trace_out:
        trace.save_npz(args.trace_out)
    print(f"wrote {out}: {len(result.offsets)} points, {len(result.strokes)} strokes, finished: {result.finished}")
    return 0


def run_eval(args) -> int:
    model, codec, card = _load(args.model)
    path = Path(args.data_dir) / "held_out.npz"
    if not path.exists():
        sys.exit(f"error: {path} is missing (train once, or build the data, to make it)")
    texts, offsets = hw.load_dataset(path)
    texts, offsets = texts[: args.limit], offsets[: args.limit]
    scale = float(card["codec"]["offset_scale"])
    synthesis = isinstance(model, hw.SynthesisModel)
    task = hw.StrokeTask(texts, offsets, texts, offsets, codec, scale, synthesis=synthesis)
    with torch.no_grad():
        nll = task.evaluate(model)
    print(f"phrases: {len(texts)}")
    print(f"held_out_nll_per_point: {nll:.4f}")
    fraction = hw.finished_fraction(model, codec, card, texts, bias=args.bias) if synthesis else float("nan")
    if args.record:
        metrics = {"held_out_phrases": len(texts), "held_out_nll_per_point": round(nll, 4),
                   "nll_units": "nats per pen point, offsets divided by codec.offset_scale",
                   "eval_command": args.command_line}
        if synthesis:
            metrics.update(finished_fraction=round(fraction, 4), finished_bias=args.bias,
                           finished_how="the window passed the last character and then the pen lifted, "
                                        "sampling each held-out phrase once (seed = its index)")
        saved = checkpoint.read_card(args.model)
        saved.setdefault("metrics", {}).update(metrics)
        checkpoint.write_card(args.model, saved)
    print(f"finished_fraction: {fraction:.3f}")
    return 0


def run_trace(args) -> int:
    model, codec, card = _load(args.model)
    result, trace = hw.generate(model, codec, card, hw.HandwritingSettings(text=args.text, seed=args.seed))
    trace.save_npz(args.out)
    print(f"wrote {args.out}: {trace.steps} steps x {trace.num_layers} layers x {trace.hidden_size} units")
    return 0
