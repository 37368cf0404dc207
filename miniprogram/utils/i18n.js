// Chinese first, English when the phone's language is not Chinese. The app's own words are
// below; the words for the codes the API returns (form_state.sent, rate.peak, error.<code>, …)
// come from the server's one catalogue, GET /api/v1/i18n, as the sandbox's do.
const STRINGS = {
  zh: {
    app: '光伏结算', login: '微信一键登录', login_hint: '登录后查看电站、确认电量、缴纳电费',
    bind_title: '绑定业主账户', bind_hint: '输入运维给您的邀请码，或扫描邀请二维码', invitation_code: '邀请码',
    bind: '绑定', bind_phone: '用手机号绑定', scan: '扫码绑定', redeem_title: '家人共享码',
    redeem_hint: '家人给您的查看 / 代缴码', redeem: '使用共享码',
    plants: '电站', forms: '确认单', bills: '账单', account: '我的', live_power: '实时功率', today: '今日发电',
    lifetime: '累计发电', co2: '减排二氧化碳', coal: '节约标准煤', revenue: '电费收入', updated: '更新于 {time}',
    day: '日', month: '月', year: '年', all: '累计', back: '返回', no_items: '暂无', loading: '加载中…',
    retry: '重试', period: '账期', version: '第 {v} 版', generation: '发电量', self_use: '自用电量',
    export: '上网电量', grid: '下网电量', total: '合计', owed: '待付', paid: '已付', due_on: '到期日',
    confirm: '确认无误', dispute: '提出异议', dispute_reason: '异议原因（必填）', add_photos: '添加照片（最多 6 张）',
    photos_attached: '{n} 张照片', pay: '微信支付 {amount}', paying: '支付中…', paid_ok: '已支付',
    pay_cancelled: '已取消支付', receipt: '付款记录', ask_invoice: '申请电子发票', invoice_asked: '已申请开票', ebill: '电子账单', eform: '电子确认单',
    meter: '电表', register: '计度器', previous: '上次读数', current: '本次读数', multiplier: '倍率', kwh: '电量',
    rate: '时段', item: '项目', unit_price: '单价(元/kWh)', amount: '金额', discount: '电价折扣',
    discount_value: '电网电价 × {factor}', credit_applied: '余额抵扣', adjustments: '运维调整记录',
    adjusted: '第 {v} 版 {field}：{before} → {after}（{by}，{at}，原因：{reason}）', superseded: '已被新版本取代',
    answer_due: '请在 {time} 前确认', prepaid: '预付费', balance: '可用余额', warning_level: '提醒余额',
    statement: '近 30 天明细', top_up: '充值', top_up_amount: '充值金额（元）', top_up_other: '为家人充值',
    account_number: '户号', sharing: '共享与授权', share_view: '生成查看码', share_pay: '生成代缴码',
    share_code: '共享码 {code}，{time} 前有效', grants: '已授权', revoke: '撤销', right_view: '查看',
    right_pay: '代缴', faults: '报修', fault_new: '我要报修', fault_text: '故障描述（必填）', submit: '提交',
    staff_note: '运维说明', my_account: '业主', credit: '账户余额', payments: '付款记录', notices: '消息通知',
    notices_hint: '开启确认单、账单、付款通知', subscribe: '订阅通知', logout: '退出登录', unbind: '解除绑定',
    contract: '合同', reading_day: '抄表日 每月 {day} 日', capacity: '装机容量', error: '出错了：{message}',
    not_bound: '请先绑定业主账户', reason_needed: '请填写异议原因', text_needed: '请填写故障描述',
    amount_needed: '请输入充值金额', number_needed: '请输入户号', done: '已完成', copied: '已复制',
    'prepaid_state.normal': '正常', 'prepaid_state.warned': '余额不足', 'prepaid_state.cutoff_pending': '待停电',
    'prepaid_state.cut_off': '已停电', 'supply.on': '供电中', 'supply.off': '已停电', 'supply.unknown': '供电状态未知',
    'entry.topup': '充值', 'entry.charge': '扣费', 'entry.true_up': '结算调整', 'entry.refund': '退款',
    'entry.refund_returned': '退款退回',
  },
  en: {
    app: 'PV settlement', login: 'Log in with WeChat', login_hint: 'Watch your plants, confirm forms and pay bills',
    bind_title: 'Bind your owner account', bind_hint: 'Enter the invitation code staff gave you, or scan its QR code',
    invitation_code: 'Invitation code', bind: 'Bind', bind_phone: 'Bind by phone number', scan: 'Scan to bind',
    redeem_title: 'Family share code', redeem_hint: 'A view / pay code a family member gave you', redeem: 'Use the code',
    plants: 'Plants', forms: 'Forms', bills: 'Bills', account: 'Me', live_power: 'Live power', today: 'Today',
    lifetime: 'Lifetime', co2: 'CO₂ avoided', coal: 'Coal saved', revenue: 'Revenue', updated: 'updated {time}',
    day: 'Day', month: 'Month', year: 'Year', all: 'Lifetime', back: 'Back', no_items: 'Nothing yet',
    loading: 'Loading…', retry: 'Retry', period: 'Period', version: 'version {v}', generation: 'Generation',
    self_use: 'Self-use', export: 'Export', grid: 'Grid import', total: 'Total', owed: 'Owed', paid: 'Paid',
    due_on: 'Due on', confirm: 'Confirm', dispute: 'Dispute', dispute_reason: 'Why do you dispute it? (required)',
    add_photos: 'Add photos (up to 6)', photos_attached: '{n} photo(s)', pay: 'Pay {amount} with WeChat Pay',
    paying: 'Paying…', paid_ok: 'Paid', pay_cancelled: 'Payment cancelled', receipt: 'Payments',
    ask_invoice: 'Ask for the e-invoice', invoice_asked: 'E-invoice asked for',
    ebill: 'Printable e-bill', eform: 'Printable form', meter: 'Meter', register: 'Register',
    previous: 'Previous', current: 'Current', multiplier: 'Multiplier', kwh: 'Energy', rate: 'Period',
    item: 'Item', unit_price: 'Price (¥/kWh)', amount: 'Amount', discount: 'Discount',
    discount_value: 'grid price × {factor}', credit_applied: 'Account credit applied',
    adjustments: 'Adjusted by O&M staff', adjusted: 'v{v} {field}: {before} → {after} ({by}, {at}, reason: {reason})',
    superseded: 'superseded by a newer version', answer_due: 'Please answer by {time}', prepaid: 'Prepaid',
    balance: 'Available', warning_level: 'Warning level', statement: 'Last 30 days', top_up: 'Top up',
    top_up_amount: 'Amount (¥)', top_up_other: 'Top up for family', account_number: 'Account number',
    sharing: 'Sharing', share_view: 'New view code', share_pay: 'New pay code', share_code: 'Code {code}, valid until {time}',
    grants: 'Granted', revoke: 'Revoke', right_view: 'view', right_pay: 'pay', faults: 'Faults',
    fault_new: 'Report a fault', fault_text: 'What is wrong? (required)', submit: 'Submit', staff_note: 'Staff note',
    my_account: 'Owner', credit: 'Account credit', payments: 'Payments', notices: 'Notifications',
    notices_hint: 'Get told of forms, bills and payments', subscribe: 'Subscribe', logout: 'Log out',
    unbind: 'Unbind', contract: 'Contract', reading_day: 'read on day {day} of each month', capacity: 'Capacity',
    error: 'Something went wrong: {message}', not_bound: 'Bind your owner account first',
    reason_needed: 'Say why you dispute it', text_needed: 'Say what is wrong', amount_needed: 'Enter an amount',
    number_needed: 'Enter the account number', done: 'Done', copied: 'Copied',
    'prepaid_state.normal': 'normal', 'prepaid_state.warned': 'low balance', 'prepaid_state.cutoff_pending': 'cut-off coming',
    'prepaid_state.cut_off': 'cut off', 'supply.on': 'supplied', 'supply.off': 'cut off', 'supply.unknown': 'supply unknown',
    'entry.topup': 'top-up', 'entry.charge': 'charge', 'entry.true_up': 'true-up', 'entry.refund': 'refund',
    'entry.refund_returned': 'refund returned',
  },
};

const CATALOGUE_KEY = 'pvsettle.catalogue';
let chosen = null;
let catalogue = {};

function systemLanguage() {
  try {
    const info = wx.getAppBaseInfo ? wx.getAppBaseInfo() : wx.getSystemInfoSync();
    return (info && info.language) || 'zh_CN';
  } catch (e) {
    return 'zh_CN';
  }
}

// 'zh' or 'en': Chinese unless the phone speaks something else
function lang() {
  if (!chosen) chosen = /^zh/i.test(systemLanguage()) ? 'zh' : 'en';
  return chosen;
}

function fill(text, vars) {
  let out = text;
  for (const [k, v] of Object.entries(vars || {})) out = out.split(`{${k}}`).join(String(v));
  return out;
}

const t = (key, vars) => fill(STRINGS[lang()][key] ?? STRINGS.zh[key] ?? key, vars);
const strings = () => ({ ...STRINGS[lang()] });

// a code's words from the server's catalogue; the prepaid codes it does not hold (prepaid_state,
// supply, entry) from the app's own words; else the fallback, else the code's last part
const label = (id, fallback) => catalogue[id] ?? STRINGS[lang()][id] ?? fallback ?? id.split('.').pop();

// the words of an ApiError: the server's message is in the request's language already
const errorText = (error) => (error && (error.message || label(`error.${error.code}`))) || String(error);

// the server's catalogue, once per launch (kept for the next launch, used until it answers)
async function load(api) {
  const kept = wx.getStorageSync(CATALOGUE_KEY);
  if (kept && kept.lang === lang()) catalogue = kept.messages;
  const fresh = await api.call('catalogue', { query: { lang: lang() } });
  catalogue = fresh.messages;
  wx.setStorageSync(CATALOGUE_KEY, { lang: fresh.lang, messages: fresh.messages });
  return catalogue;
}

// for tests: forget what was chosen and loaded
function reset() {
  chosen = null;
  catalogue = {};
}

module.exports = { STRINGS, lang, t, strings, label, errorText, load, reset, fill };
