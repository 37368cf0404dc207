// UTF-8 without TextEncoder / TextDecoder: the mini-program's JS engine lacks them on some
// phones (iOS JavaScriptCore of older base libraries). The decoder is incremental because a
// chunk of the live stream may end in the middle of a character.

function encode(text) {
  const out = [];
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00); i++; }
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

class Decoder {
  constructor() { this.rest = []; }

  // the text of the complete characters in `bytes` (with what was left over before); an
  // incomplete character at the end waits for the next chunk
  write(bytes) {
    const data = this.rest.length ? Uint8Array.from([...this.rest, ...bytes]) : bytes;
    let text = '';
    let i = 0;
    while (i < data.length) {
      const b = data[i];
      const need = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      if (i + need > data.length) break;
      let c;
      if (need === 1) c = b < 0x80 ? b : 0xfffd;
      else if (need === 2) c = ((b & 31) << 6) | (data[i + 1] & 63);
      else if (need === 3) c = ((b & 15) << 12) | ((data[i + 1] & 63) << 6) | (data[i + 2] & 63);
      else c = ((b & 7) << 18) | ((data[i + 1] & 63) << 12) | ((data[i + 2] & 63) << 6) | (data[i + 3] & 63);
      text += c >= 0x10000 ? String.fromCharCode(0xd800 + ((c - 0x10000) >> 10), 0xdc00 + ((c - 0x10000) & 1023))
        : String.fromCharCode(c);
      i += need;
    }
    this.rest = Array.from(data.slice(i));
    return text;
  }
}

const decode = (bytes) => new Decoder().write(bytes);

module.exports = { encode, decode, Decoder };
