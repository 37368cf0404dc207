// One confirmation form, laid out as the paper 电量确认单: every register line (meter,
// register, previous and current reading, multiplier, kWh), the TOU periods, the totals, what
// staff adjusted; confirm, or dispute with a reason and up to 6 photos.
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const subscribe = require('../../utils/subscribe');
const { page } = require('../../utils/page');

const MAX_PHOTOS = 6;

// an adjustment's field in words: generation.peak, or a reading as "<meter> <register> <boundary>"
function adjustedItem(a) {
  if (a.kind === 'energy') {
    const [what, rate] = a.field.split('.');
    return `${i18n.label(`ebill.${what}`)} ${i18n.label(`rate.${rate}`)}`;
  }
  if (a.field === 'readings') return i18n.label('ebill.adjusted_readings');
  const [meter, register, boundary] = a.field.split(' ');
  return `${meter} ${register} ${i18n.label(`ebill.boundary_${boundary}`, '')}`.trim();
}

function shown(a, value) {
  if (value === null || value === undefined) return '—';
  return a.kind === 'energy' ? fmt.kwh(value) : value;
}

function view(f) {
  return {
    id: f.id, plantName: f.plant_name, plantCode: f.plant_code, address: f.plant_address, owner: f.owner_name,
    period: f.period, version: i18n.t('version', { v: f.version }), state: f.state,
    stateText: i18n.label(`form_state.${f.state}`), superseded: f.superseded, canAnswer: f.can_answer,
    covers: `${fmt.when(f.cycle_starts_at)} – ${fmt.when(f.cycle_ends_at)}`, reader: f.reader,
    due: f.answer_due_at ? i18n.t('answer_due', { time: fmt.when(f.answer_due_at) }) : '',
    lines: f.lines.map((l, i) => ({
      // the metering point and register in words, as the printed form has them (settlement/billing/ebill.py)
      key: i, group: i18n.label(`meter_group.${l.group}`, l.group), meter: l.meter || '', register: i18n.label(`register.${l.register}`, l.register),
      previous: l.previous === null ? '—' : l.previous, current: l.current === null ? '—' : l.current,
      multiplier: l.multiplier, kwh: fmt.kwh(l.kwh),
    })),
    periods: Object.keys(f.periods).map((name) => ({
      name, text: i18n.label(`rate.${name}`), generation: fmt.kwh(f.periods[name].generation),
      selfUse: fmt.kwh(f.periods[name].self_use), export: fmt.kwh(f.periods[name].export), grid: fmt.kwh(f.periods[name].grid),
    })),
    total: { generation: fmt.kwh(f.generation_kwh), selfUse: fmt.kwh(f.self_use_kwh), export: fmt.kwh(f.export_kwh), grid: fmt.kwh(f.grid_kwh) },
    disputeReason: f.dispute_reason || '',
    photos: f.attachments.length ? i18n.t('photos_attached', { n: f.attachments.length }) : '',
    adjustments: f.adjustments.map((a, i) => ({
      key: i, text: i18n.t('adjusted', { v: a.version, field: adjustedItem(a), before: shown(a, a.before), after: shown(a, a.after),
        by: a.by, at: fmt.when(a.at), reason: a.reason }),
    })),
    ebill: `${f.ebill_url}${f.ebill_url.includes('?') ? '&' : '?'}lang=${i18n.lang()}`,
  };
}

page({
  data: { form: null, reason: '', photos: [], busy: false },
  async load(query) {
    const form = await api.call('form', { params: { form_id: Number(query.id) } });
    this.setData({ form: view(form) });
  },
  methods: {
    onReason(event) { this.setData({ reason: event.detail.value }); },
    addPhotos() {
      const room = MAX_PHOTOS - this.data.photos.length;
      if (room <= 0) return Promise.resolve(null);
      return new Promise((resolve) => wx.chooseMedia({
        count: room, mediaType: ['image'], sizeType: ['compressed'], sourceType: ['album', 'camera'],
        success: (res) => {
          this.setData({ photos: this.data.photos.concat(res.tempFiles.map((f) => f.tempFilePath)).slice(0, MAX_PHOTOS) });
          resolve(null);
        },
        fail: () => resolve(null),
      }));
    },
    removePhoto(event) {
      const photos = this.data.photos.slice();
      photos.splice(event.currentTarget.dataset.index, 1);
      this.setData({ photos });
    },
    async confirm() {
      const asked = subscribe.ask(['bill_issued', 'payment_received']); // in the tap, as WeChat requires
      this.setData({ busy: true });
      try {
        await asked;
        const form = await api.call('confirmForm', { params: { form_id: this.data.form.id } });
        this.setData({ form: view(form) });
        wx.showToast({ title: i18n.t('done') });
      } catch (error) {
        this.complain(error);
      } finally {
        this.setData({ busy: false });
      }
    },
    async dispute() {
      const reason = this.data.reason.trim();
      if (!reason) { wx.showToast({ title: i18n.t('reason_needed'), icon: 'none' }); return; }
      const asked = subscribe.ask(['form_sent']); // the adjusted form comes back as form_sent
      this.setData({ busy: true });
      try {
        await asked;
        const form = await api.withPhotos('disputeForm', { form_id: this.data.form.id }, { reason }, this.data.photos);
        this.setData({ form: view(form), reason: '', photos: [] });
      } catch (error) {
        this.complain(error);
      } finally {
        this.setData({ busy: false });
      }
    },
    openEbill() {
      wx.navigateTo({ url: `/pages/webview/index?url=${encodeURIComponent(this.data.form.ebill)}` });
    },
  },
});
