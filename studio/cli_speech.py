"""CLI commands for the speech domain (wired into studio/__main__.py).

    python -m studio train speech --corpus runs/speech-corpus --source ../shared/data/tinyshakespeare.txt --out models/espeak-tts
    python -m studio train speech --kind frame --corpus runs/speech-corpus --out models/espeak-frames
    python -m studio generate speech --text "hello there" --out out.wav
    python -m studio eval speech --corpus runs/speech-corpus          # last line: mcd_db: X
    python -m studio trace speech --input some.wav --out trace.npz    # frame LSTM, teacher-forced
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from studio import checkpoint
from studio.cli_common import load_or_exit, training_progress
from studio.domains import speech
from studio.train import TrainConfig, pick_device, train

DEFAULT_MODEL = checkpoint.MODELS_DIR / "espeak-tts"
DEFAULT_FRAME_MODEL = checkpoint.MODELS_DIR / "espeak-frames"
DEFAULT_CORPUS = Path("runs/speech-corpus")
ESPEAK_SOURCE = {
    "source": "speech synthesized offline with espeak-ng (Debian) from sentences of Tiny Shakespeare "
              "(karpathy/char-rnn); features: log-mel, see studio/domains/speech.py",
    "licence": "Shakespeare's text is public domain; espeak-ng (GPL-3) output audio is not restricted by it",
}


def add_speech_commands(command: str, parser) -> None:
    if command == "train":
        parser.add_argument("--kind", choices=["tts", "frame"], default="tts",
                            help="tts: text-to-mel attention model; frame: unconditional frame LSTM (continue mode)")
        parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="folder holding corpus.npz (built if missing)")
        parser.add_argument("--source", help="a text file to cut sentences from when the corpus must be built")
        parser.add_argument("--sentences", type=int, default=3000, help="sentences to synthesize when building")
        parser.add_argument("--out", required=True, help="checkpoint stem, e.g. models/NAME")
        parser.add_argument("--steps", type=int, default=6000)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--hidden-size", type=int, default=256)
        parser.add_argument("--decoder-layers", type=int, default=1)
        parser.add_argument("--reduction", type=int, default=3)
        parser.add_argument("--lr", type=float, default=1e-3)
        parser.add_argument("--warmup-steps", type=int, default=200)
        parser.add_argument("--eval-every", type=int, default=200)
        parser.add_argument("--seed", type=int, default=1337)
        parser.add_argument("--device", default="auto")
        parser.add_argument("--resume", action="store_true", help="continue from OUT.resume.*")
        parser.set_defaults(run=run_train)
    elif command == "generate":
        parser.add_argument("--model", default=str(DEFAULT_MODEL), help="checkpoint stem")
        parser.add_argument("--text", default="")
        parser.add_argument("--voice", type=int, default=0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--out", required=True, help="output .wav")
        parser.add_argument("--features-out", help="also write the log-mel and alignment .npz")
        parser.add_argument("--trace-out", help="also write the generation's trace .npz")
        parser.set_defaults(run=run_generate)
    elif command == "eval":
        parser.add_argument("--model", default=str(DEFAULT_MODEL))
        parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
        parser.add_argument("--limit", type=int, default=speech.HELD_OUT, help="held-out sentences to score")
        parser.add_argument("--record", action="store_true", help="also write the results into the model card")
        parser.set_defaults(run=run_eval)
    elif command == "trace":
        parser.add_argument("--model", default=str(DEFAULT_FRAME_MODEL), help="a frame-LSTM checkpoint")
        parser.add_argument("--input", required=True, help="an audio file read teacher-forced")
        parser.add_argument("--out", required=True, help="trace .npz")
        parser.set_defaults(run=run_trace)


def _corpus(args) -> speech.Corpus:
    path = Path(args.corpus) / "corpus.npz"
    if not path.exists():
        if not args.source:
            sys.exit(f"error: {path} does not exist; give --source TEXTFILE to synthesize it with espeak-ng")
        print(f"building {path} from {args.source} with espeak-ng ...", file=sys.stderr)
        try:
            info = speech.build_corpus(args.source, args.corpus, args.sentences,
                                       progress=lambda k, n: print(f"  {k}/{n} sentences", file=sys.stderr))
        except FileNotFoundError as error:
            sys.exit(f"error: {error} (is espeak-ng installed? apt-get install espeak-ng)")
        print(f"corpus: {info}", file=sys.stderr)
    try:
        return speech.Corpus.load(path)
    except (OSError, KeyError, ValueError) as error:
        sys.exit(f"error: cannot read {path}: {error}")


def run_train(args) -> int:
    corpus = _corpus(args)
    mean, std = corpus.stats()
    torch.manual_seed(args.seed)
    if args.kind == "tts":
        config = speech.SpeechModelConfig(
            reduction=args.reduction, hidden_size=args.hidden_size, decoder_layers=args.decoder_layers,
            mel_mean=mean.tolist(), mel_std=std.tolist(),
        )
        model = speech.SpeechModel(config)
        task = speech.SpeechTask(corpus, config, args.batch_size)
    else:
        config = speech.FrameModelConfig(reduction=args.reduction, hidden_size=args.hidden_size,
                                         mel_mean=mean.tolist(), mel_std=std.tolist())
        model = speech.FrameModel(config)
        task = speech.FrameTask(corpus, config, args.batch_size)
    train_config = TrainConfig(steps=args.steps, lr=args.lr, warmup_steps=args.warmup_steps,
                               eval_every=args.eval_every, seed=args.seed, device=args.device)
    data = {**ESPEAK_SOURCE, "utterances": len(corpus.texts), "voices": list(speech.VOICES),
            "split": f"first {speech.HELD_OUT} sentences (voice 0) held out for eval; 64 of the rest validate"}
    card = speech.make_card(model, {"data": data, "hyperparameters": {"batch_size": args.batch_size},
                                    "reproduce": args.command_line})
    on_progress, close_progress = training_progress("speech", train_config.steps, "val_loss")
    metrics = train(model, task, train_config, out=args.out, card=card, resume=args.resume, on_progress=on_progress)
    close_progress()
    print(f"best_val_loss: {metrics['best_val_loss']:.4f}")
    return 0


def _load(stem, kind: str):
    model, card = load_or_exit(speech.load_model, stem, device=pick_device())
    wanted = speech.FrameModel if kind == "frame" else speech.SpeechModel
    if not isinstance(model, wanted):
        sys.exit(f"error: {stem} is a {card.get('kind')} model; this command needs a {'frame-lstm' if kind == 'frame' else 'text-to-mel'} one")
    return model, card


def run_generate(args) -> int:
    model, _ = _load(args.model, "tts")
    result, trace = speech.generate(model, speech.SpeechSettings(text=args.text, voice=args.voice, seed=args.seed))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    speech.write_wav(args.out, result.audio)
    if args.features_out:
        speech.features_npz(args.features_out, result.log_mel, alignment=result.alignment, stop_probs=result.stop_probs)
    if args.trace_out:
        trace.save_npz(args.trace_out)
    report = speech.alignment_report(result.alignment)
    print(f"wrote {args.out}: {len(result.audio) / speech.SAMPLE_RATE:.2f} s, {len(result.log_mel)} frames, "
          f"stopped by the stop token: {result.stopped}, alignment: {json.dumps(report)}")
    return 0


def run_eval(args) -> int:
    """MCD of the model's audio against espeak-ng's own rendering of each held-out sentence, next to
    the floor that Griffin-Lim alone sets (espeak's log-mel inverted the same way)."""
    import shutil

    if not shutil.which("espeak-ng"):
        sys.exit("error: eval renders the reference sentences with espeak-ng: apt-get install espeak-ng")
    model, _ = _load(args.model, "tts")
    corpus = speech.Corpus.load(args.corpus)
    held_out = corpus.indices("test")[: args.limit]
    if not held_out:
        sys.exit("error: the corpus has no held-out sentences")
    references = [speech.reference_audio(corpus.texts[k], corpus.voices[k]) for k in held_out]
    reference_bands = [speech.mcd_bands(audio) for audio in references]  # each compared 50 times: once
    scores, floors, reports, stopped, identified = [], [], [], 0, 0
    for index, (k, reference) in enumerate(zip(held_out, references, strict=True)):
        result, _ = speech.generate(model, speech.SpeechSettings(text=corpus.texts[k], voice=corpus.voices[k]))
        # A proxy for intelligibility that needs no recogniser: among every held-out sentence as
        # espeak-ng says it, is the nearest (lowest MCD) the one the model was asked to say?
        bands = speech.mcd_bands(result.audio)
        distances = [speech.mcd_between(bands, other) for other in reference_bands]
        scores.append(distances[index])
        identified += int(np.argmin(distances)) == index
        floors.append(speech.mcd_between(speech.mcd_bands(speech.decode_audio(speech.encode_audio(reference))),
                                         reference_bands[index]))
        reports.append(speech.alignment_report(result.alignment))
        stopped += result.stopped
    print(f"sentences: {len(scores)}")
    print(f"identified_among_held_out: {identified}/{len(scores)}")
    print(f"stopped_by_stop_token: {stopped}/{len(scores)}")
    print(f"monotonic_alignments: {sum(r['monotonic'] for r in reports)}/{len(reports)}")
    print(f"alignments_reaching_end: {sum(r['reaches_end'] for r in reports)}/{len(reports)}")
    print(f"griffin_lim_floor_mcd_db: {float(np.mean(floors)):.3f}")
    if args.record:
        saved = checkpoint.read_card(args.model)
        saved.setdefault("metrics", {}).update({
            "held_out_sentences": len(scores), "mcd_db": round(float(np.mean(scores)), 3),
            "griffin_lim_floor_mcd_db": round(float(np.mean(floors)), 3),
            "identified_among_held_out": identified, "stopped_by_stop_token": stopped,
            "monotonic_alignments": sum(r["monotonic"] for r in reports),
            "alignments_reaching_end": sum(r["reaches_end"] for r in reports),
            "mcd_how": "model audio (Griffin-Lim) vs espeak-ng's rendering of each held-out sentence: Kubichek MCD with "
                       "the mel-cepstral-distance package's defaults (20 bands, coefficients 2..16, DTW), plus a -60 dB "
                       "noise floor; see studio/domains/speech.py. Identified: the nearest held-out reference is its own.",
            "eval_command": args.command_line,
        })
        checkpoint.write_card(args.model, saved)
    print(f"mcd_db: {float(np.mean(scores)):.3f}")
    return 0


def run_trace(args) -> int:
    model, _ = _load(args.model, "frame")
    try:
        loaded = speech.read_audio(args.input)
    except speech.AudioError as error:
        sys.exit(f"error: {error}")
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    log_mel = speech.encode_audio(loaded.audio)
    frames = (torch.from_numpy(log_mel) - model.mel_mean.cpu()) / model.mel_std.cpu()
    groups = speech.group_frames(frames[None], model.config.reduction).to(next(model.parameters()).device)
    with torch.no_grad():
        _, _, gates = model.trace(groups)
    from studio.trace import Trace

    labels = [str(k * model.config.reduction) for k in range(groups.shape[1])]
    Trace.from_sequence(gates, labels, {"domain": "speech", "input": args.input}).save_npz(args.out)
    print(f"wrote {args.out}: {groups.shape[1]} steps x {len(gates)} layers x {model.config.hidden_size} units")
    return 0
