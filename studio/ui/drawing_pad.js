// The drawing pad (studio/ui/drawing_pad.py): pen strokes drawn with a mouse, a pen or a finger
// (pointer events), each point [x, y, t] in CSS pixels (y down) and milliseconds since the first
// point; undo, clear, a box for what was written, and a download of the strokes as JSON
// {"strokes", "text"} (what the stroke-file importer reads). Runs as gr.HTML's js_on_load:
// `element`, `props`, `trigger` in scope. props.value = {strokes, text} after every change.

const canvas = element.querySelector('.dp-canvas');
const context = canvas.getContext('2d');
const textBox = element.querySelector('.dp-text');
const status = element.querySelector('.dp-status');
let strokes = [];
let current = null;
let start = null;

function fit() {
  // the canvas' own pixels follow its CSS size (and the screen's density): crisp lines, no stretch
  const box = canvas.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  if (box.width < 1) return;
  canvas.width = Math.round(box.width * ratio);
  canvas.height = Math.round(box.height * ratio);
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  draw();
}

function draw() {
  const box = canvas.getBoundingClientRect();
  context.clearRect(0, 0, box.width, box.height);
  context.strokeStyle = '#ddd';
  context.lineWidth = 1;
  context.beginPath();  // a baseline to write on
  context.moveTo(8, box.height * 0.68);
  context.lineTo(box.width - 8, box.height * 0.68);
  context.stroke();
  context.strokeStyle = '#111';
  context.lineWidth = 2.5;
  context.lineCap = 'round';
  context.lineJoin = 'round';
  for (const stroke of strokes.concat(current ? [current] : [])) {
    context.beginPath();
    stroke.forEach(([x, y], k) => (k ? context.lineTo(x, y) : context.moveTo(x, y)));
    if (stroke.length === 1) context.lineTo(stroke[0][0] + 0.5, stroke[0][1]);
    context.stroke();
  }
  const points = strokes.reduce((n, s) => n + s.length, 0);
  status.textContent = strokes.length ? `${strokes.length} strokes, ${points} points` : 'empty';
}

function publish() {
  props.value = {strokes: strokes.map((s) => s.map((p) => p.slice())), text: textBox.value};
  trigger('change');
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  if (start === null) start = event.timeStamp;
  return [+(event.clientX - box.left).toFixed(1), +(event.clientY - box.top).toFixed(1), Math.round(event.timeStamp - start)];
}

canvas.addEventListener('pointerdown', (event) => {
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  current = [point(event)];
  draw();
});
canvas.addEventListener('pointermove', (event) => {
  if (!current) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) current.push(point(e));
  draw();
});
function finish() {
  if (!current) return;
  strokes.push(current);
  current = null;
  draw();
  publish();
}
canvas.addEventListener('pointerup', finish);
canvas.addEventListener('pointercancel', finish);
element.querySelector('.dp-undo').addEventListener('click', () => { strokes.pop(); draw(); publish(); });
element.querySelector('.dp-clear').addEventListener('click', () => { strokes = []; start = null; draw(); publish(); });
textBox.addEventListener('input', publish);
element.querySelector('.dp-download').addEventListener('click', () => {
  const blob = new Blob([JSON.stringify({strokes, text: textBox.value})], {type: 'application/json'});
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = 'handwriting-style.json';
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
});
new ResizeObserver(fit).observe(canvas);
fit();
