"""`python -m studio {probe,intervene,compare} DOMAIN ...`: the experiments of studio/experiments.py
from the command line, the same for every domain (they need only the contract)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from studio import experiments, probe_stream
from studio.cli_common import add_model_flag, add_settings_flags, load_or_exit, settings_from
from studio.domains import member


def add_probe_command(parser, domain) -> None:
    add_model_flag(parser, domain)
    parser.add_argument("--feature", required=True, help="a feature track of the domain"
                        + member(domain, "CUSTOM_FEATURE_HINT"))
    parser.add_argument("--input", required=True, help="a file in the domain's format, read teacher-forced")
    parser.add_argument("--limit", type=int, default=200_000,
                        help="read at most this many of the model's steps of the input (a word model's words)")
    parser.add_argument("--top", type=int, default=10, help="how many (layer, unit, quantity) to list")
    if member(domain, "fast_probe") is not None:
        parser.add_argument("--exact", action="store_true",
                            help="read the input as one float32 stream from its start (slower) instead of the "
                                 "domain's faster probe (parallel streams with bfloat16 products)")
    parser.set_defaults(run=lambda args: run_probe(domain, args))


def feature_track(domain, sequence, scored, name: str) -> np.ndarray:
    """A named track of the sequence as the model read it (the codec may have dropped some of it)."""
    read = scored.sequence if scored is not None and scored.sequence is not None else sequence
    tracks = domain.features(read, scored)
    if name in tracks:
        return tracks[name]
    custom = member(domain, "custom_feature")
    if custom is not None:
        return custom(read, name)
    raise ValueError(f"unknown feature {name!r}; this domain has: {', '.join(tracks)}")


def run_probe(domain, args) -> int:
    loaded = load_or_exit(domain, args.model)
    try:
        sequence = domain.read_input(args.input, loaded)
        track, steps, hits = probe(domain, loaded, sequence, args.feature, args.limit, args.top,
                                   exact=getattr(args, "exact", True))
    except ValueError as error:
        sys.exit(f"error: {error}")
    measure = "AUC" if experiments.is_binary(np.asarray(track, float)) else "correlation"
    print(f"{steps} steps; {args.feature!r} is on in {float(np.mean(track > 0)):.1%} of them; ranked by {measure}")
    for hit in hits:
        print(f"layer {hit.layer} unit {hit.unit} quantity {hit.quantity}: {measure} {hit.score:.3f}")
    best = hits[0]
    print(f"best: layer {best.layer} unit {best.unit} quantity {best.quantity} score {best.score:.3f}")
    return 0


def probe(domain, loaded, sequence, feature: str, limit: int = 200_000, top: int = 10, exact: bool = False,
          progress=None):
    """(track, steps, hits): the probe over the first `limit` steps of `sequence` (the model's steps: a
    word model's words), traced in chunks where the domain can (`trace_chunks`), so a long reference
    never holds every gate at once; with the domain's `fast_probe` (text: parallel streams with
    bfloat16 products) unless `exact`. progress(fraction) hears the share of the steps read so far."""
    chunks = member(domain, "trace_chunks")
    if chunks is not None:
        read = first_steps(chunks, loaded, sequence, limit)
        track = feature_track(domain, read, None, feature)
        fast = member(domain, "fast_probe")
        if fast is not None and not exact:
            return track, len(track), fast(loaded, read, track, top, progress=progress)  # a track value per step
        accumulator = None
        done = 0
        for trace, _ in chunks(loaded, read)[1]:
            if accumulator is None:
                accumulator = probe_stream.ProbeAccumulator(trace.num_layers, trace.hidden_size,
                                                           experiments.is_binary(np.asarray(track, float)))
            accumulator.add(trace, track[done : done + trace.steps])
            done += trace.steps
            if progress is not None:
                progress(done / max(len(track), 1))
        return track, done, accumulator.top(top)
    scored = domain.score(loaded, sequence)
    track = feature_track(domain, sequence, scored, feature)
    if progress is not None:
        progress(1.0)
    return track, scored.trace.steps, experiments.probe(scored.trace, track, top)


def first_steps(chunks, loaded, sequence, limit: int):
    """The first `limit` steps of `sequence` as a domain's trace_chunks reads it (a word model's step
    is a word, not a character). Read in growing spans (a step is at least one item of the
    sequence), one step more than needed, so that a span cut inside a word never counts."""
    span = limit + 1
    while True:
        read, _ = chunks(loaded, sequence[:span])
        if len(read) > limit or span >= len(sequence):
            return read[:limit]
        span *= 4


def add_intervene_command(parser, domain) -> None:
    add_model_flag(parser, domain)
    parser.add_argument("--ablate", default="", help="units whose h is set to 0: L:U,L:U")
    parser.add_argument("--clamp", default="", help="held values: L:U:QUANTITY=VALUE,... (e.g. 1:7:f=1)")
    parser.add_argument("--from", dest="from_step", type=int, default=0, help="the trace step the intervention starts at")
    add_settings_flags(parser, domain)  # both runs generate with these (--seed included)
    parser.set_defaults(run=lambda args: run_intervene(domain, args))


def run_intervene(domain, args) -> int:
    loaded = load_or_exit(domain, args.model)
    try:
        hooks = experiments.intervention_hooks(args.ablate, args.clamp, args.from_step)
    except ValueError as error:
        sys.exit(f"error: {error}")
    if not hooks:
        sys.exit("error: nothing to change: give --ablate and/or --clamp")
    settings = settings_from(domain, args)
    answer = intervene(domain, loaded, settings.seed, hooks, settings)
    for name in ("original", "changed"):
        print(f"{name}: {answer[name].replace(chr(10), '⏎')}")  # one line each, whatever the output holds
    if answer["kl"] is not None:
        print(f"{answer['measure']}, per step from {args.from_step}: " + " ".join(f"{v:.3g}" for v in answer["kl"][args.from_step :]))
    divergence = answer["first_divergence"]
    print(f"first_divergence: {divergence if divergence is not None else 'none'}")
    return 0


def generate_both(domain, loaded, settings, hooks: list):
    """(plain, changed): two generations with the same settings (seed included), without and with
    `hooks`. The baseline runs the same stepped arithmetic with a hook that changes nothing, so any
    difference is the intervention's."""
    return (domain.generate(loaded, settings, hooks=[lambda *_: None]), domain.generate(loaded, settings, hooks=hooks))


def intervene(domain, loaded, seed: int, hooks: list, settings=None) -> dict:
    """Generate twice with `settings` (default: the tab's defaults) and `seed`, plainly and with
    `hooks`: both outputs (the shown labels joined) and how they differ (`differences`)."""
    plain, changed = generate_both(domain, loaded, dataclasses.replace(settings or domain.Settings(), seed=int(seed)),
                                   hooks)
    shown = {}
    for name, generation in (("original", plain), ("changed", changed)):
        labels = generation.trace.labels[generation.trace.shown_from :]
        # labels that carry their own spacing (characters; words with their space) read as running text
        shown[name] = "".join(labels) if all(len(x) <= 1 or x[-1:].isspace() for x in labels) else " ".join(labels)
    return {**shown, **differences(domain, plain, changed)}


def differences(domain, plain, changed) -> dict:
    """kl: per trace step, how far apart the two next-step predictions are (the domain's
    `step_divergence`; `measure` says what it is); first_divergence: the first trace step where the
    outputs differ: where the sampled tokens differ (a domain of TOKENS), or for continuous outputs
    (pen moves, frames), sampled with the same noise, the first step whose prediction differs."""
    values, measure = member(domain, "step_divergence")(plain.distributions, changed.distributions)
    if member(domain, "TOKENS") or values is None:
        divergence = experiments.first_divergence(plain.trace.labels, changed.trace.labels)
    else:
        moved = np.flatnonzero(values > 1e-9)
        divergence = int(moved[0]) if len(moved) else None
    return {"kl": None if values is None else values.tolist(), "measure": measure, "first_divergence": divergence}


def add_compare_command(parser, domain) -> None:
    add_model_flag(parser, domain)
    parser.add_argument("--model-b", help="a second model of the domain (default: the first model's layers with each other)")
    parser.add_argument("--input", required=True, help="a file in the domain's format, read by both")
    parser.add_argument("--quantity", default="h", help="which activations to compare (h, c, i, f, g, o)")
    parser.set_defaults(run=lambda args: run_compare(domain, args))


def run_compare(domain, args) -> int:
    first = load_or_exit(domain, args.model)
    second = load_or_exit(domain, args.model_b) if args.model_b else first
    try:
        trace_a = domain.score(first, domain.read_input(args.input, first)).trace
        trace_b = domain.score(second, domain.read_input(args.input, second)).trace
    except ValueError as error:
        sys.exit(f"error: {error}")
    for a, b, value in compare(trace_a, trace_b, args.quantity):
        print(f"cka {a} {b}: {value:.4f}")
    return 0


def compare(trace_a, trace_b, quantity: str = "h") -> list[tuple[int, int, float]]:
    """Linear CKA of every layer pair of two traces of one input (over the steps both have)."""
    steps = min(trace_a.steps, trace_b.steps)
    return [(a, b, experiments.cka(trace_a.layers[a][quantity][:steps].astype(np.float64),
                                   trace_b.layers[b][quantity][:steps].astype(np.float64)))
            for a in range(trace_a.num_layers) for b in range(trace_b.num_layers)]
