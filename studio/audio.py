"""Audio files shared by the domains that make sound (music renders MIDI, speech inverts mel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_wav(path, audio: np.ndarray, sample_rate: int) -> Path:
    """Mono 16-bit PCM WAV; samples are clipped to [-1, 1] first."""
    import soundfile

    soundfile.write(str(path), np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0), int(sample_rate), subtype="PCM_16")
    return Path(path)
