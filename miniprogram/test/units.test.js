// The parts without a page: UTF-8, the SSE parser, money and number formats, the chart's layout.
const { encode, Decoder } = require('../utils/utf8');
const { EventParser } = require('../utils/sse');
const fmt = require('../utils/format');
const { layout, draw, niceMax } = require('../components/bar-chart/layout');

test('UTF-8 both ways, a character cut between chunks included', () => {
  const text = 'a晴é😀z';
  const bytes = encode(text);
  expect(Buffer.from(bytes).toString('utf8')).toBe(text);
  const decoder = new Decoder();
  let out = '';
  for (const b of bytes) out += decoder.write(new Uint8Array([b]));
  expect(out).toBe(text);
});

test('SSE: events, multi-line data, comments, retry, CRLF', () => {
  const events = [];
  const parser = new EventParser((e) => events.push(e));
  parser.feed(Buffer.from('retry: 2500\r\n\r\n: heartbeat\n\nevent: state\ndata: {"a":\ndata: 1}\n\ndata: x'));
  expect(events).toEqual([{ event: 'state', data: '{"a":\n1}' }]);
  expect(parser.retryMs).toBe(2500);
  parser.feed(Buffer.from('\n\n'));
  expect(events[1]).toEqual({ event: 'message', data: 'x' });
});

test('money is integer fen, never a float; numbers grouped', () => {
  expect(fmt.yuan(123456789)).toBe('¥1,234,567.89');
  expect(fmt.yuan(-5)).toBe('-¥0.05');
  expect(fmt.fenOf('12.5')).toBe(1250);
  expect(fmt.fenOf('0.07')).toBe(7);
  expect(fmt.fenOf('1.234')).toBeNull();
  expect(fmt.fenOf('abc')).toBeNull();
  expect(fmt.kwh('1234567.8')).toBe('1,234,567.800');
  expect(fmt.kwh(null)).toBe('—');
  expect(fmt.kw(31250)).toBe('31.3');
  expect(fmt.when('2026-12-04T18:05:00+00:00')).toBe('2026-12-05 02:05'); // China's time
});

test('the chart: bars scaled to a nice top, missing bars empty, labels thinned', () => {
  expect(niceMax(0)).toBe(1);
  expect(niceMax(7.3)).toBe(10);
  expect(niceMax(231)).toBe(250);
  const bars = Array.from({ length: 24 }, (_, i) => ({ label: String(i), value: i === 5 ? null : i * 10, pale: i === 23 }));
  const plan = layout(bars, 300, 200);
  expect(plan.top).toBe(250);
  expect(plan.rects[5]).toMatchObject({ h: 0, missing: true });
  expect(plan.rects[23].pale).toBe(true);
  expect(plan.rects[23].h).toBeCloseTo((230 / 250) * (200 - 32));
  expect(plan.labels.length).toBeLessThan(24);
  const calls = [];
  const ctx = new Proxy({}, { get: (_, key) => (...args) => calls.push([key, ...args]), set: () => true });
  draw(ctx, plan, 300, 200, 'kWh');
  expect(calls.filter((c) => c[0] === 'fillRect').length).toBe(22); // 24 bars, one missing, one of 0
  expect(calls.some((c) => c[0] === 'fillText' && c[1] === 'kWh')).toBe(true);
});
