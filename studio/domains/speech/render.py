"""Speech pictures and files: the spectrogram with one unit drawn over it (and the pitch track, and
where a primer ends), the attention alignment, the features .npz and the generated .wav."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from studio import viz
from studio.audio import write_wav
from studio.domains.base import Generation, View
from studio.domains.speech.codec import END_LABEL, HOP, LOG_FLOOR, N_FFT, N_MELS, SAMPLE_RATE, mel_centres
from studio.domains.speech.data import Utterance
from studio.domains.speech.generate import ContinueResult
from studio.trace import QUANTITY_TITLES


def _figure(height: float):
    from matplotlib.figure import Figure

    from studio.viz import DPI, FIGURE_WIDTH

    # constrained layout keeps axis labels, twin axes and colorbars inside the picture
    return Figure(figsize=(FIGURE_WIDTH, height), dpi=DPI, layout="constrained")


def mel_figure(log_mel: np.ndarray, title: str = "log-mel spectrogram", unit_values: np.ndarray | None = None,
               unit_label: str = "", reduction: int = 1, f0: np.ndarray | None = None, boundary: int | None = None,
               value_range: tuple[float, float] = (-1.0, 1.0)):
    """The spectrogram (frames on x, mel bins on y) with, optionally, one unit's value per step
    drawn over it (each step spans `reduction` frames, on the axis `value_range`), the pyin pitch
    track, and a line where the primer ends and the model's frames begin."""
    fig = _figure(3.6)
    ax = fig.add_subplot(1, 1, 1)
    frames = len(log_mel)
    image = ax.imshow(log_mel.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                      extent=(-0.5, frames - 0.5, -0.5, N_MELS - 0.5), vmin=max(float(log_mel.min()), np.log(LOG_FLOOR)))
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01, label="ln mel")
    ax.set_xlabel(f"frame ({HOP / SAMPLE_RATE * 1000:.1f} ms each)")
    ax.set_ylabel("mel bin")
    ax.set_title(title, loc="left", fontsize=10)
    if f0 is not None and np.any(np.isfinite(f0)):
        bins = np.interp(np.nan_to_num(f0, nan=0.0), mel_centres(), np.arange(N_MELS))
        bins = np.where(np.isfinite(f0), bins, np.nan)
        ax.plot(np.arange(len(bins)), bins, color="cyan", lw=1.5, label="pitch (pyin)")
        ax.legend(loc="upper right", fontsize=8)
    if boundary is not None:
        ax.axvline(boundary - 0.5, color="white", lw=2, ls="--")
    if unit_values is not None:
        values = np.repeat(np.asarray(unit_values, np.float32), reduction)[:frames]
        twin = ax.twinx()
        twin.plot(np.arange(len(values)), values, color="lime", lw=1.6)
        low, high = value_range
        margin = 0.025 * (high - low)
        twin.set_ylim(low - margin, high + margin)
        twin.set_ylabel(unit_label or "unit value", color="green")
    return fig


def alignment_html(alignment: np.ndarray, text: str, reduction: int = 1) -> str:
    """Attention weights: decoder steps (x, in frames) against characters (y), as HTML
    (viz.heatmap_html, far cheaper than a matplotlib figure under load: docs/benchmarks.md, Load and
    requests).
    A monotonic diagonal that reaches the end mark means the model read the whole text in order."""
    labels = [ch if ch != " " else "␣" for ch in list(text) + [END_LABEL]]
    return viz.heatmap_html(np.asarray(alignment).T, labels, "Attention alignment (Graves window)", "frame",
                            "weight", marker=None, x_scale=reduction)


def features_npz(path, log_mel: np.ndarray, **extra) -> Path:
    arrays = {"log_mel": np.asarray(log_mel, np.float32), "sample_rate": np.array(SAMPLE_RATE), "hop": np.array(HOP),
              "n_fft": np.array(N_FFT), "n_mels": np.array(N_MELS)}
    arrays.update({k: np.asarray(v) for k, v in extra.items() if v is not None})
    np.savez(path, **arrays)
    return Path(path)


def render(generation: Generation, view: View, title: str | None = None):
    """The generated spectrogram with `view.unit`'s value per step drawn over it (for a
    continuation, a dashed line where the recording ends)."""
    trace, result = generation.trace, generation.result
    values, vmin, vmax = viz.unit_values(trace, view.layer, view.quantity, view.unit)
    title = title or (f"log-mel spectrogram; line: {QUANTITY_TITLES[view.quantity]} of unit {view.unit} in "
                      f"{trace.layer_name(view.layer)}")
    boundary = result.primer_frames if isinstance(result, ContinueResult) else None
    return mel_figure(result.log_mel, title, unit_values=values, unit_label=f"unit {view.unit}",
                      reduction=trace.detail.reduction, boundary=boundary, value_range=(vmin, vmax))


def sequence_of(generation: Generation) -> Utterance:
    """What `score` reads to give this generation's trace again, from a fresh state. Speech: the
    Utterance of the generated log-mel with its text, voice and seed (so the read's prenet drops
    what the generation's dropped); continuation: the whole log-mel, primer and the noisy groups
    the model was fed (ContinueResult.fed). What differs: the frames went through denormalising and normalising again
    (float rounding), the decoder LSTM's gates are recovered from the fused kernel rather than
    stepped, a continuation's labels are frame numbers, and hooks the generation ran are not."""
    result = generation.result
    if isinstance(result, ContinueResult):
        return Utterance("", result.log_mel if result.fed is None else result.fed)
    return Utterance(result.text, result.log_mel, result.voice, seed=result.seed)


def track(generation: Generation) -> dict:
    """The viewer's strip for speech (kind "spectrogram"): the log-mel under the trace's steps, each
    step showing the mean of the frames it covers (a step reads or makes `reduction` frames)."""
    log_mel, steps = generation.result.log_mel, generation.trace.steps
    reduction = generation.trace.detail.reduction
    frames = np.zeros((steps * reduction, log_mel.shape[1]), np.float32) + float(np.min(log_mel, initial=0.0))
    used = min(len(frames), len(log_mel))
    frames[:used] = log_mel[:used]
    return {"kind": "spectrogram", "image": frames.reshape(steps, reduction, -1).mean(1).T}


def write_files(generation: Generation, folder) -> dict[str, Path]:
    """The downloads: the audio (.wav, when it was made) and the features (.npz: the log-mel and,
    for speech, the alignment, stop probabilities and text; for a continuation, where the primer ends)."""
    folder, result = Path(folder), generation.result
    if isinstance(result, ContinueResult):
        stem, extra = "continued", {"primer_frames": result.primer_frames}
    else:
        stem, extra = "speech", {"alignment": result.alignment, "stop_probs": result.stop_probs, "text": np.array(result.text)}
    files = {"features": features_npz(folder / f"{stem}-features.npz", result.log_mel, **extra)}
    if len(result.audio):
        files = {"audio": write_wav(folder / f"{stem}.wav", result.audio, SAMPLE_RATE), **files}
    return files
