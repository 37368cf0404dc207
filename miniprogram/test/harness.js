// The page tests' phone: a `wx` that answers /api/v1 from a table of routes (the fake server),
// records what the pages asked WeChat for (navigation, payment, subscriptions, toasts), and
// hands each JSON answer to the page as a recording Proxy, so every field a page reads is known
// (test/pages.test.js checks them against the OpenAPI document).
const path = require('path');
const simulate = require('miniprogram-simulate');
const fx = require('./fixtures');

const ROOT = path.resolve(__dirname, '..');
const ORIGIN = 'https://pv.example.com';
const API_OBJECT = Symbol('api object');

// every field read of an answer: "GET /plants/{plant_id} 200 contract.discount"
const reads = new Set();
// every JSON body and query a page sent: [method, template, body, query]
const sent = [];

// names that jest's matchers, pretty-format and promise resolution probe on any object: not reads by a page
const IGNORED = new Set(['then', 'toJSON', 'constructor', 'asymmetricMatch', 'nodeType', '$$typeof', '@@__IMMUTABLE_ITERABLE__@@']);

function recording(value, operation, at) {
  if (value === null || typeof value !== 'object') return value;
  return new Proxy(value, {
    get(target, key, receiver) {
      if (key === API_OBJECT) return true;
      if (typeof key === 'symbol' || IGNORED.has(key)) return Reflect.get(target, key, receiver);
      const own = Object.prototype.hasOwnProperty.call(target, key);
      if (Array.isArray(target)) {
        if (/^\d+$/.test(key)) return recording(target[key], operation, `${at}[]`);
        if (key === 'length' || key in Array.prototype) {
          const found = Reflect.get(target, key, receiver);
          // map / filter / … call back with the proxied items
          return typeof found === 'function' ? found.bind(receiver) : found;
        }
      }
      if (!own && key in Object.prototype) return Reflect.get(target, key, receiver);
      reads.add(`${operation} ${at ? `${at}.` : ''}${key}`);
      return recording(target[key], operation, `${at ? `${at}.` : ''}${key}`);
    },
  });
}

function routeOf(method, url) {
  const bare = url.slice(ORIGIN.length).split('?')[0];
  return `${method} ${bare}`;
}

// "/api/v1/plants/7" → the document's "/plants/{plant_id}" (ids are numbers)
function templateOf(bare, templates) {
  const parts = bare.replace(/^\/api\/v1/, '').split('/');
  return templates.find((t) => {
    const tp = t.split('/');
    return tp.length === parts.length && tp.every((p, i) => p === parts[i] || (p.startsWith('{') && /^\d+$/.test(parts[i])));
  });
}

const TEMPLATES = Object.keys(require('./openapi.json').paths);

class FakeServer {
  constructor() {
    this.routes = new Map();
    this.calls = [];
    this.tokens = 0;
    this.validToken = null;
  }

  // answer(req) → [status, body]; `once` answers are used first, in order
  on(method, template, answer) {
    this.routes.set(`${method} ${template}`, { answer, once: [] });
    return this;
  }

  once(method, template, answer) {
    this.routes.get(`${method} ${template}`).once.push(answer);
    return this;
  }

  handle(req) {
    const bare = req.url.slice(ORIGIN.length).split('?')[0];
    const template = templateOf(bare, TEMPLATES);
    const key = `${req.method} ${template}`;
    req.template = template;
    req.query = Object.fromEntries(new URLSearchParams(req.url.split('?')[1] || ''));
    this.calls.push(req);
    if (req.kind === 'request' && !req.multipart) sent.push([req.method, template, req.body, req.query]);
    const route = this.routes.get(key);
    if (!route) return [404, { error: { code: 'not_found', message: `no fake for ${key}` } }];
    const answer = route.once.length ? route.once.shift() : route.answer;
    const out = typeof answer === 'function' ? answer(req) : answer;
    return out;
  }

  called(method, template) {
    return this.calls.filter((c) => c.method === method && c.template === template);
  }
}

// the default answers: a bound owner with one plant, a form to confirm, a bill to pay
function defaultServer() {
  const server = new FakeServer();
  server
    .on('POST', '/session', () => [201, { ...fx.session, token: `token-${++server.tokens}` }])
    .on('GET', '/i18n', (req) => [200, fx.catalogue(req.query.lang)])
    .on('GET', '/me', [200, fx.me])
    .on('POST', '/binding', [200, { owner: fx.me.owner, by: 'invitation' }])
    .on('POST', '/shares/redeem', [200, fx.grant])
    .on('GET', '/plants', [200, fx.page([fx.plantSummary])])
    .on('GET', '/plants/{plant_id}', [200, fx.plantDetail])
    .on('GET', '/plants/{plant_id}/history', (req) => [200, fx.history(req.query.span)])
    .on('GET', '/plants/{plant_id}/live', [200, 'retry: 3000\n\n'])
    .on('GET', '/forms', [200, fx.page([fx.formSummary])])
    .on('GET', '/forms/{form_id}', [200, fx.formDetail])
    .on('POST', '/forms/{form_id}/confirm', [200, { ...fx.formDetail, state: 'confirmed', can_answer: false }])
    .on('POST', '/forms/{form_id}/dispute', (req) => [200, { ...fx.formDetail, state: 'disputed', can_answer: false,
      dispute_reason: req.body && req.body.reason ? req.body.reason : (req.formData || {}).reason || 'multipart' }])
    .on('GET', '/bills', [200, fx.page([fx.billSummary])])
    .on('GET', '/bills/{bill_id}', [200, fx.billDetail])
    .on('POST', '/bills/{bill_id}/pay', [200, fx.payOut])
    .on('POST', '/bills/{bill_id}/invoice', [200, fx.invoiceAsked])
    .on('GET', '/payments', [200, fx.page([fx.payment])])
    .on('GET', '/account', [200, fx.account])
    .on('GET', '/plants/{plant_id}/prepaid', [200, fx.prepaid])
    .on('GET', '/plants/{plant_id}/prepaid/statement', [200, fx.statement])
    .on('POST', '/plants/{plant_id}/prepaid/topup', [200, fx.topUpOut])
    .on('POST', '/prepaid/topup', [200, fx.topUpOut])
    .on('POST', '/plants/{plant_id}/shares', [201, fx.shareOut])
    .on('GET', '/plants/{plant_id}/grants', [200, fx.page([fx.grant])])
    .on('DELETE', '/plants/{plant_id}/grants/{grant_id}', [200, { ...fx.grant, revoked_at: '2026-12-04T03:00:00+00:00' }])
    .on('PUT', '/subscriptions', [200, { items: [fx.subscription] }])
    .on('GET', '/subscriptions', [200, fx.page([fx.subscription])])
    .on('GET', '/faults', [200, fx.page([fx.fault])])
    .on('GET', '/faults/{fault_id}', [200, fx.fault])
    .on('POST', '/plants/{plant_id}/faults', [201, fx.fault])
    .on('GET', '/attachments/{attachment_id}', [200, ''])
    .on('DELETE', '/session', [204, ''])
    .on('DELETE', '/binding', [204, '']);
  return server;
}

const later = (fn) => setTimeout(fn, 0);

function fakeWx(server, { language = 'zh_CN', payment = 'ok' } = {}) {
  const storage = new Map();
  const did = { navigateTo: [], reLaunch: [], switchTab: [], showToast: [], requestPayment: [], subscribe: [], login: 0 };
  const answer = (req, success) => {
    const [status, body] = server.handle(req);
    // keyed by status too: an error answer's fields are the error schema's
    const data = typeof body === 'string' ? body : recording(JSON.parse(JSON.stringify(body)), `${req.method} ${req.template} ${status}`, '');
    later(() => success({ statusCode: status, data, header: {} }));
  };
  const wx = {
    did,
    getStorageSync: (k) => (storage.has(k) ? storage.get(k) : ''),
    setStorageSync: (k, v) => storage.set(k, JSON.parse(JSON.stringify(v))),
    removeStorageSync: (k) => storage.delete(k),
    getSystemInfoSync: () => ({ language, pixelRatio: 2 }),
    getWindowInfo: () => ({ pixelRatio: 2 }),
    login: ({ success }) => { did.login++; later(() => success({ code: `code-${did.login}`, errMsg: 'login:ok' })); },
    request(opts) {
      const req = { method: opts.method || 'GET', url: opts.url, header: opts.header, body: opts.data, kind: 'request' };
      if (opts.data instanceof ArrayBuffer) req.multipart = Buffer.from(opts.data).toString('latin1');
      const chunks = [];
      const task = { abort() { task.aborted = true; }, onChunkReceived(cb) { chunks.push(cb); }, onHeadersReceived() {} };
      if (opts.enableChunked) {
        const [status, body] = server.handle(req);
        later(() => {
          if (task.aborted) return;
          // a list of chunks comes as so many chunks (a character may be cut between two)
          for (const part of [].concat(body)) {
            const bytes = Buffer.isBuffer(part) ? part : Buffer.from(part);
            for (const cb of chunks) cb({ data: new Uint8Array(bytes).buffer });
          }
          // a stream stays open: success only when it ends, which a test does by aborting
          if (status !== 200) opts.success({ statusCode: status, data: new ArrayBuffer(0) });
        });
        return task;
      }
      answer(req, opts.success);
      return task;
    },
    uploadFile(opts) {
      const req = { method: 'POST', url: opts.url, header: opts.header, filePath: opts.filePath, name: opts.name,
                    formData: opts.formData, kind: 'uploadFile' };
      const [status, body] = server.handle(req);
      later(() => opts.success({ statusCode: status, data: JSON.stringify(body) }));
    },
    downloadFile(opts) {
      const req = { method: 'GET', url: opts.url, header: opts.header, kind: 'downloadFile' };
      const [status] = server.handle(req);
      later(() => opts.success({ statusCode: status, tempFilePath: `wxfile://tmp/${server.calls.length}.png` }));
    },
    getFileSystemManager: () => ({ readFile: ({ filePath, success }) => later(() => success({ data: new Uint8Array(Buffer.from(`bytes of ${filePath}`)).buffer })) }),
    requestPayment(opts) {
      did.requestPayment.push(opts);
      later(() => (payment === 'ok' ? opts.success({ errMsg: 'requestPayment:ok' }) : opts.fail({ errMsg: `requestPayment:fail ${payment}` })));
    },
    requestSubscribeMessage(opts) {
      did.subscribe.push(opts.tmplIds);
      const res = { errMsg: 'requestSubscribeMessage:ok' };
      for (const id of opts.tmplIds) res[id] = 'accept';
      later(() => opts.success(res));
    },
    chooseMedia: ({ count, success }) => later(() => success({ tempFiles: Array.from({ length: Math.min(count, 2) }, (_, i) => ({ tempFilePath: `wxfile://tmp/photo${i}.jpg` })) })),
    scanCode: ({ success }) => later(() => success({ result: 'ignored', path: 'pages/login/index?scene=SCAN1234' })),
    navigateTo: ({ url }) => did.navigateTo.push(url),
    reLaunch: ({ url }) => did.reLaunch.push(url),
    switchTab: ({ url }) => did.switchTab.push(url),
    showToast: (o) => did.showToast.push(o.title),
    showModal: ({ success }) => later(() => success({ confirm: true })),
    setNavigationBarTitle() {}, stopPullDownRefresh() {}, setClipboardData() {}, previewImage() {}, setTabBarItem() {},
  };
  return wx;
}

// a fresh phone and app: modules loaded anew (their state: session, catalogue, language)
let loaded = new Map();

// a new app: pages are loaded again (with the modules jest.resetModules gave anew)
function resetPages() {
  loaded = new Map();
}

function fresh(options = {}) {
  jest.resetModules();
  loaded = new Map();
  const server = options.server || defaultServer();
  global.wx = fakeWx(server, options);
  const config = require('../config');
  config.apiOrigin = ORIGIN;
  config.templates = { bill_issued: 'tpl-bill-issued', payment_received: 'tpl-payment-received', form_sent: 'tpl-form-sent',
                       fault_update: 'tpl-fault-update', prepaid_notice: 'tpl-prepaid-notice', auto_confirm_coming: 'tpl-auto-confirm' };
  if (options.loggedIn !== false) global.wx.setStorageSync('pvsettle.session', { token: 'token-0', expires_at: 'x', me: fx.me });
  return { server, wx: global.wx };
}

// no answer object of the API may reach setData: the pages map them to view data first, so that
// every field the WXML shows was read (and recorded) in the page's JS
function hasApiObject(value, seen = new Set()) {
  if (value === null || typeof value !== 'object' || seen.has(value)) return false;
  if (value[API_OBJECT]) return true;
  seen.add(value);
  return Object.values(value).some((v) => hasApiObject(v, seen));
}

async function open(pagePath, query = {}) {
  // a page is loaded once per fresh app (loading it twice makes a second, broken definition)
  if (!loaded.has(pagePath)) loaded.set(pagePath, simulate.load(path.join(ROOT, pagePath), { rootPath: ROOT }));
  const id = loaded.get(pagePath);
  const comp = simulate.render(id);
  const setData = comp.instance.setData.bind(comp.instance);
  comp.instance.setData = (data, cb) => {
    if (hasApiObject(data)) throw new Error(`${pagePath}: an API answer passed to setData as it came: ${Object.keys(data)}`);
    return setData(data, cb);
  };
  comp.attach(document.createElement('parent-wrapper'));
  await comp.instance.onLoad(query);
  await settle();
  return comp;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

// until the condition holds (at most about a second)
async function until(condition) {
  for (let i = 0; i < 200 && !condition(); i++) await settle();
}

const text = (comp, selector) => {
  const node = comp.querySelector(selector);
  return node ? node.dom.textContent.replace(/\s+/g, ' ').trim() : null;
};

const all = (comp, selector) => comp.querySelectorAll(selector);

module.exports = { fresh, resetPages, open, settle, until, text, all, reads, sent, defaultServer, FakeServer, ORIGIN, recording, API_OBJECT };
