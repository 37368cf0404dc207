// One fault report: its text, where staff are with it (and their note), its photos (fetched
// with the session's header by wx.downloadFile, since <image> cannot send one).
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const { page } = require('../../utils/page');

function view(f) {
  return {
    id: f.id, text: f.text, state: f.state, stateText: i18n.label(`fault_state.${f.state}`), note: f.staff_note || '',
    at: fmt.when(f.created_at), updated: fmt.when(f.updated_at), resolved: f.resolved_at ? fmt.when(f.resolved_at) : '',
  };
}

page({
  title: 'faults',
  data: { fault: null, photos: [] },
  async load(query) {
    const fault = await api.call('fault', { params: { fault_id: Number(query.id) } });
    this.setData({ fault: view(fault), photos: [] });
    const photos = [];
    for (const attachment of fault.attachments) {
      try {
        photos.push(await api.downloadAttachment(attachment.id));
      } catch (error) { /* a photo that does not load is left out; the report is still shown */ }
    }
    this.setData({ photos });
  },
  methods: {
    preview(event) {
      wx.previewImage({ urls: this.data.photos, current: event.currentTarget.dataset.src });
    },
  },
});
