"""`python -m studio {train,generate,eval} speech`; `trace` is shared (studio.cli_common: a
recording, with its transcript in a .txt beside it for a text-to-mel model; see data.read_input).

    python -m studio train speech --corpus runs/speech-corpus --source ../shared/data/tinyshakespeare.txt --out models/espeak-tts
    python -m studio train speech --kind frame --corpus runs/speech-corpus --out models/espeak-frames
    python -m studio train speech --data FOLDER [--init models/espeak-tts] --out runs/mine/ --minutes 5
        (your recordings: a folder of name.wav + name.txt, a CSV of file,text, or a zip of either)
    python -m studio generate speech --text "hello there" --out out.wav
    python -m studio generate speech --continue clip.wav --seconds 2 --out more.wav --features-out more.npz
    python -m studio eval speech --corpus runs/speech-corpus          # last line: mcd_db: X
    python -m studio trace speech --model models/espeak-frames --input clip.wav --out trace.npz
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from studio import checkpoint, cli_common, library
from studio.domains import speech
from studio.domains.speech.codec import HOP, SAMPLE_RATE, VOICES, AudioError, SpeechCodec
from studio.domains.speech.data import HELD_OUT, Corpus, build_corpus, read_audio
from studio.domains.speech.evaluate import MCD_HOW, alignment_report, held_out_mcd
from studio.domains.speech.generate import ContinueSettings, SpeechResult, SpeechSettings
from studio.domains.speech.model import (
    FRAME_KIND,
    TTS_KIND,
    FrameModel,
    FrameModelConfig,
    SpeechModel,
    SpeechModelConfig,
    make_card,
)
from studio.domains.speech.train import (
    FRAME_VAL_HOW,
    MIN_UTTERANCES,
    TTS_VAL_HOW,
    VAL_COUNT,
    FrameTask,
    SpeechTask,
    held_out_count,
    read_recordings,
    user_corpus,
)

DEFAULT_CORPUS = Path("runs/speech-corpus")
ESPEAK_SOURCE = {
    "source": "speech synthesized offline with espeak-ng (Debian) from sentences of Tiny Shakespeare "
              "(karpathy/char-rnn); features: log-mel, see studio/domains/speech/codec.py",
    "licence": "Shakespeare's text is public domain; espeak-ng (GPL-3) output audio is not restricted by it",
}


def add_commands(command: str, parser) -> None:
    if command == "train":
        parser.add_argument("--kind", choices=["tts", "frame"], default="tts",
                            help="tts: text-to-mel attention model; frame: unconditional frame LSTM (continue mode)")
        parser.add_argument("--data", nargs="+", metavar="FILE", help="train a text-to-mel model on your own "
                                                                      "recordings "
                            "with transcripts: folders of name.wav + name.txt, CSV files of file,text, .zip files of "
                            "either, or audio files with their .txt beside them (a tenth validates) instead of "
                            "--corpus")
        parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="folder holding corpus.npz (built if missing)")
        parser.add_argument("--sentences", type=int, default=3000, help="sentences to synthesize when building")
        # --source (shared flag): here the text file the sentences are cut from when the corpus is built
        cli_common.add_train_flags(parser, steps=6000, lr=1e-3, eval_every=200, batch_size=32, hidden_size=256)
        parser.add_argument("--decoder-layers", type=int, default=1, help="tts: decoder LSTM layers (--layers: frame)")
        parser.add_argument("--reduction", type=int, default=3, help="frames per step")
        parser.add_argument("--input-noise", type=float, default=0.0,
                            help="frame: noise added to the groups read in training (std up to this, normalised)")
        parser.add_argument("--scheduled-sampling", type=float, default=0.0,
                            help="frame: share of the groups read that are the model's own predictions")
        parser.add_argument("--direct", action="store_true",
                            help="frame: predict the next group itself, not its change from the group read")
        parser.add_argument("--init", help="start from this checkpoint's weights (same kind and shape): fine-tune it")
        parser.set_defaults(run=run_train)
    elif command == "generate":
        parser.add_argument("--text", default="", help="what a text-to-mel model says")
        cli_common.add_model_flag(parser, speech)
        parser.set_defaults(model=None)  # text-to-mel by default, the frame LSTM when continuing
        parser.add_argument("--voice", type=int, default=0)
        parser.add_argument("--continue", "--input", dest="input", metavar="RECORDING",
                            help=f"a recording to continue (with a frame-lstm model; default {speech.DEFAULT_FRAME_MODEL.name})")
        parser.add_argument("--seconds", type=float, default=2.0, help="frame-lstm: seconds to add")
        parser.add_argument("--noise", type=float, default=0.3, help="frame-lstm: noise fed back each step")
        parser.add_argument("--seed", type=int, default=0)
        cli_common.add_output_flags(parser, "output .wav")
        parser.add_argument("--features-out", help="also write the log-mel (and alignment) .npz")
        library.add_save_flag(parser)
        parser.set_defaults(run=run_generate)
    elif command == "eval":
        parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
        cli_common.add_model_flag(parser, speech)
        parser.add_argument("--limit", type=int, default=HELD_OUT, help="held-out sentences to score")
        parser.add_argument("--record", action="store_true", help="also write the results into the model card")
        parser.set_defaults(run=run_eval)


def _corpus(args) -> Corpus:
    path = Path(args.corpus) / "corpus.npz"
    if not path.exists():
        if not getattr(args, "source", None):
            sys.exit(f"error: {path} does not exist; give --source TEXTFILE to synthesize it with espeak-ng")
        print(f"building {path} from {args.source} with espeak-ng ...", file=sys.stderr)
        try:
            info = build_corpus(args.source, args.corpus, args.sentences,
                                       progress=lambda k, n: print(f"  {k}/{n} sentences", file=sys.stderr))
        except FileNotFoundError as error:
            sys.exit(f"error: {error} (is espeak-ng installed? apt-get install espeak-ng)")
        print(f"corpus: {info}", file=sys.stderr)
    try:
        return Corpus.load(path)
    except (OSError, KeyError, ValueError) as error:
        sys.exit(f"error: cannot read {path}: {error}")


def _user_corpus(args) -> Corpus:
    """The user's recordings (--data) as a corpus; exits with one line when they cannot make one."""
    with tempfile.TemporaryDirectory() as scratch:
        try:
            recordings, notes = read_recordings(args.data, scratch)
            if len(recordings) < MIN_UTTERANCES:
                raise ValueError(f"{len(recordings)} recording(s) with a transcript were read; give at least "
                                 f"{MIN_UTTERANCES} (a few are kept aside to validate)")
            corpus, more = user_corpus(recordings)
        except ValueError as error:  # AudioError too
            sys.exit(f"error: {error}")
    cli_common.print_notes(notes + more)
    seconds = sum(len(m) for m in corpus.mels) * HOP / SAMPLE_RATE
    print(f"read {len(corpus.texts)} recording(s), {seconds:.1f} s of speech", file=sys.stderr)
    return corpus


def run_train_files(args) -> int:
    """Train a text-to-mel model (or fine-tune --init's, its shape and mel statistics kept) on the user's recordings."""
    if args.kind != "tts":
        sys.exit("error: --data trains a text-to-mel model (it learns to say the transcripts); leave out --kind")
    corpus = _user_corpus(args)
    torch.manual_seed(args.seed)
    if args.init:
        base = cli_common.load_or_exit(speech, args.init)
        if base.card["kind"] != TTS_KIND:
            sys.exit(f"error: --init {args.init} is a {base.card['kind']} model; --data fine-tunes a text-to-mel one")
        model, config = base.model.cpu(), base.model.config
        if args.hidden_size != config.hidden_size:
            print(f"note: ignoring --hidden-size {args.hidden_size}: fine-tuning keeps {base.name}'s "
                  f"{config.hidden_size}",
                  file=sys.stderr)
    else:
        mean, std = corpus.stats()
        config = SpeechModelConfig(decoder_layers=args.decoder_layers, reduction=args.reduction,
                                          hidden_size=args.hidden_size, mel_mean=mean.tolist(), mel_std=std.tolist())
        model = SpeechModel(config)
    held = held_out_count(len(corpus.texts))
    batch_size = max(1, min(args.batch_size, len(corpus.texts) - held))
    try:
        task = SpeechTask(corpus, config, batch_size, val_count=held)
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(f"training on {len(corpus.texts) - held} recording(s), validating on {held}; batch {batch_size}",
          file=sys.stderr)
    data = {"source": args.source or "the user's recordings with transcripts (" + f"{len(corpus.texts)} utterances)",
            "licence": args.licence or "as the recordings' (not stated)", "utterances": len(corpus.texts),
            "voice": "the recordings train voice 0", "split": f"{held} recording(s) validate"}
    card = make_card(model, SpeechCodec(), name=Path(args.out).name, reproduce=args.command_line, data=data,
                            hyperparameters={"batch_size": batch_size, **({"init": args.init} if args.init else {})})
    cli_common.run_training("speech", model, task, args, card, "val_loss", TTS_VAL_HOW, codec=SpeechCodec())
    return 0


def run_train(args) -> int:
    if args.data:
        return run_train_files(args)
    corpus = _corpus(args)
    mean, std = corpus.stats()
    torch.manual_seed(args.seed)
    shape = {"reduction": args.reduction, "hidden_size": args.hidden_size, "mel_mean": mean.tolist(), "mel_std": std.tolist()}
    try:
        if args.kind == "tts":
            config = SpeechModelConfig(decoder_layers=args.decoder_layers, **shape)
            model, task, how = SpeechModel(config), SpeechTask(corpus, config, args.batch_size), TTS_VAL_HOW
        else:
            low, high = corpus.value_range()
            config = FrameModelConfig(num_layers=args.layers, mel_min=low.tolist(), mel_max=high.tolist(),
                                             residual=not args.direct, **shape)
            task = FrameTask(corpus, config, args.batch_size, input_noise=args.input_noise,
                                    scheduled_sampling=args.scheduled_sampling)
            model, how = FrameModel(config), FRAME_VAL_HOW
    except ValueError as error:
        sys.exit(f"error: {error}")
    if args.init:
        _start_from(model, args.init)
    data = {**ESPEAK_SOURCE, "utterances": len(corpus.texts), "voices": list(VOICES),
            "split": f"first {HELD_OUT} sentences (voice 0) held out for eval; "
                     f"{VAL_COUNT} of the rest validate"}
    hyperparameters = {"batch_size": args.batch_size}
    if args.kind == "frame":
        hyperparameters.update(input_noise=args.input_noise, scheduled_sampling=args.scheduled_sampling, crop=task.crop)
    card = make_card(model, SpeechCodec(), name=Path(args.out).name, reproduce=args.command_line,
                            data=data, hyperparameters=hyperparameters)
    cli_common.run_training("speech", model, task, args, card, "val_loss", how)
    return 0


def _start_from(model, stem) -> None:
    """Copy a checkpoint's weights into a freshly made model (its mel statistics included)."""
    try:
        tensors, card = checkpoint.load(stem, domain="speech")
        if card.get("kind") != (FRAME_KIND if isinstance(model, FrameModel) else TTS_KIND):
            raise ValueError(f"it is a {card.get('kind')} model")
        model.load_state_dict(tensors)
    except (OSError, ValueError, RuntimeError, checkpoint.CheckpointError) as error:
        sys.exit(f"error: cannot start from {stem}: {str(error).splitlines()[0]}")


def _load(stem, kind: str):
    loaded = cli_common.load_or_exit(speech, stem)
    if loaded.card["kind"] != kind:
        sys.exit(f"error: {stem} is a {loaded.card['kind']} model; this command needs a {kind} one")
    return loaded


def run_generate(args) -> int:
    if args.model is None:
        args.model = str(speech.DEFAULT_FRAME_MODEL if args.input else speech.DEFAULT_MODEL)
    loaded = cli_common.load_or_exit(speech, args.model)
    if loaded.card["kind"] == FRAME_KIND:
        if not args.input:
            sys.exit(f"error: {args.model} is a frame-lstm model: give --continue RECORDING to continue, "
                     "or a text-to-mel model to speak --text")
        try:
            recording = read_audio(args.input)
            settings = ContinueSettings(recording.audio, args.seconds, args.noise, args.seed)
            generation, seconds = library.timed(speech.generate, loaded, settings)
        except AudioError as error:
            sys.exit(f"error: {error}")
        cli_common.print_notes(recording.notes)
    elif args.input:
        sys.exit(f"error: {args.model} is a text-to-mel model: it speaks --text; to continue a recording leave out "
                 f"--model or give a frame-lstm model ({speech.DEFAULT_FRAME_MODEL})")
    else:
        settings = SpeechSettings(text=args.text, voice=args.voice, seed=args.seed)
        generation, seconds = library.timed(speech.generate, loaded, settings)
    result = generation.result
    cli_common.print_notes(result.notes)
    library.save_after(args, speech, loaded, settings, generation, duration=seconds)
    with tempfile.TemporaryDirectory() as folder:  # write_files' names, moved to the ones asked for
        files = speech.write_files(generation, Path(folder))
        shutil.move(files["audio"], args.out)
        if args.features_out:
            shutil.move(files["features"], args.features_out)
    if args.trace_out:
        generation.trace.save_npz(args.trace_out)
    summary = f"wrote {args.out}: {len(result.audio) / SAMPLE_RATE:.2f} s, {len(result.log_mel)} frames"
    if isinstance(result, SpeechResult):
        report = alignment_report(result.alignment)
        summary += f", stopped by the stop token: {result.stopped}, alignment: {json.dumps(report)}"
    print(summary)
    return 0


def run_eval(args) -> int:
    """MCD of the model's audio against espeak-ng's own rendering of each held-out sentence, next to
    the floor that Griffin-Lim alone sets (espeak's log-mel inverted the same way)."""
    if not shutil.which("espeak-ng"):
        sys.exit("error: eval renders the reference sentences with espeak-ng: apt-get install espeak-ng")
    loaded = _load(args.model, TTS_KIND)
    try:
        report = held_out_mcd(loaded, Corpus.load(args.corpus), args.limit)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    print(f"sentences: {report.sentences}")
    print(f"identified_among_held_out: {report.identified}/{report.sentences}")
    print(f"stopped_by_stop_token: {report.stopped}/{report.sentences}")
    print(f"monotonic_alignments: {report.monotonic}/{report.sentences}")
    print(f"alignments_reaching_end: {report.reaching_end}/{report.sentences}")
    print(f"griffin_lim_floor_mcd_db: {report.griffin_lim_floor_mcd_db:.3f}")
    if args.record:
        saved = checkpoint.read_card(args.model)
        saved["metrics"].update({
            "held_out_sentences": report.sentences, "mcd_db": round(report.mcd_db, 3),
            "griffin_lim_floor_mcd_db": round(report.griffin_lim_floor_mcd_db, 3),
            "identified_among_held_out": report.identified, "stopped_by_stop_token": report.stopped,
            "monotonic_alignments": report.monotonic, "alignments_reaching_end": report.reaching_end,
            "mcd_how": MCD_HOW, "eval_command": args.command_line,
        })
        checkpoint.write_card(args.model, saved)
    print(f"mcd_db: {report.mcd_db:.3f}")
    return 0
