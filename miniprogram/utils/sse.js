// Server-Sent Events read from wx.request's chunks (enableChunked): the mini-program has no
// EventSource, and GET /plants/{id}/live needs the session's Authorization header anyway.
const { Decoder } = require('./utf8');

class EventParser {
  constructor(onEvent) {
    this.onEvent = onEvent; // ({event, data}) for each complete event
    this.decoder = new Decoder();
    this.buffer = '';
    this.retryMs = null; // the server's `retry:` advice
  }

  feed(chunk) {
    const bytes = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
    this.buffer += this.decoder.write(bytes).replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, cut);
      this.buffer = this.buffer.slice(cut + 2);
      this.block(block);
    }
  }

  block(block) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line[0] === ':') continue; // a comment: the server's heartbeat
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (data.length) this.onEvent({ event, data: data.join('\n') });
  }
}

module.exports = { EventParser };
