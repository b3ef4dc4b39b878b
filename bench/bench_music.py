"""Music-tab timing: 16 bars with audio and every plot, through the real server. Prints the median
of several runs of (1) the request through gradio_client (which also downloads the audio, MIDI and
trace) and (2) click-to-result in Debian chromium: from the click on Compose until the page shows the
new audio (its player has loaded and decoded the new WAV), the new piano roll and the new heatmaps.

python bench/bench_music.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import click_to_result, serve  # noqa: E402

# Gradio 6 plays audio through a waveform player whose download link carries the file's URL (its
# <audio> element stays empty); the player shows the duration once it has decoded the file.
WATCHED = ["#music-audio a[download]", "#music-roll img", "#music-heatmaps img"]
AUDIO_DECODED = """() => {
    const d = document.querySelector('#music-audio #duration');
    return d && !['', '0:00'].includes(d.textContent.trim());
}"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from gradio_client import Client

    with serve("models") as url:
        client = Client(url, verbose=False)
        api_times = []
        for seed in range(args.repeats + 1):
            start = time.perf_counter()
            client.predict("jsb-chorales-quarter", "Compose from scratch", None, "bach/bwv65.2", 4, 16, 1.0, 0, seed,
                           80, 0, "tanh_c", 0, api_name="/generate_music")
            api_times.append(time.perf_counter() - start)
        print(f"music tab API (gradio_client) 16 bars + audio + plots: median {statistics.median(api_times[1:]):.3f} s")
        try:
            browser_times = click_to_result(
                url, "Music (MIDI)", "#music-generate", "#music-seed input", WATCHED, args.repeats,
                prepare=lambda page: page.get_by_label("Bars to generate", exact=False).fill("16"),
                extra_ready_js=AUDIO_DECODED)
        except Exception as error:  # no chromium here: the API figure still stands
            print(f"browser timing skipped: {error}")
        else:
            print(f"music tab click-to-result in chromium, 16 bars + audio + plots: median "
                  f"{statistics.median(browser_times):.3f} s over {len(browser_times)} clicks (goal <= 3 s)")


if __name__ == "__main__":
    main()
