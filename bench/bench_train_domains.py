"""Training handwriting and speech from a user's files, as the README's commands do, on data this
script makes, then generating with each result.

  handwriting: a zip of JSON stroke files (synthetic Hershey lines of Tiny Shakespeare phrases, in
               pixel-like units; every third as a bare stroke list with a name.txt transcript beside it)
               -> python -m studio train handwriting --data STROKES.zip [--init models/print-cursive-styled]
               -> python -m studio generate handwriting --model OUT --text hello --out hello.svg
  speech:      a folder of espeak-ng WAVs (`espeak-ng -w`, 22,050 Hz: the trainer resamples) + name.txt
               -> python -m studio train speech --data FOLDER [--init models/espeak-tts]
               -> python -m studio generate speech --model OUT --text "hello there" --out hello.wav

Prints each `trained: ...` line, the generation's line, and the seconds each took (one thread).

python bench/bench_train_domains.py [--minutes 1] [--from-scratch] [--keep runs/bench-train-domains]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SOURCE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
TRAINED = re.compile(r"^trained: .*$", re.M)


def phrases(count: int) -> list[str]:
    """Distinct short phrases of Tiny Shakespeare (or a fixed few without it)."""
    from studio.domains.handwriting import HandwritingAlphabet, phrases_from_text

    if SOURCE.is_file():
        return phrases_from_text(SOURCE.read_text(encoding="utf-8")[:200_000], HandwritingAlphabet(), 8, 28)[:count]
    return [f"line number {k} of the set" for k in range(count)]


def stroke_zip(path: Path, count: int) -> Path:
    import numpy as np

    from studio.domains.handwriting import render_phrase

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for k, text in enumerate(phrases(count)):
            strokes = [(s * 2.5 + 40).round(2).tolist() for s in render_phrase(text, rng)]
            if k % 3 == 0:
                archive.writestr(f"lines/{k:03d}.json", json.dumps(strokes))
                archive.writestr(f"lines/{k:03d}.txt", text)
            else:
                archive.writestr(f"lines/{k:03d}.json", json.dumps({"strokes": strokes, "text": text}))
    return path


def espeak_folder(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, text in enumerate(phrases(count)):
        subprocess.run(["espeak-ng", "-w", str(folder / f"s{k:03d}.wav"), text], check=True, capture_output=True, timeout=60)
        (folder / f"s{k:03d}.txt").write_text(text, encoding="utf-8")
    return folder


def studio(*args: str, timeout: float = 900) -> tuple[str, float]:
    """(stdout + stderr, seconds) of `python -m studio ARGS`, one thread; exits on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "studio", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: python -m studio {' '.join(args)}\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--lines", type=int, default=60, help="stroke files written")
    parser.add_argument("--sentences", type=int, default=40, help="espeak-ng recordings made")
    parser.add_argument("--from-scratch", action="store_true", help="train new models instead of fine-tuning the shipped ones")
    parser.add_argument("--keep", help="make everything in this folder (default: a temporary one)")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench-train-domains-"))
    folder.mkdir(parents=True, exist_ok=True)
    budget = ["--minutes", f"{args.minutes:g}", "--threads", "1"]

    data = stroke_zip(folder / "strokes.zip", args.lines)
    init = [] if args.from_scratch else ["--init", "models/print-cursive-styled"]
    out, seconds = studio("train", "handwriting", "--data", str(data), *init, "--out", f"{folder / 'hand'}/", *budget,
                          "--progress", str(folder / "hand" / "progress.jsonl"))
    print(f"handwriting: {args.lines} stroke files in {data.name}; {seconds:.1f} s")
    print("  " + TRAINED.findall(out)[-1])
    made, seconds = studio("generate", "handwriting", "--model", str(folder / "hand" / "hand"), "--text", "hello",
                           "--out", str(folder / "hello.svg"))
    print(f"  {made.strip().splitlines()[-1]} ({seconds:.1f} s)")

    clips = espeak_folder(folder / "clips", args.sentences)
    init = [] if args.from_scratch else ["--init", "models/espeak-tts"]
    out, seconds = studio("train", "speech", "--data", str(clips), *init, "--out", f"{folder / 'voice'}/", *budget,
                          "--progress", str(folder / "voice" / "progress.jsonl"))
    print(f"speech: {args.sentences} espeak-ng recordings in {clips.name}/; {seconds:.1f} s")
    print("  " + TRAINED.findall(out)[-1])
    made, seconds = studio("generate", "speech", "--model", str(folder / "voice" / "voice"), "--text", "hello there",
                           "--out", str(folder / "hello.wav"))
    print(f"  {made.strip().splitlines()[-1]} ({seconds:.1f} s)")
    print(f"files in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
