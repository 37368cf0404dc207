// Sharing a plant (owner only): a one-time code that gives a family member or a finance clerk
// the view or the pay right, and the rights given so far, each revocable.
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const { page } = require('../../utils/page');

function grant(g) {
  return {
    id: g.id, grantee: g.grantee, right: i18n.t(`right_${g.right}`), at: fmt.when(g.granted_at),
    revoked: g.revoked_at ? fmt.when(g.revoked_at) : '',
  };
}

page({
  title: 'sharing',
  data: { grants: [], empty: false, share: '' },
  async load(query) {
    this.plantId = Number(query.plant_id);
    const { items } = await api.call('grants', { params: { plant_id: this.plantId }, query: { limit: 50 } });
    this.setData({ grants: items.map(grant), empty: items.length === 0 });
  },
  methods: {
    async share(event) {
      const right = event.currentTarget.dataset.right;
      try {
        const made = await api.call('share', { params: { plant_id: this.plantId }, body: { right, ttl_hours: 24 } });
        this.setData({ share: i18n.t('share_code', { code: made.code, time: fmt.when(made.expires_at) }), shareCode: made.code });
      } catch (error) {
        this.complain(error);
      }
    },
    copy() {
      wx.setClipboardData({ data: this.data.shareCode });
    },
    async revoke(event) {
      try {
        await api.call('revokeGrant', { params: { plant_id: this.plantId, grant_id: event.currentTarget.dataset.id } });
        await this.reload();
      } catch (error) {
        this.complain(error);
      }
    },
  },
});
