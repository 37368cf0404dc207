// Nothing of the mini-program's use of /api/v1 is outside the OpenAPI document: each call of
// the client's table (utils/api.js CALLS) with its method, path, query, body and multipart
// fields; the fixtures the page tests answer with (so what pages read is what the server sends);
// and the pages the server's notifications open.
const fs = require('fs');
const path = require('path');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');
const schema = require('./schema');
const fx = require('./fixtures');
const h = require('./harness');

global.wx = { getStorageSync: () => '', getSystemInfoSync: () => ({ language: 'zh_CN' }) };
const { CALLS } = require('../utils/api');

describe.each(Object.entries(CALLS))('%s', (name, call) => {
  const op = schema.operation(call.method, call.path);

  test('its method and path are in the document', () => {
    expect(op).toBeDefined();
  });

  test('it needs a session exactly when the document says', () => {
    expect(op.security.length > 0).toBe(call.auth !== false);
  });

  test('its query, body and multipart fields are declared', () => {
    expect(schema.queryNames(call.method, call.path)).toEqual(expect.arrayContaining(call.query || []));
    const { fields, json, multipart } = schema.requestFields(call.method, call.path);
    if (call.body === '*') expect(fields['*']).toBeDefined();
    else if (call.body) { expect(json).toBe(true); expect(Object.keys(fields)).toEqual(expect.arrayContaining(call.body)); }
    if (call.multipart) { expect(multipart).toBe(true); expect(Object.keys(fields)).toEqual(expect.arrayContaining(call.multipart)); }
    if (!call.body && !call.multipart) expect(op.requestBody).toBeUndefined();
  });

  test('its answer is of the kind the client reads', () => {
    const ok = Object.entries(op.responses).find(([status]) => status.startsWith('2'))[1];
    const kinds = Object.keys(ok.content || {});
    if (call.stream) expect(kinds).toEqual(['text/event-stream']);
    else if (call.download) expect(kinds).toEqual(expect.arrayContaining(['image/jpeg', 'image/png']));
    else expect(kinds.length === 0 || kinds.includes('application/json')).toBe(true);
  });
});

describe('the page tests\' answers are what the server can send', () => {
  const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true })); // date-time, date checked too
  // closed: a fixture may hold no field the document lacks (the server's models send none)
  const closed = (node) => {
    if (Array.isArray(node)) return node.map(closed);
    if (node === null || typeof node !== 'object') return node;
    const out = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, k === 'properties'
      ? Object.fromEntries(Object.entries(v).map(([name, prop]) => [name, closed(prop)])) : closed(v)]));
    if (out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
    return out;
  };
  ajv.addSchema({ $id: 'doc', components: closed(schema.doc.components) });
  const valid = (method, template, status, body) => {
    const s = schema.responseSchema(method, template, status);
    expect(s).not.toBeNull();
    const check = ajv.compile({ $ref: `doc#/components/schemas/${s.$ref.split('/').pop()}` });
    const ok = check(body);
    if (!ok) throw new Error(`${method} ${template}: ${ajv.errorsText(check.errors)}`);
  };

  test('every fixture of the fake server validates against its answer schema', () => {
    const server = h.defaultServer();
    let checked = 0;
    for (const [key, route] of server.routes) {
      const [method, template] = key.split(' ');
      const req = { method, query: { span: 'day', lang: 'zh' }, body: { reason: 'x' } };
      const [status, body] = typeof route.answer === 'function' ? route.answer(req) : route.answer;
      expect(schema.operation(method, template)).toBeDefined();
      if (typeof body === 'string') continue; // 204, the stream, the image
      valid(method, template, status, body);
      checked++;
    }
    expect(checked).toBeGreaterThan(25);
  });

  test('and the variants the tests answer with', () => {
    valid('GET', '/bills/{bill_id}', 200, fx.paidBill);
    valid('GET', '/i18n', 200, fx.catalogue('en'));
    valid('GET', '/plants', 429, { error: { code: 'rate_limited', message: '…' } });
    valid('GET', '/plants', 401, { error: { code: 'token_expired', message: '…' } });
  });

  test('a field the document lacks would be caught', () => {
    expect(() => valid('GET', '/plants/{plant_id}', 200, { ...fx.plantDetail, power_kw: 3 })).toThrow(/additional|power_kw/);
    expect(schema.declares(schema.responseSchema('GET', '/plants/{plant_id}', 200), 'contract.discount')).toBe(true);
    expect(schema.declares(schema.responseSchema('GET', '/plants/{plant_id}', 200), 'contract.price')).toBe(false);
  });
});

test('every page the bot links to (bot/owner.py *_PAGE) is a page of app.json', () => {
  const app = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'app.json'), 'utf8'));
  const bot = fs.readFileSync(path.join(__dirname, '..', '..', 'bot', 'owner.py'), 'utf8');
  const linked = [...bot.matchAll(/^\w+_PAGE = "([^"?]+)/gm)].map((m) => m[1]);
  expect(linked).toEqual(expect.arrayContaining(['pages/bill/list', 'pages/bill/detail', 'pages/bind/link']));
  for (const page of linked) expect(app.pages).toContain(page);
});

test('every page a notification opens (templates/notify/*.txt) is a page of app.json', () => {
  const app = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'app.json'), 'utf8'));
  const folder = path.join(__dirname, '..', '..', 'templates', 'notify');
  const opened = fs.readdirSync(folder).flatMap((file) => fs.readFileSync(path.join(folder, file), 'utf8')
    .split('\n').filter((line) => line.startsWith('page:')).map((line) => line.slice(5).trim().split('?')[0]));
  expect(opened.length).toBeGreaterThan(3);
  for (const page of opened) expect(app.pages).toContain(page);
});
