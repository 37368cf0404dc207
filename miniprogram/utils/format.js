// Numbers, money and times as the owner reads them, without Intl (which the mini-program's JS
// engine does not have on every phone). Times are shown in China's time (UTC+8 all year, no DST),
// where the plants are, whatever zone the phone is set to.
const CHINA_MS = 8 * 3600 * 1000;

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

// a decimal (string or number) with `places` digits after the point, thousands grouped;
// decimal strings from the API are cut as text, so no float touches them
function num(value, places) {
  if (value === null || value === undefined || value === '') return '—';
  let text = typeof value === 'number' ? value.toFixed(places) : String(value);
  const negative = text.startsWith('-');
  if (negative) text = text.slice(1);
  let [whole, frac = ''] = text.split('.');
  if (typeof value !== 'number') {
    if (frac.length > places) return num(Number(value), places); // rounding: rare, display only
    frac = frac.padEnd(places, '0');
  }
  const shown = group(whole || '0') + (places ? `.${frac.slice(0, places)}` : '');
  return (negative ? '-' : '') + shown;
}

const kwh = (value) => num(value, 3);
const kw = (watts) => (watts === null || watts === undefined ? '—' : num(watts / 1000, 1));

// integer fen as ¥1,234.56: whole yuan and fen apart, never through a float
function yuan(fen) {
  if (fen === null || fen === undefined) return '—';
  const abs = Math.abs(fen);
  return `${fen < 0 ? '-' : ''}¥${group(String(Math.trunc(abs / 100)))}.${String(abs % 100).padStart(2, '0')}`;
}

// '12.50' (yuan typed by the owner) → 1250 fen, or null when it is not an amount
function fenOf(text) {
  const match = /^\s*(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(String(text || ''));
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] || '').padEnd(2, '0'));
}

const pad = (n) => String(n).padStart(2, '0');

function china(iso) {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : new Date(ms + CHINA_MS);
}

// 2026-12-04 18:05 in China's time (24-hour clock)
function when(iso) {
  const d = iso ? china(iso) : null;
  if (!d) return '—';
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

function clock(iso) {
  const d = iso ? china(iso) : null;
  return d ? `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` : '—';
}

module.exports = { num, kwh, kw, yuan, fenOf, when, clock, group };
