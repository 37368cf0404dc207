// Subscribe messages: WeChat shows its dialog only from a tap, so the pages call ask() first in
// the tap handler of the action the messages are about (confirm → bill_issued, pay →
// payment_received, …). What WeChat answered goes to PUT /subscriptions as it came; each accept
// lets one message of that template reach the owner. A refusal or a failure never stops the action.
const config = require('../config');
const api = require('./api');

const idsOf = (names) => names.map((name) => config.templates[name]).filter(Boolean);

function ask(names) {
  const tmplIds = idsOf(names);
  if (!tmplIds.length) return Promise.resolve(null);
  return new Promise((resolve) => {
    wx.requestSubscribeMessage({
      tmplIds,
      success: (res) => api.call('subscribe', { body: res }).then(resolve, () => resolve(null)),
      fail: () => resolve(null),
    });
  });
}

module.exports = { ask, idsOf };
