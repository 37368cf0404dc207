// One plant: its live power (the SSE route, read by utils/api.js live()), today's and lifetime
// energy, the day / month / year / lifetime chart with the span's energy, revenue, CO2 and coal,
// and the ways on: prepaid account, sharing, fault report.
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const { page } = require('../../utils/page');

const SPANS = ['day', 'month', 'year', 'lifetime'];

function detail(p) {
  return {
    id: p.id, code: p.code, name: p.name, address: p.address, capacity: fmt.num(p.capacity_kwp, 1),
    status: p.status, statusText: i18n.label(`plant_status.${p.status}`), owner: p.owner_name,
    readingDay: i18n.t('reading_day', { day: p.reading_day }), isOwner: p.right === 'owner',
    canPay: p.right !== 'view',
    discount: p.contract && p.contract.discount ? i18n.t('discount_value', { factor: fmt.num(p.contract.discount, 2) }) : '',
  };
}

// what the page shows live: first from the plant's detail, then from each `event: state` of
// the stream ({plant_id, ts, power_w, today_kwh}: settlement/telemetry/live.py)
function livePart(powerW, todayKwh, at) {
  return {
    power: fmt.kw(powerW), powerW: powerW === null || powerW === undefined ? '' : String(powerW),
    today: fmt.kwh(todayKwh), updated: i18n.t('updated', { time: fmt.when(at) }),
  };
}

const fromState = (state) => livePart(state.power_w, state.today_kwh, state.ts);

function chartOf(history) {
  const total = history.total;
  return {
    bars: history.bars.map((b) => ({
      label: b.label, value: b.energy_kwh === null ? null : Number(b.energy_kwh), pale: b.source === 'form',
    })),
    total: {
      energy: fmt.kwh(total.energy_kwh), revenue: total.revenue_fen === null ? '—' : fmt.yuan(total.revenue_fen),
      co2: fmt.num(total.co2_kg, 1), coal: fmt.num(total.coal_kg, 1),
    },
  };
}

page({
  data: { plant: null, live: {}, span: 'day', spans: [], chart: { bars: [], total: {} }, chartError: '' },
  async load(query) {
    const id = Number(query.id);
    const plant = await api.call('plant', { params: { plant_id: id } });
    wx.setNavigationBarTitle({ title: plant.name });
    this.setData({
      plant: detail(plant), live: livePart(plant.power_w, plant.today_kwh, plant.last_seen),
      spans: SPANS.map((name) => ({ name, text: i18n.t(name === 'lifetime' ? 'all' : name) })),
    });
    await this.showSpan(this.data.span);
    if (this.stream) this.stream.close();
    this.stream = api.live(id, (state) => this.setData({ live: fromState(state) }));
  },
  unload() {
    if (this.stream) this.stream.close();
    this.stream = null;
  },
  methods: {
    async showSpan(span) {
      this.setData({ span, chartError: '' });
      try {
        const history = await api.call('history', { params: { plant_id: this.data.plant.id }, query: { span } });
        this.setData({ chart: chartOf(history) });
      } catch (error) {
        this.setData({ chartError: i18n.errorText(error) });
      }
    },
    pickSpan(event) { return this.showSpan(event.currentTarget.dataset.span); },
    onHide() { if (this.stream) this.stream.close(); this.stream = null; },
    onShow() {
      if (!this.stream && this.data.plant) {
        this.stream = api.live(this.data.plant.id, (state) => this.setData({ live: fromState(state) }));
      }
    },
  },
});
