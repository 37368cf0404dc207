// The bills (电费账单) of the owner's plants, newest first.
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const { page } = require('../../utils/page');

function row(b) {
  return {
    id: b.id, title: `${b.plant_code} · ${b.period}`, number: b.number, state: b.state,
    stateText: i18n.label(`bill_state.${b.state}`), total: fmt.yuan(b.total_fen), owed: fmt.yuan(b.owed_fen),
    owes: b.owed_fen > 0, due: b.due_on, url: `/pages/bills/detail?id=${b.id}`,
  };
}

page({
  tab: true,
  title: 'bills',
  data: { items: [], empty: false, next: null },
  async load() {
    const { items, next_cursor: next } = await api.call('bills', { query: { limit: 20 } });
    this.setData({ items: items.map(row), empty: items.length === 0, next });
  },
  methods: {
    onShow() { if (!this.data.loading && this.query) this.reload(); },
    async more() {
      if (!this.data.next) return;
      try {
        const { items, next_cursor: next } = await api.call('bills', { query: { limit: 20, cursor: this.data.next } });
        this.setData({ items: this.data.items.concat(items.map(row)), next });
      } catch (error) { this.complain(error); }
    },
    onReachBottom() { return this.more(); },
  },
});
