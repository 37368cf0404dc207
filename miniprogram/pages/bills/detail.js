// One bill: its lines, totals, what was paid (the receipt: each payment, each e-invoice) and
// what is owed; pay with wx.requestPayment from the prepay parameters POST /bills/{id}/pay gives,
// then read the bill again until WeChat Pay's notification has marked it paid. A paid bill
// without its e-invoice yet (or whose invoice the tax system refused) can ask for it.
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const subscribe = require('../../utils/subscribe');
const pay = require('../../utils/pay');
const { page } = require('../../utils/page');

function view(b) {
  return {
    id: b.id, number: b.number, plantName: b.plant_name, plantCode: b.plant_code, period: b.period, due: b.due_on,
    state: b.state, stateText: i18n.label(`bill_state.${b.state}`),
    discount: b.discount ? i18n.t('discount_value', { factor: fmt.num(b.discount, 2) }) : '',
    lines: b.lines.map((l) => ({
      seq: l.seq, description: l.description, kwh: l.kwh ? fmt.kwh(l.kwh) : '',
      unitPrice: l.unit_price ? fmt.num(l.unit_price, 4) : '', amount: fmt.yuan(l.amount_fen),
    })),
    total: fmt.yuan(b.total_fen), tax: fmt.yuan(b.tax_fen), credit: b.credit_applied_fen ? fmt.yuan(b.credit_applied_fen) : '',
    paid: fmt.yuan(b.paid_fen), paidFen: b.paid_fen, owed: fmt.yuan(b.owed_fen), owedFen: b.owed_fen, owes: b.owed_fen > 0 && b.state !== 'superseded',
    payments: b.payments.map((p) => ({
      id: p.id, amount: fmt.yuan(p.amount_fen), at: fmt.when(p.paid_at), channel: i18n.label(`channel.${p.channel}`, p.channel),
    })),
    invoices: b.invoices.map((v, i) => ({
      key: i, number: v.number || '—', amount: fmt.yuan(v.amount_fen), state: i18n.label(`invoice_state.${v.state}`, v.state),
    })),
    // paid in full and nothing invoiced on it yet, or refused: the owner may ask (again)
    canAskInvoice: b.state === 'paid' && (b.invoices.length === 0 || b.invoices.every((v) => v.state === 'failed')),
    payText: i18n.t('pay', { amount: fmt.yuan(b.owed_fen) }),
    ebill: `${b.ebill_url}${b.ebill_url.includes('?') ? '&' : '?'}lang=${i18n.lang()}`,
  };
}

page({
  data: { bill: null, paying: false },
  async load(query) {
    const bill = await api.call('bill', { params: { bill_id: Number(query.id) } });
    this.setData({ bill: view(bill) });
  },
  methods: {
    async pay() {
      const asked = subscribe.ask(['payment_received']); // in the tap, as WeChat requires
      const id = this.data.bill.id;
      const before = this.data.bill.paidFen;
      this.setData({ paying: true });
      try {
        await asked;
        const order = await api.call('payBill', { params: { bill_id: id }, body: {} });
        const paid = await pay.requestPayment(order.request_payment);
        if (!paid) { wx.showToast({ title: i18n.t('pay_cancelled'), icon: 'none' }); return; }
        const bill = await pay.poll(() => api.call('bill', { params: { bill_id: id } }), (b) => b.paid_fen > before);
        this.setData({ bill: view(bill) });
        wx.showToast({ title: i18n.t('paid_ok') });
      } catch (error) {
        this.complain(error);
      } finally {
        this.setData({ paying: false });
      }
    },
    async askInvoice() {
      const id = this.data.bill.id;
      try {
        await api.call('askInvoice', { params: { bill_id: id } });
        const bill = await api.call('bill', { params: { bill_id: id } });
        this.setData({ bill: view(bill) });
        wx.showToast({ title: i18n.t('invoice_asked') });
      } catch (error) {
        this.complain(error); // 409: no tax id on file, nothing to invoice
      }
    },
    openEbill() {
      wx.navigateTo({ url: `/pages/webview/index?url=${encodeURIComponent(this.data.bill.ebill)}` });
    },
  },
});
