"""Speech-tab timing: one sentence spoken (mel frames, Griffin-Lim audio, spectrogram with a unit,
attention alignment, gate heatmaps), through the real server. Prints the median of (1) the
generation alone in process, split into the LSTM decoder and Griffin-Lim, (2) the request through
gradio_client, and (3) click-to-result in Debian chromium (new audio decoded by the player, new
spectrogram, alignment and heatmap images all shown).

python bench/bench_speech.py [--model espeak-tts] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import audio_decoded_js, report_click_to_result, serve, time_api  # noqa: E402

from studio.domains import speech  # noqa: E402
from studio.domains.speech.codec import HOP, SAMPLE_RATE, decode_audio  # noqa: E402
from studio.domains.speech.generate import SpeechSettings  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog."
# the viewer's drawn trace first: it changes only once the new trace is decoded and drawn
WATCHED = ["#speech-viewer .lv-loaded", "#speech-audio a[download]", "#speech-alignment img"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="espeak-tts", help="a text-to-mel model in models/")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from gradio_client import Client

    loaded = speech.load(Path("models") / args.model)
    decoder, vocoder = [], []
    for seed in range(args.repeats + 1):
        start = time.perf_counter()
        result = speech.generate(loaded, SpeechSettings(text=SENTENCE, seed=seed, griffin_lim_iters=0)).result
        middle = time.perf_counter()
        decode_audio(result.log_mel, seed=seed)
        decoder.append(middle - start)
        vocoder.append(time.perf_counter() - middle)
    seconds = len(result.log_mel) * HOP / SAMPLE_RATE
    print(f"generation alone, {seconds:.2f} s of speech: LSTM decoder median {statistics.median(decoder[1:]):.3f} s, "
          f"Griffin-Lim median {statistics.median(vocoder[1:]):.3f} s")
    with serve("models") as url:
        client = Client(url, verbose=False)
        api = time_api(lambda seed: client.predict(args.model, SENTENCE, 0, seed, api_name="/generate_speech"), args.repeats)
        print(f"speech tab API (gradio_client), one sentence + all plots: median {api:.3f} s")
        report_click_to_result(
            "speech tab, one sentence + audio + all plots", 4, url, "Speech", "#speech-generate", "#speech-seed input",
            WATCHED, args.repeats, prepare=lambda page: page.locator("#speech-text textarea").fill(SENTENCE),
            extra_ready_js=audio_decoded_js("speech-audio"))


if __name__ == "__main__":
    main()
