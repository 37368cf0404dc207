// Fault reports (报修): where staff are with each, and a new report with up to 6 photos on
// one of the plants the user owns (?plant_id= picks it, as from the plant page).
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const subscribe = require('../../utils/subscribe');
const { page } = require('../../utils/page');

const MAX_PHOTOS = 6;

function row(f) {
  return {
    id: f.id, text: f.text, state: f.state, stateText: i18n.label(`fault_state.${f.state}`), at: fmt.when(f.created_at),
    url: `/pages/faults/detail?id=${f.id}`,
  };
}

page({
  title: 'faults',
  data: { items: [], empty: false, plants: [], plantIndex: 0, text: '', photos: [], busy: false },
  async load(query) {
    const [faults, plants] = await Promise.all([
      api.call('faults', { query: { limit: 20 } }), api.call('plants', { query: { limit: 50 } })]);
    const owned = plants.items.filter((p) => p.right === 'owner').map((p) => ({ id: p.id, name: `${p.code} ${p.name}` }));
    const wanted = owned.findIndex((p) => p.id === Number(query.plant_id));
    this.setData({ items: faults.items.map(row), empty: faults.items.length === 0, plants: owned, plantIndex: Math.max(0, wanted) });
  },
  methods: {
    onPlant(e) { this.setData({ plantIndex: Number(e.detail.value) }); },
    onText(e) { this.setData({ text: e.detail.value }); },
    addPhotos() {
      const room = MAX_PHOTOS - this.data.photos.length;
      if (room <= 0) return Promise.resolve(null);
      return new Promise((resolve) => wx.chooseMedia({
        count: room, mediaType: ['image'], sizeType: ['compressed'],
        success: (res) => {
          this.setData({ photos: this.data.photos.concat(res.tempFiles.map((f) => f.tempFilePath)).slice(0, MAX_PHOTOS) });
          resolve(null);
        },
        fail: () => resolve(null),
      }));
    },
    async submit() {
      const text = this.data.text.trim();
      const plant = this.data.plants[this.data.plantIndex];
      if (!text) { wx.showToast({ title: i18n.t('text_needed'), icon: 'none' }); return; }
      if (!plant) return;
      const asked = subscribe.ask(['fault_update']);
      this.setData({ busy: true });
      try {
        await asked;
        const made = await api.withPhotos('reportFault', { plant_id: plant.id }, { text }, this.data.photos);
        this.setData({ text: '', photos: [] });
        wx.navigateTo({ url: `/pages/faults/detail?id=${made.id}` });
        await this.reload();
      } catch (error) {
        this.complain(error);
      } finally {
        this.setData({ busy: false });
      }
    },
  },
});
