// A plant's prepaid account: what is available, its state and supply, the utilities on it, the
// last 30 days' statement; top up for oneself, or for a family member by their account number.
// Opened from the plant page (?plant_id=) or from a prepaid notice (?number=, the account's
// number: the plant is found among the user's plants).
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const pay = require('../../utils/pay');
const subscribe = require('../../utils/subscribe');
const { page } = require('../../utils/page');

function account(a) {
  return {
    number: a.number, name: a.name, available: fmt.yuan(a.available_fen), balance: fmt.yuan(a.balance_fen),
    warning: fmt.yuan(a.warning_fen), low: a.available_fen <= a.warning_fen,
    state: i18n.label(`prepaid_state.${a.state}`, a.state), supply: i18n.label(`supply.${a.supply}`, a.supply),
    cutoff: a.cutoff_due_at ? fmt.when(a.cutoff_due_at) : '',
    services: a.services.map((s, i) => ({ key: i, name: s.name, unit: s.unit })),
  };
}

function entry(e, i) {
  return {
    key: i, at: fmt.when(e.posted_at), kind: i18n.label(`entry.${e.kind}`, e.kind), amount: fmt.yuan(e.amount_fen),
    after: fmt.yuan(e.available_after_fen), note: e.note || e.service || '',
  };
}

async function plantOfNumber(number) {
  const { items } = await api.call('plants', { query: { limit: 50 } });
  for (const plant of items) {
    try {
      const found = await api.call('prepaid', { params: { plant_id: plant.id } });
      if (found.number === number) return plant.id;
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }
  return null;
}

page({
  title: 'prepaid',
  data: { account: null, none: false, entries: [], empty: false, amount: '', otherNumber: '', otherAmount: '', busy: false },
  async load(query) {
    let plantId = query.plant_id ? Number(query.plant_id) : null;
    if (!plantId && query.number) plantId = await plantOfNumber(query.number);
    if (!plantId) { this.setData({ none: true }); return; }
    this.plantId = plantId;
    let statement;
    try {
      statement = await api.call('statement', { params: { plant_id: plantId }, query: { days: 30 } });
    } catch (error) {
      if (error.status === 404) { this.setData({ none: true }); return; } // no prepaid account on this plant
      throw error;
    }
    this.setData({ account: account(statement.account), entries: statement.entries.map(entry), empty: statement.entries.length === 0 });
  },
  methods: {
    onAmount(e) { this.setData({ amount: e.detail.value }); },
    onOtherNumber(e) { this.setData({ otherNumber: e.detail.value }); },
    onOtherAmount(e) { this.setData({ otherAmount: e.detail.value }); },
    async payOrder(make) {
      const asked = subscribe.ask(['prepaid_notice']);
      this.setData({ busy: true });
      try {
        await asked;
        const order = await make();
        if (await pay.requestPayment(order.request_payment)) {
          wx.showToast({ title: i18n.t('paid_ok') });
          await this.reload();
        } else {
          wx.showToast({ title: i18n.t('pay_cancelled'), icon: 'none' });
        }
      } catch (error) {
        this.complain(error);
      } finally {
        this.setData({ busy: false });
      }
    },
    topUp() {
      const fen = fmt.fenOf(this.data.amount);
      if (!fen) { wx.showToast({ title: i18n.t('amount_needed'), icon: 'none' }); return null; }
      return this.payOrder(() => api.call('topUp', { params: { plant_id: this.plantId }, body: { amount_fen: fen } }));
    },
    topUpOther() {
      const fen = fmt.fenOf(this.data.otherAmount);
      const number = this.data.otherNumber.trim();
      if (!number) { wx.showToast({ title: i18n.t('number_needed'), icon: 'none' }); return null; }
      if (!fen) { wx.showToast({ title: i18n.t('amount_needed'), icon: 'none' }); return null; }
      return this.payOrder(() => api.call('topUpByNumber', { body: { number, amount_fen: fen } }));
    },
  },
});
