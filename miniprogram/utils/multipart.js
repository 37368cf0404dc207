// A multipart/form-data body for wx.request. wx.uploadFile sends one file per request, but a
// dispute or a fault report takes all its photos (up to 6) in one request, which is one
// answer to the form: so for two photos or more the body is built here from the files' bytes.
const { encode } = require('./utf8');

function boundary() {
  let text = '----pvsettle';
  for (let i = 0; i < 16; i++) text += Math.floor(Math.random() * 36).toString(36);
  return text;
}

const quoted = (value) => String(value).replace(/["\r\n\\]/g, '_');

// fields: {name: text}; files: [{field, filename, contentType, data: ArrayBuffer}]
function build(fields, files) {
  const mark = boundary();
  const parts = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(encode(`--${mark}\r\nContent-Disposition: form-data; name="${quoted(name)}"\r\n\r\n`));
    parts.push(encode(String(value)), encode('\r\n'));
  }
  for (const file of files) {
    parts.push(encode(`--${mark}\r\nContent-Disposition: form-data; name="${quoted(file.field)}"; `
      + `filename="${quoted(file.filename)}"\r\nContent-Type: ${file.contentType}\r\n\r\n`));
    parts.push(new Uint8Array(file.data), encode('\r\n'));
  }
  parts.push(encode(`--${mark}--\r\n`));
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) { body.set(part, at); at += part.length; }
  return { contentType: `multipart/form-data; boundary=${mark}`, body: body.buffer };
}

module.exports = { build };
