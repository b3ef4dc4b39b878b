"""A trained model's or a lab run's record as one self-contained HTML page (studio.library.html makes
a generation's). Nothing is made again: the page shows what the record keeps.

    model record:   its card (settings, data files by hash, final metrics, duration) and its loss
                    curve as inline SVG (kept from the job's progress file; a command-line training
                    without --progress has none)
    lab run record: its result table (a sweep: the loss at each T and the longest T each cell learned)
                    and its loss figure (the kept PNG, as a data: URL)

Every kept file is a download link in the page (data: URLs), so it opens from disk with no server.
"""

from __future__ import annotations

import base64
import html
import json
import mimetypes
import time

SVG_WIDTH, SVG_HEIGHT, MARGIN = 640, 260, 48
COLOURS = {"train": "#4c78a8", "val": "#f58518"}
LAB_COLUMNS = ("hidden", "params", "loss", "baseline", "learned", "log10_grad_ratio")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #222; }}
.meta {{ color: #555; }} pre {{ white-space: pre-wrap; background: #f6f6f6; padding: 8px; border-radius: 6px; }}
table {{ border-collapse: collapse; margin: 0.6em 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }} th {{ background: #f2f2f2; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
</style></head><body>
<h1>{title}</h1>
<p class="meta">{meta}</p>
<p>{output}</p>
{body}
<h2>Files</h2>
{files}
<details><summary>Settings</summary><pre>{settings}</pre></details>
</body></html>
"""


def data_url(data: bytes, name: str) -> str:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(name for row in rows for name in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_shown(row.get(c)))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def loss_svg(curve: dict, loss_name: str = "loss") -> str:
    """Training and validation loss against step as an inline SVG (two polylines on shared axes)."""
    lines = {kind: [(float(s), float(v)) for s, v in curve.get(kind) or [] if v is not None] for kind in COLOURS}
    points = [p for kept in lines.values() for p in kept]
    if not points:
        return ""
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    width, height = SVG_WIDTH - 2 * MARGIN, SVG_HEIGHT - 2 * MARGIN

    def xy(point):
        return (f"{MARGIN + (point[0] - x0) / (x1 - x0) * width:.1f},"
                f"{MARGIN + (1 - (point[1] - y0) / (y1 - y0)) * height:.1f}")

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_WIDTH}" height="{SVG_HEIGHT}" '
             f'viewBox="0 0 {SVG_WIDTH} {SVG_HEIGHT}" role="img" aria-label="{html.escape(loss_name)} against step">',
             f'<rect x="{MARGIN}" y="{MARGIN}" width="{width}" height="{height}" fill="none" stroke="#999"/>',
             f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" font-size="12" text-anchor="end">{y1:.4g}</text>',
             f'<text x="{MARGIN - 4}" y="{MARGIN + height}" font-size="12" text-anchor="end">{y0:.4g}</text>',
             f'<text x="{MARGIN}" y="{MARGIN + height + 16}" font-size="12">step {x0:g}</text>',
             f'<text x="{MARGIN + width}" y="{MARGIN + height + 16}" font-size="12" text-anchor="end">'
             f'step {x1:g}</text>']
    for k, (kind, kept) in enumerate(lines.items()):
        if kept:
            parts.append(f'<polyline class="curve-{kind}" fill="none" stroke="{COLOURS[kind]}" stroke-width="1.5" '
                         f'points="{" ".join(map(xy, kept))}"/>')
            parts.append(f'<text x="{MARGIN + width - 4}" y="{MARGIN + 16 + 16 * k}" font-size="12" text-anchor="end" '
                         f'fill="{COLOURS[kind]}">{"training" if kind == "train" else "validation"} {loss_name}</text>')
    return "".join(parts) + "</svg>"


def _model_body(settings: dict, record) -> str:
    metrics = settings.get("metrics") or {}
    data = settings.get("data") or []
    curve = loss_svg(settings.get("curve") or {})
    parts = ["<h2>Final metrics</h2>", _table([metrics]),
             f"<p>Trained for {record.duration:.1f} seconds.</p>" if record.duration else "",
             "<h2>Loss</h2>", curve or "<p>No loss curve was kept (a training started without a progress file).</p>",
             "<h2>Data</h2>", _table(data) or "<p>Its packaged data.</p>",
             "<h2>Settings</h2>",
             _table([{"setting": k, "value": v} for k, v in (settings.get("command") or {}).items()])]
    return "\n".join(parts)


def _lab_rows(result: dict) -> list[dict]:
    from studio.lab.cells import TITLES

    if result.get("runs"):  # a sweep: the loss at each T (✓ learned) and the longest T learned
        rows = []
        for kind, longest in (result.get("longest") or {}).items():
            row = {"cell": TITLES.get(kind, kind), "longest T learned": longest if longest is not None else "none"}
            for run in result["runs"]:
                cell = run["cells"].get(kind) or {}
                learned = " ✓" if cell.get("learned") else ""
                row[f"T={run.get('T')}"] = f"{cell.get('loss', float('nan')):.3g}{learned}"
            rows.append(row)
        return rows
    return [{"cell": TITLES.get(kind, kind), **{c: cell.get(c) for c in LAB_COLUMNS}}
            for kind, cell in (result.get("cells") or {}).items()]


def _lab_body(store, record) -> str:
    kept = {f["label"]: f for f in record.files if f["role"] == "output"}
    result = {}
    if "run (JSON)" in kept:
        result = json.loads(store.file_path(kept["run (JSON)"]["sha256"]).read_text(encoding="utf-8"))
    parts = ["<h2>Result</h2>", _table(_lab_rows(result)) or "<p>The run measured nothing yet.</p>"]
    if "loss (PNG)" in kept:
        url = data_url(store.file_path(kept["loss (PNG)"]["sha256"]).read_bytes(), "loss.png")
        parts += ["<h2>Loss</h2>", f'<img alt="the loss of each cell against step" src="{url}">']
    return "\n".join(parts)


def _downloads(store, record) -> str:
    links = []
    for kept in record.files:
        name = html.escape(kept["name"])
        url = data_url(store.file_path(kept["sha256"]).read_bytes(), kept["name"])
        links.append(f'<li><a download="{name}" href="{url}">{html.escape(kept["label"])}: {name}</a></li>')
    return f"<ul>{''.join(links)}</ul>" if links else "<p>None.</p>"


def export_kept(store, record, out):
    """Write the page of a "model" or "lab run" record (a Stored) to out (a Path); returns it."""
    settings = json.loads(record.settings or "{}")
    if record.kind == "model":
        title = f"{record.domain} model {record.model}"
        body = _model_body(settings, record)
    else:
        title = f"Lab run: {record.prompt}, cells {record.model}"
        body = _lab_body(store, record)
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created))
    meta = (f"Record {record.id} ({record.kind}), {made}, studio {record.version}, seed {record.seed}"
            + (f"; model weights sha256 {record.weights_sha256}" if record.weights_sha256 else ""))
    page = PAGE.format(title=html.escape(title), meta=html.escape(meta), output=html.escape(record.output), body=body,
                       files=_downloads(store, record),
                       settings=html.escape(json.dumps({k: v for k, v in settings.items() if k != "curve"}, indent=2,
                                                       ensure_ascii=False)))
    out.write_text(page, encoding="utf-8")
    return out
