// pages/bill/list and pages/bill/detail are the paths the official account's bot links to
// (bot/owner.py BILL_LIST_PAGE, BILL_PAGE); the bills live under pages/bills/, where the
// notifications link: these two only pass the user on.
Component({
  methods: {
    onLoad() { wx.switchTab({ url: '/pages/bills/index' }); },
  },
});
