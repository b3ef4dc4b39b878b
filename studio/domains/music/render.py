"""Music rendering: the piano roll with one unit painted on its notes, the trace at frame
resolution (so heatmaps share the roll's time grid), MIDI and audio out.

MIDI out (`frames_to_midi`): consecutive frames sounding the same pitch become one held note
(what a chorale means by them), at the requested tempo or the primer's tempo changes, in the
primer's time signatures (else 4/4). Audio:
FluidSynth with pretty_midi's bundled TimGM6mb soundfont, else pretty_midi's sine-wave synth.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from studio.audio import write_wav
from studio.domains.base import Generation, View
from studio.domains.music.data import Primer
from studio.trace import QUANTITY_TITLES, Trace
from studio.viz import DIVERGING_CMAP, DPI, FIGURE_WIDTH, SEQUENTIAL_CMAP, value_range

SAMPLE_RATE = 22050  # audio: FluidSynth renders a minute of chorale in well under a second


# ---------------------------------------------------------------- MIDI and audio
def frames_to_midi(frames, steps_per_quarter: int = 1, tempo_bpm: float = 80.0, program: int = 19, tempos=(),
                   time_signatures=()):
    """A pretty_midi.PrettyMIDI: each run of frames holding a pitch is one note (default: church organ), at
    `tempo_bpm` or at the tempo changes `tempos` [(quarter note, bpm)], in `time_signatures` (a metre map)."""
    import pretty_midi

    tempos = sorted(tuple(change) for change in tempos) or [(0.0, float(tempo_bpm))]
    midi = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=float(tempos[0][1]))  # 480: grids of 3, 4, 6, 8... exact
    per_quarter = midi.resolution  # pretty_midi writes its tick scales as the file's tempo map
    midi._tick_scales = [(round(quarter * per_quarter), 60.0 / (bpm * per_quarter)) for quarter, bpm in tempos]
    midi._update_tick_to_time(round((len(frames) + 1) / steps_per_quarter * per_quarter))
    midi.time_signature_changes = [pretty_midi.TimeSignature(int(num), int(den), midi.tick_to_time(round(q * per_quarter)))
                                   for q, num, den in time_signatures]
    instrument = pretty_midi.Instrument(program=program, name="LSTM Studio")

    def step_seconds(step):
        return midi.tick_to_time(round(step / steps_per_quarter * per_quarter))

    sounding: dict[int, int] = {}  # pitch -> frame where its note began
    for k, frame in enumerate([*frames, []]):  # the empty tail closes every note
        now = set(frame)
        for pitch in [p for p in sounding if p not in now]:
            begin = sounding.pop(pitch)
            instrument.notes.append(pretty_midi.Note(80, pitch, step_seconds(begin), step_seconds(k)))
        for pitch in now:
            sounding.setdefault(pitch, k)
    instrument.notes.sort(key=lambda n: (n.start, n.pitch))
    midi.instruments.append(instrument)
    return midi


def synthesize(midi, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, str | None]:
    """(mono float audio, a note when the fallback was used): FluidSynth with pretty_midi's
    bundled TimGM6mb soundfont, else pretty_midi's sine-wave synth."""
    try:
        audio = midi.fluidsynth(fs=sample_rate)
        note = None
    except Exception as error:  # no pyfluidsynth, no libfluidsynth, no soundfont
        audio = midi.synthesize(fs=sample_rate)
        note = f"FluidSynth is not available here ({type(error).__name__}); the audio is a simple sine-wave synth."
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak > 0:
        audio = audio / peak * 0.9
    return audio.astype(np.float32), note


def write_music(result, midi_path=None, wav_path=None, sample_rate: int = SAMPLE_RATE) -> list[str]:
    """Write a MusicResult as MIDI and/or WAV; returns notes for the user (the audio fallback)."""
    midi = frames_to_midi(result.frames, result.steps_per_quarter, result.tempo_bpm, tempos=result.tempos,
                          time_signatures=result.time_signatures)
    if midi_path:
        midi.write(str(midi_path))
    if not wav_path:
        return []
    audio, note = synthesize(midi, sample_rate)
    write_wav(wav_path, audio, sample_rate)
    return [note] if note else []


def write_files(generation: Generation, folder) -> dict:
    """The downloads of one generation: {label: path} (MIDI and audio). A note on how the audio
    was made, if it is the fallback synth, is added to the result's notes."""
    folder = Path(folder)
    paths = {"midi": folder / "chorale.mid", "audio": folder / "chorale.wav"}
    generation.result.notes.extend(write_music(generation.result, paths["midi"], paths["audio"]))
    return paths


# ---------------------------------------------------------------- the trace as music
def frame_steps(trace: Trace) -> np.ndarray:
    """Trace step of each frame's END token (the state that stands for the frame)."""
    return np.flatnonzero(np.asarray(trace.detail.tokens) == trace.detail.num_pitches)


def frame_trace(trace: Trace) -> Trace:
    """The trace at frame resolution (one step per frame, the state after its END), labelled
    with frame numbers, so heatmaps line up with the piano roll."""
    steps = frame_steps(trace)
    layers = [{name: values[steps] for name, values in layer.items()} for layer in trace.layers]
    return replace(trace.with_layers(layers, [str(k) for k in range(len(steps))]), shown_from=0,
                   prompt_length=trace.detail.primer_frames)


def piano_roll_arrays(trace: Trace, layer: int, quantity: str, unit: int):
    """(roll (T, P) bool, note values (T, P) with NaN off notes, frame values (T,)) for one unit:
    a note is painted with the unit's value right after the model read that pitch token."""
    tokens = np.asarray(trace.detail.tokens)
    num_pitches = trace.detail.num_pitches
    values = trace.quantity(layer, quantity)[:, unit]
    frame_of_token = np.cumsum(tokens == num_pitches) - (tokens == num_pitches)  # END belongs to its frame
    ends = frame_steps(trace)
    roll = np.zeros((len(ends), num_pitches), dtype=bool)
    note_values = np.full((len(ends), num_pitches), np.nan)
    for step in np.flatnonzero(tokens < num_pitches):
        frame = frame_of_token[step]
        if frame < len(ends):
            roll[frame, tokens[step]] = True
            note_values[frame, tokens[step]] = values[step]
    return roll, note_values, values[ends]


def render_piano_roll(trace: Trace, layer: int, quantity: str, unit: int) -> Figure:
    vmin, vmax = value_range(quantity, trace.quantity(layer, quantity)[trace.shown_from :, unit])
    roll, note_values, step_values = piano_roll_arrays(trace, layer, quantity, unit)
    return piano_roll(
        roll,
        trace.detail.min_pitch,
        note_values=note_values,
        step_values=step_values,
        vmin=vmin,
        vmax=vmax,
        steps_per_bar=trace.detail.steps_per_bar,
        bar_lines=trace.detail.bar_lines(roll.shape[0]),
        primer_steps=trace.detail.primer_frames,
        title=f"Layer {layer}, unit {unit}: {QUANTITY_TITLES.get(quantity, quantity)} after each note (notes) and after each frame (strip)",
    )


def render(generation: Generation, view: View) -> Figure:
    return render_piano_roll(generation.trace, view.layer, view.quantity, view.unit)


def sequence_of(generation: Generation):
    """What `score` reads to give this generation's trace again: every frame, the primer's and the
    generated ones (a Primer keeping the primer's source), so the same tokens from BOS on. Read
    back, all of them count as read input: the trace's prompt_length and detail.primer_frames
    cover the whole piece instead of the primer alone."""
    return Primer(generation.result.frames, [], getattr(generation.trace.detail, "primer_source", ""),
                  getattr(generation.trace.detail, "time_signatures", []))


def track(generation: Generation) -> dict:
    """The browser viewer's strip for music (studio/ui/viewer.js, kind "roll"): per trace step the
    pitch read, -1 where the step is BOS or END."""
    detail = generation.trace.detail
    tokens = np.asarray(detail.tokens)
    pitches = np.where(tokens < detail.num_pitches, tokens + detail.min_pitch, -1)
    sounding = pitches[pitches >= 0]
    low, high = (int(sounding.min()), int(sounding.max())) if len(sounding) else (detail.min_pitch, detail.min_pitch)
    return {"kind": "roll", "pitches": pitches.tolist(), "low": low, "high": high}


# ---------------------------------------------------------------- the picture
def piano_roll(
    roll: np.ndarray,
    min_pitch: int,
    note_values: np.ndarray | None = None,
    step_values: np.ndarray | None = None,
    vmin: float = -1.0,
    vmax: float = 1.0,
    steps_per_bar: int = 4,
    primer_steps: int = 0,
    title: str = "",
    bar_lines=None,
) -> Figure:
    """A piano roll (time steps x pitches) with notes painted by one unit's values.

    roll: (T, P) bool, pitch min_pitch + p sounding at step t. note_values: (T, P) colours for
    the notes (NaN off notes); step_values: (T,) a strip under the roll. The same axes box and
    step-t-at-x-=-t extent as `viz.gate_heatmaps`, so the two line up when stacked; pitches are
    cropped to the ones used (padded a little), bars get lines (every steps_per_bar steps, or at the
    steps `bar_lines` gives, for a metre with changes), a primer is shaded.
    """
    from matplotlib.patches import Rectangle

    roll = np.asarray(roll, dtype=bool)
    if roll.ndim != 2 or roll.shape[0] == 0:
        raise ValueError(f"roll must be a non-empty (steps, pitches) array, got shape {roll.shape}")
    if not vmax > vmin:
        raise ValueError(f"need vmin < vmax, got vmin={vmin}, vmax={vmax}")
    steps, _ = roll.shape
    used = np.flatnonzero(roll.any(axis=0))
    low = max(0, (used.min() if len(used) else 0) - 2)
    high = min(roll.shape[1] - 1, (used.max() if len(used) else roll.shape[1] - 1) + 2)
    sequential = vmin >= 0
    cmap = matplotlib.colormaps[SEQUENTIAL_CMAP if sequential else DIVERGING_CMAP]
    has_strip = step_values is not None
    height = 4.6 + (0.6 if has_strip else 0.0)
    fig = Figure(figsize=(FIGURE_WIDTH, height), dpi=DPI)
    # the axes box of gate_heatmaps, so a piano roll above a heatmap shares its x positions
    left, right, bottom, top = 0.075, 0.86, 0.55 / height, 1 - 0.35 / height
    strip_top = bottom + (0.35 / height if has_strip else 0.0)
    roll_bottom = strip_top + (0.1 / height if has_strip else 0.0)
    roll_ax = fig.add_axes((left, roll_bottom, right - left, top - roll_bottom))
    strip_ax = fig.add_axes((left, bottom, right - left, strip_top - bottom), sharex=roll_ax) if has_strip else None
    extent = (-0.5, steps - 0.5, min_pitch + low - 0.5, min_pitch + high + 0.5)
    # black keys shaded, as on a piano-roll editor, so pitches can be read off
    black = np.array([(min_pitch + p) % 12 in (1, 3, 6, 8, 10) for p in range(low, high + 1)], dtype=float)
    roll_ax.imshow(black[::-1, None] * np.ones((1, steps)), aspect="auto", cmap="Greys", vmin=0, vmax=8,
                   extent=extent, interpolation="nearest")
    window = roll[:, low : high + 1].T[::-1]  # (pitches, steps), highest pitch on top
    if note_values is None:
        painted = np.where(window, 1.0, np.nan)
        image = roll_ax.imshow(painted, aspect="auto", cmap="Greys", vmin=0, vmax=1.2, extent=extent, interpolation="nearest")
    else:
        values = np.asarray(note_values, dtype=float)[:, low : high + 1].T[::-1]
        painted = np.where(window, np.nan_to_num(values, nan=(vmin + vmax) / 2), np.nan)
        image = roll_ax.imshow(painted, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest")
        bar_ax = fig.add_axes((0.872, bottom, 0.011, top - bottom))
        fig.colorbar(image, cax=bar_ax).set_ticks([vmin, (vmin + vmax) / 2, vmax])
        bar_ax.tick_params(labelsize=7)
    for t, p in zip(*np.nonzero(roll[:, low : high + 1]), strict=True):  # outlines keep pale notes visible
        roll_ax.add_patch(Rectangle((t - 0.5, min_pitch + low + p - 0.5), 1, 1, fill=False,
                                                       linewidth=0.4, edgecolor="0.25"))
    for bar in range(0, steps + 1, max(1, steps_per_bar)) if bar_lines is None else bar_lines:
        roll_ax.axvline(bar - 0.5, color="0.55", linewidth=0.6)
    if 0 < primer_steps <= steps:
        roll_ax.axvspan(-0.5, primer_steps - 0.5, color="tab:orange", alpha=0.08, linewidth=0)
        roll_ax.axvline(primer_steps - 0.5, color="tab:orange", linewidth=1.5)
        roll_ax.text(primer_steps - 0.5, min_pitch + high + 0.4, " generated →", color="tab:orange", fontsize=8, va="top")
    c_pitches = [p for p in range(min_pitch + low, min_pitch + high + 1) if p % 12 == 0]
    roll_ax.set_yticks(c_pitches, [f"C{p // 12 - 1}" for p in c_pitches], fontsize=8)
    roll_ax.set_ylabel("pitch", fontsize=8)
    roll_ax.set_xlim(-0.5, steps - 0.5)
    if title:
        roll_ax.set_title(title, fontsize=10)  # centred: Gradio lays its label over the top-left corner
    bottom_ax = roll_ax
    if has_strip:
        strip = np.nan_to_num(np.asarray(step_values, dtype=float))[None, :steps]
        strip_ax.imshow(strip, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, extent=(-0.5, steps - 0.5, 0, 1),
                        interpolation="nearest")
        strip_ax.set_yticks([])
        strip_ax.set_ylabel("frame", fontsize=7, rotation=0, ha="right", va="center")
        bottom_ax = strip_ax
    bottom_ax.xaxis.set_major_locator(MaxNLocator(nbins=16, integer=True))
    bottom_ax.set_xlabel(f"step (bar lines every {steps_per_bar} steps)", fontsize=8)
    return fig
