// Home: the owner's plants with their power, today's and lifetime energy, and what the plants
// saved altogether (CO2, standard coal: the lifetime totals GET /plants/{id}/history gives).
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const { page } = require('../../utils/page');

function card(p) {
  return {
    id: p.id, code: p.code, name: p.name, capacity: fmt.num(p.capacity_kwp, 1), status: p.status,
    statusText: i18n.label(`plant_status.${p.status}`), power: fmt.kw(p.power_w), today: fmt.kwh(p.today_kwh),
    lifetime: fmt.kwh(p.lifetime_kwh), url: `/pages/plant/index?id=${p.id}`,
  };
}

// a sum of decimal strings given to 3 places (kWh, kg), in whole thousandths so that it is exact;
// null when none was measured
function addMilli(values) {
  const known = values.filter((v) => v !== null && v !== undefined);
  if (!known.length) return null;
  const total = known.reduce((sum, v) => sum + Math.round(Number(v) * 1000), 0);
  return (total / 1000).toFixed(3);
}

page({
  tab: true,
  title: 'plants',
  data: { plants: [], empty: false, bound: true },
  async load() {
    const current = api.session();
    const { items } = await api.call('plants', { query: { limit: 50 } });
    const lifetimes = await Promise.all(items.map((p) => api.call('history', { params: { plant_id: p.id }, query: { span: 'lifetime' } })));
    const totals = lifetimes.map((h) => h.total);
    this.setData({
      plants: items.map(card),
      empty: items.length === 0,
      bound: !!(current && current.me && current.me.bound),
      today: fmt.kwh(addMilli(items.map((p) => p.today_kwh))),
      lifetime: fmt.kwh(addMilli(items.map((p) => p.lifetime_kwh))),
      co2: fmt.num(addMilli(totals.map((x) => x.co2_kg)), 1),
      coal: fmt.num(addMilli(totals.map((x) => x.coal_kg)), 1),
    });
  },
  methods: {
    onShow() {
      if (!this.data.loading && this.query) this.reload();
    },
    toBind() { wx.reLaunch({ url: '/pages/login/index' }); },
  },
});

module.exports = { addMilli };
