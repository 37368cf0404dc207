// Questions to the OpenAPI document of /api/v1 (test/openapi.json, which
// tests/e2e/test_miniprogram.py keeps equal to the one the server generates).
const doc = require('./openapi.json');

function resolve(schema) {
  let s = schema;
  while (s && s.$ref) s = doc.components.schemas[s.$ref.split('/').pop()];
  return s;
}

// the schemas a value may have: anyOf / oneOf spread out, null left out
function variants(schema) {
  const s = resolve(schema);
  if (!s) return [];
  const alternatives = s.anyOf || s.oneOf;
  if (alternatives) return alternatives.flatMap(variants).filter((v) => v.type !== 'null');
  return [s];
}

function operation(method, template) {
  const ops = doc.paths[template];
  return ops ? ops[method.toLowerCase()] : undefined;
}

// the JSON schema of the answer with this status (an error's too), null if none is declared
function responseSchema(method, template, status) {
  const op = operation(method, template);
  const r = op && op.responses[String(status)];
  return r && r.content && r.content['application/json'] ? r.content['application/json'].schema : null;
}

// is "items[].contract.discount" declared under `schema`? A map (additionalProperties) takes any
// key: the rest of the path is its value's (a key of the catalogue may have dots in it)
function declares(schema, path) {
  const parts = path.split(/\.|(?=\[\])/).filter(Boolean);
  return walk(schema, parts);
}

function walk(schema, parts) {
  if (!parts.length) return true;
  const [head, ...rest] = parts;
  return variants(schema).some((s) => {
    if (head === '[]') return s.type === 'array' && walk(s.items, rest);
    if (s.properties && head in s.properties) return walk(s.properties[head], rest);
    if (s.additionalProperties && typeof s.additionalProperties === 'object') {
      const value = variants(s.additionalProperties);
      if (value.every((v) => v.type && v.type !== 'object' && v.type !== 'array')) return true;
      return walk(s.additionalProperties, rest);
    }
    return false;
  });
}

// the names a request body or multipart form declares
function requestFields(method, template) {
  const op = operation(method, template);
  const content = (op && op.requestBody && op.requestBody.content) || {};
  const json = content['application/json'];
  const form = content['multipart/form-data'];
  const fields = {};
  for (const media of [json, form]) {
    if (!media) continue;
    const s = resolve(media.schema);
    Object.assign(fields, s.properties || {});
    if (s.additionalProperties) fields['*'] = s.additionalProperties;
  }
  return { fields, json: !!json, multipart: !!form };
}

function queryNames(method, template) {
  const op = operation(method, template);
  return ((op && op.parameters) || []).filter((p) => p.in === 'query').map((p) => p.name);
}

module.exports = { doc, resolve, operation, responseSchema, declares, requestFields, queryNames };
