// Answers of /api/v1 as the server gives them, one of each kind the pages read. Each is
// checked against the OpenAPI document (test/openapi.test.js), so a page tested on these is
// tested on what the server can really send.
const me = { identity_id: 3, bound: true, owner: { id: 5, name: '阿明光伏' } };

const plantSummary = {
  id: 7, code: 'PV00001', name: '阿明屋顶', capacity_kwp: '48.60', right: 'owner', status: 'online',
  power_w: 31250, last_seen: '2026-12-04T03:15:00+00:00', today_kwh: '82.125', lifetime_kwh: '123456.789',
};

const plantDetail = {
  ...plantSummary, address: '浙江省杭州市西湖区文三路 1 号', reading_day: 1, commissioned_on: '2024-05-01',
  owner_name: '阿明光伏',
  contract: { effective_from: '2024-05-01', pricing_model: 'discount', tariff_code: 'ZJ-2024', discount: '0.85',
              fixed_price: null, due_days: 15 },
};

const bar = (label, start, kwh, extra) => ({
  label, start, energy_kwh: kwh, source: kwh === null ? null : 'telemetry', reason: null, self_use_kwh: null,
  export_kwh: null, revenue_fen: null, billing_period: null, co2_kg: null, coal_kg: null, ...extra,
});

const history = (span) => ({
  plant_id: 7, span,
  bars: [bar('08', '2026-12-04T00:00:00+00:00', '10.500'), bar('09', '2026-12-04T01:00:00+00:00', '21.250'),
         bar('10', '2026-12-04T02:00:00+00:00', null), bar('11月', '2026-11-01T00:00:00+00:00', '900.000', { source: 'form' })],
  total: bar('', '2026-12-04T00:00:00+00:00', '931.750', { revenue_fen: 45678, co2_kg: '531.377', coal_kg: '279.525' }),
  factors: { co2_kg_per_kwh: '0.5703', coal_kg_per_kwh: '0.300' },
});

const formSummary = {
  id: 11, plant_id: 7, plant_code: 'PV00001', period: '2026-11', version: 1, state: 'sent',
  generation_kwh: '5230.500', self_use_kwh: '4100.250', export_kwh: '1130.250', grid_kwh: '220.000',
  sent_at: '2026-11-01T01:00:00+00:00', answer_due_at: '2026-11-08T01:00:00+00:00', answered_at: null,
};

const period = (g) => ({ generation: g, self_use: '1000.000', export: '300.000', grid: '55.000' });

const formDetail = {
  ...formSummary, plant_name: '阿明屋顶', plant_address: '浙江省杭州市西湖区文三路 1 号', owner_name: '阿明光伏',
  cycle_starts_at: '2026-09-30T16:00:00+00:00', cycle_ends_at: '2026-10-31T16:00:00+00:00', reader: '自动抄表',
  lines: [
    { group: 'generation', meter: 'G-001', register: '0000', previous: '1000.00', previous_at: '2026-09-30T16:00:00+00:00',
      current: '1104.61', current_at: '2026-10-31T16:00:00+00:00', multiplier: 50, kwh: '5230.500' },
    { group: 'export', meter: null, register: '0200', previous: null, previous_at: null, current: null,
      current_at: null, multiplier: 1, kwh: '0.000' },
  ],
  periods: { peak: period('2000.000'), valley: period('3230.500') },
  flags: [], dispute_reason: null, attachments: [], superseded: false, can_answer: true,
  ebill_url: 'https://pv.example.com/e/form/11?sig=abc',
  adjustments: [{ version: 1, kind: 'energy', field: 'generation.peak', before: '1900.000', after: '2000.000',
                  by: '运维小周', at: '2026-11-02T03:00:00+00:00', reason: '表计更换' }],
};

const billSummary = {
  id: 21, number: '202611-PV00001-1', plant_id: 7, plant_code: 'PV00001', period: '2026-11', version: 1, state: 'open',
  issued_at: '2026-11-09T01:00:00+00:00', due_on: '2026-11-24', total_fen: 345678, tax_fen: 39768, paid_fen: 0,
  credit_applied_fen: 0, owed_fen: 345678,
};

const billDetail = {
  ...billSummary, plant_name: '阿明屋顶', discount: '0.85', written_off_at: null,
  lines: [{ seq: 1, kind: 'energy', description: '峰时段电费', kwh: '2000.000', unit_price: '0.9876', amount_fen: 197520, tax_fen: 22724 },
          { seq: 2, kind: 'energy', description: '谷时段电费', kwh: '3230.500', unit_price: '0.4586', amount_fen: 148158, tax_fen: 17044 }],
  payments: [], invoices: [], ebill_url: 'https://pv.example.com/e/bill/21?sig=abc',
};

const paidBill = {
  ...billDetail, state: 'paid', paid_fen: 345678, owed_fen: 0,
  payments: [{ id: 61, bill_id: 21, bill_number: '202611-PV00001-1', channel: 'wechat', amount_fen: 345678, paid_at: '2026-11-10T02:00:00+00:00' }],
  invoices: [{ number: '2633000000012345', amount_fen: 345678, tax_fen: 39768, issued_at: '2026-11-10T02:05:00+00:00', state: 'issued' }],
};

const invoiceAsked = { bill_id: 21, made: true, number: null, amount_fen: 345678, tax_fen: 39768, issued_at: null, state: 'requested' };

const payOut = {
  out_trade_no: 'PV21T0001', amount_fen: 345678, expires_at: '2026-11-10T04:00:00+00:00', reused: false,
  request_payment: { timeStamp: '1794700800', nonceStr: 'n0nce', package: 'prepay_id=wx123', signType: 'RSA', paySign: 'c2ln' },
};

const prepaid = {
  number: 'PA000123', name: '阿明家', available_fen: 12300, balance_fen: 15000, charges_fen: 2700, warning_fen: 5000,
  state: 'normal', supply: 'on', cutoff_due_at: null, services: [{ name: '电', utility: 'electricity', unit: 'kWh' }],
};

const statement = {
  account: prepaid,
  services: [{ name: '电', utility: 'electricity', unit: 'kWh', quantity: 27.5, charged_fen: 2700 }],
  entries: [{ posted_at: '2026-12-01T02:00:00+00:00', kind: 'topup', amount_fen: 15000, available_after_fen: 15000, day: null,
              service: null, quantity: null, note: '微信充值' },
            { posted_at: '2026-12-02T16:00:00+00:00', kind: 'charge', amount_fen: -2700, available_after_fen: 12300,
              day: '2026-12-02', service: '电', quantity: 27.5, note: '' }],
};

const topUpOut = { out_trade_no: 'PA123T1', amount_fen: 5000, expires_at: '2026-12-04T05:00:00+00:00',
                   request_payment: payOut.request_payment };

const grant = { id: 41, plant_id: 7, right: 'view', grantee: '阿明的女儿', granted_at: '2026-12-01T02:00:00+00:00', revoked_at: null };
const shareOut = { code: 'SHARE12345', plant_id: 7, right: 'pay', expires_at: '2026-12-05T02:00:00+00:00' };

const fault = {
  id: 31, plant_id: 7, text: '逆变器报警，红灯常亮', state: 'in_progress', staff_note: '明天上门', created_at: '2026-12-03T02:00:00+00:00',
  updated_at: '2026-12-03T05:00:00+00:00', resolved_at: null, attachments: [{ id: 51, content_type: 'image/png', size_bytes: 1234 }],
};

const account = { owner: { id: 5, name: '阿明光伏' }, credit_fen: 1200 };
const payment = paidBill.payments[0];
const subscription = { template_id: 'tpl-bill-issued', answer: 'accept', accepts: 2, used: 1 };

const session = { token: 'token-1', expires_at: '2026-12-05T03:00:00+00:00', me };

const catalogue = (lang) => ({
  lang,
  messages: lang === 'zh'
    ? { 'plant_status.online': '在线', 'form_state.sent': '待确认', 'form_state.confirmed': '已确认', 'bill_state.open': '待缴费',
        'bill_state.paid': '已缴清', 'rate.peak': '峰', 'rate.valley': '谷', 'fault_state.in_progress': '处理中',
        'ebill.generation': '发电量', 'template.bill_issued._title': '账单通知', 'meter_group.generation': '发电表',
        'register.0000': '总', 'channel.wechat': '微信支付' }
    : { 'plant_status.online': 'online', 'form_state.sent': 'to confirm', 'form_state.confirmed': 'confirmed',
        'bill_state.open': 'open', 'bill_state.paid': 'paid', 'rate.peak': 'peak', 'rate.valley': 'valley',
        'fault_state.in_progress': 'in progress', 'ebill.generation': 'generation', 'template.bill_issued._title': 'Bill issued',
        'meter_group.generation': 'Generation meter', 'register.0000': 'total', 'channel.wechat': 'WeChat Pay' },
});

const page = (items) => ({ items, next_cursor: null });

module.exports = {
  invoiceAsked, me, plantSummary, plantDetail, history, formSummary, formDetail, billSummary, billDetail, paidBill, payOut, prepaid,
  statement, topUpOut, grant, shareOut, fault, account, payment, subscription, session, catalogue, page,
};
