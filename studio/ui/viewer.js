// The trace viewer, drawn in the browser from the payload of studio/ui/payload.py (props.value).
// Runs as gr.HTML's js_on_load: `element`, `props`, `watch` are in scope. Layer, quantity, unit,
// row order, zoom and scroll repaint here with no request to the server; a click on a step or a
// unit row, a brushed range and an export are sent to Python through the companion events
// component (studio/ui/viewer.py), as a 'lstm-viewer' DOM event it turns into a Gradio event.

const MARGIN = 46;       // px left of every time axis: unit labels, and where a click picks a unit row
const AXIS = 16;         // px under the heatmap for step ticks
const HEAT_MAX = 384;    // px: the heatmap's height at most (rows get at least one pixel)
const TITLES = {i: 'input gate i', f: 'forget gate f', g: 'candidate g', o: 'output gate o',
                c: 'cell state c (saturates beyond |c| ≈ 2.4)', tanh_c: 'tanh(cell state)', h: 'hidden state h'};
const LINE_COLORS = {i: '#1f77b4', f: '#2ca02c', g: '#9467bd', o: '#d62728', tanh_c: '#ff7f0e', h: '#000000'};
const SIGMOID = new Set(['i', 'f', 'o']);

const $ = (selector) => element.querySelector(selector);
// an overlay (the explain panel's saliency) paints the strip and the text instead of the unit:
// signed values scaled by their largest magnitude, none after the explained step
function overlayValue(t) {
  const o = st.overlay;
  if (!o) return null;
  return t < o.values.length ? o.values[t] / o.peak : NaN;
}
const st = {data: null, layer: 0, quantity: 'tanh_c', unit: 0, order: 'variance', v0: 0, v1: 0,
            cursor: null, brush: null, orders: {}, version: 0};

function send(detail) {
  const id = props.viewer_id;
  document.dispatchEvent(new CustomEvent('lstm-viewer', {detail: {viewer: id, ...detail}}));
}

// ---------------------------------------------------------------- decoding the payload
async function decode(payload) {
  const started = performance.now();
  const response = await fetch(payload.blob);
  if (!response.ok) throw new Error(`the trace could not be fetched (${response.status})`);
  // one deflate stream holds every array; each description says where its codes lie
  const inflated = response.body.pipeThrough(new DecompressionStream('deflate'));
  const bytes = new Uint8Array(await new Response(inflated).arrayBuffer());
  const part = (where) => bytes.subarray(where.offset, where.offset + where.length);
  const layers = payload.layers.map((layer) => {
    const quantities = {};
    for (const [name, q] of Object.entries(layer.quantities)) quantities[name] = {lo: q.lo, hi: q.hi, codes: part(q)};
    return {name: layer.name, quantities, c_bound: layer.c_bound};
  });
  let image = null;
  if (payload.track && payload.track.image) {
    const im = payload.track.image;
    image = {rows: im.rows, lo: im.lo, hi: im.hi, codes: part(im)};
  }
  $('.lv-root').dataset.decodeMs = (performance.now() - started).toFixed(1);  // fetch + inflate, for benches
  return {...payload, layers, image, first: payload.shown_from || 0};
}

// Values come from codes through small tables (one entry per code; h: one per pair of o and tanh(c)
// codes), so a repaint of 5,000 steps x 384 units is table look-ups, not arithmetic per cell.
function cLimit() { return Math.atanh(1 - 2 / (st.data.levels - 1)); }
function codeValue(q, k) { return q.lo + k / (st.data.levels - 1) * (q.hi - q.lo); }
function tables(layer) {
  const data = st.data.layers[layer];
  if (data.tables) return data.tables;
  const L = st.data.levels, q = data.quantities, m = cLimit(), out = {};
  for (const name of Object.keys(q)) out[name] = Float32Array.from({length: L}, (_, k) => codeValue(q[name], k));
  out.c = out.tanh_c.map((t) => (Math.abs(t) >= 1 ? Math.sign(t) * m : Math.max(-m, Math.min(m, Math.atanh(t)))));
  out.h = new Float32Array(L * L);
  for (let a = 0; a < L; a++) for (let b = 0; b < L; b++) out.h[a * L + b] = out.o[a] * out.tanh_c[b];
  data.tables = out;
  return out;
}
// (unit, step) -> value of one quantity of one layer (derived ones rebuilt as the LSTM defines them)
function accessor(layer, name) {
  const T = st.data.steps, L = st.data.levels, q = st.data.layers[layer].quantities, tab = tables(layer)[name];
  if (name === 'h') { const o = q.o.codes, c = q.tanh_c.codes; return (u, t) => tab[o[u * T + t] * L + c[u * T + t]]; }
  const codes = (name === 'c' ? q.tanh_c : q[name]).codes;
  return (u, t) => tab[codes[u * T + t]];
}
function value(layer, name, unit, step) { return accessor(layer, name)(unit, step); }
function range(name) {
  if (SIGMOID.has(name)) return [0, 1];
  if (name === 'c') { const b = Math.min(cLimit(), st.data.layers[st.layer].c_bound); return [-b, b]; }
  return [-1, 1];
}
function lut(name) { return SIGMOID.has(name) ? props.colormaps.sequential : props.colormaps.diverging; }
function colour(name, v) {
  const [lo, hi] = range(name);
  const k = Math.max(0, Math.min(255, Math.round((v - lo) / (hi - lo) * 255)));
  return lut(name)[k];
}
function css(rgb) { return `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`; }
// black or white text, whichever contrasts more with the background (WCAG's relative luminance: the
// better of the two is always at least 4.58:1, AA; a fixed luma cut left mid tones below it)
function inkOn(rgb) {
  const [r, g, b] = rgb.map((v) => { const c = v / 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
  const light = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (light + 0.05) / 0.05 >= 1.05 / (light + 0.05) ? '#000' : '#fff';
}

// ---------------------------------------------------------------- row order (over the shown steps)
// Per unit, how often each code (for h: each pair of o and tanh(c) codes) occurs over the shown
// steps: variance and saturation then come from the counts and the value table, not from T values.
function unitScores(layer, name, by) {
  const units = st.data.units, first = st.data.first, T = st.data.steps, L = st.data.levels;
  const q = st.data.layers[layer].quantities, tab = tables(layer)[name];
  const paired = name === 'h', bins = paired ? L * L : L, counts = new Uint32Array(bins);
  const codes = paired ? null : (name === 'c' ? q.tanh_c : q[name]).codes;
  const saturated = tab.map((v) => (SIGMOID.has(name) ? v < 0.1 || v > 0.9 : Math.abs(v) > 0.9));
  const n = Math.max(1, T - first), score = new Float64Array(units);
  for (let u = 0; u < units; u++) {
    counts.fill(0);
    if (paired) {
      const o = q.o.codes, c = q.tanh_c.codes;
      for (let t = first; t < T; t++) counts[o[u * T + t] * L + c[u * T + t]] += 1;
    } else {
      for (let t = first; t < T; t++) counts[codes[u * T + t]] += 1;
    }
    let sum = 0, sq = 0, sat = 0;
    for (let k = 0; k < bins; k++) {
      if (!counts[k]) continue;
      sum += counts[k] * tab[k]; sq += counts[k] * tab[k] * tab[k]; if (saturated[k]) sat += counts[k];
    }
    score[u] = by === 'variance' ? sq / n - (sum / n) ** 2 : sat / n;
  }
  return score;
}

function order() {
  const key = `${st.layer}/${st.quantity}/${st.order}`;
  if (st.orders[key]) return st.orders[key];
  const idx = Array.from({length: st.data.units}, (_, u) => u);
  if (st.order !== 'index') {
    const score = unitScores(st.layer, st.quantity, st.order);
    idx.sort((a, b) => score[b] - score[a] || a - b);
  }
  st.orders[key] = idx;
  return idx;
}

// ---------------------------------------------------------------- geometry shared by every time axis
// read once per repaint: reading clientWidth after the text's styles changed would force the
// browser to recompute them there and then
function width() { if (!st.width) st.width = Math.max(200, $('.lv-root').clientWidth); return st.width; }
function span() { return st.v1 - st.v0; }
function stepAt(x) {
  const w = width() - MARGIN;
  return Math.max(st.v0, Math.min(st.v1 - 1, st.v0 + Math.floor((x - MARGIN) / w * span())));
}
function xOf(step) { return MARGIN + (step - st.v0 + 0.5) / span() * (width() - MARGIN); }
function rowHeight() { return Math.max(1, Math.floor(HEAT_MAX / st.data.units)); }
function sized(canvas, height) {
  const w = width();
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== height) canvas.height = height;
  canvas.style.width = w + 'px'; canvas.style.height = height + 'px';
  return canvas.getContext('2d');
}

// ---------------------------------------------------------------- drawing
function drawHeat() {
  const units = st.data.units, rh = rowHeight(), height = units * rh + AXIS;
  const ctx = sized($('.lv-heat'), height);
  sized($('.lv-overlay'), height);
  ctx.clearRect(0, 0, width(), height);
  const cols = Math.min(span(), width() - MARGIN);
  const image = ctx.createImageData(cols, units);
  const rows = order(), table = lut(st.quantity), [lo, hi] = range(st.quantity), at = accessor(st.layer, st.quantity);
  const scale = 255 / (hi - lo);
  for (let x = 0; x < cols; x++) {
    const t = st.v0 + Math.floor(x * span() / cols);
    for (let r = 0; r < units; r++) {
      const rgb = table[Math.max(0, Math.min(255, Math.round((at(rows[r], t) - lo) * scale)))];
      const p = (r * cols + x) * 4;
      image.data[p] = rgb[0]; image.data[p + 1] = rgb[1]; image.data[p + 2] = rgb[2]; image.data[p + 3] = 255;
    }
  }
  const off = new OffscreenCanvas(cols, units);
  off.getContext('2d').putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, MARGIN, 0, width() - MARGIN, units * rh);
  ctx.fillStyle = '#333'; ctx.font = '10px sans-serif'; ctx.textAlign = 'right';
  const every = Math.max(1, Math.ceil(12 / rh));
  for (let r = 0; r < units; r += every) ctx.fillText(String(rows[r]), MARGIN - 3, r * rh + Math.min(rh, 10));
  ctx.save(); ctx.translate(9, units * rh / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = 'center';
  ctx.fillText(`units (by ${st.order})`, 0, 0); ctx.restore();
  ticks(ctx, units * rh + 11);
}

function ticks(ctx, y) {
  ctx.fillStyle = '#333'; ctx.font = '10px sans-serif'; ctx.textAlign = 'center';
  const every = Math.max(1, niceStep(span() / 10));
  for (let t = Math.ceil(st.v0 / every) * every; t < st.v1; t += every) ctx.fillText(String(t), xOf(t), y);
  ctx.textAlign = 'left'; ctx.fillText('step', 2, y);
}
function niceStep(x) { const p = 10 ** Math.floor(Math.log10(Math.max(1, x))); return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= x) || p * 10; }

function drawLines() {
  const height = 120, ctx = sized($('.lv-lines'), height);
  ctx.clearRect(0, 0, width(), height);
  const y = (v) => 8 + (1 - (v + 1) / 2) * (height - 16);
  ctx.strokeStyle = '#ccc'; ctx.beginPath(); ctx.moveTo(MARGIN, y(0)); ctx.lineTo(width(), y(0)); ctx.stroke();
  ctx.fillStyle = '#333'; ctx.font = '10px sans-serif'; ctx.textAlign = 'right';
  for (const v of [-1, 0, 1]) ctx.fillText(String(v), MARGIN - 3, y(v) + 3);
  const stride = Math.max(1, Math.floor(span() / (width() - MARGIN)));
  for (const name of ['i', 'f', 'o', 'g', 'tanh_c', 'h']) {
    ctx.strokeStyle = LINE_COLORS[name]; ctx.lineWidth = name === st.quantity ? 2 : 1; ctx.beginPath();
    const at = accessor(st.layer, name);
    for (let t = st.v0; t < st.v1; t += stride) {
      const px = xOf(t), py = y(at(st.unit, t));
      if (t === st.v0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    }
    ctx.stroke();
  }
  ctx.lineWidth = 1;
  $('.lv-legend').innerHTML = legend();
}

function legend() {
  let overlay = '';
  if (st.overlay) {
    const table = lut('g'), stops = [0, 64, 128, 192, 255].map((k) => `${css(table[k])} ${k / 2.55}%`).join(',');
    overlay = `<div><span class="lv-bar-scale" style="background:linear-gradient(to right,${stops})"></span> ` +
      `the output shows the ${st.overlay.title} (−${st.overlay.peak.toPrecision(2)} … +${st.overlay.peak.toPrecision(2)}); ` +
      `<button class="lv-clear-overlay">show the unit again</button></div>`;
  }
  return overlay + unitLegend();
}

function unitLegend() {
  const [lo, hi] = range(st.quantity), table = lut(st.quantity);
  const stops = [0, 64, 128, 192, 255].map((k) => `${css(table[k])} ${k / 2.55}%`).join(',');
  const lines = ['i', 'f', 'o', 'g', 'tanh_c', 'h'].map((n) =>
    `<span><span style="color:${LINE_COLORS[n]}" aria-hidden="true">━</span> ${TITLES[n]}</span>`).join(' ');  // words in the text colour: AA contrast
  return `<span class="lv-bar-scale" style="background:linear-gradient(to right,${stops})"></span>` +
    ` ${TITLES[st.quantity]}: ${lo.toFixed(2)} … ${hi.toFixed(2)} &nbsp;·&nbsp; ` +
    `lines: ${st.data.layers[st.layer].name}, unit ${st.unit}: ${lines}`;
}

function drawStrip() {
  const track = st.data.track || {kind: 'labels'};
  const height = track.kind === 'roll' ? 140 : track.kind === 'spectrogram' ? 100 : 22;
  const ctx = sized($('.lv-strip'), height);
  ctx.clearRect(0, 0, width(), height);
  const cellW = (width() - MARGIN) / span();
  ctx.fillStyle = '#333'; ctx.font = '10px sans-serif'; ctx.textAlign = 'right';
  ctx.fillText({labels: 'text', roll: 'notes', pen: 'pen', spectrogram: 'mel'}[track.kind] || '', MARGIN - 3, 12);
  if (track.kind === 'spectrogram' && st.data.image) {
    const im = st.data.image, cols = Math.min(span(), width() - MARGIN);
    const image = ctx.createImageData(cols, im.rows);
    for (let x = 0; x < cols; x++) {
      const t = st.v0 + Math.floor(x * span() / cols);
      for (let r = 0; r < im.rows; r++) {
        const rgb = props.colormaps.sequential[im.codes[r * st.data.steps + t] * 2];
        const p = ((im.rows - 1 - r) * cols + x) * 4;
        image.data[p] = rgb[0]; image.data[p + 1] = rgb[1]; image.data[p + 2] = rgb[2]; image.data[p + 3] = 255;
      }
    }
    const off = new OffscreenCanvas(cols, im.rows);
    off.getContext('2d').putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, MARGIN, 0, width() - MARGIN, height - 6);
  }
  const at = accessor(st.layer, st.quantity);
  for (let t = st.v0; t < st.v1; t++) {
    const over = overlayValue(t);
    const x = MARGIN + (t - st.v0) * cellW, rgb = over === null ? colour(st.quantity, at(st.unit, t))
      : (Number.isNaN(over) ? [235, 235, 235] : colour('g', over));
    if (track.kind === 'roll') {
      const pitch = track.pitches[t];
      if (pitch < 0) continue;
      const y = (1 - (pitch - track.low) / Math.max(1, track.high - track.low)) * (height - 8) + 2;
      ctx.fillStyle = css(rgb); ctx.fillRect(x, y - 2, Math.max(1, cellW), 5);
    } else if (track.kind === 'spectrogram') {
      ctx.fillStyle = css(rgb); ctx.fillRect(x, height - 5, Math.max(1, cellW), 5);
    } else {
      ctx.fillStyle = css(rgb); ctx.fillRect(x, 2, Math.max(1, cellW), height - 4);
      if (track.kind === 'pen' && track.pen_up && track.pen_up[t]) { ctx.fillStyle = '#000'; ctx.fillRect(x, 0, 1, height); }
      if (cellW >= 7 && track.kind === 'labels') {
        ctx.fillStyle = inkOn(rgb); ctx.textAlign = 'center'; ctx.font = '12px monospace';
        ctx.fillText(shown(st.data.labels[t]), x + cellW / 2, height - 6);
      }
    }
  }
}

function shown(label) { return label === '\n' ? '⏎' : label === ' ' ? '␣' : label; }

function paintText() {
  const box = $('.lv-text');
  const track = st.data.track || {kind: 'labels'};
  if (track.kind !== 'labels') { box.style.display = 'none'; return; }
  box.style.display = '';
  if (box.dataset.version !== String(st.version)) {  // build the spans once per payload
    const frag = document.createDocumentFragment();
    for (let t = st.data.first; t < st.data.steps; t++) {
      const span = document.createElement('span');
      span.className = t < st.data.prompt_length ? 'lv-ch lv-prompt' : 'lv-ch';
      span.dataset.step = t; span.textContent = st.data.labels[t];
      frag.appendChild(span);
    }
    box.replaceChildren(frag); box.dataset.version = String(st.version);
  }
  // The characters in sight are painted now; the rest while the browser is idle (restyling all
  // 5,000 at once cost ~20 ms of style work per repaint). One style string per colour, written only
  // where a character's colour changed.
  const overlaid = st.overlay !== null && st.overlay !== undefined;
  const at = overlaid ? (u, t) => overlayValue(t) : accessor(st.layer, st.quantity);
  const [lo, hi] = overlaid ? [-1, 1] : range(st.quantity), table = lut(overlaid ? 'g' : st.quantity);
  const styles = table.map((rgb) => `background:${css(rgb)};color:${inkOn(rgb)}`);
  const blank = 'background:#eee;color:#555';  // 6.4:1
  const spans = box.children, first = st.data.first;
  const key = `${st.version}/${st.layer}/${st.quantity}/${st.unit}/${overlaid ? st.overlay.id : ''}`;
  st.paintSpans = (a, b) => {
    for (let k = Math.max(0, a); k < Math.min(spans.length, b); k++) {
      const v = at(st.unit, first + k);
      const style = Number.isNaN(v) ? blank : styles[Math.max(0, Math.min(255, Math.round((v - lo) / (hi - lo) * 255)))];
      if (spans[k].lvColour !== style) { spans[k].style.cssText = style; spans[k].lvColour = style; }
    }
  };
  st.textKey = key;
  paintVisibleText();
  let next = 0;
  const rest = (deadline) => {
    if (st.textKey !== key) return;  // a newer repaint took over
    while (next < spans.length && deadline.timeRemaining() > 2) { st.paintSpans(next, next + 400); next += 400; }
    if (next < spans.length) requestIdleCallback(rest);
  };
  requestIdleCallback(rest);
  box.querySelector('.lv-cursor')?.classList.remove('lv-cursor');
  if (st.cursor !== null && st.cursor >= first) spans[st.cursor - first]?.classList.add('lv-cursor');
}

// the spans inside the text box's scrolled view (binary search on their offsets; colours never move them)
function paintVisibleText() {
  const box = $('.lv-text'), spans = box.children;
  if (!st.paintSpans || !spans.length) return;
  // offsets are measured from the first character (the spans' offsetParent need not be the box)
  const origin = spans[0].offsetTop, top = box.scrollTop, bottom = top + box.clientHeight;
  const y = (k) => spans[k].offsetTop - origin;
  let lo = 0, hi = spans.length - 1;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (y(mid) + spans[mid].offsetHeight < top) lo = mid + 1; else hi = mid; }
  let end = lo;
  while (end < spans.length && y(end) <= bottom) end += 200;
  st.paintSpans(lo - 50, end + 50);
}

function drawPen() {
  const canvas = $('.lv-pen'), track = st.data.track || {};
  if (track.kind !== 'pen') { canvas.style.display = 'none'; return; }
  canvas.style.display = '';
  const [w, h] = [width(), 220], ctx = sized(canvas, h);
  ctx.clearRect(0, 0, w, h);
  const geometry = penGeometry(track, w, h);
  ctx.lineWidth = 2; ctx.lineCap = 'round';
  const at = accessor(st.layer, st.quantity);
  for (let t = st.data.first + 1; t < st.data.steps; t++) {
    if (track.pen_up[t - 1]) continue;
    ctx.strokeStyle = css(colour(st.quantity, at(st.unit, t)));
    ctx.beginPath(); ctx.moveTo(...geometry.at(t - 1)); ctx.lineTo(...geometry.at(t)); ctx.stroke();
  }
  if (st.cursor !== null) {
    ctx.strokeStyle = '#000'; ctx.lineWidth = 2; ctx.beginPath();
    ctx.arc(...geometry.at(st.cursor), 6, 0, 2 * Math.PI); ctx.stroke();
  }
}

function penGeometry(track, w, h) {
  const xs = track.x, ys = track.y;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let t = st.data.first; t < xs.length; t++) { x0 = Math.min(x0, xs[t]); x1 = Math.max(x1, xs[t]); y0 = Math.min(y0, ys[t]); y1 = Math.max(y1, ys[t]); }
  const scale = Math.min((w - 20) / Math.max(1e-6, x1 - x0), (h - 20) / Math.max(1e-6, y1 - y0));
  // x right, y down: as the strokes are drawn everywhere else
  return {at: (t) => [10 + (xs[t] - x0) * scale, 10 + (ys[t] - y0) * scale],
          nearest: (px, py) => {
            let best = 0, bestD = Infinity;
            for (let t = st.data.first; t < xs.length; t++) {
              const [x, y] = [10 + (xs[t] - x0) * scale, 10 + (ys[t] - y0) * scale];
              const d = (x - px) ** 2 + (y - py) ** 2;
              if (d < bestD) { bestD = d; best = t; }
            }
            return best;
          }};
}

// Karpathy et al. (2015) fig. 3: per layer, each unit's fraction of steps with a gate < 0.1 (x) and
// > 0.9 (y), for i, f and o; hovering a point names the unit, clicking it picks that unit.
const SAT_SIZE = 210, SAT_PAD = 30;
function saturation() {
  if (st.saturation) return st.saturation;
  const low = Math.floor(0.1 * (st.data.levels - 1)), high = Math.ceil(0.9 * (st.data.levels - 1));
  const n = Math.max(1, st.data.steps - st.data.first);
  st.saturation = st.data.layers.map((layer) => ['i', 'f', 'o'].map((gate) => {
    const codes = layer.quantities[gate].codes, points = [];
    for (let u = 0; u < st.data.units; u++) {
      let below = 0, above = 0;
      for (let t = st.data.first; t < st.data.steps; t++) {
        const code = codes[u * st.data.steps + t];
        if (code < low) below += 1; else if (code > high) above += 1;
      }
      points.push([below / n, above / n]);
    }
    return points;
  }));
  return st.saturation;
}
function satXY(k, [x, y]) { return [k * (SAT_SIZE + SAT_PAD) + SAT_PAD + x * (SAT_SIZE - 8), 4 + (1 - y) * (SAT_SIZE - 8)]; }
function drawSaturation() {
  const layers = saturation(), canvas = $('.lv-sat');
  const w = layers.length * (SAT_SIZE + SAT_PAD) + 10, h = SAT_SIZE + 26;
  canvas.width = w; canvas.height = h; canvas.style.width = w + 'px'; canvas.style.height = h + 'px';
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, w, h); ctx.font = '10px sans-serif';
  layers.forEach((gates, k) => {
    const [x0, y0] = satXY(k, [0, 0]), [x1, y1] = satXY(k, [1, 1]);
    ctx.strokeStyle = '#999'; ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y0); ctx.lineTo(x0, y1); ctx.closePath(); ctx.stroke();
    ctx.fillStyle = '#333'; ctx.textAlign = 'center';
    ctx.fillText(`${st.data.layers[k].name}: < 0.1 →`, (x0 + x1) / 2, y0 + 14);
    ctx.save(); ctx.translate(x0 - 8, (y0 + y1) / 2); ctx.rotate(-Math.PI / 2); ctx.fillText('> 0.9 →', 0, 0); ctx.restore();
    ['i', 'f', 'o'].forEach((gate, g) => {
      ctx.fillStyle = LINE_COLORS[gate] + '99';
      for (const point of gates[g]) { const [x, y] = satXY(k, point); ctx.fillRect(x - 2, y - 2, 4, 4); }
    });
    const [ux, uy] = satXY(k, gates[1][st.unit]);  // the chosen unit's forget gate, ringed
    ctx.strokeStyle = '#000'; ctx.beginPath(); ctx.arc(ux, uy, 5, 0, 2 * Math.PI); ctx.stroke();
  });
  $('.lv-sat-legend').innerHTML = ['i', 'f', 'o'].map((n) => `<span><span style="color:${LINE_COLORS[n]}" aria-hidden="true">■</span> ${TITLES[n]}</span>`).join(' ') +
    ' — gate saturation per unit (Karpathy et al. 2015); ringed: the chosen unit\'s forget gate';
}
function saturationUnitAt(x, y) {
  let best = null, bestD = 36;
  saturation().forEach((gates, k) => gates.forEach((points) => points.forEach((point, u) => {
    const [px, py] = satXY(k, point), d = (px - x) ** 2 + (py - y) ** 2;
    if (d < bestD) { bestD = d; best = {layer: k, unit: u}; }
  })));
  return best;
}

function drawOverlay() {
  const units = st.data.units, rh = rowHeight();
  const ctx = $('.lv-overlay').getContext('2d');
  ctx.clearRect(0, 0, width(), units * rh + AXIS);
  const rows = order(), row = rows.indexOf(st.unit);
  ctx.strokeStyle = 'rgba(255,255,255,0.9)'; ctx.lineWidth = 1;
  ctx.strokeRect(MARGIN, row * rh - 0.5, width() - MARGIN, rh + 1);
  if (st.brush) {
    const [a, b] = [Math.min(...st.brush), Math.max(...st.brush)];
    ctx.fillStyle = 'rgba(255,255,255,0.3)';
    ctx.fillRect(xOf(a) - 0.5 * (width() - MARGIN) / span(), 0, (b - a + 1) * (width() - MARGIN) / span(), units * rh);
  }
  $('.lv-root').dataset.cursor = st.cursor ?? '';  // where the cursor is (browser tests of linked viewers)
  for (const [step, style] of [[st.cursor, '#ff0'], [st.hover, 'rgba(255,255,255,0.6)']]) {
    if (step === null || step === undefined || step < st.v0 || step >= st.v1) continue;
    ctx.strokeStyle = style; ctx.beginPath(); ctx.moveTo(xOf(step), 0); ctx.lineTo(xOf(step), units * rh); ctx.stroke();
  }
}

function drawAll() {
  if (!st.data) return;
  timed(() => {
    const parts = {};
    for (const [name, draw] of Object.entries({drawHeat, drawLines, drawStrip, drawPen, paintText, drawOverlay, drawSaturation})) {
      const started = performance.now();
      draw();
      parts[name] = Math.round(performance.now() - started);
    }
    $('.lv-root').dataset.parts = JSON.stringify(parts);  // where a repaint's time goes (benches)
    $('.lv-scroll').max = String(Math.max(st.data.first, st.data.steps - span()));
    $('.lv-scroll').min = String(st.data.first);
    $('.lv-scroll').value = String(st.v0);
    $('.lv-unit').value = String(st.unit);
  });
  $('.lv-root').dataset.view = `${st.v0},${st.v1},${MARGIN}`;  // where a step is drawn (browser tests)
}

// ---------------------------------------------------------------- interaction
function tip(html, x, y) {
  const box = $('.lv-tip');
  if (html === null) { box.style.display = 'none'; return; }
  box.innerHTML = html; box.style.display = 'block';
  box.style.left = (x + 14) + 'px'; box.style.top = (y + 10) + 'px';
}

function describe(step, unit, name) {
  const label = JSON.stringify(st.data.labels[step] ?? '');
  return `step ${step} ${label} · ${st.data.layers[st.layer].name} · unit ${unit}<br>` +
    `${TITLES[name]} = <b class="lv-value">${value(st.layer, name, unit, step).toFixed(3)}</b>`;
}

function heatPoint(event) {
  const rect = $('.lv-overlay').getBoundingClientRect();
  const x = event.clientX - rect.left, y = event.clientY - rect.top;
  const row = Math.floor(y / rowHeight());
  return {x, y, step: stepAt(x), unit: row >= 0 && row < st.data.units ? order()[row] : null, gutter: x < MARGIN};
}

function setCursor(step, announce = true) {
  st.cursor = Math.max(st.data.first, Math.min(st.data.steps - 1, step));
  if (st.cursor < st.v0 || st.cursor >= st.v1) { const s = span(); st.v0 = Math.max(st.data.first, Math.min(st.data.steps - s, st.cursor - Math.floor(s / 2))); st.v1 = st.v0 + s; drawAll(); }
  else { drawOverlay(); drawPen(); paintText(); }
  if (announce) {
    send({kind: 'step', step: st.cursor, unit: st.unit, layer: st.layer, quantity: st.quantity});
    tellLinked({step: st.cursor});
  }
}

// keys move the cursor at once and tell the server the step they stop on (a request per key press would queue up)
let keyTimer = null;
function keyCursor(step) {
  setCursor(step, false);
  clearTimeout(keyTimer);
  keyTimer = setTimeout(() => setCursor(st.cursor), 250);
}

// a linked viewer (two models reading one output) follows this one's cursor and hover, and back
function tellLinked(detail) {
  if (props.link_id) document.dispatchEvent(new CustomEvent('lstm-viewer-cursor', {detail: {viewer: props.viewer_id, ...detail}}));
}

// every repaint goes through here, so the browser tests and benches can read how long it took
function timed(paint) {
  const started = performance.now(), root = $('.lv-root');
  paint();
  root.dataset.paintMs = (performance.now() - started).toFixed(1);
  root.dataset.painted = String(Number(root.dataset.painted || 0) + 1);
  // and until the frame showing it is drawn (the browser's style, layout and paint included)
  requestAnimationFrame(() => setTimeout(() => { root.dataset.frameMs = (performance.now() - started).toFixed(1); }, 0));
}

function setUnit(unit) {
  st.unit = Math.max(0, Math.min(st.data.units - 1, unit));
  st.overlay = null;  // choosing a unit means: paint the output by it again
  timed(() => { drawLines(); drawStrip(); drawPen(); paintText(); drawOverlay(); drawSaturation(); });
}

function zoom(factor, around) {
  const first = st.data.first, total = st.data.steps - first;
  const s = Math.max(Math.min(10, total), Math.min(total, Math.round(span() * factor)));
  const centre = around ?? (st.v0 + span() / 2);
  st.v0 = Math.round(Math.max(first, Math.min(st.data.steps - s, centre - s * (centre - st.v0) / span())));
  st.v1 = st.v0 + s;
  drawAll();
}

function wire() {
  const overlay = $('.lv-overlay');
  let down = null;
  overlay.addEventListener('mousemove', (event) => {
    if (!st.data) return;
    const p = heatPoint(event);
    if (down !== null && !p.gutter) { st.brush = [down, p.step]; }
    st.hover = p.step; drawOverlay(); tellLinked({hover: p.step});
    if (p.unit !== null) tip(describe(p.step, p.unit, st.quantity), p.x, p.y); else tip(null);
  });
  overlay.addEventListener('mouseleave', () => { st.hover = null; tip(null); if (st.data) drawOverlay(); tellLinked({hover: null}); });
  overlay.addEventListener('mousedown', (event) => { if (st.data && !heatPoint(event).gutter) { down = heatPoint(event).step; st.brush = null; } });
  overlay.addEventListener('mouseup', (event) => {
    if (!st.data) return;
    const p = heatPoint(event), start = down;
    down = null;
    // a row's label picks the unit; with shift it is also added to the experiments' Intervene units (said there)
    if (p.gutter) {
      if (p.unit !== null) { setUnit(p.unit); send({kind: 'unit', unit: p.unit, layer: st.layer, add: event.shiftKey}); }
      return;
    }
    if (start !== null && start !== p.step) {
      st.brush = [Math.min(start, p.step), Math.max(start, p.step)]; drawOverlay();
      send({kind: 'range', start: st.brush[0], end: st.brush[1], layer: st.layer, quantity: st.quantity});
      return;
    }
    st.brush = null;
    if (p.unit !== null) st.unit = p.unit;
    drawLines(); drawStrip();
    setCursor(p.step);
  });
  overlay.addEventListener('wheel', (event) => {
    if (!st.data) return;
    event.preventDefault();
    zoom(event.deltaY > 0 ? 1.25 : 0.8, heatPoint(event).step);
  }, {passive: false});
  $('.lv-strip').addEventListener('click', (event) => {
    if (!st.data) return;
    const x = event.clientX - $('.lv-strip').getBoundingClientRect().left;
    if (x >= MARGIN) setCursor(stepAt(x));
  });
  $('.lv-strip').addEventListener('mousemove', (event) => {
    if (!st.data) return;
    const rect = $('.lv-strip').getBoundingClientRect(), x = event.clientX - rect.left;
    if (x < MARGIN) { tip(null); return; }
    tip(describe(stepAt(x), st.unit, st.quantity), x, event.clientY - $('.lv-root').getBoundingClientRect().top);
  });
  $('.lv-strip').addEventListener('mouseleave', () => tip(null));
  $('.lv-text').addEventListener('click', (event) => {
    const step = event.target.dataset && event.target.dataset.step;
    if (step !== undefined) setCursor(Number(step));
  });
  $('.lv-pen').addEventListener('click', (event) => {
    if (!st.data) return;
    const rect = $('.lv-pen').getBoundingClientRect();
    setCursor(penGeometry(st.data.track, width(), 220).nearest(event.clientX - rect.left, event.clientY - rect.top));
  });
  $('.lv-sat').addEventListener('mousemove', (event) => {
    if (!st.data) return;
    const rect = $('.lv-sat').getBoundingClientRect(), rootRect = $('.lv-root').getBoundingClientRect();
    const hit = saturationUnitAt(event.clientX - rect.left, event.clientY - rect.top);
    tip(hit ? `${st.data.layers[hit.layer].name}, unit ${hit.unit} (click to show it)` : null,
        event.clientX - rootRect.left, event.clientY - rootRect.top);
  });
  $('.lv-sat').addEventListener('mouseleave', () => tip(null));
  $('.lv-sat').addEventListener('click', (event) => {
    if (!st.data) return;
    const rect = $('.lv-sat').getBoundingClientRect();
    const hit = saturationUnitAt(event.clientX - rect.left, event.clientY - rect.top);
    if (!hit) return;
    st.layer = hit.layer; $('.lv-layer').value = String(hit.layer);
    st.unit = hit.unit; drawAll();
  });
  document.addEventListener('lstm-viewer-overlay', (event) => {
    if (event.detail.viewer !== props.viewer_id || !st.data) return;
    const values = event.detail.values || [];
    st.overlay = {values, title: event.detail.title || 'overlay', id: Math.random(),
                  peak: Math.max(1e-12, ...values.filter(Number.isFinite).map((v) => Math.abs(v)))};
    timed(() => { drawStrip(); paintText(); drawLines(); });
  });
  document.addEventListener('lstm-viewer-goto', (event) => {
    if (event.detail.viewer !== props.viewer_id || !st.data) return;
    const step = Number(event.detail.step), end = event.detail.end;
    st.brush = end === undefined || end === null ? null : [step, Number(end)];  // a match's steps stay marked
    if (st.brush && (step < st.v0 || Number(end) >= st.v1)) {
      const s = Math.max(span(), Number(end) - step + 20);  // the whole match in view, a little around it
      st.v0 = Math.max(st.data.first, Math.min(st.data.steps - s, step - 10)); st.v1 = Math.min(st.data.steps, st.v0 + s);
      drawAll();
    }
    setCursor(step);
  });
  document.addEventListener('lstm-viewer-unit', (event) => {
    const d = event.detail;
    if (d.viewer !== props.viewer_id || !st.data) return;
    st.layer = Math.max(0, Math.min(st.data.layers.length - 1, Number(d.layer) || 0)); $('.lv-layer').value = String(st.layer);
    if (d.quantity && d.quantity in TITLES) { st.quantity = d.quantity; $('.lv-quantity').value = d.quantity; }
    st.unit = Math.max(0, Math.min(st.data.units - 1, Number(d.unit) || 0)); st.overlay = null;
    drawAll();
    $('.lv-root').scrollIntoView({block: 'nearest'});
  });
  document.addEventListener('lstm-viewer-cursor', (event) => {
    const d = event.detail;
    if (!props.link_id || d.viewer !== props.link_id || !st.data) return;
    if ('hover' in d) { st.hover = d.hover; drawOverlay(); }
    if ('step' in d) setCursor(Number(d.step), false);  // not announced: no echo back
  });
  $('.lv-legend').addEventListener('click', (event) => {
    if (!event.target.classList.contains('lv-clear-overlay')) return;
    st.overlay = null; timed(() => { drawStrip(); paintText(); drawLines(); });
  });
  $('.lv-layer').addEventListener('change', (e) => { st.layer = Number(e.target.value); st.overlay = null; drawAll(); });
  $('.lv-quantity').addEventListener('change', (e) => { st.quantity = e.target.value; st.overlay = null; drawAll(); });
  $('.lv-order').addEventListener('change', (e) => { st.order = e.target.value; timed(() => { drawHeat(); drawOverlay(); }); });
  $('.lv-unit').addEventListener('change', (e) => setUnit(Number(e.target.value) || 0));
  $('.lv-scroll').addEventListener('input', (e) => { const s = span(); st.v0 = Number(e.target.value); st.v1 = st.v0 + s; drawAll(); });
  $('.lv-zoom-in').addEventListener('click', () => st.data && zoom(0.5, st.cursor));
  $('.lv-zoom-out').addEventListener('click', () => st.data && zoom(2, st.cursor));
  $('.lv-fit').addEventListener('click', () => { if (st.data) { st.v0 = st.data.first; st.v1 = st.data.steps; drawAll(); } });
  for (const button of element.querySelectorAll('.lv-export')) {
    button.addEventListener('click', () => st.data && send({kind: 'export', format: button.dataset.format, layer: st.layer,
      quantity: st.quantity, unit: st.unit, order: st.order, start: st.v0, end: st.v1}));
  }
  $('.lv-root').addEventListener('keydown', (event) => {
    if (!st.data || event.target.tagName === 'INPUT' || event.target.tagName === 'SELECT') return;
    const moves = {ArrowLeft: -1, ArrowRight: 1};
    if (event.key in moves) { event.preventDefault(); keyCursor((st.cursor ?? st.v0) + moves[event.key]); }
    if (event.key === 'Home' || event.key === 'End') {
      event.preventDefault(); keyCursor(event.key === 'Home' ? st.data.first : st.data.steps - 1);
    }
    if (event.key === '+') { event.preventDefault(); send({kind: 'unit', unit: st.unit, layer: st.layer, add: true}); }
    if (event.key === 'ArrowUp' || event.key === 'ArrowDown') {
      event.preventDefault();
      const rows = order(), row = rows.indexOf(st.unit) + (event.key === 'ArrowUp' ? -1 : 1);
      setUnit(rows[Math.max(0, Math.min(rows.length - 1, row))]);
    }
  });
  new ResizeObserver(() => { st.width = 0; drawAll(); }).observe($('.lv-root'));
  $('.lv-text').addEventListener('scroll', () => paintVisibleText(), {passive: true});
}

async function load() {
  const payload = props.value;
  if (!payload || !payload.layers || !payload.layers.length) {
    st.data = null; $('.lv-root').dataset.ready = 'empty'; $('.lv-status').textContent = 'Generate to see the gates here.';
    return;
  }
  $('.lv-root').dataset.ready = 'loading';
  try {
    st.data = await decode(payload);
  } catch (error) {
    st.data = null; $('.lv-root').dataset.ready = 'error';
    $('.lv-status').textContent = `The viewer could not read this trace: ${error.message}. Generate again.`;
    return;
  }
  st.version += 1; st.orders = {}; st.saturation = null; st.overlay = null;
  st.layer = Math.min(st.layer, st.data.layers.length - 1); st.unit = Math.min(st.unit, st.data.units - 1);
  st.v0 = st.data.first; st.v1 = st.data.steps; st.cursor = null; st.brush = null;
  $('.lv-layer').innerHTML = st.data.layers.map((l, k) => `<option value="${k}">${l.name}</option>`).join('');
  $('.lv-layer').value = String(st.layer);
  $('.lv-status').textContent = `${payload.title || ''} ${st.data.steps - st.data.first} steps × ${st.data.units} units × ` +
    `${st.data.layers.length} layers. Hover for values; click a step or a unit row; drag to select steps; ` +
    `wheel to zoom; with the viewer focused ←/→ (Home/End) move the step, ↑/↓ the unit, ` +
    `+ adds it to Intervene.`;
  drawAll();
  $('.lv-root').dataset.ready = 'yes';
  $('.lv-loaded').textContent = payload.blob;  // which trace is drawn (benches wait for it to change)
}

$('.lv-quantity').innerHTML = Object.entries(TITLES).map(([k, t]) => `<option value="${k}">${t}</option>`).join('');
$('.lv-quantity').value = st.quantity;
wire();
load();
watch('value', load);
