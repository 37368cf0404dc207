// Login and binding. wx.login → POST /session; then, for a WeChat user not bound to an owner
// yet: an invitation code typed, scanned (the invitation QR code opens this page with
// ?scene=<code>, or wx.scanCode reads it), or the phone number WeChat vouches for
// (getPhoneNumber's code, which the server exchanges). A family member redeems a share code.
const api = require('../../utils/api');
const i18n = require('../../utils/i18n');

const HOME = '/pages/home/index';

// what an invitation QR code carries: the code itself as the scene, or a page path with ?scene=
function codeOf(text) {
  const raw = String(text || '');
  const match = /[?&]scene=([^&]+)/.exec(raw);
  return decodeURIComponent(match ? match[1] : raw).trim();
}

const spec = {
  data: { step: 'login', code: '', shareCode: '', bindError: '', busy: false },
  async load(query) {
    const given = query.scene || query.code;
    const code = given ? codeOf(given) : '';
    const current = api.session();
    if (!current) { this.setData({ step: 'login', code }); return; }
    const me = await api.call('me');
    if (me.bound && !code) { wx.switchTab({ url: HOME }); return; }
    this.setData({ step: 'bind', code }); // bound already and a code given: a link code to use
  },
  methods: {
    async login() {
      this.setData({ busy: true, bindError: '' });
      try {
        const opened = await api.login();
        if (opened.me.bound && !this.data.code) wx.switchTab({ url: HOME });
        else this.setData({ step: 'bind' });
      } catch (error) {
        this.setData({ bindError: i18n.errorText(error) });
      } finally {
        this.setData({ busy: false });
      }
    },
    onCode(event) { this.setData({ code: event.detail.value }); },
    onShareCode(event) { this.setData({ shareCode: event.detail.value }); },
    async bindWith(body) {
      this.setData({ busy: true, bindError: '' });
      try {
        const bound = await api.call('bind', { body });
        const current = api.session();
        api.saveSession({ ...current, me: { ...current.me, bound: true, owner: { id: bound.owner.id, name: bound.owner.name } } });
        wx.switchTab({ url: HOME });
      } catch (error) {
        this.setData({ bindError: i18n.errorText(error) });
      } finally {
        this.setData({ busy: false });
      }
    },
    bind() {
      const code = this.data.code.trim();
      if (!code) { this.setData({ bindError: i18n.t('invitation_code') }); return null; }
      return this.bindWith({ invitation_code: code });
    },
    // <button open-type="getPhoneNumber">: the code, never the number, goes to the server
    bindPhone(event) {
      if (!event.detail || !event.detail.code) return null; // the owner said no
      return this.bindWith({ phone_code: event.detail.code });
    },
    scan() {
      return new Promise((resolve) => wx.scanCode({
        onlyFromCamera: false,
        success: (res) => {
          const code = codeOf(res.path || res.result);
          this.setData({ code });
          resolve(this.bindWith({ invitation_code: code }));
        },
        fail: () => resolve(null),
      }));
    },
    async redeem() {
      const code = this.data.shareCode.trim();
      if (!code) return;
      this.setData({ busy: true, bindError: '' });
      try {
        await api.call('redeem', { body: { code } });
        wx.switchTab({ url: HOME });
      } catch (error) {
        this.setData({ bindError: i18n.errorText(error) });
      } finally {
        this.setData({ busy: false });
      }
    },
  },
};

module.exports = spec;
