"""What the four domains' command lines share: the flags every domain's train/generate/eval take,
the flags of a domain's generation settings (read from its `Settings` dataclass), loading a
checkpoint, the training run with its progress bar and card, and the `trace` and `explain` commands
(they need only the contract)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import types
import typing
from pathlib import Path

from studio import checkpoint
from studio.train import TrainConfig, pick_device, train


def is_main_process() -> bool:
    """Under torchrun only rank 0 reports and writes files; a plain run is rank 0."""
    return int(os.environ.get("RANK", "0")) == 0


# ---------------------------------------------------------------- flags
def add_model_flag(parser, domain) -> None:
    parser.add_argument("--model", default=str(domain.DEFAULT_MODEL),
                        help=f"checkpoint stem (default: {Path(domain.DEFAULT_MODEL).name})")


def add_sampling_flags(parser, temperature: float = 0.8, top_p: bool = True) -> None:
    parser.add_argument("--temperature", type=float, default=temperature, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = all)")
    if top_p:
        parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (1 = off)")
    parser.add_argument("--seed", type=int, default=0)


def add_train_flags(parser, steps: int | None, lr: float, eval_every: int | None, batch_size: int | None, hidden_size: int,
                    layers: int = 2, warmup_steps: int = 200) -> None:
    """The trainer's and the card's flags; a domain adds its data and model-shape flags. A default of
    None means: derived from the data and the time budget (the domain says how in its help)."""
    derived = "default: fitted to the data and --minutes"
    parser.add_argument("--out", required=True, help="checkpoint stem: writes OUT.safetensors + OUT.json (e.g. models/NAME)")
    parser.add_argument("--minutes", type=float, help="time budget: the steps are fitted to it at the measured speed "
                        "and training stops when it is spent (default: no budget)")
    parser.add_argument("--steps", type=int, default=steps, help="optimizer steps" + ("" if steps else f" ({derived})"))
    parser.add_argument("--batch-size", type=int, default=batch_size, help="sequences per step" + ("" if batch_size else f" ({derived})"))
    parser.add_argument("--hidden-size", type=int, default=hidden_size, help="LSTM units per layer")
    parser.add_argument("--layers", type=int, default=layers, help="stacked LSTM layers")
    parser.add_argument("--lr", type=float, default=lr, help="peak learning rate (warmup, then cosine decay)")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    parser.add_argument("--warmup-steps", type=int, default=warmup_steps, help="linear warmup steps (capped at a tenth of the run)")
    parser.add_argument("--eval-every", type=int, default=eval_every,
                        help="steps between validations and checkpoints (also at least once a minute)" + ("" if eval_every else f" ({derived})"))
    parser.add_argument("--seed", type=int, default=1337, help="random seed (weights, batches, dropout)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when there is one)")
    parser.add_argument("--threads", type=int, help="CPU intra-op threads (default: 1 on a machine of 2 cores or fewer, "
                        "else half the cores up to 8: two threads on two cores fight over them, "
                        "see docs/benchmarks.md, Training)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT.resume.* (with --minutes, a run that "
                        "had not spent its budget goes on with the same schedule and the time left; --progress "
                        "appends)")
    parser.add_argument("--progress", help="also write the progress as JSON lines here, with a sample and a picture "
                        "of the gates at each validation (studio/train_progress.py)")
    parser.add_argument("--slice-seconds", type=float, help="stop after this many seconds with the resume state saved, "
                        "for --resume to go on (a run cut into GPU calls of bounded length, studio/gpu.py)")
    parser.add_argument("--stop-file", help="stop as on Ctrl-C (validate, keep the best) when this file appears")
    parser.add_argument("--source", help="where the data comes from, for the model card (speech builds its corpus from it)")
    parser.add_argument("--licence", help="the data's licence, for the model card")


def add_options(parser, options: dict[str, tuple]) -> None:
    """Plain options from a table {"--flag": (default, help)}; the type is the default's."""
    for flag, (default, meaning) in options.items():
        parser.add_argument(flag, type=type(default), default=default, help=meaning)


def add_output_flags(parser, out_help: str, required: bool = True) -> None:
    """--out (what generate writes) and --trace-out (the generation's exact trace), for every domain."""
    parser.add_argument("--out", required=required, help=out_help)
    parser.add_argument("--trace-out", help="also write the generation's trace .npz (float32, exact)")


# ---------------------------------------------------------------- a domain's generation settings as flags
SIMPLE = (str, int, float, bool)


def settings_fields(settings) -> list[tuple[tuple[str, ...], type, object]]:
    """(path, type, default) of each field of a settings dataclass the command line can give: str,
    int, float and bool fields (or one of them or None), nested dataclasses (`sampling`) flattened.
    Others (a primer's frames or strokes) are left out, and with them the simple fields that
    qualify one (a field sharing a word of its name: primer_text goes with primer_strokes)."""
    hints = typing.get_type_hints(type(settings))
    found, complex_words = [], set()
    for field in dataclasses.fields(settings):
        value, kind = getattr(settings, field.name), hints[field.name]
        if dataclasses.is_dataclass(value):
            found += [((field.name, *path), inner, default) for path, inner, default in settings_fields(value)]
            continue
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if kind not in SIMPLE and typing.get_origin(kind) in (typing.Union, types.UnionType) and len(options) == 1:
            kind = options[0]
        if kind in SIMPLE:
            found.append(((field.name,), kind, value))
        else:
            complex_words.update(field.name.split("_"))
    return [entry for entry in found if not complex_words & set(entry[0][-1].split("_"))]


def _dest(path: tuple[str, ...]) -> str:
    return "setting__" + "__".join(path)


def add_settings_flags(parser, domain) -> None:
    """A flag per field of `domain.Settings` (settings_fields): --prompt, --length, --temperature,
    --text, --bars, --bias, ... and --seed, the one seed. A field whose flag the command has
    already (--input) keeps the command's meaning."""
    for path, kind, default in settings_fields(domain.Settings()):
        flag = "--" + path[-1].replace("_", "-")
        if flag in parser._option_string_actions:
            continue
        meaning = f"generation setting {'.'.join(path)} (default {default!r}, as in the tab)"
        if kind is bool:
            parser.add_argument(flag, dest=_dest(path), action=argparse.BooleanOptionalAction, default=None,
                                help=meaning)
        else:
            parser.add_argument(flag, dest=_dest(path), type=kind, default=None, metavar=path[-1].upper(), help=meaning)


def settings_from(domain, args):
    """The domain's default settings with every settings flag given on the command line."""
    settings = domain.Settings()
    for path, _, _ in settings_fields(settings):
        value = getattr(args, _dest(path), None)
        if value is not None:
            settings = _replaced(settings, path, value)
    return settings


def _replaced(settings, path: tuple[str, ...], value):
    inner = value if len(path) == 1 else _replaced(getattr(settings, path[0]), path[1:], value)
    return dataclasses.replace(settings, **{path[0]: inner})


def train_config(args) -> TrainConfig:
    """The trainer's settings from the flags (--steps is an upper bound --minutes may cut)."""
    steps = args.steps or 10_000
    return TrainConfig(steps=steps, lr=args.lr, weight_decay=args.weight_decay,
                       warmup_steps=min(args.warmup_steps, max(1, steps // 10)), eval_every=args.eval_every or 500,
                       seed=args.seed, device=args.device, minutes=args.minutes, threads=args.threads)


# ---------------------------------------------------------------- running
def load_or_exit(domain, stem):
    """`domain.load(stem)` on the best device, or exit with the checkpoint error in one line (a
    command line should name the bad file, not print a traceback)."""
    if Path(stem) == Path(domain.DEFAULT_MODEL) and "--model" not in sys.argv[1:]:
        # say so: after training your own, forgetting --model would silently use the shipped one
        print(f"note: using the shipped model {Path(stem).name} (give --model models/NAME for another)", file=sys.stderr)
    try:
        return domain.load(stem, device=pick_device())
    except checkpoint.CheckpointError as error:
        sys.exit(f"error: {error}")


def print_notes(notes) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def training_progress(domain: str, steps: int, val_name: str, train_name: str = "train_loss"):
    """(on_progress, close) for studio.train.train.

    A progress bar on stderr with the loss, learning rate and speed, redrawn at most every 5 s
    (a short log when the run is sent to a file), and one line on stdout per validation:
    `step N: TRAIN_NAME X VAL_NAME Y (best Z)`, the metric named as the domain's eval prints it.
    """
    from tqdm import tqdm

    main = is_main_process()
    bar = tqdm(total=steps, desc=f"train {domain}", unit="step", dynamic_ncols=True, file=sys.stderr,
               disable=not main, mininterval=5)

    def on_progress(p) -> None:
        if p.steps != bar.total:  # a time budget fitted the steps to the measured speed
            bar.total = p.steps
        fields = {"loss": f"{p.loss:.3f}", "lr": f"{p.lr:.1e}"}
        if p.tokens_per_s:
            fields["tok/s"] = f"{p.tokens_per_s:,.0f}"
        bar.set_postfix(fields, refresh=False)
        bar.update(p.step - bar.n)
        if main and p.val_loss is not None:
            best = f" (best {p.best_val_loss:.4f})" if p.best_val_loss is not None else ""
            bar.write(f"step {p.step}: {train_name} {p.loss:.4f} {val_name} {p.val_loss:.4f}{best}")

    return on_progress, bar.close


def run_training(domain: str, model, task, args, card: dict, val_name: str, val_how: str, train_name: str = "train_loss",
                 codec=None):
    """Train with a progress bar, then name the best validation value in the card as the domain's
    `eval` prints it (`val_name`, with how it is measured) and print `best_VAL_NAME: X`. With
    --progress, also a progress file (with samples and pictures when `codec` is given)."""
    config = train_config(args)
    on_progress, close_progress = training_progress(domain, config.steps, val_name, train_name)
    watcher = None
    if getattr(args, "progress", None) and is_main_process():
        from studio.train_progress import ProgressFile

        watcher = ProgressFile(args.progress, domain, model, codec, card, append=args.resume)
    both = on_progress if watcher is None else (lambda p: (on_progress(p), watcher(p)))
    started = time.perf_counter()
    metrics = train(model, task, config, out=args.out, card=card, resume=args.resume, on_progress=both,
                    slice_seconds=getattr(args, "slice_seconds", None), stop_file=getattr(args, "stop_file", None))
    close_progress()
    if watcher is not None and not metrics.get("sliced"):  # a slice's run goes on: not done yet
        watcher.finish(metrics, args.out)
    if is_main_process() and checkpoint.paths(args.out)[1].exists():
        saved = checkpoint.read_card(args.out)
        saved["metrics"][val_name] = round(metrics["best_val_loss"], 4)
        saved["metrics"][f"{val_name}_how"] = val_how
        checkpoint.write_card(args.out, saved)
        if not metrics.get("sliced"):  # the model is made: kept in the library (a slice's run goes on)
            from studio.library.events import record_training

            record_training(domain, args, metrics, time.perf_counter() - started, val_name)
    print(f"best_{val_name}: {metrics['best_val_loss']:.4f}")
    if metrics.get("interrupted"):
        print("stopped by hand: the best checkpoint so far is kept", file=sys.stderr)
    if metrics.get("sliced"):
        print(f"slice ended at step {metrics['steps_done']}: --resume goes on", file=sys.stderr)
    print(f"trained: steps={metrics['steps_done']} tokens_per_s={metrics['tokens_per_s']:.0f} "
          f"best_val={metrics['best_val_loss']:.4f} out={args.out}")
    return metrics



def add_trace_command(parser, domain) -> None:
    """`python -m studio trace DOMAIN --input FILE --out TRACE.npz`: the same for every domain."""
    add_model_flag(parser, domain)
    parser.add_argument("--input", required=True, help="a file in the domain's format, read teacher-forced")
    parser.add_argument("--out", required=True, help="trace .npz")
    parser.set_defaults(run=lambda args: run_trace(domain, args))


def run_trace(domain, args) -> int:
    loaded = load_or_exit(domain, args.model)
    try:
        scored = domain.score(loaded, domain.read_input(args.input, loaded))
    except ValueError as error:
        sys.exit(f"error: {error}")
    print_notes(scored.notes)
    scored.trace.save_npz(args.out)
    print(f"wrote {args.out}: {scored.trace.steps} steps x {scored.trace.num_layers} layers x "
          f"{scored.trace.hidden_size} units")
    return 0


# ---------------------------------------------------------------- explain (the same for every domain)
def add_explain_command(parser, domain) -> None:
    """`python -m studio explain DOMAIN (--input FILE | GENERATION SETTINGS) --step N ... --json OUT`."""
    add_model_flag(parser, domain)
    parser.add_argument("--input", help="a file in the domain's format, read teacher-forced (default: generate one "
                        "with the generation settings below)")
    parser.add_argument("--step", type=int, required=True, help="the trace step whose prediction to explain")
    parser.add_argument("--target", help="explain this next value instead of the actual one (text: a character)")
    parser.add_argument("--layer", type=int, default=0, help="the layer of the unit under the microscope")
    parser.add_argument("--unit", type=int, default=0, help="the unit under the microscope")
    parser.add_argument("--method", choices=["gradient_x_input", "integrated_gradients"], default="gradient_x_input")
    parser.add_argument("--json", required=True, help="write the explanation here (- for stdout)")
    add_settings_flags(parser, domain)
    parser.set_defaults(run=lambda args: run_explain(domain, args))


def run_explain(domain, args) -> int:
    import json

    from studio import explain

    loaded = load_or_exit(domain, args.model)
    try:
        if args.input:
            sequence = domain.read_input(args.input, loaded)
        else:
            sequence = domain.sequence_of(domain.generate(loaded, settings_from(domain, args)))
        scored, ex = domain.explainable(loaded, sequence)
        answer = explain.explain(scored.trace, ex, args.step, args.layer, args.unit, args.target, args.method)
    except ValueError as error:
        sys.exit(f"error: {error}")
    text = json.dumps(answer, indent=1, ensure_ascii=False)
    if args.json == "-":
        print(text)
    else:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.json}: step {args.step} ({answer['label']!r}), top guess "
              f"{answer['topk'][0]['token']!r} p={answer['topk'][0]['p']:.3f}")
    return 0
