// The app has nothing to start: each page asks utils/api.js, which logs in on its first call;
// a tab page names the tabs in English on an English phone (utils/page.js).
App({});
