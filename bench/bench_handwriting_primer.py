"""Style priming with hands no model was trained on: words composed from Omniglot drawing numbers
held out of training (13, 14, 15), given as primers at a mouse's scale (x4, slightly tilted), then
a sentence written primed and unprimed (same seed). Per model:

* finished: the share of primed generations whose window passed the last character and lifted the
  pen (goal >= 95%);
* closer: the share of primers whose primed output's stroke statistics (height / character width,
  slant, pen lifts per character, curvature; studio/domains/handwriting/hw.py) are closer to the
  primer's than to the unprimed output's (goal >= 80%). Distance: Euclidean over the four
  statistics, each divided by its standard deviation over every primer and output of the run;
* hand: the same with the primer's statistics replaced by those of the sentence composed in the
  primer's hand (same drawing number and hand), which do not depend on the primer word's letters;
* toward: the share of primers whose primed output is nearer the primer than the unprimed output is;
* held-out NLL per pen point (teacher-forced) of lines written by the held-out hands (print) and of
  the 50 held-out Hershey phrases (cursive), and the cursive finishing rate. A model with styles
  (cursive / print) reads the print lines in its print style and the cursive ones in its cursive
  style (the labels are known; a model that had to guess, with even odds on the two, would pay at
  most log 2 nats per line); `print_nll_default_style` is the print lines read in its default (cursive) style;
* primed_hand_print: for a model with styles, the share of primers for which it picked print.

python bench/bench_handwriting_primer.py --models hershey-synthesis print-cursive-synthesis print-cursive-styled \
    --data-dir runs/hw-mixed/data --json runs/hw-style/primer-bench.json --figure docs/figures/handwriting-primer.png
(needs ../shared/data/omniglot-latin.json and the data dir that training built; 20-40 s a model on 1 CPU thread)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.domains import handwriting as hw  # noqa: E402
from studio.domains.handwriting.codec import stroke_stats, strokes_to_offsets  # noqa: E402
from studio.domains.handwriting.data import load_dataset  # noqa: E402
from studio.domains.handwriting.evaluate import finished_fraction, nll_per_point  # noqa: E402
from studio.domains.handwriting.generate import HandwritingSettings  # noqa: E402
from studio.domains.handwriting.model import STYLE_NAMES  # noqa: E402
from studio.domains.handwriting.train import HELD_DRAWERS, compose_line, load_omniglot, random_hand  # noqa: E402

PRIMER_WORDS = ["hello", "garden", "quiet", "winter", "marble", "purple", "jolly", "bright", "forty", "maze"]
SENTENCES = ["the king is here", "a horse for me", "gentle lady", "we band of brothers", "come away now",
             "so fair a day", "this lovely night", "what light breaks", "my good lord", "speak again"]
STATS = ["height/width", "slant", "pen lifts per character", "curvature"]


def stats_of(strokes, text: str) -> np.ndarray:
    """STATS of a piece of writing; height/width per character (height over the mean character
    width), so a word and a sentence compare."""
    s = stroke_stats(strokes, len(text.replace(" ", "")))
    return np.array([s["height/width"] * len(text), s["slant"], s["pen lifts per character"], s["curvature"]])


def primers(omniglot_path, drawers, seed: int = 0, per_drawer: int = len(PRIMER_WORDS)):
    """[(drawer, word, strokes at a mouse's scale, sentence, the sentence in the primer's hand)] for every
    held-out drawer and word."""
    letters = load_omniglot(omniglot_path)
    rng = np.random.default_rng(seed)
    out = []
    for drawer in drawers:
        for k, word in enumerate(PRIMER_WORDS[:per_drawer]):
            hand = random_hand(rng)
            strokes = compose_line(letters[drawer], word, rng, hand)
            in_hand = compose_line(letters[drawer], SENTENCES[k], rng, hand)
            angle = rng.uniform(-0.05, 0.05)
            rotation = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
            out.append((drawer, word, [(s @ rotation) * 4.0 for s in strokes], SENTENCES[k], in_hand))
    return out


def print_lines(omniglot_path, drawers, count: int = 50, seed: int = 7):
    letters = load_omniglot(omniglot_path)
    rng = np.random.default_rng(seed)
    texts = [SENTENCES[k % len(SENTENCES)] for k in range(count)]
    return texts, [strokes_to_offsets(compose_line(letters[drawers[k % len(drawers)]], t, rng))
                   for k, t in enumerate(texts)]


def bench_model(loaded, cases, cursive, printed, bias: float) -> dict:
    started = time.perf_counter()
    rows = []
    for k, (drawer, word, strokes, sentence, in_hand) in enumerate(cases):
        primed = hw.generate(loaded, HandwritingSettings(text=sentence, bias=bias, seed=k, primer_strokes=strokes,
                                                            primer_text=word)).result
        plain = hw.generate(loaded, HandwritingSettings(text=sentence, bias=bias, seed=k)).result
        rows.append({"drawer": drawer, "word": word, "sentence": sentence, "finished": bool(primed.finished),
                     "hand_print": any(n.startswith("Hand: print") for n in primed.notes),
                     "starts_clean": not any("Left out" in n for n in primed.notes),
                     "primer": stats_of(strokes, word), "hand": stats_of(in_hand, sentence),
                     "primed": stats_of(primed.strokes, sentence),
                     "plain": stats_of(plain.strokes, sentence), "primed_strokes": primed.strokes,
                     "plain_strokes": plain.strokes})
    spread = np.std(np.vstack([r[key] for r in rows for key in ("primer", "hand", "primed", "plain")]), axis=0) + 1e-9
    def distance(a, b):
        return float(np.linalg.norm((a - b) / spread))

    closer = [distance(r["primed"], r["primer"]) < distance(r["primed"], r["plain"]) for r in rows]
    toward = [distance(r["primed"], r["primer"]) < distance(r["plain"], r["primer"]) for r in rows]
    hand = [distance(r["primed"], r["hand"]) < distance(r["primed"], r["plain"]) for r in rows]
    cursive_texts, cursive_offsets = cursive
    styles = getattr(loaded.model.config, "styles", 0)
    print_styles = [STYLE_NAMES.index("print")] * len(printed[0]) if styles else None
    return {
        "primers": len(rows),
        "finished": float(np.mean([r["finished"] for r in rows])),
        "closer_to_primer": float(np.mean(closer)),
        "primed_nearer_the_primer_than_unprimed": float(np.mean(toward)),
        "closer_to_the_hand_writing_the_sentence": float(np.mean(hand)),
        "starts_clean": float(np.mean([r["starts_clean"] for r in rows])),
        "per_stat_closer": {name: float(np.mean([abs(r["primed"][j] - r["primer"][j]) < abs(r["plain"][j] - r["primer"][j])
                                                for r in rows])) for j, name in enumerate(STATS)},
        "median_stats": {key: dict(zip(STATS, np.median([r[key] for r in rows], axis=0).round(3).tolist(), strict=True))
                         for key in ("primer", "hand", "primed", "plain")},
        "print_nll": nll_per_point(loaded.model, *printed, loaded.codec, 400, styles=print_styles),
        **({"print_nll_default_style": nll_per_point(loaded.model, *printed, loaded.codec, 400),
            "primed_hand_print": float(np.mean([r["hand_print"] for r in rows]))} if styles else {}),
        "cursive_nll": nll_per_point(loaded.model, cursive_texts, cursive_offsets, loaded.codec, 400),
        "cursive_finished": finished_fraction(loaded, cursive_texts, bias=bias),
        "seconds": time.perf_counter() - started,
        "rows": rows,
    }


def figure(results: dict, cases, path: Path, show: int = 4) -> None:
    """Per primer (rows): the primer (held-out hand), then each model's primed and unprimed output."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    picks = [k * len(cases) // show for k in range(show)]
    columns = [("primer", None)] + [(f"{name}\nprimed", name) for name in results] + \
              [(f"{name}\nunprimed", name) for name in results]
    fig = Figure(figsize=(3.2 * len(columns), 1.3 * show + 0.6), dpi=90)
    for row, k in enumerate(picks):
        drawer, word, strokes, sentence, _ = cases[k]
        for col, (title, name) in enumerate(columns):
            ax = fig.add_subplot(show, len(columns), row * len(columns) + col + 1)
            if name is None:
                shown, label = strokes, f"hand {drawer}: {word!r}"
            else:
                key = "primed_strokes" if "unprimed" not in title else "plain_strokes"
                shown, label = results[name]["rows"][k][key], sentence
            for s in shown:
                ax.plot(s[:, 0], s[:, 1], color="black", lw=1.2)
            ax.set_aspect("equal")
            ax.invert_yaxis()
            ax.axis("off")
            ax.set_title((title + "\n" if row == 0 else "") + label, fontsize=7)
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), facecolor="white", bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["hershey-synthesis"])
    parser.add_argument("--omniglot", default="../shared/data/omniglot-latin.json")
    parser.add_argument("--drawers", default=",".join(HELD_DRAWERS), help="held-out drawing numbers")
    parser.add_argument("--data-dir", default="runs/hw-mixed/data", help="held_out.npz: its first 50 phrases are cursive")
    parser.add_argument("--bias", type=float, default=0.5)
    parser.add_argument("--per-drawer", type=int, default=len(PRIMER_WORDS), help="primer words per held-out hand")
    parser.add_argument("--cursive", type=int, default=50, help="held-out cursive phrases written")
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument("--figure", help="write a picture of four primers and the outputs here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    drawers = args.drawers.split(",")
    cases = primers(args.omniglot, drawers, per_drawer=args.per_drawer)
    texts, offsets = load_dataset(Path(args.data_dir) / "held_out.npz")
    cursive = (texts[: args.cursive], offsets[: args.cursive])
    printed = print_lines(args.omniglot, drawers)
    results = {}
    for name in args.models:
        loaded = hw.load(Path("models") / name if not Path(name).suffix and "/" not in name else name)
        # a model that cannot write a character of the cursive set (Q, X, Z, digits) is scored on what it can
        keep = [k for k, t in enumerate(cursive[0]) if all(c in loaded.codec.alphabet.index for c in t)]
        results[name] = bench_model(loaded, cases, ([cursive[0][k] for k in keep], [cursive[1][k] for k in keep]),
                                    printed, args.bias)
        r = results[name]
        print(f"{name}: primed finished {r['finished']:.3f}, closer to the primer {r['closer_to_primer']:.3f} "
              f"(toward it: {r['primed_nearer_the_primer_than_unprimed']:.3f}, closer to the hand writing the "
              f"sentence: {r['closer_to_the_hand_writing_the_sentence']:.3f}) "
              f"({r['per_stat_closer']}), print NLL {r['print_nll']:.3f}, cursive NLL {r['cursive_nll']:.3f}, "
              f"cursive finished {r['cursive_finished']:.3f} ({r['seconds']:.0f} s)")
        print(f"  median stats: {r['median_stats']}")
    if args.figure:
        figure(results, cases, Path(args.figure))
    if args.json:
        slim = {name: {k: v for k, v in r.items() if k != "rows"} for name, r in results.items()}
        Path(args.json).write_text(json.dumps({"drawers": drawers, "bias": args.bias, "models": slim}, indent=1))


if __name__ == "__main__":
    main()
