// The one client of /api/v1 every page uses. Each call the app makes is declared in CALLS
// (method, path, query and body fields), and nothing else is sent: test/openapi.test.js checks
// the table against the OpenAPI document the server generates, and the page tests record every
// field a page reads from an answer and check it is declared there too.
//
// The session token is kept with wx.setStorageSync. A 401 means the session is gone (expired,
// closed, the server's key rotated): the client logs in again with a fresh wx.login code, once,
// and repeats the call; if that fails too the app goes back to the login page.
const config = require('../config');
const { EventParser } = require('./sse');
const multipart = require('./multipart');
const i18n = require('./i18n');

const BASE = '/api/v1';
const SESSION_KEY = 'pvsettle.session';
const LOGIN_PAGE = '/pages/login/index';

const CALLS = {
  openSession: { method: 'POST', path: '/session', auth: false, body: ['code'] },
  closeSession: { method: 'DELETE', path: '/session' },
  me: { method: 'GET', path: '/me' },
  bind: { method: 'POST', path: '/binding', body: ['invitation_code', 'phone_code'] },
  unbind: { method: 'DELETE', path: '/binding' },
  account: { method: 'GET', path: '/account' },
  plants: { method: 'GET', path: '/plants', query: ['cursor', 'limit'] },
  plant: { method: 'GET', path: '/plants/{plant_id}' },
  history: { method: 'GET', path: '/plants/{plant_id}/history', query: ['span', 'at'] },
  live: { method: 'GET', path: '/plants/{plant_id}/live', stream: true },
  forms: { method: 'GET', path: '/forms', query: ['cursor', 'limit', 'state'] },
  form: { method: 'GET', path: '/forms/{form_id}' },
  confirmForm: { method: 'POST', path: '/forms/{form_id}/confirm' },
  disputeForm: { method: 'POST', path: '/forms/{form_id}/dispute', multipart: ['reason', 'photos'] },
  bills: { method: 'GET', path: '/bills', query: ['cursor', 'limit', 'state'] },
  bill: { method: 'GET', path: '/bills/{bill_id}' },
  payBill: { method: 'POST', path: '/bills/{bill_id}/pay', body: ['amount_fen'] },
  askInvoice: { method: 'POST', path: '/bills/{bill_id}/invoice' },
  payments: { method: 'GET', path: '/payments', query: ['cursor', 'limit'] },
  prepaid: { method: 'GET', path: '/plants/{plant_id}/prepaid' },
  statement: { method: 'GET', path: '/plants/{plant_id}/prepaid/statement', query: ['days'] },
  topUp: { method: 'POST', path: '/plants/{plant_id}/prepaid/topup', body: ['amount_fen'] },
  topUpByNumber: { method: 'POST', path: '/prepaid/topup', body: ['amount_fen', 'number'] },
  share: { method: 'POST', path: '/plants/{plant_id}/shares', body: ['right', 'ttl_hours'] },
  redeem: { method: 'POST', path: '/shares/redeem', body: ['code'] },
  grants: { method: 'GET', path: '/plants/{plant_id}/grants', query: ['cursor', 'limit'] },
  revokeGrant: { method: 'DELETE', path: '/plants/{plant_id}/grants/{grant_id}' },
  // the body is wx.requestSubscribeMessage's answer: {errMsg, template_id: answer} (utils/subscribe.js)
  subscribe: { method: 'PUT', path: '/subscriptions', body: '*' },
  subscriptions: { method: 'GET', path: '/subscriptions', query: ['cursor', 'limit'] },
  faults: { method: 'GET', path: '/faults', query: ['cursor', 'limit', 'state'] },
  fault: { method: 'GET', path: '/faults/{fault_id}' },
  reportFault: { method: 'POST', path: '/plants/{plant_id}/faults', multipart: ['text', 'photos'] },
  attachment: { method: 'GET', path: '/attachments/{attachment_id}', download: true },
  catalogue: { method: 'GET', path: '/i18n', auth: false, query: ['lang'] },
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

// --- the session --------------------------------------------------------------------------------

function session() {
  try {
    return wx.getStorageSync(SESSION_KEY) || null;
  } catch (e) {
    return null;
  }
}

function saveSession(opened) {
  wx.setStorageSync(SESSION_KEY, { token: opened.token, expires_at: opened.expires_at, me: opened.me });
}

function forget() {
  wx.removeStorageSync(SESSION_KEY);
}

const wxLogin = () => new Promise((resolve, reject) => wx.login({
  success: (res) => (res.code ? resolve(res.code) : reject(new ApiError(0, 'wx_login', res.errMsg))),
  fail: (res) => reject(new ApiError(0, 'wx_login', res && res.errMsg)),
}));

// one login at a time: calls that meet a 401 together wait for the same new session
let loggingIn = null;

function login() {
  if (!loggingIn) {
    loggingIn = wxLogin()
      .then((code) => send(CALLS.openSession, { body: { code } }))
      .then((opened) => { saveSession(opened); return opened; })
      .finally(() => { loggingIn = null; });
  }
  return loggingIn;
}

function toLogin() {
  forget();
  wx.reLaunch({ url: LOGIN_PAGE });
}

// --- requests -----------------------------------------------------------------------------------

function url(call, params, query) {
  const path = call.path.replace(/\{(\w+)\}/g, (_, name) => {
    if (params[name] === undefined) throw new Error(`${call.path} needs ${name}`);
    return encodeURIComponent(String(params[name]));
  });
  const pairs = Object.entries(query || {}).filter(([, v]) => v !== undefined && v !== null && v !== '');
  for (const [key] of pairs) if (!(call.query || []).includes(key)) throw new Error(`${call.path} takes no ?${key}`);
  const search = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&');
  return `${config.apiOrigin}${BASE}${path}${search ? `?${search}` : ''}`;
}

function headers(call, extra) {
  const header = { 'Accept-Language': i18n.lang(), ...extra };
  if (call.auth !== false) {
    const current = session();
    if (current) header.Authorization = `Bearer ${current.token}`;
  }
  return header;
}

function checkBody(call, body) {
  if (body === undefined || call.body === '*') return;
  const allowed = call.body || call.multipart || []; // a multipart route takes its fields as JSON too
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw new Error(`${call.path} takes no field ${key}`);
  }
}

function parse(data) {
  if (typeof data !== 'string') return data; // wx.request parses JSON itself
  if (!data) return null;
  try { return JSON.parse(data); } catch (e) { return data; }
}

function answer(res) {
  const data = parse(res.data);
  if (res.statusCode >= 200 && res.statusCode < 300) return data === '' ? null : data;
  const error = (data && data.error) || {};
  throw new ApiError(res.statusCode, error.code || String(res.statusCode), error.message);
}

const failed = (res) => new ApiError(0, 'network', (res && res.errMsg) || 'request failed');

/**
 * @typedef {object} Options
 * @property {Object<string, string|number>} [params] the path's ids
 * @property {Object<string, any>} [query]
 * @property {any} [body] JSON
 * @property {{fields: Object<string, string>, filePath?: string, files?: Array<object>}} [upload] multipart
 */

/**
 * one HTTP exchange, no retry
 * @param {{method: string, path: string, auth?: boolean, query?: string[], body?: any, multipart?: string[]}} call
 * @param {Options} [options]
 */
function send(call, { params = {}, query, body, upload } = {}) {
  checkBody(call, body);
  return new Promise((resolve, reject) => {
    const done = (res) => { try { resolve(answer(res)); } catch (e) { reject(e); } };
    if (upload && upload.filePath) { // one photo: wx.uploadFile
      wx.uploadFile({
        url: url(call, params), filePath: upload.filePath, name: 'photos', formData: upload.fields,
        header: headers(call), success: done, fail: (res) => reject(failed(res)),
      });
      return;
    }
    const built = upload ? multipart.build(upload.fields, upload.files) : null;
    wx.request({
      url: url(call, params, query),
      method: /** @type {'GET' | 'POST' | 'PUT' | 'DELETE'} */ (call.method), // CALLS holds only these
      header: headers(call, built ? { 'Content-Type': built.contentType }
        : body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      data: built ? built.body : body,
      dataType: 'json',
      success: done,
      fail: (res) => reject(failed(res)),
    });
  });
}

/**
 * a call with the session: on 401 a new login and one more try, then the login page
 * @param {string} name a key of CALLS
 * @param {Options} [options]
 */
async function call(name, options) {
  const declared = CALLS[name];
  if (!declared) throw new Error(`no call ${name}`);
  if (declared.auth === false) return send(declared, options);
  if (!session()) {
    try { await login(); } catch (e) { toLogin(); throw e; }
  }
  try {
    return await send(declared, options);
  } catch (error) {
    if (error.status !== 401) throw error;
  }
  try {
    await login();
    return await send(declared, options);
  } catch (error) {
    if (error.status === 401 || error.code === 'wx_login') toLogin();
    throw error;
  }
}

// --- photos -------------------------------------------------------------------------------------

const readFile = (filePath) => new Promise((resolve, reject) => wx.getFileSystemManager().readFile({
  filePath, success: (res) => resolve(res.data), fail: (res) => reject(failed(res)),
}));

const imageType = (path) => (/\.png$/i.test(path) ? 'image/png' : 'image/jpeg');

// text fields and photos (paths from wx.chooseMedia): none → JSON, one → wx.uploadFile,
// more → one multipart body (see utils/multipart.js)
async function withPhotos(name, params, fields, photos) {
  if (!photos.length) return call(name, { params, body: fields });
  if (photos.length === 1) return call(name, { params, upload: { fields, filePath: photos[0] } });
  const files = [];
  for (const path of photos) {
    files.push({ field: 'photos', filename: path.split('/').pop(), contentType: imageType(path), data: await readFile(path) });
  }
  return call(name, { params, upload: { fields, files } });
}

// an attachment's image to a temporary file (it needs the session's header, which <image> cannot send)
function downloadAttachment(attachmentId) {
  const declared = CALLS.attachment;
  const attempt = () => new Promise((resolve, reject) => wx.downloadFile({
    url: url(declared, { attachment_id: attachmentId }), header: headers(declared),
    success: (res) => (res.statusCode === 200 ? resolve(res.tempFilePath) : reject(new ApiError(res.statusCode, String(res.statusCode)))),
    fail: (res) => reject(failed(res)),
  }));
  return attempt().catch(async (error) => {
    if (error.status !== 401) throw error;
    await login();
    return attempt();
  });
}

// --- the live stream ----------------------------------------------------------------------------

// GET /plants/{id}/live (Server-Sent Events) read with wx.request's enableChunked: each `event:
// state` goes to onState. When the stream ends or breaks it is opened again after the server's
// `retry:` advice; a 401 first logs in again. close() ends it for good (the page's onUnload).
function live(plantId, onState, onProblem) {
  const declared = CALLS.live;
  let task = null;
  let closed = false;
  let timer = null;
  let retryMs = 3000;
  let status = 0;

  const again = (delay) => {
    if (closed) return;
    timer = setTimeout(open, delay);
  };

  function open() {
    if (closed) return;
    status = 0;
    const parser = new EventParser(({ event, data }) => {
      if (event !== 'state') return;
      try { onState(JSON.parse(data)); } catch (e) { /* a broken event is skipped, the next one comes */ }
    });
    task = wx.request({
      url: url(declared, { plant_id: plantId }),
      method: 'GET',
      header: headers(declared, { Accept: 'text/event-stream' }),
      enableChunked: true,
      responseType: 'arraybuffer',
      success: (res) => {
        status = res.statusCode;
        if (parser.retryMs) retryMs = parser.retryMs;
        if (status === 401) {
          login().then(() => again(0), () => { closed = true; toLogin(); });
        } else if (status >= 400) {
          if (onProblem) onProblem(status);
          again(Math.max(retryMs, 10000)); // 503 while Redis is away: come back later
        } else {
          again(retryMs); // the server ended the stream (a restart): open it again
        }
      },
      fail: () => { if (onProblem) onProblem(0); again(retryMs); },
    });
    task.onChunkReceived((res) => parser.feed(res.data));
  }

  open();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (task) task.abort();
    },
  };
}

module.exports = {
  CALLS, ApiError, call, login, session, saveSession, forget, withPhotos, downloadAttachment, live, SESSION_KEY,
  LOGIN_PAGE, origin: () => config.apiOrigin,
};
