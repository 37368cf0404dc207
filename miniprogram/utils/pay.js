// wx.requestPayment with the parameters POST /bills/{id}/pay or …/topup returned. Success means
// the owner paid; the bill turns paid when WeChat Pay's notification reaches the server, so the
// caller reads the bill again (pollPaid) rather than trusting the phone.
function requestPayment(params) {
  return new Promise((resolve, reject) => {
    wx.requestPayment({
      timeStamp: params.timeStamp, nonceStr: params.nonceStr, package: params.package,
      signType: params.signType, paySign: params.paySign,
      success: () => resolve(true),
      fail: (res) => (/cancel/.test((res && res.errMsg) || '') ? resolve(false) : reject(new Error((res && res.errMsg) || 'requestPayment failed'))),
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// read until done(answer) or the tries run out; the last answer either way
async function poll(read, done, tries = 10, everyMs = 1000) {
  let answer = await read();
  for (let i = 1; i < tries && !done(answer); i++) {
    await sleep(everyMs);
    answer = await read();
  }
  return answer;
}

module.exports = { requestPayment, poll, sleep };
