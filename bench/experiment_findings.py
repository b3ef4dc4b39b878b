"""Every number of docs/experiments.md, from the shipped models and ../shared/data, in one run:

- text (models/shakespeare-char): the probe over the model's validation part (the last 10% of
  Tiny Shakespeare, as its card says) for newline, space and inside quotes; then what ablating the
  best inside-quotes unit (and the top three, and three random units as a control) does to quote
  closing, counted over sampled continuations of every quotation's opening in the corpus and
  measured teacher-forced as the probability of the real closing quote;
- music (models/jsb-chorales-quarter): the probe over the 76 JSB validation chorales, and what
  ablating the best soprano-pitch units does to the soprano of generated chorales;
- handwriting (models/hershey-synthesis): the probe over generated phrases, and what ablating the
  best pen-up unit does to the strokes;
- speech (models/espeak-tts): the probe over generated sentences, and what ablating the best
  attention-position and voiced units does to the alignment and the voicing.

It uses the project's own experiment code only (studio.experiments, studio.cli_experiments, each
domain's load / score / generate(hooks=...) / features): nothing here is a second implementation.

python bench/experiment_findings.py [--full-corpus] [--data ../shared/data] [--only text,music,handwriting,speech] [--probe-only]
python bench/experiment_findings.py --print-quote-regex          # the inside-quotes feature, for the CLI
python bench/experiment_findings.py --write-validation /tmp/shakespeare-val.txt
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from studio import experiments, probe_stream  # noqa: E402
from studio.cli_experiments import feature_track, probe  # noqa: E402
from studio.domains.handwriting.data import phrases_from_text  # noqa: E402
from studio.domains.music.data import read_jsb  # noqa: E402
from studio.domains.text.data import split_train_val  # noqa: E402
from studio.lstm import set_units  # noqa: E402
from studio.sampling import SamplingConfig  # noqa: E402

# ------------------------------------------------------------------ what "inside quotes" means here
# Tiny Shakespeare has no double quotes, parentheses or brackets (the model's 65 characters hold
# none), so the text feature "inside quotes" (double quotes) is off everywhere. Its quotations are
# written with single quotes ('Ay, by gogs-wouns,' quoth he), and the same mark is the apostrophe of
# elisions ('tis, o' the, lov'd). A quotation here: an apostrophe after a non-letter and before a
# letter that does not begin a known elision, up to the first later apostrophe after a non-space
# and before a non-letter that does not end one (o' i' a' th' ha' wi'), within 300 characters and
# not across a blank line (a new speaker). Both marks are inside. 31 quotations in the validation
# part, 271 in the whole corpus; checked by eye, a few of the corpus's are wrong (an elision we did
# not list opening one), most are right.
ELISIONS_OPENING = ("tis|twas|twere|twill|twixt|twould|tween|em|t|s|d|ld|gainst|fore|bove|bout|mongst|mong|longs|"
                    "longeth|scape|scaped|scapes|greed|larum|sdeath|zounds|voided|havior|pothecary|gan|point|"
                    "pointed|cerns|prentice|tend|cause")
ELISIONS_CLOSING = ("o", "i", "a", "O", "I", "A", "G", "th", "ha", "wi")
_ENDS_ELISION = "|".join(f"(?<=[^A-Za-z]{word})'" for word in ELISIONS_CLOSING)
_NOT_ELISION_END = "".join(f"(?<![^A-Za-z]{word})" for word in ELISIONS_CLOSING)
QUOTE_OPEN = rf"(?<![A-Za-z])'(?!(?i:{ELISIONS_OPENING})(?![A-Za-z]))(?=[A-Za-z])"
QUOTE_BODY = rf"(?:[^'\n]|\n(?!\n)|'(?=[A-Za-z])|{_ENDS_ELISION}){{0,300}}?"
QUOTE_CLOSE = rf"{_NOT_ELISION_END}(?<=\S)'(?![A-Za-z])"
QUOTE = QUOTE_OPEN + QUOTE_BODY + QUOTE_CLOSE  # the probe's feature: a regex, as text's probe accepts
LATIN_SCENE = re.compile(r"(?i)hic|simois|sigeia|priami|regia|celsa")  # 14 of the 31 validation quotations

CONTEXT = 200  # characters of the corpus before a quotation's opening that prime the model
RANDOM_UNITS_SEED = 0


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p (a binomial test on the discordant pairs)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, j) for j in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap_mean(values: np.ndarray, draws: int = 10_000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (draws, len(values)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def hit_dict(hit) -> dict:
    return {"layer": hit.layer, "unit": hit.unit, "quantity": hit.quantity, "score": round(hit.score, 4)}


def distinct_units(hits, count: int) -> list[tuple[int, int]]:
    units = []
    for hit in hits:
        if (hit.layer, hit.unit) not in units:
            units.append((hit.layer, hit.unit))
    return units[:count]


def unit_names(units) -> str:
    return ",".join(f"{layer}:{unit}" for layer, unit in units)


def batch_probe(domain, loaded, items, names, top: int = 10) -> tuple[dict, int]:
    """The probe over several sequences (chorales, generations): ProbeAccumulator fed each one's
    teacher-forced trace and feature track (what the CLI's probe does for one input)."""
    accumulators, steps = {}, 0
    for sequence in items:
        scored = domain.score(loaded, sequence)
        for name in names:
            track = np.asarray(feature_track(domain, sequence, scored, name), np.float64)
            if name not in accumulators:
                accumulators[name] = probe_stream.ProbeAccumulator(scored.trace.num_layers, scored.trace.hidden_size,
                                                                  experiments.is_binary(track))
            accumulators[name].add(scored.trace, track)
        steps += scored.trace.steps
    return {name: acc.top(top) for name, acc in accumulators.items()}, steps


def no_change(*_):
    """A hook that changes nothing: the baseline then runs the same stepped arithmetic as the
    intervened run (as `studio intervene` does)."""
    return None


# ------------------------------------------------------------------ text
def text_findings(data_dir: Path, report: dict, full_corpus: bool = False, probe_only: bool = False) -> None:
    from studio.domains import text

    loaded = text.load(text.DEFAULT_MODEL)
    corpus = (data_dir / "tinyshakespeare.txt").read_text(encoding="utf-8")
    _, validation = split_train_val(corpus)  # the card: first 90% train, last 10% validate
    quotes = list(re.finditer(QUOTE, validation))
    print(f"\n## text: {loaded.name}, probe over the validation part ({len(validation):,} characters)")
    print(f"inside quotes: {len(quotes)} quotations, {sum(m.end() - m.start() for m in quotes)} characters; "
          f"the built-in 'inside quotes' (double quotes) is on at {int(text.features(validation)['inside quotes'].sum())} steps")
    probes, quote_hits = {}, []
    for name, feature in (("newline", "newline"), ("space", "space"), ("inside quotes", QUOTE)):
        started = time.perf_counter()
        track, steps, hits = probe(text, loaded, validation, feature, top=10)  # the CLI's probe, unchanged
        probes[name] = {"steps": steps, "on": int(track.sum()), "top": [hit_dict(h) for h in hits]}
        quote_hits = hits  # the last one: inside quotes
        shown = "; ".join(f"{h.layer}:{h.unit} {h.quantity} AUC {h.score:.3f}" for h in hits[:3])
        print(f"{name}: {steps:,} steps, on at {int(track.sum()):,}; best {shown} ({time.perf_counter() - started:.0f} s)")
    report["text_probe"] = probes
    best_layer, best_unit = quote_hits[0].layer, quote_hits[0].unit
    top3 = distinct_units(quote_hits, 3)

    # the best unit's cell on the validation part: inside against outside, and without the Latin scene
    values, track = [], feature_track(text, validation, None, QUOTE)
    for trace, _ in text.trace_chunks(loaded, validation)[1]:
        values.append(trace.layers[best_layer]["c"][:, best_unit].astype(np.float64))
    cell = np.concatenate(values)
    inside = track > 0
    latin = np.zeros(len(validation), bool)
    for m in quotes:
        if LATIN_SCENE.search(m.group()):
            latin[m.start() : m.end()] = True
    keep = ~latin
    auc_all = float(experiments.roc_auc(cell[:, None], inside)[0])
    auc_no_latin = float(experiments.roc_auc(cell[keep][:, None], inside[keep])[0])
    outside_median = float(np.median(cell[~inside]))
    report["text_quote_cell"] = {"unit": f"{best_layer}:{best_unit}", "c_inside_mean": float(cell[inside].mean()),
                                 "c_outside_mean": float(cell[~inside].mean()), "c_outside_median": outside_median,
                                 "auc_exact": auc_all, "auc_without_latin_scene": auc_no_latin,
                                 "quotations_without_latin_scene": sum(not LATIN_SCENE.search(m.group()) for m in quotes),
                                 "steps_without_latin_scene": int(keep.sum()), "on_without_latin_scene": int(inside[keep].sum())}
    print(f"unit {best_layer}:{best_unit} c: mean {cell[inside].mean():.2f} inside quotes, {cell[~inside].mean():.2f} outside "
          f"(median {outside_median:.2f}); exact AUC {auc_all:.3f}; without the Latin scene's quotations "
          f"({int(keep.sum()):,} steps, on at {int(inside[keep].sum())}) {auc_no_latin:.3f}")

    if full_corpus:  # the same probe over all 1,115,394 characters (90% of them the model trained on)
        started = time.perf_counter()
        track, steps, hits = probe(text, loaded, corpus, QUOTE, limit=len(corpus), top=3)
        report["text_probe_full_corpus"] = {"steps": steps, "on": int(track.sum()), "top": [hit_dict(h) for h in hits]}
        shown = "; ".join(f"{h.layer}:{h.unit} {h.quantity} AUC {h.score:.3f}" for h in hits)
        print(f"inside quotes over the whole corpus: {steps:,} steps, on at {int(track.sum()):,}; best {shown} "
              f"({time.perf_counter() - started:.0f} s)")

    if probe_only:
        return
    # ---- interventions on quote closing, over every quotation of the corpus
    openings = list(re.finditer(QUOTE, corpus))
    rng = np.random.default_rng(RANDOM_UNITS_SEED)
    probed = {(h.layer, h.unit) for h in quote_hits}
    random3 = sorted(int(u) for u in rng.choice([u for u in range(loaded.model.core.config.hidden_size)
                                                  if (best_layer, u) not in probed], 3, replace=False))
    conditions = {
        "baseline": lambda start: [no_change],
        f"ablate {best_layer}:{best_unit} (h=0)": lambda start: [set_units(best_layer, [best_unit], "h", 0.0, start)],
        "ablate top 3 " + unit_names(top3) + " (h=0)":
            lambda start: [set_units(layer, [unit], "h", 0.0, start) for layer, unit in top3],
        f"control: ablate random {','.join(f'{best_layer}:{u}' for u in random3)} (h=0)":
            lambda start: [set_units(best_layer, random3, "h", 0.0, start)],
        f"clamp {best_layer}:{best_unit} c={outside_median:.2f} (its outside-quotes median)":
            lambda start: [set_units(best_layer, [best_unit], "c", outside_median, start)],
    }
    closing = re.compile(QUOTE.replace("{0,300}", "{0,1000}"))
    print(f"\nquote closing over the corpus's {len(openings)} quotations; interventions from the step of the opening mark")
    report["text_closing"] = {"quotations": len(openings), "context": CONTEXT, "conditions": {}}
    sampled = {}
    teacher = {}
    quote_index = loaded.codec.index["'"]
    for name, make_hooks in conditions.items():
        started = time.perf_counter()
        closed, distance, log_p = [], [], []
        for k, match in enumerate(openings):
            begin = max(0, match.start() - CONTEXT)
            opening = match.start() - begin  # the opening mark's step in the prompt
            first_word = re.match(r"'[A-Za-z]+", match.group()).group()
            # sampled: prompt up to the opening mark and the quotation's first word, then LENGTH characters
            prompt = corpus[begin : match.start()] + first_word
            generation = text.generate(loaded, text.Settings(prompt=prompt, length=SAMPLED_LENGTH,
                                                             seed=k), hooks=make_hooks(opening))
            written = generation.result.prompt + generation.result.text
            found = closing.match(written, opening)
            closed.append(found is not None)
            if found is not None:
                distance.append(found.end() - len(prompt))
            # teacher-forced: read the real quotation up to its closing mark; P(the closing mark next)
            read = corpus[begin : match.end() - 1]
            generation = text.generate(loaded, text.Settings(prompt=read, length=1, seed=0),
                                       hooks=make_hooks(opening))
            logits = torch.as_tensor(generation.distributions["logits"][len(read) - 1])
            log_p.append(float(torch.log_softmax(logits.double(), -1)[quote_index]))
        sampled[name], teacher[name] = np.array(closed), np.array(log_p)
        low, high = wilson(int(sum(closed)), len(closed))
        entry = {"closed": int(sum(closed)), "samples": len(closed), "closed_ci95": [low, high],
                 "mean_distance": float(np.mean(distance)) if distance else None,
                 "median_distance": float(np.median(distance)) if distance else None,
                 "mean_p_close": float(np.exp(log_p).mean()), "mean_log_p_close": float(np.mean(log_p))}
        if name != "baseline":
            base = sampled["baseline"]
            only_base, only_this = int((base & ~sampled[name]).sum()), int((~base & sampled[name]).sum())
            change = teacher[name] - teacher["baseline"]
            entry.update({"closed_only_in_baseline": only_base, "closed_only_here": only_this,
                          "mcnemar_p": mcnemar_p(only_base, only_this),
                          "mean_change_log_p_close": float(change.mean()), "change_ci95": list(bootstrap_mean(change)),
                          "fraction_lower_p_close": float((change < 0).mean())})
        report["text_closing"]["conditions"][name] = entry
        line = (f"{name}: closed {entry['closed']}/{entry['samples']} ({entry['closed'] / entry['samples']:.1%}, 95% CI "
                f"{low:.1%}-{high:.1%}), mean distance {entry['mean_distance'] or float('nan'):.1f} chars; "
                f"teacher-forced mean P(close) {entry['mean_p_close']:.4f}")
        if name != "baseline":
            line += (f"; vs baseline: discordant {entry['closed_only_in_baseline']} / {entry['closed_only_here']} "
                     f"(McNemar p {entry['mcnemar_p']:.2f}), mean change in ln P(close) {entry['mean_change_log_p_close']:+.3f} "
                     f"(95% CI {entry['change_ci95'][0]:+.3f} to {entry['change_ci95'][1]:+.3f}), lower in "
                     f"{entry['fraction_lower_p_close']:.0%} of quotations")
        print(f"{line} ({time.perf_counter() - started:.0f} s)")


SAMPLED_LENGTH = 150  # characters sampled after the quotation's first word (90% of quotations close within 72)


# ------------------------------------------------------------------ music
def music_findings(data_dir: Path, report: dict, probe_only: bool = False) -> None:
    from studio.domains import music

    loaded = music.load(music.DEFAULT_MODEL)
    chorales = read_jsb(data_dir / "jsb-chorales-quarter.json")["valid"]
    names = ["soprano pitch", "bass pitch", "voices", "beat position", "chord change"]
    hits, steps = batch_probe(music, loaded, chorales, names, top=40)
    print(f"\n## music: {loaded.name}, probe over the {len(chorales)} JSB validation chorales ({steps:,} steps)")
    report["music_probe"] = {"chorales": len(chorales), "steps": steps,
                             "best": {name: hit_dict(hits[name][0]) for name in names}}
    for name in names:
        best = hits[name][0]
        measure = "AUC" if name == "chord change" else "r"
        print(f"{name}: best {best.layer}:{best.unit} {best.quantity} {measure} {best.score:.3f}")
    if probe_only:
        return
    units = distinct_units(hits["soprano pitch"], 10)
    seeds = range(100)

    def soprano(hooks):
        means = []
        for seed in seeds:
            generation = music.generate(loaded, music.Settings(bars=8, sampling=SamplingConfig(temperature=1.0), seed=seed),
                                        hooks=hooks)
            frames = [frame for frame in generation.result.frames if frame]
            means.append(np.mean([max(frame) for frame in frames]))
        return np.array(means)

    base = soprano([no_change])
    report["music_intervention"] = {"generations": len(seeds), "bars": 8, "baseline_mean_soprano": float(base.mean()),
                                    "conditions": {}}
    print(f"soprano of {len(seeds)} generated 8-bar chorales (mean of each one's top note, MIDI): baseline {base.mean():.2f}")
    for count in (1, 10):
        changed = soprano([set_units(layer, [unit], "h", 0.0, 0) for layer, unit in units[:count]])
        difference = changed - base
        name = "ablate " + unit_names(units[:count]) + " (h=0)"
        report["music_intervention"]["conditions"][name] = {
            "mean_soprano": float(changed.mean()), "mean_change": float(difference.mean()),
            "change_ci95": list(bootstrap_mean(difference))}
        low, high = bootstrap_mean(difference)
        print(f"{name}: {changed.mean():.2f}, change {difference.mean():+.2f} semitones (95% CI {low:+.2f} to {high:+.2f})")


# ------------------------------------------------------------------ handwriting
def handwriting_findings(data_dir: Path, report: dict, probe_only: bool = False) -> None:
    from studio.domains import handwriting

    loaded = handwriting.load(handwriting.DEFAULT_MODEL)
    _, validation = split_train_val((data_dir / "tinyshakespeare.txt").read_text(encoding="utf-8"))
    phrases = phrases_from_text(validation, loaded.codec.alphabet, 10, 24, seed=0)[:40]

    def write(hooks):
        return [handwriting.generate(loaded, handwriting.Settings(text=phrase, seed=k), hooks=hooks)
                for k, phrase in enumerate(phrases)]

    plain = write([no_change])
    names = ["pen up", "pen speed", "character under the window"]
    hits, steps = batch_probe(handwriting, loaded, [handwriting.sequence_of(g) for g in plain], names)
    print(f"\n## handwriting: {loaded.name}, probe over {len(phrases)} generated phrases ({steps:,} pen points)")
    report["handwriting_probe"] = {"phrases": len(phrases), "steps": steps,
                                   "best": {name: hit_dict(hits[name][0]) for name in names},
                                   "layer_names": list(loaded.layer_names)}
    for name in names:
        best = hits[name][0]
        print(f"{name}: best {best.layer}:{best.unit} {best.quantity} {'AUC' if name == 'pen up' else 'r'} {best.score:.3f}")
    if probe_only:
        return
    layer, unit = hits["pen up"][0].layer, hits["pen up"][0].unit

    def strokes(generations):
        return np.array([len(g.result.strokes) for g in generations]), np.array([g.result.finished for g in generations])

    base_strokes, base_finished = strokes(plain)
    changed_strokes, changed_finished = strokes(write([set_units(layer, [unit], "h", 0.0, 0)]))
    difference = (changed_strokes - base_strokes).astype(float)
    report["handwriting_intervention"] = {
        "unit": f"{layer}:{unit}", "baseline_strokes": float(base_strokes.mean()), "ablated_strokes": float(changed_strokes.mean()),
        "change_ci95": list(bootstrap_mean(difference)), "baseline_finished": int(base_finished.sum()),
        "ablated_finished": int(changed_finished.sum())}
    low, high = bootstrap_mean(difference)
    print(f"ablate {layer}:{unit} (h=0) from the start: strokes per phrase {base_strokes.mean():.1f} -> {changed_strokes.mean():.1f} "
          f"(change 95% CI {low:+.1f} to {high:+.1f}); finished {base_finished.sum()} -> {changed_finished.sum()} of {len(phrases)}")


# ------------------------------------------------------------------ speech
def speech_findings(data_dir: Path, report: dict, probe_only: bool = False) -> None:
    from studio.domains import speech

    loaded = speech.load(speech.DEFAULT_MODEL)
    _, validation = split_train_val((data_dir / "tinyshakespeare.txt").read_text(encoding="utf-8"))
    sentences = [s.strip().replace("\n", " ") for s in re.split(r"(?<=[.!?])\s+", validation)
                 if 30 <= len(s.strip()) <= 80 and ":" not in s][:30]

    def speak(hooks):
        return [speech.generate(loaded, speech.Settings(text=sentence, seed=k, griffin_lim_iters=0), hooks=hooks)
                for k, sentence in enumerate(sentences)]

    plain = speak([no_change])
    names = ["energy", "voiced", "attention position"]
    hits, steps = batch_probe(speech, loaded, [speech.sequence_of(g) for g in plain], names)
    print(f"\n## speech: {loaded.name}, probe over {len(sentences)} generated sentences ({steps:,} decoder steps)")
    report["speech_probe"] = {"sentences": len(sentences), "steps": steps,
                              "best": {name: hit_dict(hits[name][0]) for name in names},
                              "layer_names": list(loaded.layer_names)}
    for name in names:
        best = hits[name][0]
        print(f"{name}: best {best.layer}:{best.unit} {best.quantity} r {best.score:.3f}")
    if probe_only:
        return

    def summary(generations):
        voiced = [speech.features(g.result.log_mel)["voiced"].mean() for g in generations]
        energy = [speech.features(g.result.log_mel)["energy"].mean() for g in generations]
        reached = [g.result.alignment.argmax(1)[-1] >= g.result.alignment.shape[1] - 3 for g in generations]
        return {"decoder_steps": float(np.mean([len(g.result.stop_probs) for g in generations])),
                "stopped": int(sum(g.result.stopped for g in generations)), "attention_reached_end": int(sum(reached)),
                "voiced": float(np.mean(voiced)), "energy": float(np.mean(energy))}

    report["speech_intervention"] = {"sentences": len(sentences), "baseline": summary(plain)}
    print(f"baseline: {report['speech_intervention']['baseline']}")
    for name in ("attention position", "voiced"):
        layer, unit = hits[name][0].layer, hits[name][0].unit
        result = summary(speak([set_units(layer, [unit], "h", 0.0, 0)]))
        report["speech_intervention"][f"ablate {layer}:{unit} (best {name}, h=0)"] = result
        print(f"ablate {layer}:{unit} (best {name}, h=0) from the start: {result}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
                        help="the folder with tinyshakespeare.txt and jsb-chorales-quarter.json")
    parser.add_argument("--only", default="text,music,handwriting,speech", help="which domains, comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: another job may share the 2 cores)")
    parser.add_argument("--full-corpus", action="store_true",
                        help="also probe inside quotes over the whole Tiny Shakespeare (about 7 minutes more)")
    parser.add_argument("--probe-only", action="store_true", help="the probe tables only, without the interventions")
    parser.add_argument("--json", help="also write every number here")
    parser.add_argument("--print-quote-regex", action="store_true", help="print the inside-quotes regex and stop")
    parser.add_argument("--write-validation", metavar="PATH",
                        help="write the text model's validation part (outside the repo) for the CLI's probe, and stop")
    args = parser.parse_args()
    if args.print_quote_regex:
        print(QUOTE)
        return
    data_dir = Path(args.data)
    if args.write_validation:

        _, validation = split_train_val((data_dir / "tinyshakespeare.txt").read_text(encoding="utf-8"))
        Path(args.write_validation).write_text(validation, encoding="utf-8")
        return
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    report, started = {}, time.perf_counter()
    runs = {"text": text_findings, "music": music_findings, "handwriting": handwriting_findings, "speech": speech_findings}
    for name in args.only.split(","):
        begun = time.perf_counter()
        if name.strip() == "text":
            text_findings(data_dir, report, args.full_corpus, args.probe_only)
        else:
            runs[name.strip()](data_dir, report, args.probe_only)
        report.setdefault("seconds", {})[name] = round(time.perf_counter() - begun, 1)
    report["seconds"]["total"] = round(time.perf_counter() - started, 1)
    print(f"\nseconds: {report['seconds']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
