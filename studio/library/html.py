"""One record as a self-contained HTML page: the output (pictures, audio, text, downloads) and the
interactive trace viewer (studio/ui/viewer.js, its payload inlined as a data: URL), for slides and
course pages; it opens from disk with no server.

The record keeps its settings, not its trace: the page's trace comes from making the record again
(`replay`), and the page says whether that reproduced the stored output exactly. A trained model's or a
lab run's record has no trace: its page is its card, curves and table (studio.library.kept_html).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from studio.library.kept_html import data_url, export_kept
from studio.library.records import plain_settings

# how a kept file is shown, by its suffix (anything else is a download link)
PICTURES = {".png", ".svg", ".jpg", ".jpeg", ".gif"}
SOUNDS = {".wav", ".mp3", ".ogg", ".flac"}
TEXTS = {".txt"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #222; }}
.meta {{ color: #555; }} pre {{ white-space: pre-wrap; background: #f6f6f6; padding: 8px; border-radius: 6px; }}
.files img {{ max-width: 100%; border: 1px solid #ddd; }} .files figure {{ margin: 0.6em 0; }}
.status-yes {{ color: #1a7f37; }} .status-no {{ color: #b35900; }}
{viewer_css}
.lv-export {{ display: none; }}  /* its PNG/SVG are made by the server, which a saved page has not */
</style></head><body>
<h1>{title}</h1>
<p class="meta">{meta}</p>
<p class="status-{status_class}">{status}</p>
{prompt}
<div class="files">{files}</div>
<h2>Inside the LSTM</h2>
<div id="lstm-export-viewer">{template}</div>
<details><summary>Settings</summary><pre>{settings}</pre></details>
<script>
(function () {{
  const element = document.getElementById('lstm-export-viewer');
  const props = {props};
  const watch = () => {{}}, trigger = () => {{}};
{viewer_js}
}})();
</script>
</body></html>
"""


def _files(store, record) -> str:
    parts = []
    for kept in record.files:
        if kept["role"] != "output":
            continue
        data = store.file_path(kept["sha256"]).read_bytes()
        name, suffix = html.escape(kept["name"]), Path(kept["name"]).suffix.lower()
        url = data_url(data, kept["name"])
        if suffix in PICTURES:
            parts.append(f'<figure><img alt="{name}" src="{url}"><figcaption>{name}</figcaption></figure>')
        elif suffix in SOUNDS:
            parts.append(f'<figure><audio controls src="{url}"></audio><figcaption>{name}</figcaption></figure>')
        elif suffix in TEXTS:
            parts.append(f"<pre>{html.escape(data.decode('utf-8', 'replace'))}</pre>")
        parts.append(f'<p><a download="{name}" href="{url}">download {name}</a></p>')
    return "\n".join(parts)


def export_html(store, record, out) -> Path:
    """Write the page for `record` (a Stored) to out; returns its path."""
    from studio.domains import by_name
    from studio.library import _replay
    from studio.ui.payload import trace_payload
    from studio.ui.viewer import TEMPLATE, VIEWER_CSS, VIEWER_JS, colormaps

    if record.kind != "generation":
        return export_kept(store, record, Path(out))
    generation, reproduced, why = _replay(store, record)
    if generation is None:
        raise ValueError(f"Record {record.id} cannot be made again for its trace: {why}.")
    domain = by_name(record.domain)
    description, blob = trace_payload(generation.trace, domain.track(generation), f"{record.domain} / {record.model}")
    description["blob"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    props = {"value": description, "viewer_id": "lstm-export-viewer", "link_id": "", "colormaps": colormaps()}
    title = f"{record.domain}: {record.model}, seed {record.seed}"
    meta = (f"Record {record.id}, made with studio {record.version}; model weights sha256 "
            f"{record.weights_sha256[:16]}…; output hash {record.content_hash[:16]}…")
    status = "Made again from its settings: reproduced exactly." if reproduced else f"Made again: not the same ({why})."
    prompt = f"<p><b>Prompt:</b> {html.escape(record.prompt)}</p>" if record.prompt else ""
    page = PAGE.format(
        title=html.escape(title), meta=html.escape(meta), status_class="yes" if reproduced else "no",
        status=html.escape(status), prompt=prompt, files=_files(store, record), template=TEMPLATE,
        settings=html.escape(json.dumps(plain_settings(record.settings), indent=2, ensure_ascii=False)),
        viewer_css=VIEWER_CSS, viewer_js=VIEWER_JS,
        props=json.dumps(props).replace("</", "<\\/"))
    out = Path(out)
    out.write_text(page, encoding="utf-8")
    return out
