"""CLI commands for the text domain (wired into studio/__main__.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from studio import checkpoint
from studio.cli_common import is_main_process, load_or_exit, training_progress
from studio.domains import text
from studio.sampling import SamplingConfig
from studio.train import TrainConfig, pick_device, train

DEFAULT_MODEL = checkpoint.MODELS_DIR / "shakespeare-char"
SHAKESPEARE_SOURCE = {
    "source": "Tiny Shakespeare (karpathy/char-rnn data/tinyshakespeare/input.txt), 1,115,394 characters",
    "licence": "Shakespeare's text is in the public domain",
}


VAL_HOW = ("mean -log P(char | all earlier val chars), state carried through the validation text in 16 contiguous "
           "streams; `python -m studio eval text --data FILE` prints it")


def add_text_commands(command: str, parser) -> None:
    if command == "train":
        parser.add_argument("--data", required=True, help="a UTF-8 text file")
        parser.add_argument("--out", required=True, help="checkpoint stem, e.g. models/NAME")
        parser.add_argument("--steps", type=int, default=10_000)
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--seq-len", type=int, default=128)
        parser.add_argument("--hidden-size", type=int, default=384)
        parser.add_argument("--layers", type=int, default=2)
        parser.add_argument("--embed-size", type=int, default=64)
        parser.add_argument("--dropout", type=float, default=0.2)
        parser.add_argument("--lr", type=float, default=2e-3)
        parser.add_argument("--warmup-steps", type=int, default=200)
        parser.add_argument("--eval-every", type=int, default=500)
        parser.add_argument("--seed", type=int, default=1337)
        parser.add_argument("--device", default="auto")
        parser.add_argument("--resume", action="store_true", help="continue from OUT.resume.*")
        parser.add_argument("--source", help="where the data comes from, for the model card")
        parser.add_argument("--licence", help="the data's licence, for the model card")
        parser.set_defaults(run=run_train)
    elif command == "generate":
        parser.add_argument("--model", default=str(DEFAULT_MODEL), help="checkpoint stem")
        parser.add_argument("--prompt", default="")
        parser.add_argument("--length", type=int, default=400)
        parser.add_argument("--temperature", type=float, default=0.8)
        parser.add_argument("--top-k", type=int, default=0)
        parser.add_argument("--top-p", type=float, default=1.0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--out", help="write the text here (default: print it)")
        parser.add_argument("--trace-out", help="also write the generation's trace .npz")
        parser.set_defaults(run=run_generate)
    elif command == "eval":
        parser.add_argument("--model", default=str(DEFAULT_MODEL))
        parser.add_argument("--data", required=True)
        parser.add_argument("--split", choices=["val", "all"], default="val", help="val: the last 10%% of the file")
        parser.set_defaults(run=run_eval)
    elif command == "trace":
        parser.add_argument("--model", default=str(DEFAULT_MODEL))
        parser.add_argument("--input", required=True, help="text file to read teacher-forced")
        parser.add_argument("--out", required=True, help="trace .npz")
        parser.set_defaults(run=run_trace)


def read_text(path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        sys.exit(f"error: cannot read {path}: {error.strerror or error}")


def data_provenance(args, corpus: str) -> dict:
    """The card's data section: Tiny Shakespeare is recognised; any other file is described by
    --source/--licence (or says they were not given)."""
    known = SHAKESPEARE_SOURCE if Path(args.data).name == "tinyshakespeare.txt" else {}
    return {
        "file": Path(args.data).name,
        "characters": len(corpus),
        "source": args.source or known.get("source", f"{Path(args.data).name} (no --source given)"),
        "licence": args.licence or known.get("licence", "unknown (no --licence given)"),
        "split": "first 90% of characters train, last 10% validate (as nanoGPT's shakespeare_char)",
    }


def run_train(args) -> int:
    corpus = read_text(args.data)
    codec = text.CharCodec.from_text(corpus)
    train_text, val_text = text.split_train_val(corpus)
    try:
        task = text.TextTask(codec.encode(train_text)[0], codec.encode(val_text)[0], args.batch_size, args.seq_len)
    except ValueError as error:
        sys.exit(f"error: {error}")
    config = TrainConfig(
        steps=args.steps, lr=args.lr, warmup_steps=args.warmup_steps, eval_every=args.eval_every,
        seed=args.seed, device=args.device,
    )
    torch.manual_seed(args.seed)
    model = text.TextModel(text.TextModelConfig(codec.size, args.embed_size, args.hidden_size, args.layers, args.dropout))
    card = text.make_card(model, codec, {
        "name": Path(args.out).name,
        "data": data_provenance(args, corpus),
        "hyperparameters": {"batch_size": args.batch_size, "seq_len": args.seq_len},
        "reproduce": args.command_line,
    })
    on_progress, close_progress = training_progress("text", config.steps, "val_nats_per_char")
    metrics = train(model, task, config, out=args.out, card=card, resume=args.resume, on_progress=on_progress)
    close_progress()
    if is_main_process() and checkpoint.paths(args.out)[1].exists():  # name the metric in the card as `eval` prints it
        saved = checkpoint.read_card(args.out)
        saved["metrics"]["val_nats_per_char"] = round(metrics["best_val_loss"], 4)
        saved["metrics"]["val_nats_per_char_how"] = VAL_HOW
        checkpoint.write_card(args.out, saved)
    print(f"best_val_nats_per_char: {metrics['best_val_loss']:.4f}")
    return 0


def _load(stem):
    return load_or_exit(text.load_model, stem, device=pick_device())


def run_generate(args) -> int:
    model, codec, _ = _load(args.model)
    settings = text.TextSettings(
        prompt=args.prompt, length=args.length,
        sampling=SamplingConfig(args.temperature, args.top_k, args.top_p, args.seed),
    )
    result, trace = text.generate(model, codec, settings)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(result.prompt + result.text, encoding="utf-8")
    else:
        print(result.prompt + result.text)
    if args.trace_out:
        trace.save_npz(args.trace_out)
    return 0


def run_eval(args) -> int:
    model, codec, _ = _load(args.model)
    corpus = read_text(args.data)
    part = text.split_train_val(corpus)[1] if args.split == "val" else corpus
    ids, dropped = codec.encode(part)
    if dropped:
        print(f"note: {len(dropped)} distinct characters are not in the model's vocabulary and were skipped", file=sys.stderr)
    if len(ids) < 2:
        sys.exit("error: not enough text to evaluate")
    print(f"characters: {len(ids)}")
    print(f"val_nats_per_char: {text.nats_per_char(model, ids):.4f}")
    return 0


def run_trace(args) -> int:
    model, codec, card = _load(args.model)
    ids, dropped = codec.encode(read_text(args.input))
    if dropped:
        print(f"note: dropped characters not in the vocabulary: {dropped!r}", file=sys.stderr)
    if not ids:
        sys.exit("error: the input has no characters the model knows")
    with torch.no_grad():
        _, _, gates = model.trace(torch.tensor([ids], device=next(model.parameters()).device))
    from studio.trace import Trace

    Trace.from_sequence(gates, codec.decode(ids), {"domain": "text", "input": args.input}).save_npz(args.out)
    print(f"wrote {args.out}: {len(ids)} steps x {len(gates)} layers x {model.config.hidden_size} units")
    return 0
