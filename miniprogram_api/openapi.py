"""The OpenAPI 3.1 document of /api/v1, generated from the route registry and the pydantic models.

Nothing here is written by hand per route: paths, parameters, bodies, responses and security
come from :data:`miniprogram_api.common.api`; schemas from the models, request models in
pydantic's validation mode and response models in its serialization mode (a Decimal is read as
a number or a string but always written as a string). The document is built once per process.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from miniprogram_api.common import api
from miniprogram_api.registry import MAX_ID, Route
from miniprogram_api.schemas import Error

REF = "#/components/schemas/{model}"
STATUS_TEXT = {200: "OK", 201: "Created", 204: "No content", 400: "Invalid request", 401: "Not logged in",
               403: "Not allowed", 404: "Not found", 409: "Conflict with the current state",
               413: "Body too large", 414: "URL too long", 429: "Too many requests", 503: "WeChat unavailable"}


def _operation_id(route: Route) -> str:
    return route.handler.__name__


def _photos_schema() -> dict:
    return {"type": "array", "maxItems": 6, "items": {"type": "string", "format": "binary",
                                                      "contentMediaType": "application/octet-stream"},
            "description": "JPEG or PNG, at most 5 MB each"}


class _Components:
    """The document's schemas: each model's reference by (model, mode), and the definitions."""

    def __init__(self, routes: list[Route]) -> None:
        inputs: list[tuple[type[BaseModel], str]] = []
        outputs: list[tuple[type[BaseModel], str]] = [(Error, "serialization")]
        for route in routes:
            for model in (route.query, route.body, route.multipart):
                if model is not None:
                    inputs.append((model, "validation"))
            if route.response is not None:
                outputs.append((route.response, "serialization"))
        self.keyed, defs = models_json_schema(list(dict.fromkeys(inputs + outputs)), ref_template=REF)
        self.schemas = dict(defs.get("$defs", {}))

    def ref(self, model: type[BaseModel], mode: str) -> dict:
        return self.keyed[(model, mode)]

    def resolve(self, schema: dict) -> dict:
        if "$ref" in schema:
            return self.schemas[schema["$ref"].rsplit("/", 1)[1]]
        return schema


def _description(route: Route) -> str:
    doc = (route.handler.__doc__ or "").strip().split("\n", 1)
    description = " ".join(x for x in (doc[1].strip() if len(doc) > 1 else "", route.description) if x)
    if route.needs is not None:
        description = (description + f"\n\nNeeds the {route.needs.label} right on the {route.resource}'s plant;"
                       " another owner's id is answered 404.").strip()
    return description


def _parameters(route: Route, components: _Components) -> list[dict]:
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}} for name in route.path_ids]
    if route.query is not None:
        query_schema = components.resolve(components.ref(route.query, "validation"))
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def _request_body(route: Route, components: _Components) -> dict | None:
    if route.multipart is not None:
        fields = components.resolve(components.ref(route.multipart, "validation"))
        form = {"type": "object", "properties": {**fields["properties"], "photos": _photos_schema()},
                "required": fields.get("required", []), "additionalProperties": False}
        # each photo part is an image, judged by its content (settlement.infra.storage.check_photo)
        photos = {"photos": {"contentType": "image/jpeg, image/png"}}
        return {"required": True, "content": {
            "multipart/form-data": {"schema": form, "encoding": photos},
            "application/json": {"schema": components.ref(route.multipart, "validation")}}}
    if route.body is not None:
        return {"required": True,
                "content": {"application/json": {"schema": components.ref(route.body, "validation")}}}
    return None


def _responses(route: Route, components: _Components) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if route.stream:
        responses[str(route.status)] = {"description": "Server-Sent Events: `event: state` with the plant's "
                                                       "state as JSON in `data`, `: heartbeat` every 15 s",
                                        "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    elif route.binary:
        responses[str(route.status)] = {"description": "the image", "content": {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}}}}
    elif route.response is None:
        responses["204"] = {"description": STATUS_TEXT[204]}
    else:
        responses[str(route.status)] = {"description": STATUS_TEXT.get(route.status, "OK"), "content": {
            "application/json": {"schema": components.ref(route.response, "serialization")}}}
    error_ref = components.ref(Error, "serialization")
    for status in route.error_statuses:
        responses[str(status)] = {"description": STATUS_TEXT.get(status, "Error"),
                                  "content": {"application/json": {"schema": error_ref}}}
    return responses


def _operation(route: Route, components: _Components) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": _operation_id(route), "summary": route.summary, "tags": [route.tag]}
    description = _description(route)
    if description:
        op["description"] = description
    op["security"] = [{"session": []}] if route.auth == "session" else []
    params = _parameters(route, components)
    if params:
        op["parameters"] = params
    body = _request_body(route, components)
    if body is not None:
        op["requestBody"] = body
    op["responses"] = _responses(route, components)
    return op


def build(routes: list[Route]) -> dict[str, Any]:
    components = _Components(routes)
    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "pvsettle mini-program API", "version": "1",
                 "description": "What the owners' mini-program calls. Money is integer fen; energies are kWh "
                                "as decimal strings; what was not measured is null. Errors are "
                                '`{"error": {"code", "message"}}`. Lists are pages with an opaque `next_cursor`.'},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {"session": {"type": "http", "scheme": "bearer",
                                            "description": "the token of POST /session"}},
        },
    }


@functools.cache
def document_bytes() -> bytes:
    return json.dumps(build(api.routes), ensure_ascii=False).encode()


async def serve(request: web.Request) -> web.Response:
    return web.Response(body=document_bytes(), content_type="application/json",
                        headers={"Cache-Control": "public, max-age=300"})
