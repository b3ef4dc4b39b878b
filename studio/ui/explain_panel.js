// "Ask why" for the step the viewer selected: drawn from props.value (studio/ui/explain_panel.py),
// the answer of studio.explain.explain plus the trajectory. Paints the saliency onto the viewer's
// output (a 'lstm-viewer-overlay' event) and moves the viewer's cursor when a trajectory point is
// clicked ('lstm-viewer-goto'). Runs as gr.HTML's js_on_load: `element`, `props`, `watch` in scope.

const box = element.querySelector('.ex-root');
const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toFixed(d));
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const shown = (label) => (label === '\n' ? '⏎' : label === ' ' ? '␣' : label);
const tell = (name, detail) => document.dispatchEvent(new CustomEvent(name, {detail: {viewer: props.viewer_id, ...detail}}));

function guesses(a) {
  const rows = a.topk.map((g) => `<tr><td class="ex-tok">${esc(shown(g.token))}</td>` +
    `<td><span class="ex-bar" style="width:${Math.round(160 * g.p)}px"></span> ${fmt(g.p)}</td></tr>`).join('');
  const extras = Object.entries(a).filter(([k]) => ['end_of_stroke', 'attention_peak', 'window_peak', 'stop'].includes(k))
    .map(([k, v]) => `${k.replace(/_/g, ' ')}: <b>${esc(typeof v === 'number' ? fmt(v) : JSON.stringify(v))}</b>`).join(' · ');
  return `<div class="ex-block"><h4>What the model considered after step ${a.step} (${esc(shown(a.label))})</h4>` +
    `<table class="ex-guesses">${rows}</table>` +
    `<div>entropy <b>${fmt(a.entropy)}</b> nats · surprise of what came next <b>${fmt(a.surprise)}</b> nats` +
    (extras ? ` · ${extras}` : '') + `</div></div>`;
}

// -log p of what actually came next, along the whole output; the button paints it onto the viewer
function surpriseTrack(a) {
  const values = a.surprise_track || [];
  if (!values.length) return '';
  const w = 640, h = 50, peak = Math.max(1e-9, ...values), bw = w / values.length;
  const bars = values.map((v, k) => `<rect x="${(k * bw).toFixed(2)}" y="${(h - v / peak * (h - 2)).toFixed(2)}" ` +
    `width="${Math.max(bw - 0.3, 0.4).toFixed(2)}" height="${Math.max(v / peak * (h - 2), 0.4).toFixed(2)}" ` +
    `fill="${a.first + k === a.step ? '#d73027' : '#756bb1'}"><title>step ${a.first + k}: ${fmt(v)} nats</title></rect>`).join('');
  return `<div class="ex-block"><h4>Surprise along the output (−log p of what came next; up to ${fmt(peak, 2)} nats)</h4>` +
    `<svg class="ex-surprise" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${bars}</svg> ` +
    `<button class="ex-paint-surprise">paint it on the output</button></div>`;
}

function saliencyTrack(a) {
  const values = a.saliency, n = values.length, w = 640, h = 70;
  const peak = Math.max(1e-12, ...values.map(Math.abs)), bw = w / Math.max(n, 1);
  const bars = values.map((v, k) => {
    const bh = Math.abs(v) / peak * (h / 2 - 2), y = v >= 0 ? h / 2 - bh : h / 2;
    return `<rect x="${(k * bw).toFixed(2)}" y="${y.toFixed(2)}" width="${Math.max(bw - 0.5, 0.5).toFixed(2)}" ` +
      `height="${Math.max(bh, 0.5).toFixed(2)}" fill="${v >= 0 ? '#b2182b' : '#2166ac'}" data-step="${k}"><title>step ${k}: ${fmt(v, 4)}</title></rect>`;
  }).join('');
  const order = values.map((v, k) => [Math.abs(v), k]).sort((p, q) => q[0] - p[0]).slice(0, 5).map(([, k]) => k);
  return `<div class="ex-block"><h4>Which earlier inputs mattered (${a.saliency_method.replace(/_/g, ' ')}` +
    `${a.target !== null && a.target !== undefined ? `, target ${esc(JSON.stringify(a.target))}` : ', target: what came next'})</h4>` +
    `<svg class="ex-sal" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">` +
    `<line x1="0" x2="${w}" y1="${h / 2}" y2="${h / 2}" stroke="#999"/>${bars}</svg>` +
    `<div>steps 0–${n - 1}; most: ${order.map((k) => `${k} (${esc(shown(a.labels_before ? a.labels_before[k] : ''))})`).join(', ')}` +
    ` · painted on the output above (red: raised the log-likelihood, blue: lowered it)</div></div>`;
}

// Colah's picture of one LSTM step with this step's numbers on the wires
function cell(a) {
  const n = a.anatomy, p = n.pre;
  const gate = (name, x, label) => `<g><rect x="${x}" y="150" width="86" height="34" rx="5" fill="#fff" stroke="#555"/>` +
    `<text x="${x + 43}" y="164" text-anchor="middle" class="ex-small">${label}(${fmt(p[name].total, 2)})</text>` +
    `<text x="${x + 43}" y="178" text-anchor="middle"><tspan class="ex-name">${name}</tspan> = ${fmt(n[name])}</text></g>`;
  const svg = `<svg class="ex-cell" width="640" height="250" viewBox="0 0 640 250">
    <rect x="30" y="20" width="560" height="215" rx="14" fill="#f7f7f2" stroke="#999"/>
    <line x1="0" y1="50" x2="640" y2="50" stroke="#333" stroke-width="2"/>
    <text x="4" y="42" class="ex-small">c<tspan baseline-shift="sub">t−1</tspan> = ${fmt(n.c_prev)}</text>
    <circle cx="140" cy="50" r="12" fill="#fff" stroke="#333"/><text x="140" y="55" text-anchor="middle">×</text>
    <circle cx="300" cy="50" r="12" fill="#fff" stroke="#333"/><text x="300" y="55" text-anchor="middle">+</text>
    <text x="150" y="80" class="ex-small">f · c<tspan baseline-shift="sub">t−1</tspan> = ${fmt(n.f * n.c_prev)}</text>
    <text x="310" y="80" class="ex-small">i · g = ${fmt(n.i * n.g)}</text>
    <text x="560" y="42" text-anchor="end" class="ex-small">c<tspan baseline-shift="sub">t</tspan> = ${fmt(n.c)}</text>
    <line x1="140" y1="150" x2="140" y2="62" stroke="#555"/><line x1="300" y1="120" x2="300" y2="62" stroke="#555"/>
    <circle cx="300" cy="120" r="11" fill="#fff" stroke="#333"/><text x="300" y="125" text-anchor="middle">×</text>
    <line x1="250" y1="150" x2="292" y2="127" stroke="#555"/><line x1="350" y1="150" x2="308" y2="127" stroke="#555"/>
    <rect x="470" y="95" width="70" height="24" rx="5" fill="#fff" stroke="#555"/>
    <text x="505" y="112" text-anchor="middle" class="ex-small">tanh ${fmt(Math.tanh(n.c), 2)}</text>
    <line x1="505" y1="50" x2="505" y2="95" stroke="#555"/>
    <circle cx="505" cy="150" r="11" fill="#fff" stroke="#333"/><text x="505" y="155" text-anchor="middle">×</text>
    <line x1="505" y1="119" x2="505" y2="139" stroke="#555"/><line x1="455" y1="167" x2="494" y2="154" stroke="#555"/>
    <line x1="505" y1="161" x2="505" y2="205" stroke="#333" stroke-width="2"/><line x1="505" y1="205" x2="640" y2="205" stroke="#333" stroke-width="2"/>
    <text x="600" y="198" text-anchor="middle" class="ex-small">h<tspan baseline-shift="sub">t</tspan> = ${fmt(n.h)}</text>
    ${gate('f', 97, 'σ')}${gate('i', 207, 'σ')}${gate('g', 317, 'tanh')}${gate('o', 412, 'σ')}
    <line x1="0" y1="215" x2="470" y2="215" stroke="#333" stroke-width="2"/>
    <text x="4" y="230" class="ex-small">h<tspan baseline-shift="sub">t−1</tspan>, x<tspan baseline-shift="sub">t</tspan> (${esc(shown(n.label))})</text>
    ${['f', 'i', 'g', 'o'].map((g, k) => `<line x1="${[140, 250, 360, 455][k]}" y1="215" x2="${[140, 250, 360, 455][k]}" y2="184" stroke="#555"/>`).join('')}
  </svg>`;
  const rows = ['i', 'f', 'g', 'o'].map((g) => {
    const q = p[g];
    const named = q.recurrent_top.map((c) => `${fmt(c.contribution)} (unit ${c.unit}: w ${fmt(c.weight, 2)} × h ${fmt(c.h_prev, 2)})`).join(' + ');
    return `<tr><td class="ex-name">z<sub>${g}</sub></td><td>= ${fmt(q.input)} <span class="ex-small">input</span>` +
      ` + ${named} + ${fmt(q.recurrent_rest)} <span class="ex-small">other units</span> + ${fmt(q.bias)} <span class="ex-small">bias</span>` +
      ` = <b>${fmt(q.total)}</b></td></tr>`;
  }).join('');
  return `<div class="ex-block"><h4>Step ${n.step} of ${esc(n.layer_name)}, unit ${n.unit}, under the microscope</h4>${svg}` +
    `<table class="ex-pre">${rows}</table><div class="ex-small">i, f, o = σ(z); g = tanh(z); ` +
    `c<sub>t</sub> = f·c<sub>t−1</sub> + i·g = ${fmt(n.f)}·${fmt(n.c_prev)} + ${fmt(n.i)}·${fmt(n.g)} = ${fmt(n.c)}; ` +
    `h<sub>t</sub> = o·tanh(c<sub>t</sub>) = ${fmt(n.o)}·${fmt(Math.tanh(n.c))} = ${fmt(n.h)}. ←/→ in the viewer step through.</div></div>`;
}

function trajectory(a) {
  const t = a.trajectory;
  if (!t || !t.x.length) return '';
  const w = 640, h = 260, pad = 14;
  const [x0, x1, y0, y1] = [Math.min(...t.x), Math.max(...t.x), Math.min(...t.y), Math.max(...t.y)];
  const sx = (v) => pad + (v - x0) / Math.max(1e-9, x1 - x0) * (w - 2 * pad);
  const sy = (v) => h - pad - (v - y0) / Math.max(1e-9, y1 - y0) * (h - 2 * pad);
  const path = t.x.map((v, k) => `${k ? 'L' : 'M'}${sx(v).toFixed(1)},${sy(t.y[k]).toFixed(1)}`).join('');
  const points = t.x.map((v, k) => `<circle class="ex-point${k === a.step ? ' ex-here' : ''}" cx="${sx(v).toFixed(1)}" ` +
    `cy="${sy(t.y[k]).toFixed(1)}" r="${k === a.step ? 6 : 3}" data-step="${t.first + k}"><title>step ${t.first + k} ` +
    `${esc(JSON.stringify(t.labels[k]))}</title></circle>`).join('');
  return `<div class="ex-block"><h4>Trajectory of ${esc(t.layer_name)}'s ${t.quantity} (PCA of this sequence: ` +
    `${fmt(100 * t.share[0], 0)}% + ${fmt(100 * t.share[1], 0)}% of the variance)</h4>` +
    `<svg class="ex-traj" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><path d="${path}" fill="none" stroke="#bbb"/>${points}</svg>` +
    `<div class="ex-small">click a point to go to that step</div></div>`;
}

function render() {
  const a = props.value;
  if (!a || !a.anatomy) { box.innerHTML = a && a.message ? `<div class="ex-block">${esc(a.message)}</div>` : ''; return; }
  box.innerHTML = (a.note ? `<div class="ex-block">${esc(a.note)}</div>` : '') + guesses(a) + surpriseTrack(a) +
    saliencyTrack(a) + cell(a) + trajectory(a);
  // the saliency painted onto the viewer's output: one value per step, none after this one
  tell('lstm-viewer-overlay', {values: a.saliency, title: `saliency for the prediction after step ${a.step}`});
  box.dataset.step = String(a.step);
}

box.addEventListener('click', (event) => {
  if (event.target.classList.contains('ex-paint-surprise') && props.value) {
    const a = props.value, values = new Array(a.first).fill(NaN).concat(a.surprise_track);
    tell('lstm-viewer-overlay', {values, title: 'surprise (−log p of what came next)'});
    return;
  }
  const step = event.target.dataset && event.target.dataset.step;
  if (step !== undefined && event.target.tagName.toLowerCase() === 'circle') tell('lstm-viewer-goto', {step: Number(step)});
});
render();
watch('value', render);
