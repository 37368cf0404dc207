// Every page under miniprogram-simulate: it loads and renders its data, answers an empty list,
// an error answer and a 401 (one new login and the call again; the login page when that fails),
// and its actions send what the API takes. The last test checks every field the pages read
// from the answers against the OpenAPI document.
const h = require('./harness');
const fx = require('./fixtures');
const schema = require('./schema');

// an error the document declares for every route (and an answer a busy phone does meet)
const ERROR = [429, { error: { code: 'rate_limited', message: '请求太频繁，请稍后再试' } }];
const EXPIRED = [401, { error: { code: 'token_expired', message: '登录已过期' } }];
const empty = [200, fx.page([])];

// each page: where it is, its query, the call it cannot do without, how it shows its data,
// and what "an empty list" is for it
const PAGES = [
  { page: 'pages/home/index', main: ['GET', '/plants'], list: ['GET', '/plants'],
    renders: (c) => { expect(h.text(c, '.plant')).toContain('阿明屋顶'); expect(h.text(c, '.plant')).toContain('31.3 kW');
      expect(h.text(c, '#sum-lifetime')).toBe('123,456.789 kWh'); expect(h.text(c, '#sum-co2')).toBe('531.4 kg'); } },
  { page: 'pages/plant/index', query: { id: '7' }, main: ['GET', '/plants/{plant_id}'],
    renders: (c) => { expect(h.text(c, '#name')).toBe('阿明屋顶'); expect(h.text(c, '#live-power')).toBe('31.3');
      expect(h.text(c, '#span-revenue')).toBe('¥456.78'); expect(h.text(c, '#discount')).toContain('电网电价 × 0.85'); },
    emptyList: (server) => server.on('GET', '/plants/{plant_id}/history', [200, { ...fx.history('day'), bars: [] }]),
    rendersEmpty: (c) => expect(c.querySelector('#chart').instance.data.count).toBe(0) },
  { page: 'pages/forms/index', main: ['GET', '/forms'], list: ['GET', '/forms'],
    renders: (c) => { expect(h.text(c, '.form')).toContain('PV00001 · 2026-11'); expect(h.text(c, '.form')).toContain('待确认');
      expect(h.text(c, '.form')).toContain('5,230.500'); } },
  { page: 'pages/forms/detail', query: { id: '11' }, main: ['GET', '/forms/{form_id}'],
    renders: (c) => { expect(h.all(c, '.form-line').length).toBe(2); expect(h.text(c, '.form-line')).toContain('发电表 G-001');
      expect(h.text(c, '.form-line')).toContain('总');
      expect(h.text(c, '.form-line')).toContain('×50'); expect(h.text(c, '.period')).toContain('峰');
      expect(h.text(c, '#adjustments')).toContain('表计更换'); expect(c.querySelector('#form-confirm')).toBeTruthy(); },
    emptyList: (server) => server.on('GET', '/forms/{form_id}', [200, { ...fx.formDetail, lines: [], adjustments: [], periods: {} }]),
    rendersEmpty: (c) => { expect(h.all(c, '.form-line').length).toBe(0); expect(c.querySelector('#adjustments')).toBeFalsy();
      expect(h.text(c, '#form-total')).toContain('5,230.500'); } },
  { page: 'pages/bills/index', main: ['GET', '/bills'], list: ['GET', '/bills'],
    renders: (c) => { expect(h.text(c, '.bill')).toContain('¥3,456.78'); expect(h.text(c, '.bill')).toContain('待缴费'); } },
  { page: 'pages/bills/detail', query: { id: '21' }, main: ['GET', '/bills/{bill_id}'],
    renders: (c) => { expect(h.all(c, '.bill-line').length).toBe(2); expect(h.text(c, '.unit-price')).toBe('0.9876');
      expect(h.text(c, '#bill-owed')).toBe('¥3,456.78'); expect(h.text(c, '#bill-pay')).toBe('微信支付 ¥3,456.78'); },
    emptyList: (server) => server.on('GET', '/bills/{bill_id}', [200, { ...fx.billDetail, lines: [] }]),
    rendersEmpty: (c) => { expect(h.all(c, '.bill-line').length).toBe(0); expect(c.querySelector('#receipt')).toBeFalsy(); } },
  { page: 'pages/prepaid/index', query: { plant_id: '7' }, main: ['GET', '/plants/{plant_id}/prepaid/statement'],
    renders: (c) => { expect(h.text(c, '#available')).toBe('¥123.00'); expect(h.all(c, '.entry').length).toBe(2);
      expect(h.text(c, '.entry')).toContain('充值'); expect(h.text(c, '#account')).toContain('正常 · 供电中'); },
    emptyList: (server) => server.on('GET', '/plants/{plant_id}/prepaid/statement', [200, { ...fx.statement, entries: [] }]),
    rendersEmpty: (c) => expect(c.querySelector('#empty')).toBeTruthy() },
  { page: 'pages/sharing/index', query: { plant_id: '7' }, main: ['GET', '/plants/{plant_id}/grants'], list: ['GET', '/plants/{plant_id}/grants'],
    renders: (c) => expect(h.text(c, '.grant')).toContain('阿明的女儿') },
  { page: 'pages/faults/index', main: ['GET', '/faults'], list: ['GET', '/faults'],
    renders: (c) => { expect(h.text(c, '.fault')).toContain('逆变器报警'); expect(h.text(c, '#fault-plant')).toContain('PV00001'); } },
  { page: 'pages/faults/detail', query: { id: '31' }, main: ['GET', '/faults/{fault_id}'],
    renders: (c) => { expect(h.text(c, '#fault-state')).toBe('处理中'); expect(h.text(c, '#fault-note')).toContain('明天上门');
      expect(h.all(c, '.photo').length).toBe(1); },
    emptyList: (server) => server.on('GET', '/faults/{fault_id}', [200, { ...fx.fault, attachments: [] }]),
    rendersEmpty: (c) => expect(h.all(c, '.photo').length).toBe(0) },
  { page: 'pages/account/index', main: ['GET', '/account'], list: ['GET', '/payments'],
    renders: (c) => { expect(h.text(c, '#owner')).toBe('阿明光伏'); expect(h.text(c, '#credit')).toBe('¥12.00');
      expect(h.text(c, '.payment')).toContain('202611-PV00001-1 微信支付'); expect(h.text(c, '.subscription')).toContain('账单通知'); } },
];

describe.each(PAGES)('$page', (spec) => {
  const open = () => h.open(spec.page, spec.query || {});

  test('loads and renders its data', async () => {
    h.fresh();
    const c = await open();
    expect(c.instance.data.error).toBe('');
    expect(c.querySelector('#loading')).toBeFalsy();
    spec.renders(c);
  });

  test('handles an empty list', async () => {
    const { server } = h.fresh();
    if (spec.list) server.on(...spec.list, empty);
    else spec.emptyList(server);
    const c = await open();
    expect(c.instance.data.error).toBe('');
    if (spec.list) expect(c.querySelector('#empty')).toBeTruthy();
    else spec.rendersEmpty(c);
  });

  test('shows an error answer and retries', async () => {
    const { server } = h.fresh();
    server.once(...spec.main, ERROR);
    const c = await open();
    expect(h.text(c, '#error')).toContain('请求太频繁');
    c.querySelector('.retry').dispatchEvent('tap');
    await h.until(() => !c.instance.data.error && !c.instance.data.loading);
    await h.settle();
    expect(c.querySelector('#error')).toBeFalsy();
    spec.renders(c);
  });

  test('logs in again on a 401 and goes on', async () => {
    const { server, wx } = h.fresh();
    server.once(...spec.main, EXPIRED);
    const c = await open();
    expect(wx.did.login).toBe(1);
    expect(server.called('POST', '/session')[0].body).toEqual({ code: 'code-1' });
    expect(wx.getStorageSync('pvsettle.session').token).toBe('token-1');
    const again = server.called(...spec.main);
    expect(again.length).toBe(2);
    expect(again[1].header.Authorization).toBe('Bearer token-1');
    expect(c.instance.data.error).toBe('');
    spec.renders(c);
  });

  test('goes to the login page when a new login does not help', async () => {
    const { server, wx } = h.fresh();
    server.on(...spec.main, EXPIRED);
    const c = await open();
    expect(wx.did.reLaunch).toContain('/pages/login/index');
    expect(wx.getStorageSync('pvsettle.session')).toBe('');
    expect(h.text(c, '#error')).toContain('登录已过期');
  });
});

describe('pages/login/index', () => {
  test('logs in, binds with an invitation code and goes home', async () => {
    const { server, wx } = h.fresh({ loggedIn: false });
    server.on('POST', '/session', [201, { ...fx.session, me: { identity_id: 3, bound: false, owner: null } }]);
    const c = await h.open('pages/login/index');
    expect(c.querySelector('#login')).toBeTruthy();
    c.querySelector('#login').dispatchEvent('tap');
    await h.until(() => c.querySelector('#bind'));
    expect(c.querySelector('#bind')).toBeTruthy();
    c.querySelector('#code').dispatchEvent('input', { detail: { value: ' ABCD234567 ' } });
    await h.settle();
    c.querySelector('#bind-code').dispatchEvent('tap');
    await h.until(() => wx.did.switchTab.length);
    expect(server.called('POST', '/binding')[0].body).toEqual({ invitation_code: 'ABCD234567' });
    expect(wx.did.switchTab).toEqual(['/pages/home/index']);
    expect(wx.getStorageSync('pvsettle.session').me.bound).toBe(true);
  });

  test('a bound user goes home at once', async () => {
    const { wx } = h.fresh({ loggedIn: false });
    const c = await h.open('pages/login/index');
    await c.instance.login();
    expect(wx.did.switchTab).toEqual(['/pages/home/index']);
  });

  test('the invitation QR code (scene), the scanner and the phone number bind too', async () => {
    const { server } = h.fresh();
    server.on('GET', '/me', [200, { identity_id: 3, bound: false, owner: null }]);
    const c = await h.open('pages/login/index', { scene: encodeURIComponent('QR123456') });
    expect(c.instance.data.code).toBe('QR123456');
    expect(c.querySelector('#bind')).toBeTruthy();
    await c.instance.scan();
    await c.instance.bindPhone({ detail: { code: 'phone-code-1' } });
    await c.instance.bindPhone({ detail: { errMsg: 'getPhoneNumber:fail user deny' } });
    expect(server.called('POST', '/binding').map((r) => r.body)).toEqual([{ invitation_code: 'SCAN1234' }, { phone_code: 'phone-code-1' }]);
  });

  test('a refused code is shown, and a share code is redeemed', async () => {
    const { server, wx } = h.fresh();
    server.on('GET', '/me', [200, { identity_id: 3, bound: false, owner: null }]);
    server.on('POST', '/binding', [404, { error: { code: 'invitation_not_found', message: '邀请码无效' } }]);
    const c = await h.open('pages/login/index');
    c.instance.onCode({ detail: { value: 'WRONG' } });
    await c.instance.bind();
    expect(h.text(c, '#bind-error')).toBe('邀请码无效');
    c.instance.onShareCode({ detail: { value: 'SHARE12345' } });
    await c.instance.redeem();
    expect(server.called('POST', '/shares/redeem')[0].body).toEqual({ code: 'SHARE12345' });
    expect(wx.did.switchTab).toEqual(['/pages/home/index']);
  });

  test('an error answer to /me shows, a 401 logs in again', async () => {
    let { server } = h.fresh();
    server.once('GET', '/me', ERROR);
    let c = await h.open('pages/login/index');
    expect(h.text(c, '#error')).toContain('请求太频繁');
    ({ server } = h.fresh());
    server.once('GET', '/me', EXPIRED);
    const { wx } = { wx: global.wx };
    c = await h.open('pages/login/index');
    expect(wx.did.login).toBe(1);
    expect(wx.did.switchTab).toEqual(['/pages/home/index']);
  });
});

describe('the bot\'s paths', () => {
  test('pages/bind/link binds with the link code of the official account', async () => {
    const { server, wx } = h.fresh();
    server.on('GET', '/me', [200, { identity_id: 3, bound: false, owner: null }]);
    const c = await h.open('pages/bind/link', { code: 'LINK123456' });
    expect(c.instance.data.code).toBe('LINK123456');
    await c.instance.bind();
    expect(server.called('POST', '/binding')[0].body).toEqual({ invitation_code: 'LINK123456' });
    expect(wx.did.switchTab).toEqual(['/pages/home/index']);
  });

  test('pages/bill/list and pages/bill/detail pass on to the bills', async () => {
    const { wx } = h.fresh();
    wx.redirectTo = ({ url }) => wx.did.navigateTo.push(url);
    await h.open('pages/bill/list');
    await h.open('pages/bill/detail', { id: '21' });
    expect(wx.did.switchTab).toEqual(['/pages/bills/index']);
    expect(wx.did.navigateTo).toEqual(['/pages/bills/detail?id=21']);
  });
});

describe('actions', () => {
  test('home: an unbound user with no plants is offered binding', async () => {
    const { server, wx } = h.fresh();
    wx.setStorageSync('pvsettle.session', { token: 't', expires_at: 'x', me: { identity_id: 3, bound: false, owner: null } });
    server.on('GET', '/plants', empty);
    const c = await h.open('pages/home/index');
    c.querySelector('#to-bind').dispatchEvent('tap');
    await h.until(() => wx.did.reLaunch.length);
    expect(wx.did.reLaunch).toEqual(['/pages/login/index']);
  });

  test('plant: the live stream updates the power, a character cut between chunks included', async () => {
    const { server } = h.fresh();
    const state = JSON.stringify({ plant_id: 7, ts: '2026-12-04T03:20:00+00:00', power_w: 4200, today_kwh: '90.500', note: '晴' });
    const bytes = Buffer.from(`retry: 3000\n\n: heartbeat\n\nevent: state\ndata: ${state}\n\n`);
    const cut = bytes.indexOf(Buffer.from('晴')) + 1; // in the middle of the character's three bytes
    server.on('GET', '/plants/{plant_id}/live', [200, [bytes.subarray(0, cut), bytes.subarray(cut)]]);
    const c = await h.open('pages/plant/index', { id: '7' });
    await h.settle();
    expect(h.text(c, '#live-power')).toBe('4.2');
    expect(h.text(c, '#live-today')).toBe('90.500');
    expect(h.text(c, '#live-ts')).toBe('更新于 2026-12-04 11:20');
    const live = server.called('GET', '/plants/{plant_id}/live')[0];
    expect(live.header.Authorization).toBe('Bearer token-0');
    c.instance.onUnload();
  });

  test('plant: the spans draw the chart of each', async () => {
    const { server } = h.fresh();
    const c = await h.open('pages/plant/index', { id: '7' });
    c.querySelector('#span-month').dispatchEvent('tap');
    await h.until(() => c.instance.data.span === 'month' && server.called('GET', '/plants/{plant_id}/history').length === 2);
    await h.settle();
    expect(server.called('GET', '/plants/{plant_id}/history').map((r) => r.query.span)).toEqual(['day', 'month']);
    expect(c.querySelector('#chart').instance.data).toMatchObject({ count: 4, measured: 3 });
    c.instance.onUnload();
  });

  test('form: confirm asks for the bill and payment messages first, then confirms', async () => {
    const { server, wx } = h.fresh();
    const c = await h.open('pages/forms/detail', { id: '11' });
    c.querySelector('#form-confirm').dispatchEvent('tap');
    await h.until(() => c.instance.data.form.state === 'confirmed');
    expect(wx.did.subscribe).toEqual([['tpl-bill-issued', 'tpl-payment-received']]);
    expect(server.called('PUT', '/subscriptions')[0].body).toEqual({ errMsg: 'requestSubscribeMessage:ok', 'tpl-bill-issued': 'accept', 'tpl-payment-received': 'accept' });
    expect(server.called('POST', '/forms/{form_id}/confirm').length).toBe(1);
    expect(h.text(c, '#form-state')).toBe('已确认');
    expect(c.querySelector('#form-confirm')).toBeFalsy();
  });

  test('form: a dispute needs a reason; without photos it is JSON', async () => {
    const { server, wx } = h.fresh();
    const c = await h.open('pages/forms/detail', { id: '11' });
    await c.instance.dispute();
    expect(wx.did.showToast).toEqual(['请填写异议原因']);
    c.instance.onReason({ detail: { value: '读数偏低' } });
    await c.instance.dispute();
    const sent = server.called('POST', '/forms/{form_id}/dispute');
    expect(sent.map((r) => [r.kind, r.body])).toEqual([['request', { reason: '读数偏低' }]]);
    expect(h.text(c, '#form-state')).toBe('disputed');
  });

  test('form: one photo goes by wx.uploadFile, two in one multipart body', async () => {
    let { server } = h.fresh();
    let c = await h.open('pages/forms/detail', { id: '11' });
    c.instance.onReason({ detail: { value: '表计故障' } });
    c.setData({ photos: ['wxfile://tmp/a.jpg'] });
    await c.instance.dispute();
    let sent = server.called('POST', '/forms/{form_id}/dispute')[0];
    expect(sent).toMatchObject({ kind: 'uploadFile', filePath: 'wxfile://tmp/a.jpg', name: 'photos', formData: { reason: '表计故障' } });
    expect(sent.header.Authorization).toBe('Bearer token-0');

    ({ server } = h.fresh());
    c = await h.open('pages/forms/detail', { id: '11' });
    c.instance.onReason({ detail: { value: '表计故障' } });
    await c.instance.addPhotos(); // the fake chooseMedia picks two
    expect(c.instance.data.photos.length).toBe(2);
    await c.instance.dispute();
    sent = server.called('POST', '/forms/{form_id}/dispute')[0];
    expect(sent.kind).toBe('request');
    expect(sent.header['Content-Type']).toMatch(/^multipart\/form-data; boundary=/);
    const body = Buffer.from(sent.multipart, 'latin1').toString('utf8');
    expect(body).toContain('name="reason"\r\n\r\n表计故障\r\n');
    expect(body.match(/name="photos"; filename="photo\d\.jpg"\r\nContent-Type: image\/jpeg/g).length).toBe(2);
    expect(body).toContain('bytes of wxfile://tmp/photo1.jpg');
  });

  test('bill: pay asks for the receipt message, pays with the prepay parameters, shows the paid bill', async () => {
    const { server, wx } = h.fresh();
    server.on('GET', '/bills/{bill_id}', [200, fx.billDetail]);
    const c = await h.open('pages/bills/detail', { id: '21' });
    server.on('GET', '/bills/{bill_id}', [200, fx.paidBill]);
    c.querySelector('#bill-pay').dispatchEvent('tap');
    await h.until(() => c.instance.data.bill.state === 'paid' && !c.instance.data.paying);
    expect(wx.did.subscribe).toEqual([['tpl-payment-received']]);
    expect(server.called('POST', '/bills/{bill_id}/pay')[0].body).toEqual({});
    expect(wx.did.requestPayment[0]).toMatchObject(fx.payOut.request_payment);
    expect(h.text(c, '#bill-state')).toBe('已缴清');
    expect(h.text(c, '#bill-owed')).toBe('¥0.00');
    expect(h.text(c, '#receipt')).toContain('¥3,456.78');
    expect(h.text(c, '#receipt')).toContain('2633000000012345');
    expect(c.querySelector('#bill-pay')).toBeFalsy();
  });

  test('bill: a paid bill without its e-invoice asks for it; a refusal is told', async () => {
    const { server, wx } = h.fresh();
    const uninvoiced = { ...fx.paidBill, invoices: [] };
    server.on('GET', '/bills/{bill_id}', [200, uninvoiced]);
    const c = await h.open('pages/bills/detail', { id: '21' });
    expect(c.querySelector('#ask-invoice')).toBeTruthy();
    server.on('GET', '/bills/{bill_id}', [200, { ...uninvoiced, invoices: [{ ...fx.paidBill.invoices[0], number: null, issued_at: null, state: 'requested' }] }]);
    await c.instance.askInvoice();
    expect(server.called('POST', '/bills/{bill_id}/invoice').length).toBe(1);
    expect(c.querySelector('#ask-invoice')).toBeFalsy();
    expect(wx.did.showToast).toEqual(['已申请开票']);
    server.on('POST', '/bills/{bill_id}/invoice', [409, { error: { code: 'no_tax_id', message: '没有有效的纳税人识别号' } }]);
    await c.instance.askInvoice();
    expect(wx.did.showToast[1]).toBe('没有有效的纳税人识别号');
    const open = await h.open('pages/bills/detail', { id: '21' });
    expect(open.querySelector('#ask-invoice')).toBeFalsy(); // the invoice asked for is on the bill now
  });

  test('bill: a cancelled payment leaves the bill open', async () => {
    const { wx } = h.fresh({ payment: 'cancel' });
    const c = await h.open('pages/bills/detail', { id: '21' });
    await c.instance.pay();
    expect(wx.did.showToast).toEqual(['已取消支付']);
    expect(h.text(c, '#bill-state')).toBe('待缴费');
  });

  test('bill and form: the e-bill opens in the web-view, in the UI language', async () => {
    const { wx } = h.fresh();
    const c = await h.open('pages/bills/detail', { id: '21' });
    c.querySelector('#bill-ebill').dispatchEvent('tap');
    await h.until(() => wx.did.navigateTo.length);
    const url = wx.did.navigateTo[0];
    expect(url).toBe(`/pages/webview/index?url=${encodeURIComponent('https://pv.example.com/e/bill/21?sig=abc&lang=zh')}`);
    const view = await h.open('pages/webview/index', { url: url.split('url=')[1] });
    expect(view.instance.data.src).toBe('https://pv.example.com/e/bill/21?sig=abc&lang=zh');
    const elsewhere = await h.open('pages/webview/index', { url: encodeURIComponent('https://evil.example/e') });
    expect(elsewhere.instance.data.src).toBe('');
  });

  test('prepaid: top up for oneself and for another account, and find the account by number', async () => {
    const { server, wx } = h.fresh();
    const c = await h.open('pages/prepaid/index', { plant_id: '7' });
    c.instance.onAmount({ detail: { value: '50' } });
    await c.instance.topUp();
    c.instance.onOtherNumber({ detail: { value: 'PA000999' } });
    c.instance.onOtherAmount({ detail: { value: '12.5' } });
    await c.instance.topUpOther();
    expect(server.called('POST', '/plants/{plant_id}/prepaid/topup')[0].body).toEqual({ amount_fen: 5000 });
    expect(server.called('POST', '/prepaid/topup')[0].body).toEqual({ number: 'PA000999', amount_fen: 1250 });
    expect(wx.did.requestPayment.length).toBe(2);
    const byNumber = await h.open('pages/prepaid/index', { number: 'PA000123' });
    expect(h.text(byNumber, '#number')).toBe('PA000123');
  });

  test('prepaid: a plant without an account says so', async () => {
    const { server } = h.fresh();
    server.on('GET', '/plants/{plant_id}/prepaid/statement', [404, { error: { code: 'not_found', message: 'no prepaid account' } }]);
    const c = await h.open('pages/prepaid/index', { plant_id: '7' });
    expect(c.querySelector('#none')).toBeTruthy();
    expect(c.instance.data.error).toBe('');
  });

  test('sharing: a pay code, and a grant revoked', async () => {
    const { server } = h.fresh();
    const c = await h.open('pages/sharing/index', { plant_id: '7' });
    c.querySelector('#share-pay').dispatchEvent('tap');
    await h.until(() => c.instance.data.share);
    expect(server.called('POST', '/plants/{plant_id}/shares')[0].body).toEqual({ right: 'pay', ttl_hours: 24 });
    expect(h.text(c, '#share-code')).toContain('SHARE12345');
    c.querySelector('.revoke').dispatchEvent('tap');
    await h.until(() => server.called('DELETE', '/plants/{plant_id}/grants/{grant_id}').length);
    expect(server.called('DELETE', '/plants/{plant_id}/grants/{grant_id}')[0].url).toMatch(/\/plants\/7\/grants\/41$/);
  });

  test('faults: a report with two photos on the chosen plant', async () => {
    const { server, wx } = h.fresh();
    const c = await h.open('pages/faults/index', { plant_id: '7' });
    c.instance.onText({ detail: { value: '逆变器不亮' } });
    await c.instance.addPhotos();
    await c.instance.submit();
    const sent = server.called('POST', '/plants/{plant_id}/faults')[0];
    expect(sent.url).toMatch(/\/plants\/7\/faults$/);
    expect(Buffer.from(sent.multipart, 'latin1').toString('utf8')).toContain('name="text"\r\n\r\n逆变器不亮\r\n');
    expect(wx.did.subscribe).toEqual([['tpl-fault-update']]);
    expect(wx.did.navigateTo).toEqual(['/pages/faults/detail?id=31']);
  });

  test('account: subscribe from a tap, log out', async () => {
    const { server, wx } = h.fresh();
    const c = await h.open('pages/account/index');
    await c.instance.subscribe();
    expect(wx.did.subscribe).toEqual([['tpl-form-sent', 'tpl-auto-confirm', 'tpl-bill-issued']]);
    await c.instance.logout();
    expect(server.called('DELETE', '/session').length).toBe(1);
    expect(wx.getStorageSync('pvsettle.session')).toBe('');
    expect(wx.did.reLaunch).toEqual(['/pages/login/index']);
  });

  test('subscriptions: a template WeChat filtered is left out of the report; nothing left, no report', async () => {
    const { server, wx } = h.fresh();
    const subscribe = require('../utils/subscribe');
    wx.requestSubscribeMessage = (o) => setTimeout(() => o.success({ errMsg: 'requestSubscribeMessage:ok', 'tpl-bill-issued': 'filter', 'tpl-payment-received': 'reject' }), 0);
    await subscribe.ask(['bill_issued', 'payment_received']);
    expect(server.called('PUT', '/subscriptions').map((r) => r.body)).toEqual([{ errMsg: 'requestSubscribeMessage:ok', 'tpl-payment-received': 'reject' }]);
    wx.requestSubscribeMessage = (o) => setTimeout(() => o.success({ errMsg: 'requestSubscribeMessage:ok', 'tpl-bill-issued': 'filter' }), 0);
    await subscribe.ask(['bill_issued']);
    expect(server.called('PUT', '/subscriptions').length).toBe(1);
  });

  test('account: an unbound user sees no owner', async () => {
    const { server } = h.fresh();
    server.on('GET', '/me', [200, { identity_id: 3, bound: false, owner: null }]);
    const c = await h.open('pages/account/index');
    expect(c.querySelector('#not-bound')).toBeTruthy();
    expect(server.called('GET', '/account').length).toBe(0);
  });

  test('English on an English phone: the tab bar, the app\'s words and the catalogue\'s', async () => {
    const { server, wx } = h.fresh({ language: 'en' });
    const tabs = [];
    wx.setTabBarItem = (o) => tabs.push(o.text);
    await h.open('pages/home/index');
    expect(tabs).toEqual(['Plants', 'Forms', 'Bills', 'Me']);
    const c = await h.open('pages/bills/detail', { id: '21' });
    expect(h.text(c, '#bill-pay')).toBe('Pay ¥3,456.78 with WeChat Pay');
    expect(h.text(c, '#bill-state')).toBe('open');
    expect(server.called('GET', '/i18n')[0].query).toEqual({ lang: 'en' });
    expect(server.called('GET', '/bills/{bill_id}')[0].header['Accept-Language']).toBe('en');
  });
});

test('every field a page read from an answer is declared in the OpenAPI document', () => {
  expect(h.reads.size).toBeGreaterThan(100);
  const undeclared = [];
  for (const read of h.reads) {
    const [method, template, status, field] = read.split(' ');
    const response = schema.responseSchema(method, template, status);
    if (!response || !schema.declares(response, field)) undeclared.push(read);
  }
  expect(undeclared).toEqual([]);
});

test('every JSON body and query the pages sent is valid by the OpenAPI document', () => {
  const Ajv2020 = require('ajv/dist/2020');
  const ajv = require('ajv-formats')(new Ajv2020({ strict: false, allErrors: true }));
  ajv.addSchema({ $id: 'doc', components: schema.doc.components });
  expect(h.sent.length).toBeGreaterThan(100);
  const invalid = [];
  for (const [method, template, body, query] of h.sent) {
    const op = schema.operation(method, template);
    const media = op.requestBody && op.requestBody.content['application/json'];
    if (body !== undefined && body !== null) {
      if (!media) { invalid.push(`${method} ${template}: a body it does not take`); continue; }
      const check = ajv.compile({ $ref: `doc${media.schema.$ref}` });
      if (!check(body)) invalid.push(`${method} ${template}: ${ajv.errorsText(check.errors)}`);
    }
    for (const [name, value] of Object.entries(query)) {
      const param = (op.parameters || []).find((p) => p.in === 'query' && p.name === name);
      const value_ = /^-?\d+$/.test(value) && param && JSON.stringify(param.schema).includes('integer') ? Number(value) : value;
      const check = param && ajv.compile(param.schema);
      if (!check || !check(value_)) invalid.push(`${method} ${template} ?${name}=${value}`);
    }
  }
  expect(invalid).toEqual([]);
});
