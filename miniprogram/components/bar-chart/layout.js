// Where the bars go, apart from the canvas so that it can be tested without one: bars of
// {label, value (number or null: not measured), pale (a month taken from its form)}, in a box
// of width × height CSS pixels, with a y axis of "nice" steps from 0.
const PAD = { left: 44, right: 8, top: 10, bottom: 22 };

function niceMax(max) {
  if (!(max > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= max) return m * step;
  return 10 * step;
}

function layout(bars, width, height) {
  const values = bars.map((b) => b.value).filter((v) => v !== null && v !== undefined);
  const top = niceMax(Math.max(0, ...values));
  const plotW = Math.max(1, width - PAD.left - PAD.right);
  const plotH = Math.max(1, height - PAD.top - PAD.bottom);
  const slot = plotW / Math.max(1, bars.length);
  const base = PAD.top + plotH;
  const rects = bars.map((b, i) => {
    const h = b.value ? (b.value / top) * plotH : 0;
    return { x: PAD.left + i * slot + slot * 0.15, y: base - h, w: slot * 0.7, h, pale: !!b.pale, missing: b.value === null };
  });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => ({ value: top * f, y: base - f * plotH }));
  // labels under the bars, thinned out so that they do not run into each other (~30 px each)
  const every = Math.max(1, Math.ceil(30 / slot));
  const labels = bars.map((b, i) => ({ text: b.label, x: PAD.left + (i + 0.5) * slot })).filter((_, i) => i % every === 0);
  return { rects, ticks, labels, top, base, left: PAD.left, right: width - PAD.right };
}

// the drawing on a CanvasRenderingContext2D (the canvas 2d of WeChat, or a recording fake)
function draw(ctx, plan, width, height, unit) {
  ctx.clearRect(0, 0, width, height);
  ctx.font = '10px sans-serif';
  ctx.fillStyle = '#999';
  ctx.strokeStyle = '#eee';
  ctx.textAlign = 'right';
  for (const tick of plan.ticks) {
    ctx.beginPath();
    ctx.moveTo(plan.left, tick.y);
    ctx.lineTo(plan.right, tick.y);
    ctx.stroke();
    ctx.fillText(tick.value >= 100 ? String(Math.round(tick.value)) : String(+tick.value.toFixed(2)), plan.left - 4, tick.y + 3);
  }
  ctx.textAlign = 'left';
  ctx.fillText(unit, 2, 8);
  for (const r of plan.rects) {
    ctx.fillStyle = r.pale ? '#9fdfbf' : '#07c160';
    if (r.h > 0) ctx.fillRect(r.x, r.y, r.w, r.h);
  }
  ctx.fillStyle = '#666';
  ctx.textAlign = 'center';
  for (const l of plan.labels) ctx.fillText(l.text, l.x, height - 6);
}

module.exports = { layout, draw, niceMax };
