// The app: its tab bar in the phone's language (app.json can only hold one). Everything else
// starts in the pages: each page asks utils/api.js, which logs in on its first call.
const i18n = require('./utils/i18n');

const TABS = ['plants', 'forms', 'bills', 'account'];

App({
  onLaunch() {
    if (i18n.lang() !== 'zh') {
      TABS.forEach((key, index) => wx.setTabBarItem({ index, text: i18n.t(key) }));
    }
  },
});
