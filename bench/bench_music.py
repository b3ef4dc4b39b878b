"""Music-tab timing: 16 bars with audio and every plot, through the real server. Prints the median
of several runs of (1) the request through gradio_client (which also downloads the audio, MIDI and
trace) and (2) click-to-result in Debian chromium: from the click on Compose until the page shows the
new audio (its player has loaded and decoded the new WAV), the trace viewer has drawn the new trace
and the saturation plot is there.

python bench/bench_music.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import audio_decoded_js, report_click_to_result, serve, time_api  # noqa: E402

# the viewer's drawn trace first: it changes only once the new trace is decoded and drawn
WATCHED = ["#music-viewer .lv-loaded", "#music-audio a[download]"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from gradio_client import Client

    with serve("models") as url:
        client = Client(url, verbose=False)
        api = time_api(lambda seed: client.predict(
            "jsb-chorales-quarter", "Compose from scratch", None, "bach/bwv65.2", 4, 16, 1.0, 0, seed, 80,
            api_name="/generate_music"), args.repeats)
        print(f"music tab API (gradio_client) 16 bars + audio + plots: median {api:.3f} s")
        report_click_to_result(
            "music tab, 16 bars + audio + plots", 3, url, "Music (MIDI)", "#music-generate", "#music-seed input",
            WATCHED, args.repeats, prepare=lambda page: page.get_by_label("Bars to generate", exact=False).fill("16"),
            extra_ready_js=audio_decoded_js("music-audio"))


if __name__ == "__main__":
    main()
