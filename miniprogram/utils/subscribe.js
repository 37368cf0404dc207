// Subscribe messages: WeChat shows its dialog only from a tap, so the pages call ask() first in
// the tap handler of the action the messages are about (confirm → bill_issued, pay →
// payment_received, …). What WeChat answered goes to PUT /subscriptions; each accept lets one
// message of that template reach the owner. A refusal or a failure never stops the action.
const config = require('../config');
const api = require('./api');

const idsOf = (names) => names.map((name) => config.templates[name]).filter(Boolean);

// the answers the API takes (accept, reject, ban): WeChat also answers 'filter' for a template
// its back end held back, which says nothing of the user and would make the whole report a 400
const ANSWERS = new Set(['accept', 'reject', 'ban']);

function report(res, tmplIds) {
  const body = { errMsg: res.errMsg };
  for (const id of tmplIds) if (ANSWERS.has(res[id])) body[id] = res[id];
  return Object.keys(body).length > 1 ? api.call('subscribe', { body }) : Promise.resolve(null);
}

function ask(names) {
  const tmplIds = idsOf(names);
  if (!tmplIds.length) return Promise.resolve(null);
  return new Promise((resolve) => {
    wx.requestSubscribeMessage({
      tmplIds,
      success: (res) => report(res, tmplIds).then(resolve, () => resolve(null)),
      fail: () => resolve(null),
    });
  });
}

module.exports = { ask, idsOf, report };
