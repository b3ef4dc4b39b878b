"""`python -m studio {train,generate,eval} music`; `trace` is shared (studio.cli_common)."""

from __future__ import annotations

import sys
from dataclasses import replace

import torch

from studio import checkpoint, cli_common, library
from studio.domains import music
from studio.domains.base import LoadedModel
from studio.domains.music.codec import PitchCodec
from studio.domains.music.data import JSB_SPLITS, MusicInputError, corpus_primer, read_jsb, read_primer
from studio.domains.music.evaluate import nll_per_frame
from studio.domains.music.generate import MusicSettings
from studio.domains.music.model import MusicModel, MusicModelConfig, make_card
from studio.domains.music.render import write_music
from studio.domains.music.train import MusicTask
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
        parser.add_argument("--data", required=True, nargs="+", metavar="FILE",
                            help="a JSB Chorales JSON (train/valid/test lists of pieces), or MIDI / MusicXML files, "
                            "folders or .zip files of them (the last tenth of the pieces validates)")
        cli_common.add_train_flags(parser, steps=6000, lr=3e-3, eval_every=100, batch_size=16, hidden_size=256)
        cli_common.add_options(parser, MODEL_OPTIONS)
        parser.add_argument("--init", metavar="STEM", help="fine-tune this music checkpoint (e.g. "
                            "models/jsb-chorales-quarter) instead of starting from scratch: its shape, range and grid are kept")
        parser.set_defaults(run=run_train)
    elif command == "generate":
        cli_common.add_model_flag(parser, music)
        parser.add_argument("--bars", type=int, default=8)
        parser.add_argument("--primer", help="a MIDI / MusicXML / ABC / kern file to continue")
        parser.add_argument("--corpus", help="a music21 corpus piece to continue, e.g. bach/bwv269")
        cli_common.add_sampling_flags(parser, temperature=1.0)
        parser.add_argument("--tempo", type=float, default=0.0,
                            help="quarter notes per minute (default 0: the primer's own tempo, else 80)")
        cli_common.add_output_flags(parser, "MIDI file to write")
        parser.add_argument("--wav", help="also render audio to this .wav")
        library.add_save_flag(parser)
        parser.set_defaults(run=run_generate)
    elif command == "eval":
        cli_common.add_model_flag(parser, music)
        parser.add_argument("--data", required=True, help="JSB Chorales JSON")
        parser.add_argument("--split", choices=JSB_SPLITS, default="valid")
        parser.set_defaults(run=run_eval)


def _read_jsb(path, *splits) -> dict:
    """The JSB JSON, or exit with one line when it cannot be read or lacks one of `splits`."""
    try:
        data = read_jsb(path)
    except MusicInputError as error:
        sys.exit(f"error: {error}")
    for split in splits:
        if not data.get(split):
            sys.exit(f"error: {path} has no {split!r} split")
    return data


def fit_pieces(pieces, codec: PitchCodec, what: str):
    """Pieces moved into the codec's range by octaves (the JSB files need none)."""
    fitted, moved = [], 0
    for piece in pieces:
        frames, notes = codec.fit_to_range(piece)
        moved += bool(notes)
        fitted.append(frames)
    if moved:
        print(f"note: {moved} {what} piece(s) had pitches outside {codec.min_pitch}..{codec.max_pitch}; moved by octaves", file=sys.stderr)
    return fitted


CHUNK_BARS = 16  # MIDI / score files train in pieces of at most this many bars (about a chorale's length)
MIN_BARS = 4  # fewer bars of music in all cannot train a model


def split_pieces(pieces, codec: PitchCodec) -> dict[str, list]:
    """{"train", "valid"} as the JSB JSON has them: the last tenth of the pieces (at least one)
    validates, a single piece is cut (its last tenth, at least a bar); then every piece is cut into
    pieces of at most CHUNK_BARS bars. MusicInputError when there are fewer than MIN_BARS bars."""
    total, needed = sum(map(len, pieces)), MIN_BARS * codec.steps_per_bar
    if total < needed:
        raise MusicInputError(f"the music comes to {total} frame(s) on the model's grid; at least {needed} "
                                    f"({MIN_BARS} bars) are needed to train")
    if len(pieces) == 1:
        cut = len(pieces[0]) - max(codec.steps_per_bar, len(pieces[0]) // 10)
        splits = {"train": [pieces[0][:cut]], "valid": [pieces[0][cut:]]}
    else:
        held = max(1, round(len(pieces) / 10))
        splits = {"train": pieces[:-held], "valid": pieces[-held:]}
    size = CHUNK_BARS * codec.steps_per_bar
    return {split: [piece[k : k + size] for piece in chosen for k in range(0, len(piece), size) if any(piece[k : k + size])]
            for split, chosen in splits.items()}


def read_files(paths, codec: PitchCodec, source=None, licence=None) -> tuple[dict, dict]:
    """(corpus, the card's data section) from MIDI / MusicXML files, folders and zips of them; exits
    with one line when they cannot make a corpus."""
    try:
        named, notes = music.data.read_pieces(paths, codec)
        data = split_pieces([frames for _, frames in named], codec)
    except MusicInputError as error:
        sys.exit(f"error: {error}")
    cli_common.print_notes(notes)
    names = [name for name, _ in named]
    grid = "quarter notes" if codec.steps_per_quarter == 1 else f"1/{codec.steps_per_quarter} quarter notes"
    print(f"read {len(names)} file(s): {sum(map(len, data['train']))} training and {sum(map(len, data['valid']))} "
          f"validation frames on a grid of {grid}", file=sys.stderr)
    described = {
        "files": names[:100] + ([f"... {len(names) - 100} more"] if len(names) > 100 else []),
        "source": source or f"{len(names)} MIDI / MusicXML file(s) (no --source given)",
        "licence": licence or "unknown (no --licence given)",
        "pieces": {split: len(data[split]) for split in ("train", "valid")},
        "use": f"the last tenth of the files validates (one file: its last tenth); cut into pieces of at most {CHUNK_BARS} bars",
    }
    return data, described


def base_config(args) -> tuple[MusicModelConfig, LoadedModel | None]:
    """(the model's config, the --init checkpoint or None): from scratch, from the flags; fine-tuning,
    the checkpoint's (the flags that would change its shape are ignored, with a note) but --dropout."""
    if not args.init:
        try:
            return MusicModelConfig(args.min_pitch, args.max_pitch, args.steps_per_quarter, args.embed_size,
                                          args.hidden_size, args.layers, args.dropout), None
        except ValueError as error:
            sys.exit(f"error: {error}")
    try:
        base = music.load(args.init)
    except checkpoint.CheckpointError as error:
        sys.exit(f"error: --init: {error}")
    kept = base.model.config
    for flag, name in (("--hidden-size", "hidden_size"), ("--layers", "num_layers"), ("--embed-size", "embed_size"),
                       ("--min-pitch", "min_pitch"), ("--max-pitch", "max_pitch"), ("--steps-per-quarter", "steps_per_quarter")):
        given = getattr(args, "layers" if name == "num_layers" else name)
        if given != getattr(kept, name):
            print(f"note: ignoring {flag} {given}: fine-tuning keeps {base.name}'s {getattr(kept, name)}", file=sys.stderr)
    print(f"fine-tuning {base.name}", file=sys.stderr)
    return replace(kept, dropout=args.dropout), base


def run_train(args) -> int:
    is_json = len(args.data) == 1 and args.data[0].lower().endswith(".json")
    if not is_json and any(path.lower().endswith(".json") for path in args.data):
        sys.exit("error: a JSON corpus is read on its own: give it alone, or MIDI / MusicXML files")
    config, base = base_config(args)
    codec = config.codec
    if is_json:
        data = _read_jsb(args.data[0], "train", "valid")
        described = music.data.provenance(args.data[0], data, args.source, args.licence)
    else:
        data, described = read_files(args.data, codec, args.source, args.licence)
    task = MusicTask(fit_pieces(data["train"], codec, "train"), fit_pieces(data["valid"], codec, "valid"), codec,
                           args.batch_size, args.transpose, args.seed)
    torch.manual_seed(args.seed)
    model = MusicModel(config)
    if base is not None:
        model.load_state_dict(base.model.state_dict())
    hyperparameters = {"batch_size": args.batch_size, "transpose": args.transpose, **({"init": base.name} if base else {})}
    card = make_card(model, codec, reproduce=args.command_line, data=described, hyperparameters=hyperparameters)
    metrics = cli_common.run_training("music", model, task, args, card, "valid_nll_per_frame", music.evaluate.VALID_HOW,
                                      train_name="train_nll_per_token", codec=codec)
    if cli_common.is_main_process() and checkpoint.paths(args.out)[1].exists() and data.get("test"):
        # the test split is scored once, on the best-validation weights, for the card only
        best = music.load(args.out)
        test_nll, frames = nll_per_frame(best.model, fit_pieces(data["test"], codec, "test"))
        saved = best.card
        saved["metrics"].update(test_nll_per_frame=round(test_nll, 4), test_frames=frames,
                                test_how=music.evaluate.TEST_HOW, published_test_nll_per_frame=PUBLISHED)
        checkpoint.write_card(args.out, saved)
        print(f"valid_nll_per_frame: {metrics['best_val_loss']:.4f}")  # the best weights' two scores, last
        print(f"test_nll_per_frame: {test_nll:.4f} over {frames} frames")
    return 0


def run_eval(args) -> int:
    loaded = cli_common.load_or_exit(music, args.model)
    data = _read_jsb(args.data, args.split)
    pieces = fit_pieces(data[args.split], loaded.codec, args.split)
    nll, frames = nll_per_frame(loaded.model, pieces)
    print(f"pieces: {len(pieces)}")
    print(f"frames: {frames}")
    print(f"{args.split}_nll_per_frame: {nll:.4f}")
    return 0


def run_generate(args) -> int:
    loaded = cli_common.load_or_exit(music, args.model)
    try:
        primer = (read_primer(args.primer, loaded.codec) if args.primer
                  else corpus_primer(args.corpus, loaded.codec) if args.corpus else None)
    except MusicInputError as error:
        sys.exit(f"error: {error}")
    settings = MusicSettings(bars=args.bars, primer=primer, tempo_bpm=args.tempo,
                                   sampling=SamplingConfig(args.temperature, args.top_k, args.top_p), seed=args.seed)
    generation, seconds = library.timed(music.generate, loaded, settings)
    result = generation.result
    cli_common.print_notes(result.notes)
    library.save_after(args, music, loaded, settings, generation, duration=seconds)
    cli_common.print_notes(write_music(result, args.out, args.wav))
    if args.trace_out:
        generation.trace.save_npz(args.trace_out)
    generated = len(result.frames) - result.primer_frames
    metre = "" if not result.time_signatures else f" of {'/'.join(map(str, result.time_signatures[-1][1:]))}"
    print(f"wrote {args.out}: {result.primer_frames} primer + {generated} generated frames "
          f"({result.bars} bars{metre}) at {result.tempo_bpm:g} bpm")
    return 0
