// The confirmation forms (电量确认单) of the owner's plants, newest first.
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const { page } = require('../../utils/page');

function row(f) {
  return {
    id: f.id, title: `${f.plant_code} · ${f.period}`, state: f.state, stateText: i18n.label(`form_state.${f.state}`),
    version: i18n.t('version', { v: f.version }), generation: fmt.kwh(f.generation_kwh),
    due: f.state === 'sent' && f.answer_due_at ? i18n.t('answer_due', { time: fmt.when(f.answer_due_at) }) : '',
    url: `/pages/forms/detail?id=${f.id}`,
  };
}

page({
  tab: true,
  title: 'forms',
  data: { items: [], empty: false, next: null },
  async load() {
    const { items, next_cursor: next } = await api.call('forms', { query: { limit: 20 } });
    this.setData({ items: items.map(row), empty: items.length === 0, next });
  },
  methods: {
    onShow() { if (!this.data.loading && this.query) this.reload(); },
    async more() {
      if (!this.data.next) return;
      try {
        const { items, next_cursor: next } = await api.call('forms', { query: { limit: 20, cursor: this.data.next } });
        this.setData({ items: this.data.items.concat(items.map(row)), next });
      } catch (error) { this.complain(error); }
    },
    onReachBottom() { return this.more(); },
  },
});
