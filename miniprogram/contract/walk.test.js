// The owner's month on a real `pvsettle demo`, through the mini-program's own pages and API
// client (rendered by miniprogram-simulate) with contract/wx-shim.js as `wx`: log in → bind with
// an invitation code → watch the live power → confirm a form → pay its bill → the paid bill and
// its receipt; on the way a dispute with one photo (wx.uploadFile) and a fault report with two
// (one multipart body). tests/e2e/test_miniprogram.py starts the demo, hands over the user, the
// invitation code and the photos in the environment, and checks the database afterwards with
// what this walk writes to MP_RESULT. A second user then tops up a prepaid account and redeems
// the share code the first one made.
const fs = require('fs');
const h = require('../test/harness');
const { shim } = require('./wx-shim');

const env = (name) => {
  if (!process.env[name]) throw new Error(`${name} is not set: run this from tests/e2e/test_miniprogram.py`);
  return process.env[name];
};

async function waitFor(what, condition, seconds, every = 250) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

const result = {};

// what the Chinese UI must never show on the real data: a code instead of its words
const CODE_WORDS = /\b(?:[a-z]+(?:_[a-z0-9]+)+|sent|confirmed|disputed|adjusted|open|paid|online|offline|unknown|generation|export|grid|wechat|topup|charge|normal|warned|peak|valley|flat|sharp|energy|resolved|view|pay|on|off)\b/;

function noCodes(comp) {
  const text = h.text(comp, '.page');
  expect(text).toBeTruthy();
  expect(text.match(CODE_WORDS)).toBeNull();
}

// a fresh app on the phone of `user`: modules (and so the session) loaded anew
function phone(user) {
  jest.resetModules();
  h.resetPages();
  global.wx = shim({ base: env('PVSETTLE_BASE'), user });
  const config = require('../config');
  config.apiOrigin = env('PVSETTLE_BASE');
  config.templates = JSON.parse(env('MP_TEMPLATES'));
  return global.wx;
}

afterAll(() => fs.writeFileSync(env('MP_RESULT'), JSON.stringify(result)));

test('login → bind → live power → confirm → pay → receipt, on the real API', async () => {
  const base = env('PVSETTLE_BASE');
  const photos = JSON.parse(env('MP_PHOTOS'));
  phone(env('MP_USER'));

  // log in: not bound yet, so the page asks for the invitation code
  const login = await h.open('pages/login/index');
  expect(login.instance.data.step).toBe('login');
  await login.instance.login();
  expect(login.instance.data.bindError).toBe('');
  expect(login.instance.data.step).toBe('bind');
  expect(wx.getStorageSync('pvsettle.session').token).toBeTruthy();
  login.instance.onCode({ detail: { value: env('MP_INVITATION') } });
  await login.instance.bind();
  expect(login.instance.data.bindError).toBe('');
  expect(wx.seen.switchTab).toEqual(['/pages/home/index']);

  // home: the owner's plants
  const home = await h.open('pages/home/index');
  expect(home.instance.data.error).toBe('');
  const plants = home.instance.data.plants;
  expect(plants.length).toBeGreaterThanOrEqual(2);
  noCodes(home);
  result.plants = plants.map((p) => p.id);

  // the forms the scheduler sent: one of the first plant to confirm, one of the second to dispute
  const forms = await h.open('pages/forms/index');
  expect(forms.instance.data.error).toBe('');
  const open = (code) => forms.instance.data.items.find((f) => f.title.startsWith(`${code} ·`) && f.state === 'sent');
  const [first, second] = [open(plants[0].code), open(plants[1].code)];
  expect(first && second).toBeTruthy();
  noCodes(forms);

  // the first plant: its live power comes over the SSE stream (the simulator reports every 5 s)
  const plant = await h.open('pages/plant/index', { id: String(plants[0].id) });
  expect(plant.instance.data.error).toBe('');
  const state = await waitFor('state event on the live stream', () => {
    const text = wx.seen.chunks.map((c) => c.text).join('');
    const events = text.split('\n\n').filter((b) => b.startsWith('event: state'));
    return events.length ? JSON.parse(events[events.length - 1].split('data: ')[1]) : null;
  }, 30);
  await waitFor('the page showing it', () => plant.instance.data.live.powerW === String(state.power_w), 5, 50);
  expect(h.text(plant, '#live-power')).toBe(plant.instance.data.live.power);
  expect(plant.instance.data.chart.bars.length).toBeGreaterThan(0);
  const live = wx.seen.requests.find((r) => r.chunked);
  expect(live.url).toBe(`${base}/api/v1/plants/${plants[0].id}/live`);
  noCodes(plant);
  plant.instance.onUnload();
  result.live_state = state;

  // confirm the first plant's form (after the tap's subscription request)
  const form = await h.open('pages/forms/detail', { id: String(first.id) });
  expect(form.instance.data.form.lines.length).toBeGreaterThan(0);
  await form.instance.confirm();
  expect(form.instance.data.form.state).toBe('confirmed');
  noCodes(form);
  result.confirmed_form = first.id;

  // dispute the second one with a reason and one photo (wx.uploadFile)
  const disputed = await h.open('pages/forms/detail', { id: String(second.id) });
  wx.choosePhotos(photos.slice(0, 1));
  await disputed.instance.addPhotos();
  disputed.instance.onReason({ detail: { value: '读数与现场电表不符' } });
  await disputed.instance.dispute();
  expect(disputed.instance.data.form.state).toBe('disputed');
  expect(wx.seen.requests.some((r) => r.upload && r.url.endsWith(`/forms/${second.id}/dispute`))).toBe(true);
  result.disputed_form = second.id;

  // the scheduler bills the confirmed form within a tick or two
  const bills = await h.open('pages/bills/index');
  const bill = await waitFor('bill of the confirmed form', async () => {
    await bills.instance.reload();
    return bills.instance.data.items.find((b) => b.title === first.title && b.owes);
  }, 60, 1000);

  // pay it: prepay parameters → wx.requestPayment (the fake WeChat Pay) → the paid bill
  const detail = await h.open('pages/bills/detail', { id: String(bill.id) });
  expect(detail.instance.data.bill.owes).toBe(true);
  await detail.instance.pay();
  expect(wx.seen.payments.length).toBe(1);
  expect(wx.seen.payAnswer.notify_status).toBe(204);
  expect(detail.instance.data.bill.state).toBe('paid');
  expect(h.text(detail, '#bill-owed')).toBe('¥0.00');
  expect(detail.instance.data.bill.payments.length).toBe(1);
  expect(h.text(detail, '#receipt')).toContain(detail.instance.data.bill.total);
  noCodes(detail);
  result.paid_bill = bill.id;
  result.bill_number = detail.instance.data.bill.number;

  // a fault report with two photos (one multipart body through wx.request)
  const faults = await h.open('pages/faults/index', { plant_id: String(plants[0].id) });
  wx.choosePhotos(photos.slice(0, 2));
  await faults.instance.addPhotos();
  faults.instance.onText({ detail: { value: '逆变器指示灯不亮' } });
  await faults.instance.submit();
  const opened = wx.seen.navigateTo.find((u) => u.startsWith('/pages/faults/detail?id='));
  expect(opened).toBeTruthy();
  result.fault = Number(opened.split('=')[1]);
  const fault = await h.open('pages/faults/detail', { id: String(result.fault) });
  await waitFor('the fault photos downloaded', () => fault.instance.data.photos.length === 2, 10, 100);
  expect(fs.readFileSync(fault.instance.data.photos[0]).subarray(1, 4).toString()).toBe('PNG');
  noCodes(fault);

  // the account: subscriptions as the server counts them
  const account = await h.open('pages/account/index');
  expect(account.instance.data.error).toBe('');
  noCodes(account);
  expect(account.instance.data.payments.some((p) => p.bill === result.bill_number)).toBe(true);

  // a view code of the first plant, for the next test's user
  const sharing = await h.open('pages/sharing/index', { plant_id: String(plants[0].id) });
  expect(sharing.instance.data.error).toBe('');
  await sharing.instance.share({ currentTarget: { dataset: { right: 'view' } } });
  expect(sharing.instance.data.shareCode).toMatch(/^\S+$/);
  result.share_code = sharing.instance.data.shareCode;
  result.requests = wx.seen.requests.length;
});

test('another user: a share code redeemed, then bound to an owner with a prepaid account, tops it up', async () => {
  expect(result.share_code).toBeTruthy(); // made by the walk above
  phone(env('MP_PREPAID_USER'));
  const login = await h.open('pages/login/index');
  await login.instance.login();
  expect(login.instance.data.step).toBe('bind');
  login.instance.onShareCode({ detail: { value: result.share_code } });
  await login.instance.redeem();
  expect(login.instance.data.bindError).toBe('');
  const home = await h.open('pages/home/index');
  expect(home.instance.data.plants.map((p) => p.id)).toEqual([result.plants[0]]); // the shared plant only

  const again = await h.open('pages/login/index');
  expect(again.instance.data.step).toBe('bind');
  again.instance.onCode({ detail: { value: env('MP_PREPAID_INVITATION') } });
  await again.instance.bind();
  expect(again.instance.data.bindError).toBe('');

  const plantId = env('MP_PREPAID_PLANT');
  const prepaid = await h.open('pages/prepaid/index', { plant_id: plantId });
  expect(prepaid.instance.data.error).toBe('');
  const number = prepaid.instance.data.account.number;
  expect(number).toBe(env('MP_PREPAID_NUMBER'));
  const before = prepaid.instance.data.account.available;
  prepaid.instance.onAmount({ detail: { value: '50' } });
  await prepaid.instance.topUp();
  expect(wx.seen.payAnswer.notify_status).toBe(204);
  expect(prepaid.instance.data.account.available).not.toBe(before);
  noCodes(prepaid);
  // a notice's link opens the same account by its number
  const byNumber = await h.open('pages/prepaid/index', { number });
  expect(byNumber.instance.data.account.number).toBe(number);
  result.topped_up = number;
});
