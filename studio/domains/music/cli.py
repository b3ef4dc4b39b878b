"""`python -m studio {train,generate,eval} music`; `trace` is shared (studio.cli_common)."""

from __future__ import annotations

import sys

import torch

from studio import checkpoint, cli_common
from studio.domains import music
from studio.sampling import SamplingConfig

PUBLISHED = {  # test NLL per quarter-note frame on JSB Chorales, nats
    "GRU (Chung et al. 2014)": 8.54,
    "RNN-NADE (Boulanger-Lewandowski et al. 2012)": 5.56,
}


MODEL_OPTIONS = {  # train's model and data shape, beside the shared trainer flags
    "--embed-size": (32, "pitch embedding width"),
    "--dropout": (0.3, "between layers, training only"),
    "--transpose": (6, "random transposition of training pieces, ± semitones"),
    "--min-pitch": (36, "lowest MIDI pitch the model knows"),
    "--max-pitch": (102, "highest MIDI pitch the model knows"),
    "--steps-per-quarter": (1, "the data's grid (1 for the quarter-note file)"),
}


def add_commands(command: str, parser) -> None:
    if command == "train":
        parser.add_argument("--data", required=True, help="JSB Chorales JSON (train/valid/test lists of pieces)")
        cli_common.add_train_flags(parser, steps=6000, lr=3e-3, eval_every=100, batch_size=16, hidden_size=256)
        cli_common.add_options(parser, MODEL_OPTIONS)
        parser.set_defaults(run=run_train)
    elif command == "generate":
        cli_common.add_model_flag(parser, music)
        parser.add_argument("--bars", type=int, default=8)
        parser.add_argument("--primer", help="a MIDI / MusicXML / ABC / kern file to continue")
        parser.add_argument("--corpus", help="a music21 corpus piece to continue, e.g. bach/bwv269")
        cli_common.add_sampling_flags(parser, temperature=1.0)
        parser.add_argument("--tempo", type=float, default=80.0, help="quarter notes per minute")
        cli_common.add_output_flags(parser, "MIDI file to write")
        parser.add_argument("--wav", help="also render audio to this .wav")
        parser.set_defaults(run=run_generate)
    elif command == "eval":
        cli_common.add_model_flag(parser, music)
        parser.add_argument("--data", required=True, help="JSB Chorales JSON")
        parser.add_argument("--split", choices=music.JSB_SPLITS, default="valid")
        parser.set_defaults(run=run_eval)


def _read_jsb(path, *splits) -> dict:
    """The JSB JSON, or exit with one line when it cannot be read or lacks one of `splits`."""
    try:
        data = music.read_jsb(path)
    except music.MusicInputError as error:
        sys.exit(f"error: {error}")
    for split in splits:
        if not data.get(split):
            sys.exit(f"error: {path} has no {split!r} split")
    return data


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
    data = _read_jsb(args.data, "train", "valid")
    try:
        config = music.MusicModelConfig(args.min_pitch, args.max_pitch, args.steps_per_quarter, args.embed_size,
                                        args.hidden_size, args.layers, args.dropout)
        codec = config.codec
    except ValueError as error:
        sys.exit(f"error: {error}")
    task = music.MusicTask(fit_pieces(data["train"], codec, "train"), fit_pieces(data["valid"], codec, "valid"), codec,
                           args.batch_size, args.transpose, args.seed)
    torch.manual_seed(args.seed)
    model = music.MusicModel(config)
    card = music.make_card(model, codec, reproduce=args.command_line,
                           data=music.data.provenance(args.data, data, args.source, args.licence),
                           hyperparameters={"batch_size": args.batch_size, "transpose": args.transpose})
    cli_common.run_training("music", model, task, args, card, "valid_nll_per_frame", music.evaluate.VALID_HOW,
                            train_name="train_nll_per_token", codec=codec)
    if cli_common.is_main_process() and checkpoint.paths(args.out)[1].exists() and data.get("test"):
        # the test split is scored once, on the best-validation weights, for the card only
        best = music.load(args.out)
        test_nll, frames = music.nll_per_frame(best.model, fit_pieces(data["test"], codec, "test"))
        saved = best.card
        saved["metrics"].update(test_nll_per_frame=round(test_nll, 4), test_frames=frames,
                                test_how=music.evaluate.TEST_HOW, published_test_nll_per_frame=PUBLISHED)
        checkpoint.write_card(args.out, saved)
        print(f"test_nll_per_frame: {test_nll:.4f} over {frames} frames")
    return 0


def run_eval(args) -> int:
    loaded = cli_common.load_or_exit(music, args.model)
    data = _read_jsb(args.data, args.split)
    pieces = fit_pieces(data[args.split], loaded.codec, args.split)
    nll, frames = music.nll_per_frame(loaded.model, pieces)
    print(f"pieces: {len(pieces)}")
    print(f"frames: {frames}")
    print(f"{args.split}_nll_per_frame: {nll:.4f}")
    return 0


def run_generate(args) -> int:
    loaded = cli_common.load_or_exit(music, args.model)
    try:
        primer = (music.read_primer(args.primer, loaded.codec) if args.primer
                  else music.corpus_primer(args.corpus, loaded.codec) if args.corpus else None)
    except music.MusicInputError as error:
        sys.exit(f"error: {error}")
    settings = music.MusicSettings(bars=args.bars, primer=primer, tempo_bpm=args.tempo,
                                   sampling=SamplingConfig(args.temperature, args.top_k, args.top_p, args.seed))
    generation = music.generate(loaded, settings)
    result = generation.result
    cli_common.print_notes(result.notes)
    cli_common.print_notes(music.write_music(result, args.out, args.wav))
    if args.trace_out:
        generation.trace.save_npz(args.trace_out)
    generated = len(result.frames) - result.primer_frames
    print(f"wrote {args.out}: {result.primer_frames} primer + {generated} generated frames "
          f"({generated // loaded.codec.steps_per_bar} bars) at {result.tempo_bpm:g} bpm")
    return 0
