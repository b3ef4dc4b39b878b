"""Does continuing a recording stay within the range of the training data? (issue 15)

Continues held-out espeak-ng utterances (the corpus's test split: sentences never trained on,
rendered again by espeak-ng exactly as the corpus builder does) for 2 s at several noise levels and
checks every generated log-mel value against the training data's per-bin [min - 1, max + 1].

Compares, per frame-LSTM checkpoint, three samplers:
- "noise in output, fed back": the sampler before issue 15: the noisy group is both the output and
  what the model reads next (reimplemented here, `continue_with_noise`);
- "noise in output only": the output is the prediction plus noise, the model reads the clean prediction;
- "noise fed back only": today's `speech.generate`: the output is the model's prediction, the noise
  goes only into what it reads next; run with keep_in_range=False (the per-bin guard off) unless
  --guard is given, so the numbers are the model's own.

Per configuration: utterances with every generated frame in range, the share of values out of range,
the largest value, how lively the continuation is (the mean over bins of each bin's std over time,
real held-out speech: about 2.7) and how much two seeds differ (mean |difference|, log units).

python bench/bench_speech_range.py --models models/espeak-frames [more stems] [--utterances 50]
    [--noise 0 0.3 0.6 1.0] [--json out.json] [--figure docs/screenshots/speech-continue-range.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.domains import speech  # noqa: E402
from studio.domains.speech.codec import HOP, N_MELS, SAMPLE_RATE, encode_audio  # noqa: E402
from studio.domains.speech.data import (  # noqa: E402
    HELD_OUT,
    Corpus,
    reference_audio,  # noqa: E402
)
from studio.domains.speech.generate import ContinueSettings  # noqa: E402
from studio.domains.speech.model import group_frames  # noqa: E402

SECONDS = 2.0
SAMPLERS = ("noise in output, fed back", "noise in output only", "noise fed back only")


@torch.no_grad()
def continue_with_noise(model, audio: np.ndarray, noise: float, seed: int, feed_noise: bool = True,
                        seconds: float = SECONDS) -> np.ndarray:
    """The prediction plus noise is the output; the model reads it (feed_noise: the sampler before
    issue 15) or the clean prediction. Returns the generated log-mel (frames, 80)."""
    r = model.config.reduction
    log_mel = encode_audio(audio)[-int(5.0 * SAMPLE_RATE / HOP) // r * r:]
    groups = group_frames(model.normalize(torch.from_numpy(log_mel))[None], r)
    predicted, state, _ = model.trace(groups)
    group, generator, made = predicted[:, -1], torch.Generator().manual_seed(seed), []
    for _ in range(int(seconds * SAMPLE_RATE / HOP / r)):
        noisy = group + noise * torch.randn(group.shape, generator=generator)
        made.append(noisy)
        group, state, _ = model.step(noisy if feed_noise else group, state)
    return model.denormalize(torch.cat(made).reshape(-1, N_MELS)).numpy()


def continuation(loaded, sampler: str, audio, noise: float, seed: int, guard: bool) -> np.ndarray:
    if sampler != SAMPLERS[-1]:
        return continue_with_noise(loaded.model, audio, noise, seed, feed_noise=sampler == SAMPLERS[0])
    settings = ContinueSettings(audio, seconds=SECONDS, noise=noise, seed=seed, griffin_lim_iters=0,
                                       keep_in_range=guard)
    result = speech.generate(loaded, settings).result
    return result.log_mel[result.primer_frames:]


def measure(loaded, sampler, audios, noise, low, high, guard) -> dict:
    inside, out_share, largest, liveliness, seed_gap, excess = 0, [], -np.inf, [], [], []
    for k, audio in enumerate(audios):
        made = continuation(loaded, sampler, audio, noise, k, guard)
        outside = (made < low - 1) | (made > high + 1)
        inside += not outside.any()
        out_share.append(outside.mean())
        largest = max(largest, float(made.max()))
        liveliness.append(float(made.std(0).mean()))
        # per generated frame: how far the frame's worst bin lies above max + 1 or below min - 1
        excess.append(np.maximum(made - (high + 1), (low - 1) - made).max(1))
        if noise > 0 and k < 10:
            seed_gap.append(float(np.abs(made - continuation(loaded, sampler, audio, noise, k + 1000, guard)).mean()))
    return {"inside": inside, "utterances": len(audios), "out_of_range_share": float(np.mean(out_share)),
            "largest": largest, "liveliness": float(np.mean(liveliness)),
            "seed_difference": float(np.mean(seed_gap)) if seed_gap else 0.0,
            "excess_by_frame": np.mean(np.stack(excess), 0).round(3).tolist()}


def drift(model, audios, noise: float) -> np.ndarray:
    """The cause, measured: per generated step, the std (normalised units) of the difference between a
    continuation with noise in its output, fed back, and the same one at noise 0. A model that carries
    what it reads on unchanged makes a random walk, noise * sqrt(step)."""
    gaps = []
    for k, audio in enumerate(audios):
        clean, noisy = (continue_with_noise(model, audio, level, k) / model.mel_std.numpy() for level in (0.0, noise))
        gaps.append((noisy - clean).reshape(-1, model.config.reduction * N_MELS).std(1))
    return np.mean(gaps, 0)


def figure(results: dict, examples: dict, path: Path, high_max: float) -> None:
    """Left: the worst bin's excess over the training range per generated frame (mean over
    utterances); right: one utterance continued at noise 0.3, before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    for (name, values), style in zip(results.items(), ["-", "--", ":", "-."] * 4, strict=False):
        axes[0].plot(np.arange(len(values)) * HOP / SAMPLE_RATE, values, style, label=name, lw=1.2)
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set_xlabel("seconds into the continuation")
    axes[0].set_ylabel("worst bin beyond [min-1, max+1]")
    axes[0].set_title("Leaving the training range (mean of 50)", loc="left", fontsize=9)
    axes[0].legend(fontsize=6.5)
    for ax, (name, log_mel) in zip(axes[1:], examples.items(), strict=True):
        ax.imshow(log_mel.T, origin="lower", aspect="auto", cmap="magma", vmin=-11.5, vmax=high_max + 1,
                  extent=(0, len(log_mel) * HOP / SAMPLE_RATE, 0, N_MELS))
        ax.set_title(name, loc="left", fontsize=9)
        ax.set_xlabel("seconds (continuation only)")
        ax.set_ylabel("mel bin")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["models/espeak-frames"])
    parser.add_argument("--corpus", default="runs/speech-corpus")
    parser.add_argument("--utterances", type=int, default=HELD_OUT)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.3, 0.6, 1.0])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--guard", action="store_true", help="keep the per-bin guard of speech.generate on")
    parser.add_argument("--drift", action="store_true", help="also measure how the first model's frames drift")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--figure", help="write the picture here (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = Corpus.load(args.corpus)
    low, high = corpus.value_range()
    held = corpus.indices("test")[: args.utterances]
    audios = [reference_audio(corpus.texts[k], corpus.voices[k]) for k in held]
    print(f"{len(audios)} held-out utterances; training log-mel per bin: min {low.min():.2f}..{low.max():.2f}, "
          f"max {high.min():.2f}..{high.max():.2f}")
    real = [corpus.mels[k] for k in held]
    print(f"real held-out speech: liveliness {np.mean([m.std(0).mean() for m in real]):.2f}")
    print("| model | sampler | noise | utterances in range | values out of range | largest log-mel | liveliness | seed difference |")
    print("|---|---|---|---|---|---|---|---|")
    rows, curves, examples = [], {}, {}
    if args.drift:
        model = speech.load(args.models[0]).model
        for noise in (0.1, 0.3):
            gap, steps = drift(model, audios[:10], noise), np.array([1, 5, 10, 20, 40, 57])
            print(f"{Path(args.models[0]).name}, noise {noise:g} in output and fed back, deviation from noise 0 "
                  f"(normalised) after {steps.tolist()} steps: {[round(float(g), 2) for g in gap[steps - 1]]}; a random "
                  f"walk: {[round(float(g), 2) for g in noise * np.sqrt(steps)]}")
    for stem in args.models:
        loaded = speech.load(stem)
        for sampler in args.samplers:
            for noise in args.noise:
                start = time.perf_counter()
                row = measure(loaded, sampler, audios, noise, low, high, args.guard)
                row.update(model=Path(stem).name, sampler=sampler, noise=noise, seconds=time.perf_counter() - start)
                rows.append(row)
                print(f"| {row['model']} | {sampler} | {noise:g} | {row['inside']}/{row['utterances']} | "
                      f"{row['out_of_range_share']:.2%} | {row['largest']:.2f} | {row['liveliness']:.2f} | "
                      f"{row['seed_difference']:.2f} |", flush=True)
                if noise in (0.3, 0.6) and (stem, sampler) in ((args.models[0], SAMPLERS[0]), (args.models[-1], SAMPLERS[-1])):
                    curves[f"{row['model']}, {sampler}, noise {noise:g}"] = row["excess_by_frame"]
                if noise == 0.3 and (stem, sampler) in ((args.models[0], SAMPLERS[0]), (args.models[-1], SAMPLERS[-1])):
                    examples[f"{row['model']}, {sampler}, noise 0.3"] = continuation(loaded, sampler, audios[0], 0.3, 0,
                                                                                     args.guard)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "low": low.tolist(), "high": high.tolist()}, indent=1))
    if args.figure and len(examples) == 2:
        figure(curves, examples, Path(args.figure), float(high.max()))
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
