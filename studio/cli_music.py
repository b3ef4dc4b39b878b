"""CLI commands for the music domain (wired into studio/__main__.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from studio import checkpoint
from studio.cli_common import is_main_process, load_or_exit, training_progress
from studio.domains import music
from studio.sampling import SamplingConfig
from studio.train import TrainConfig, pick_device, train

DEFAULT_MODEL = checkpoint.MODELS_DIR / "jsb-chorales-quarter"
JSB_SOURCE = {
    "source": "JSB Chorales (czhuang/JSB-Chorales-dataset), split of Boulanger-Lewandowski et al. (2012): "
    "229 train / 76 valid / 77 test chorales",
    "licence": "the chorales are public domain",
}
PUBLISHED = {  # test NLL per quarter-note frame on JSB Chorales, nats
    "GRU (Chung et al. 2014)": 8.54,
    "RNN-NADE (Boulanger-Lewandowski et al. 2012)": 5.56,
}


def add_music_commands(command: str, parser) -> None:
    if command == "train":
        parser.add_argument("--data", required=True, help="JSB Chorales JSON (train/valid/test lists of pieces)")
        parser.add_argument("--out", required=True, help="checkpoint stem, e.g. models/NAME")
        parser.add_argument("--steps", type=int, default=6000)
        parser.add_argument("--batch-size", type=int, default=16, help="pieces per step")
        parser.add_argument("--hidden-size", type=int, default=256)
        parser.add_argument("--layers", type=int, default=2)
        parser.add_argument("--embed-size", type=int, default=32)
        parser.add_argument("--dropout", type=float, default=0.3)
        parser.add_argument("--lr", type=float, default=3e-3)
        parser.add_argument("--weight-decay", type=float, default=0.01)
        parser.add_argument("--warmup-steps", type=int, default=200)
        parser.add_argument("--eval-every", type=int, default=100)
        parser.add_argument("--transpose", type=int, default=6, help="random transposition of training pieces, ± semitones")
        parser.add_argument("--min-pitch", type=int, default=36)
        parser.add_argument("--max-pitch", type=int, default=102)
        parser.add_argument("--steps-per-quarter", type=int, default=1, help="the data's grid (1 for the quarter-note file)")
        parser.add_argument("--seed", type=int, default=1337)
        parser.add_argument("--device", default="auto")
        parser.add_argument("--resume", action="store_true", help="continue from OUT.resume.*")
        parser.add_argument("--source", help="where the data comes from, for the model card")
        parser.add_argument("--licence", help="the data's licence, for the model card")
        parser.set_defaults(run=run_train)
    elif command == "generate":
        parser.add_argument("--model", default=str(DEFAULT_MODEL), help="checkpoint stem")
        parser.add_argument("--bars", type=int, default=8)
        parser.add_argument("--primer", help="a MIDI / MusicXML / ABC / kern file to continue")
        parser.add_argument("--corpus", help="a music21 corpus piece to continue, e.g. bach/bwv269")
        parser.add_argument("--temperature", type=float, default=1.0)
        parser.add_argument("--top-k", type=int, default=0)
        parser.add_argument("--top-p", type=float, default=1.0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--tempo", type=float, default=80.0, help="quarter notes per minute")
        parser.add_argument("--out", required=True, help="MIDI file to write")
        parser.add_argument("--wav", help="also render audio to this .wav")
        parser.add_argument("--trace-out", help="also write the generation's trace .npz")
        parser.set_defaults(run=run_generate)
    elif command == "eval":
        parser.add_argument("--model", default=str(DEFAULT_MODEL))
        parser.add_argument("--data", required=True, help="JSB Chorales JSON")
        parser.add_argument("--split", choices=music.JSB_SPLITS, default="valid")
        parser.set_defaults(run=run_eval)
    elif command == "trace":
        parser.add_argument("--model", default=str(DEFAULT_MODEL))
        parser.add_argument("--input", required=True, help="a MIDI / MusicXML / ABC / kern file to read teacher-forced")
        parser.add_argument("--out", required=True, help="trace .npz")
        parser.set_defaults(run=run_trace)


def read_jsb(path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        sys.exit(f"error: cannot read {path}: {error.strerror or error}")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        sys.exit(f"error: {path} is not valid JSON: {error}")
    try:
        return music.check_jsb(data)
    except music.MusicInputError as error:
        sys.exit(f"error: {path}: {error}")


def fit_pieces(pieces, codec: music.PitchCodec, what: str):
    """Pieces moved into the codec's range by octaves (the JSB files need none)."""
    fitted, moved = [], 0
    for piece in pieces:
        frames, notes = codec.fit_to_range(piece)
        moved += bool(notes)
        fitted.append(frames)
    if moved:
        print(f"note: {moved} {what} piece(s) had pitches outside {codec.min_pitch}..{codec.max_pitch}; moved by octaves", file=sys.stderr)
    return fitted


def run_train(args) -> int:

    data = read_jsb(args.data)
    for split in ("train", "valid"):
        if not data.get(split):
            sys.exit(f"error: {args.data} has no {split!r} split")
    try:
        config = music.MusicModelConfig(args.min_pitch, args.max_pitch, args.steps_per_quarter, args.embed_size,
                                        args.hidden_size, args.layers, args.dropout)
        codec = config.codec
    except ValueError as error:
        sys.exit(f"error: {error}")
    train_pieces = fit_pieces(data["train"], codec, "train")
    valid_pieces = fit_pieces(data["valid"], codec, "valid")
    task = music.MusicTask(train_pieces, valid_pieces, codec, args.batch_size, args.transpose, args.seed)
    train_config = TrainConfig(
        steps=args.steps, lr=args.lr, warmup_steps=args.warmup_steps, eval_every=args.eval_every,
        weight_decay=args.weight_decay, seed=args.seed, device=args.device,
    )
    torch.manual_seed(args.seed)
    model = music.MusicModel(config)
    known = JSB_SOURCE if Path(args.data).name.startswith("jsb-chorales") else {}
    card = music.make_card(model, {
        "data": {
            "file": Path(args.data).name,
            "source": args.source or known.get("source", f"{Path(args.data).name} (no --source given)"),
            "licence": args.licence or known.get("licence", "unknown (no --licence given)"),
            "pieces": {split: len(data.get(split, [])) for split in music.JSB_SPLITS},
            "use": "train: training (randomly transposed); valid: early stopping; test: reported once, never tuned on",
        },
        "hyperparameters": {"batch_size": args.batch_size, "transpose": args.transpose},
        "reproduce": args.command_line,
    })
    on_progress, close_progress = training_progress("music", train_config.steps, "valid_nll_per_frame",
                                                    train_name="train_nll_per_token")
    metrics = train(model, task, train_config, out=args.out, card=card, resume=args.resume, on_progress=on_progress)
    close_progress()
    if is_main_process() and checkpoint.paths(args.out)[1].exists():
        # the test split is scored once, on the best-validation weights, for the card only
        best, saved = music.load_model(args.out)
        saved["metrics"]["valid_nll_per_frame"] = round(metrics["best_val_loss"], 4)
        if data.get("test"):
            test_nll, frames = music.nll_per_frame(best, fit_pieces(data["test"], codec, "test"))
            saved["metrics"]["test_nll_per_frame"] = round(test_nll, 4)
            saved["metrics"]["test_frames"] = frames
            saved["metrics"]["published_test_nll_per_frame"] = PUBLISHED
            print(f"test_nll_per_frame: {test_nll:.4f} over {frames} frames")
        checkpoint.write_card(args.out, saved)
    print(f"best_valid_nll_per_frame: {metrics['best_val_loss']:.4f}")
    return 0


def _load(stem):
    return load_or_exit(music.load_model, stem, device=pick_device())


def run_eval(args) -> int:
    model, _ = _load(args.model)
    data = read_jsb(args.data)
    if not data.get(args.split):
        sys.exit(f"error: {args.data} has no {args.split!r} split")
    pieces = fit_pieces(data[args.split], model.codec, args.split)
    nll, frames = music.nll_per_frame(model, pieces)
    print(f"pieces: {len(pieces)}")
    print(f"frames: {frames}")
    print(f"{args.split}_nll_per_frame: {nll:.4f}")
    return 0


def _primer(args, codec):
    try:
        if args.primer:
            return music.read_primer(args.primer, codec)
        if args.corpus:
            return music.corpus_primer(args.corpus, codec)
    except music.MusicInputError as error:
        sys.exit(f"error: {error}")
    return None


def run_generate(args) -> int:
    model, _ = _load(args.model)
    settings = music.MusicSettings(
        bars=args.bars, primer=_primer(args, model.codec), tempo_bpm=args.tempo,
        sampling=SamplingConfig(args.temperature, args.top_k, args.top_p, args.seed),
    )
    result, trace = music.generate(model, settings)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    midi = music.frames_to_midi(result.frames, result.steps_per_quarter, result.tempo_bpm)
    midi.write(str(args.out))
    if args.wav:
        audio, note = music.synthesize(midi)
        if note:
            print(f"note: {note}", file=sys.stderr)
        music.write_wav(args.wav, audio, 22050)
    if args.trace_out:
        trace.save_npz(args.trace_out)
    generated = len(result.frames) - result.primer_steps
    print(f"wrote {args.out}: {result.primer_steps} primer + {generated} generated frames "
          f"({generated // model.codec.steps_per_bar} bars) at {result.tempo_bpm:g} bpm")
    return 0


def run_trace(args) -> int:
    model, _ = _load(args.model)
    try:
        primer = music.read_primer(args.input, model.codec)
    except music.MusicInputError as error:
        sys.exit(f"error: {error}")
    for note in primer.notes:
        print(f"note: {note}", file=sys.stderr)
    codec = model.codec
    tokens = codec.encode(primer.frames)
    from studio.trace import Trace

    with torch.no_grad():
        _, _, gates = model.trace(torch.tensor([tokens], device=next(model.parameters()).device))
    meta = {"domain": music.DOMAIN, "input": args.input, "tokens": tokens, "min_pitch": codec.min_pitch,
            "num_pitches": codec.num_pitches, "steps_per_quarter": codec.steps_per_quarter,
            "primer_frames": len(primer.frames), "primer_tokens": len(tokens)}
    Trace.from_sequence(gates, [codec.label(t) for t in tokens], meta).save_npz(args.out)
    print(f"wrote {args.out}: {len(tokens)} steps x {len(gates)} layers x {model.config.hidden_size} units")
    return 0
