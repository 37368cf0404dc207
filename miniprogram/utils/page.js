// Pages are built with Component() (WeChat's "Component 构造页面"): the same constructor
// miniprogram-simulate renders in the tests. Each page gives `load(query)`, which fetches what it
// shows; the helper adds the language's words (t), the loading / error / empty states, retry and
// pull-down refresh, so every page answers an error and an empty list alike.
const api = require('./api');
const i18n = require('./i18n');

let catalogue = null;

// the tab bar's words: app.json holds the Chinese; on an English phone a tab page renames the
// tabs (WeChat lets only a tab page do it, so not App.onLaunch, whose first page is the login)
const TABS = ['plants', 'forms', 'bills', 'account'];

function nameTabs() {
  if (i18n.lang() === 'zh') return;
  TABS.forEach((key, index) => wx.setTabBarItem({ index, text: i18n.t(key), fail() {} }));
}

// the server's catalogue once per launch; without it codes still read as their last part
function ensureCatalogue() {
  if (!catalogue) catalogue = i18n.load(api).catch(() => { catalogue = null; });
  return catalogue;
}

function page(spec) {
  const { data, methods, load, unload } = spec;
  return Component({
    data: { t: {}, loading: true, error: '', ...data },
    methods: {
      onLoad(query) {
        this.query = query || {};
        this.setData({ t: i18n.strings() });
        if (spec.title) wx.setNavigationBarTitle({ title: i18n.t(spec.title) });
        if (spec.tab) nameTabs();
        return this.reload();
      },
      onUnload() {
        if (unload) unload.call(this);
      },
      onPullDownRefresh() {
        return this.reload().then(() => wx.stopPullDownRefresh());
      },
      async reload() {
        this.setData({ loading: true, error: '' });
        try {
          await ensureCatalogue();
          await load.call(this, this.query);
        } catch (error) {
          this.setData({ error: i18n.t('error', { message: i18n.errorText(error) }), errorCode: error.code || '' });
        } finally {
          this.setData({ loading: false });
        }
      },
      retry() {
        return this.reload();
      },
      // a toast for what an action's answer said (the page stays as it is)
      complain(error) {
        wx.showToast({ title: i18n.errorText(error), icon: 'none' });
      },
      go(event) {
        wx.navigateTo({ url: event.currentTarget.dataset.url });
      },
      ...methods,
    },
  });
}

// a tab page listing one API call's items newest first, a page (PAGE_SIZE) at a time: the next
// page by the answer's next_cursor as the user reaches the bottom; `row` turns an item into what
// the list shows, and the list is read again when the tab is shown (a payment or a confirmation
// made elsewhere shows at once)
const PAGE_SIZE = 20;

function listPage({ title, call, row }) {
  return page({
    tab: true,
    title,
    data: { items: [], empty: false, next: null },
    async load() {
      const { items, next_cursor: next } = await api.call(call, { query: { limit: PAGE_SIZE } });
      this.setData({ items: items.map(row), empty: items.length === 0, next });
    },
    methods: {
      onShow() { if (!this.data.loading && this.query) this.reload(); },
      async more() {
        if (!this.data.next) return;
        try {
          const { items, next_cursor: next } = await api.call(call, { query: { limit: PAGE_SIZE, cursor: this.data.next } });
          this.setData({ items: this.data.items.concat(items.map(row)), next });
        } catch (error) { this.complain(error); }
      },
      onReachBottom() { return this.more(); },
    },
  });
}

// for tests: a new launch
function reset() {
  catalogue = null;
}

module.exports = { page, listPage, reset, ensureCatalogue };
