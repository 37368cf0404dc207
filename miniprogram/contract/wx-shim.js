// `wx` for Node, on a real `pvsettle demo`: wx.request / uploadFile / downloadFile go over HTTP
// to the server as a phone's would; wx.login and wx.requestPayment are played by the demo's
// fakes of WeChat and WeChat Pay through the sandbox's own routes, as sandbox.js plays them:
// POST /sandbox/api/login {user} → a code the fake WeChat will exchange, and POST
// /sandbox/api/pay {user, out_trade_no, request_payment} → the fake WeChat Pay checks the
// paySign, marks the order paid and posts its signed, encrypted notification to /pay/notify.
//
// The real WeChat knows which order a prepay_id belongs to; this shim learns it the only way it
// can, from the answers that carried the prepay parameters (`request_payment` beside
// `out_trade_no`), and sends that out_trade_no to the fake.
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const crypto = require('crypto');

function shim({ base, user }) {
  const storage = new Map();
  const orders = new Map(); // package → out_trade_no
  const seen = { requests: [], chunks: [], navigateTo: [], reLaunch: [], switchTab: [], toasts: [], payments: [], subscribe: [] };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pvsettle-wx-'));
  let photos = [];

  function exchange(url, { method = 'GET', headers = {}, body = null, onChunk = null, onResponse = null }) {
    const req = http.request(url, { method, headers });
    const done = new Promise((resolve, reject) => {
      req.on('response', (res) => {
        if (onResponse) onResponse(res);
        const parts = [];
        res.on('data', (chunk) => {
          parts.push(chunk);
          if (onChunk) onChunk(chunk);
        });
        res.on('end', () => resolve({ statusCode: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    if (body) req.write(body);
    req.end();
    return { req, done };
  }

  const sandbox = async (route, payload) => {
    const { done } = exchange(`${base}/sandbox/api/${route}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(payload) });
    const res = await done;
    return { status: res.statusCode, data: JSON.parse(res.body.toString('utf8') || 'null') };
  };

  const learnOrders = (data) => {
    if (data && typeof data === 'object' && data.request_payment && data.out_trade_no) {
      orders.set(data.request_payment.package, data.out_trade_no);
    }
  };

  const wx = {
    seen,
    getStorageSync: (k) => (storage.has(k) ? JSON.parse(storage.get(k)) : ''),
    setStorageSync: (k, v) => storage.set(k, JSON.stringify(v)),
    removeStorageSync: (k) => storage.delete(k),
    getSystemInfoSync: () => ({ language: process.env.MP_LANGUAGE || 'zh_CN', pixelRatio: 2 }),
    getWindowInfo: () => ({ pixelRatio: 2 }),

    login({ success, fail }) {
      sandbox('login', { user }).then(({ status, data }) => (status === 200 ? success({ code: data.code, errMsg: 'login:ok' })
        : fail({ errMsg: `login:fail ${status}` })), (e) => fail({ errMsg: `login:fail ${e.message}` }));
    },

    request(opts) {
      const headers = { ...(opts.header || {}) };
      let body = null;
      if (opts.data instanceof ArrayBuffer) body = Buffer.from(opts.data);
      else if (opts.data !== undefined && opts.data !== null && (opts.method || 'GET') !== 'GET') {
        body = Buffer.from(JSON.stringify(opts.data));
        headers['Content-Type'] = headers['Content-Type'] || 'application/json';
      }
      if (body) headers['Content-Length'] = String(body.length);
      const chunkListeners = [];
      const record = { method: opts.method || 'GET', url: opts.url, chunked: !!opts.enableChunked };
      seen.requests.push(record);
      const { req, done } = exchange(opts.url, {
        method: record.method, headers, body,
        onChunk: opts.enableChunked ? (chunk) => {
          seen.chunks.push({ url: opts.url, text: chunk.toString('utf8') });
          const copy = new Uint8Array(chunk).buffer;
          for (const cb of chunkListeners) cb({ data: copy });
        } : null,
      });
      let aborted = false;
      done.then((res) => {
        if (aborted) return;
        record.status = res.statusCode;
        let data = opts.enableChunked ? new ArrayBuffer(0) : res.body.toString('utf8');
        if (!opts.enableChunked && opts.dataType !== 'text') {
          try { data = JSON.parse(data); } catch (e) { /* left as text, as WeChat does */ }
        }
        learnOrders(data);
        opts.success && opts.success({ statusCode: res.statusCode, data, header: res.headers });
      }, (error) => { if (!aborted && opts.fail) opts.fail({ errMsg: `request:fail ${error.message}` }); });
      return {
        abort() { aborted = true; req.destroy(); },
        onChunkReceived(cb) { chunkListeners.push(cb); },
        onHeadersReceived() {},
      };
    },

    // one file as WeChat sends it: multipart/form-data, the file under `name`, formData beside it
    uploadFile(opts) {
      const mark = `----wxshim${crypto.randomBytes(8).toString('hex')}`;
      const parts = [];
      for (const [k, v] of Object.entries(opts.formData || {})) {
        parts.push(Buffer.from(`--${mark}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
      }
      const file = fs.readFileSync(opts.filePath);
      parts.push(Buffer.from(`--${mark}\r\nContent-Disposition: form-data; name="${opts.name}"; filename="${path.basename(opts.filePath)}"\r\n`
        + 'Content-Type: application/octet-stream\r\n\r\n'), file, Buffer.from(`\r\n--${mark}--\r\n`));
      const body = Buffer.concat(parts);
      seen.requests.push({ method: 'POST', url: opts.url, upload: true });
      const { done } = exchange(opts.url, { method: 'POST', body,
        headers: { ...(opts.header || {}), 'Content-Type': `multipart/form-data; boundary=${mark}`, 'Content-Length': String(body.length) } });
      done.then((res) => opts.success({ statusCode: res.statusCode, data: res.body.toString('utf8') }),
        (error) => opts.fail && opts.fail({ errMsg: `uploadFile:fail ${error.message}` }));
    },

    downloadFile(opts) {
      const { done } = exchange(opts.url, { headers: opts.header || {} });
      done.then((res) => {
        const file = path.join(tmp, `download-${seen.requests.length}`);
        fs.writeFileSync(file, res.body);
        opts.success({ statusCode: res.statusCode, tempFilePath: file });
      }, (error) => opts.fail && opts.fail({ errMsg: `downloadFile:fail ${error.message}` }));
    },

    getFileSystemManager: () => ({
      readFile: ({ filePath, success, fail }) => fs.readFile(filePath, (error, data) => (error ? fail({ errMsg: error.message })
        : success({ data: new Uint8Array(data).buffer }))),
    }),

    requestPayment(opts) {
      seen.payments.push(opts);
      const outTradeNo = orders.get(opts.package);
      if (!outTradeNo) { setTimeout(() => opts.fail({ errMsg: 'requestPayment:fail unknown prepay_id' }), 0); return; }
      const params = { timeStamp: opts.timeStamp, nonceStr: opts.nonceStr, package: opts.package, signType: opts.signType, paySign: opts.paySign };
      sandbox('pay', { user, out_trade_no: outTradeNo, request_payment: params }).then(({ status, data }) => {
        seen.payAnswer = data;
        if (status === 200 && data.trade_state === 'SUCCESS') opts.success({ errMsg: 'requestPayment:ok' });
        else opts.fail({ errMsg: `requestPayment:fail ${JSON.stringify(data)}` });
      }, (error) => opts.fail({ errMsg: `requestPayment:fail ${error.message}` }));
    },

    // the user taps "allow" for every template asked (as the sandbox's users do)
    requestSubscribeMessage(opts) {
      seen.subscribe.push(opts.tmplIds);
      const res = { errMsg: 'requestSubscribeMessage:ok' };
      for (const id of opts.tmplIds) res[id] = 'accept';
      setTimeout(() => opts.success(res), 0);
    },

    // the photos the walk "chose": files on disk, as WeChat's temporary files are
    choosePhotos(files) { photos = files; },
    chooseMedia({ count, success }) {
      setTimeout(() => success({ tempFiles: photos.slice(0, count).map((p) => ({ tempFilePath: p, fileType: 'image' })) }), 0);
    },

    navigateTo: ({ url }) => seen.navigateTo.push(url),
    redirectTo: ({ url }) => seen.navigateTo.push(url),
    reLaunch: ({ url }) => seen.reLaunch.push(url),
    switchTab: ({ url }) => seen.switchTab.push(url),
    showToast: ({ title }) => seen.toasts.push(title),
    showModal: ({ success }) => setTimeout(() => success({ confirm: true }), 0),
    setNavigationBarTitle() {}, stopPullDownRefresh() {}, setClipboardData() {}, previewImage() {}, setTabBarItem() {},
    tmp,
  };
  return wx;
}

module.exports = { shim };
