"""`python -m studio {train,generate,eval} text`; `trace` is shared (studio.cli_common)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

from studio import checkpoint, cli_common, library
from studio.domains import text
from studio.domains.text.codec import TextCodec
from studio.domains.text.data import split_train_val
from studio.domains.text.evaluate import nats_per_char
from studio.domains.text.generate import TextSettings
from studio.domains.text.model import TextModel, TextModelConfig, extend_vocabulary, make_card
from studio.domains.text.train import TextTask
from studio.sampling import SamplingConfig


def add_commands(command: str, parser) -> None:
    if command == "train":
        parser.add_argument("--data", required=True, help="a UTF-8 text file (the last 10%% validates)")
        cli_common.add_train_flags(parser, steps=None, lr=2e-3, eval_every=None, batch_size=None, hidden_size=256)
        parser.add_argument("--seq-len", type=int, default=128, help="characters per window (truncated BPTT)")
        parser.add_argument("--embed-size", type=int, default=64, help="character embedding width")
        parser.add_argument("--dropout", type=float, help="dropout between layers (default: 0.2, or the --init model's)")
        parser.add_argument("--init", metavar="STEM", help="fine-tune this text checkpoint (e.g. models/shakespeare-char) "
                            "instead of starting from scratch: its shape is kept, characters it lacks are added")
        parser.set_defaults(run=run_train)
    elif command == "generate":
        cli_common.add_model_flag(parser, text)
        parser.add_argument("--prompt", default="")
        parser.add_argument("--length", type=int, default=400)
        parser.add_argument("--window", type=int, default=0,
                            help="N > 0: re-read the last N tokens from a zero state at each step, as a model "
                                 "trained on "
                                 "fixed windows was (an imported model's card gives its training window); 0: carry the "
                                 "state on")
        cli_common.add_sampling_flags(parser, temperature=0.8)
        cli_common.add_output_flags(parser, "write the text here (default: print it)", required=False)
        library.add_save_flag(parser)
        parser.set_defaults(run=run_generate)
    elif command == "eval":
        cli_common.add_model_flag(parser, text)
        parser.add_argument("--data", required=True)
        parser.add_argument("--split", choices=["val", "all"], default="val", help="val: the last 10%% of the file")
        parser.set_defaults(run=run_eval)


def _read(path) -> str:
    try:
        return text.read_input(path)
    except ValueError as error:
        sys.exit(f"error: {error}")


PASSES = 50  # the derived number of steps reads the training text this many times (the best checkpoint is kept)


def fit_to_corpus(args, train_chars: int) -> None:
    """Settings left to the data: a batch that gives every stream at least 8 windows, as many steps
    as PASSES passes over the text need (a time budget may cut them), a validation every twentieth
    of the run (and at least once a minute)."""
    if args.batch_size is None:
        args.batch_size = max(1, min(64, train_chars // ((args.seq_len + 1) * 8)))
    if args.steps is None:
        args.steps = max(100, min(20_000, PASSES * train_chars // (args.batch_size * args.seq_len)))
    if args.eval_every is None:
        args.eval_every = max(25, args.steps // 20)
    budget = f", stopping after {args.minutes:g} minutes" if args.minutes else ""
    print(f"training on {train_chars:,} characters: batch {args.batch_size} x {args.seq_len}, up to {args.steps:,} steps"
          f"{budget}, {args.layers} x {args.hidden_size} units, validating every {args.eval_every} steps", file=sys.stderr)


def fine_tune_from(args, corpus: str):
    """(model, codec, what the card records of it): the --init checkpoint, its vocabulary extended by
    the corpus' new characters (said on stderr); its shape overrides the shape flags (said when they
    differ). On the CPU: the trainer moves it to its device."""
    try:
        base = text.load(args.init)
    except checkpoint.CheckpointError as error:
        sys.exit(f"error: --init: {error}")
    config = base.model.config
    for flag, value, kept in (("--hidden-size", args.hidden_size, config.hidden_size), ("--layers", args.layers, config.num_layers),
                              ("--embed-size", args.embed_size, config.embed_size)):
        if value != kept:
            print(f"note: ignoring {flag} {value}: fine-tuning keeps {base.name}'s {kept}", file=sys.stderr)
    model, codec = extend_vocabulary(base.model, base.codec, corpus)
    added = codec.chars[base.codec.size:] if not codec.words else list(codec.words[base.codec.size:])
    unit = "word" if codec.words else "character"
    print(f"fine-tuning {base.name}: " + (f"added {len(added)} {unit}(s) it lacked: {added[:20]!r}" if added
                                          else f"the text has no {unit}s it lacks"), file=sys.stderr)
    args.hidden_size, args.layers, args.embed_size = config.hidden_size, config.num_layers, config.embed_size
    if args.dropout is not None and args.dropout != config.dropout:  # a training setting: the flag wins
        tuned = TextModel(replace(model.config, dropout=args.dropout))
        tuned.load_state_dict(model.state_dict())
        model = tuned
    return model, codec, {"init": base.name, "init_chars_added": added}


def run_train(args) -> int:
    corpus = _read(args.data)
    torch.manual_seed(args.seed)
    if args.init:
        model, codec, init = fine_tune_from(args, corpus)
    else:
        codec, init = TextCodec.from_text(corpus), {}
        dropout = 0.2 if args.dropout is None else args.dropout
        model = TextModel(TextModelConfig(codec.size, args.embed_size, args.hidden_size, args.layers, dropout))
    train_text, val_text = split_train_val(corpus)
    fit_to_corpus(args, len(train_text))
    try:
        task = TextTask(codec.encode(train_text)[0], codec.encode(val_text)[0], args.batch_size, args.seq_len)
    except ValueError as error:
        sys.exit(f"error: {error}")
    hyperparameters = {"batch_size": args.batch_size, "seq_len": args.seq_len, **init}
    card = make_card(model, codec, name=Path(args.out).name, reproduce=args.command_line,
                          data=text.data.provenance(args.data, corpus, args.source, args.licence),
                          hyperparameters=hyperparameters)
    cli_common.run_training("text", model, task, args, card, "val_nats_per_char", text.evaluate.VAL_HOW, codec=codec)
    return 0


def run_generate(args) -> int:
    loaded = cli_common.load_or_exit(text, args.model)
    settings = TextSettings(prompt=args.prompt, length=args.length,
                                 sampling=SamplingConfig(args.temperature, args.top_k, args.top_p), seed=args.seed,
                            window=args.window)
    generation, seconds = library.timed(text.generate, loaded, settings)
    cli_common.print_notes(generation.result.notes)
    library.save_after(args, text, loaded, settings, generation, duration=seconds)
    written = generation.result.prompt + generation.result.text
    if args.out:
        Path(args.out).write_text(written, encoding="utf-8")
    else:
        print(written)
    if args.trace_out:
        generation.trace.save_npz(args.trace_out)
    return 0


def run_eval(args) -> int:
    loaded = cli_common.load_or_exit(text, args.model)
    corpus = _read(args.data)
    part = split_train_val(corpus)[1] if args.split == "val" else corpus
    ids, dropped = loaded.codec.encode(part)
    if dropped:
        print(f"note: {len(dropped)} distinct characters are not in the model's vocabulary and were skipped", file=sys.stderr)
    if len(ids) < 2:
        sys.exit("error: not enough text to evaluate")
    print(f"characters: {len(ids)}")
    print(f"val_nats_per_char: {nats_per_char(loaded.model, ids):.4f}")
    return 0
