// see pages/bill/list.js: the bot's path of a bill, passed on to pages/bills/detail
Component({
  methods: {
    onLoad(query) { wx.redirectTo({ url: `/pages/bills/detail?id=${encodeURIComponent(query.id || '')}` }); },
  },
});
