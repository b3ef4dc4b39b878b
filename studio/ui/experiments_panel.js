// The experiments panel's results, drawn from props.value (studio/ui/experiments_panel.py): a probe's
// ranked units with their activations next to the feature, a pattern's matches with context, an
// intervention's two outputs side by side with the first divergence and KL per step, a comparison's
// CKA per layer pair. A click steers the trace viewer through DOM events ('lstm-viewer-unit' shows a
// unit, 'lstm-viewer-goto' moves the cursor to a step and marks a match's steps).
// Runs as gr.HTML's js_on_load: `element`, `props`, `watch` in scope.

const box = element.querySelector('.xp-root');
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const shown = (label) => (label === '\n' ? '⏎' : label === ' ' ? '␣' : label);
const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toFixed(d));
const tell = (name, detail) => document.dispatchEvent(new CustomEvent(name, {detail: {viewer: props.viewer_id, ...detail}}));
const joined = (labels) => (labels.every((l) => l.length <= 1) ? labels.join('') : labels.join(' '));

// one line per series over the same steps, the feature shaded (on/off) or drawn grey (numeric) under it
function sparkline(values, track, color, w = 520, h = 34) {
  const n = Math.max(values.length, 1), x = (k) => (k + 0.5) / n * w;
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  const y = (v) => h - 2 - (v - lo) / span * (h - 4);
  const binary = track.every((v) => v === 0 || v === 1);
  let under = '';
  if (binary) {
    under = track.map((v, k) => (v ? `<rect x="${(k / n * w).toFixed(1)}" y="0" width="${(w / n + 0.3).toFixed(1)}" height="${h}" fill="#fde0c5"/>` : '')).join('');
  } else {
    const tlo = Math.min(...track), tspan = (Math.max(...track) - tlo) || 1;
    under = `<polyline fill="none" stroke="#bbb" stroke-width="1" points="${track.map((v, k) => `${x(k).toFixed(1)},${(h - 2 - (v - tlo) / tspan * (h - 4)).toFixed(1)}`).join(' ')}"/>`;
  }
  const line = `<polyline fill="none" stroke="${color}" stroke-width="1.2" points="${values.map((v, k) => `${x(k).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`;
  return `<svg class="xp-spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${under}${line}</svg>`;
}

function probe(a) {
  const colors = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e'];
  const win = a.window;
  const rows = a.hits.map((hit, k) => `<tr class="xp-hit" data-layer="${hit.layer}" data-unit="${hit.unit}" data-quantity="${hit.quantity}">` +
    `<td>${k + 1}</td><td>layer ${hit.layer}</td><td>unit ${hit.unit}</td><td>${hit.quantity}</td>` +
    `<td><b>${fmt(hit.score)}</b></td><td>${k < 5 && win.series[k] ? sparkline(win.series[k], win.track, colors[k]) : ''}</td></tr>`).join('');
  const labels = joined(win.labels);
  return `<div class="xp-block"><h4>Units that track “${esc(a.feature)}”: ${a.measure} over ${a.steps.toLocaleString()} steps ` +
    `(on in ${fmt(100 * a.on_fraction, 1)}% of them; ${esc(a.sources.join(', '))})</h4>` +
    `<div class="xp-small">${a.measure === 'AUC' ? 'AUC 1: the unit is higher wherever the feature is on; 0: lower; 0.5: unrelated.' : 'Correlation with the feature: ±1 follows it exactly.'} ` +
    `Click a row to open the unit in the viewer. Lines: the unit over ${esc(win.where)}, the feature ${a.measure === 'AUC' ? 'shaded' : 'in grey'} under it.</div>` +
    `<table class="xp-table"><tr><th>#</th><th>layer</th><th>unit</th><th>quantity</th><th>${a.measure}</th><th>activation next to the feature</th></tr>${rows}</table>` +
    (labels.length < 400 ? `<div class="xp-context">${esc(labels).replace(/\n/g, '⏎')}</div>` : '') + '</div>';
}

function pattern(a) {
  if (!a.units.length) {
    return `<div class="xp-block xp-message">No unit of ${esc(a.layer_name)} keeps ${a.quantity} above ${fmt(a.threshold, 2)} ` +
      `at every step ${a.start}–${a.end}. Lower the threshold, select fewer steps, or try another layer or quantity.</div>`;
  }
  const items = a.matches.map((m) => `<li class="xp-match${m.on_screen ? ' xp-onscreen' : ''}${m.selection ? ' xp-selected' : ''}" ` +
    `data-start="${m.start}" data-end="${m.end}">` +
    `<span class="xp-where">${esc(m.source)}, steps ${m.start}–${m.end} (${m.length})${m.selection ? ' · your selection' : ''}</span> ` +
    `<code>${esc(joined(m.before)).replace(/\n/g, '⏎')}<mark>${esc(joined(m.inside)).replace(/\n/g, '⏎')}</mark>${esc(joined(m.after)).replace(/\n/g, '⏎')}</code></li>`).join('');
  return `<div class="xp-block"><h4>${a.units.length} unit${a.units.length > 1 ? 's' : ''} of ${esc(a.layer_name)} keep ${a.quantity} above ` +
    `${fmt(a.threshold, 2)}${a.auto_threshold ? ' (set from your selection)' : ''} ` +
    `at every step ${a.start}–${a.end}: ${a.units.slice(0, 40).join(', ')}${a.units.length > 40 ? ', …' : ''}</h4>` +
    `<div class="xp-small">${a.total} place${a.total === 1 ? '' : 's'} where they are all on together, longest first` +
    `${a.total > a.matches.length ? ` (the first ${a.matches.length} shown)` : ''}. Click one in this output to see it in the viewer.</div>` +
    `<ol class="xp-matches">${items}</ol></div>`;
}

function klChart(a) {
  if (!a.kl) return `<div class="xp-small">No per-step divergence: ${esc(a.measure)}.</div>`;
  const w = 640, h = 60, n = Math.max(a.kl.length, 1), peak = Math.max(1e-9, ...a.kl), bw = w / n;
  const bars = a.kl.map((v, k) => `<rect x="${(k * bw).toFixed(2)}" y="${(h - v / peak * (h - 2)).toFixed(2)}" width="${Math.max(bw - 0.3, 0.4).toFixed(2)}" ` +
    `height="${Math.max(v / peak * (h - 2), 0).toFixed(2)}" fill="#756bb1"><title>step ${a.first + k}: ${Number(v).toPrecision(3)}</title></rect>`).join('');
  const mark = (step, color) => (step === null ? '' : `<line x1="${(step * bw).toFixed(1)}" x2="${(step * bw).toFixed(1)}" y1="0" y2="${h}" stroke="${color}" stroke-width="2"/>`);
  return `<h4>Per step: ${esc(a.measure)}, original ‖ changed (up to ${fmt(peak, 3)})</h4>` +
    `<svg class="xp-kl" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${bars}${mark(a.from_step - a.first, '#1b9e77')}${mark(a.first_divergence, '#d73027')}</svg>` +
    `<div class="xp-small"><span style="color:#1b9e77">■</span> the intervention starts · <span style="color:#d73027">■</span> the outputs part</div>`;
}

function output(o, a) {
  const d = a.first_divergence;
  let body;
  if (a.joined) {  // one character per step: shown as running text
    const t = o.labels;
    body = d === null ? `<pre class="xp-text">${esc(t.join(''))}</pre>` :
      `<pre class="xp-text">${esc(t.slice(0, d).join(''))}<mark class="xp-diverged">${esc(t.slice(d).join(''))}</mark></pre>`;
  } else {
    body = `<div class="xp-labels">${esc(o.labels.slice(0, 200).join(' '))}${o.labels.length > 200 ? ' …' : ''}</div>`;
  }
  const media = Object.entries(o.media).map(([kind, url]) => (url.endsWith('.wav') ? `<audio controls src="${url}"></audio>` :
    url.endsWith('.svg') ? `<img class="xp-picture" src="${url}" alt="${o.name} output">` : '')).join('');
  return `<div class="xp-output" data-name="${o.name}"><h4>${o.name === 'original' ? 'Original' : 'Changed'}</h4>${media}${body}</div>`;
}

function intervene(a) {
  const d = a.first_divergence;
  const where = d === null ? 'The two outputs are the same: this change did not alter what was sampled.' :
    `They part at step ${a.first + d} (the ${d + 1}${['st', 'nd', 'rd'][d] || 'th'} shown step), from the intervention at step ${a.from_step}.`;
  return `<div class="xp-block"><h4>${esc(a.action)} for units ${esc(a.units)} from step ${a.from_step}, same settings and seed</h4>` +
    `<div class="xp-summary" data-divergence="${d === null ? 'none' : d}">${where}</div>` +
    `<div class="xp-side">${a.outputs.map((o) => output(o, a)).join('')}</div>${klChart(a)}</div>`;
}

function compare(a) {
  const value = Object.fromEntries(a.cka.map((c) => [`${c.a},${c.b}`, c.cka]));
  const head = a.names_b.map((n) => `<th>${esc(a.model_b)} ${esc(n)}</th>`).join('');
  const rows = a.names_a.map((n, i) => `<tr><th>${esc(a.model_a)} ${esc(n)}</th>` + a.names_b.map((_, j) => {
    const v = value[`${i},${j}`];
    return `<td class="xp-cka" style="background:rgba(117,107,177,${fmt(v, 2)})">${fmt(v, 3)}</td>`;
  }).join('') + '</tr>').join('');
  return `<div class="xp-block"><h4>Linear CKA of the hidden states, per layer pair, over ${a.steps} steps of this output</h4>` +
    `<div class="xp-small">1: the two layers' states are the same up to a rotation and scale; near 0: unrelated. ` +
    `The viewer below shows ${esc(a.model_b)} reading the same output; its cursor and hover follow the viewer above, and back.</div>` +
    `<table class="xp-table">${'<tr><th></th>' + head + '</tr>'}${rows}</table></div>`;
}

function render() {
  const a = props.value;
  if (!a || !a.kind) { box.innerHTML = ''; box.dataset.kind = ''; return; }
  const draw = {probe, pattern, intervene, compare}[a.kind];
  box.innerHTML = draw ? draw(a) : `<div class="xp-block xp-message">${esc(a.message || '')}</div>`;
  box.dataset.kind = a.kind;
}

box.addEventListener('click', (event) => {
  const hit = event.target.closest('.xp-hit');
  if (hit) tell('lstm-viewer-unit', {layer: Number(hit.dataset.layer), unit: Number(hit.dataset.unit), quantity: hit.dataset.quantity});
  const match = event.target.closest('.xp-match.xp-onscreen');
  if (match) tell('lstm-viewer-goto', {step: Number(match.dataset.start), end: Number(match.dataset.end)});
});

render();
watch('value', render);
