// The account: who the user is bound to, the account's credit, payments made, the notifications
// subscribed (and a tap to subscribe to more), fault reports; log out or unbind.
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const subscribe = require('../../utils/subscribe');
const config = require('../../config');
const { page } = require('../../utils/page');

// WeChat takes at most 3 templates per request; payment_received is asked when paying
const NOTICES = ['form_sent', 'auto_confirm_coming', 'bill_issued'];

function payment(p) {
  return { id: p.id, bill: p.bill_number || '', amount: fmt.yuan(p.amount_fen), at: fmt.when(p.paid_at),
           channel: i18n.label(`channel.${p.channel}`, p.channel) };
}

page({
  tab: true,
  title: 'account',
  data: { owner: '', bound: false, credit: '', payments: [], empty: false, subscribed: [] },
  async load() {
    const me = await api.call('me');
    if (!me.bound) { this.setData({ bound: false, owner: '', payments: [], empty: true }); return; }
    const [account, payments, subs] = await Promise.all([
      api.call('account'), api.call('payments', { query: { limit: 20 } }), api.call('subscriptions', { query: { limit: 50 } })]);
    const names = Object.fromEntries(Object.entries(config.templates).map(([name, id]) => [id, name]));
    this.setData({
      bound: true, owner: account.owner.name, credit: fmt.yuan(account.credit_fen),
      payments: payments.items.map(payment), empty: payments.items.length === 0,
      subscribed: subs.items.map((s) => ({
        id: s.template_id, name: i18n.label(`template.${names[s.template_id]}._title`, names[s.template_id] || s.template_id),
        left: s.accepts - s.used, answer: s.answer,
      })),
    });
  },
  methods: {
    async subscribe() {
      const answered = await subscribe.ask(NOTICES);
      if (answered) await this.reload();
    },
    async logout() {
      try { await api.call('closeSession'); } catch (error) { /* ended here all the same */ }
      api.forget();
      wx.reLaunch({ url: api.LOGIN_PAGE });
    },
    unbind() {
      wx.showModal({
        title: i18n.t('unbind'), content: this.data.owner,
        success: async (res) => {
          if (!res.confirm) return;
          try {
            await api.call('unbind');
            api.forget();
            wx.reLaunch({ url: api.LOGIN_PAGE });
          } catch (error) { this.complain(error); }
        },
      });
    },
  },
});
