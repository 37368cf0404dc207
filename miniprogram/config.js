// What a PV company fills in before it uploads the mini-program (README: "The mini-program").
// The AppID is also in project.config.json, which WeChat DevTools reads; the two must agree.
module.exports = {
  // the AppID of the mini-program (the same as PVSETTLE_MP_APPID on the server)
  appId: 'wx0000000000000000',
  // where pvsettle is served: https, and listed as a request / uploadFile / downloadFile domain
  apiOrigin: 'https://pv.example.com',
  // subscribe-message template ids, by the names of templates/notify/*.txt: the same object as the
  // server's PVSETTLE_NOTIFY_TEMPLATES (a name missing here is simply never asked for)
  templates: {
    form_sent: '',
    auto_confirm_coming: '',
    bill_issued: '',
    payment_received: '',
    fault_update: '',
    prepaid_notice: '',
  },
};
