"""The route registry: every route of /api/v1 with its method, path, models and authorization rule.

One table serves three purposes, so they cannot drift apart: aiohttp's router is filled from it,
the OpenAPI 3.1 document is generated from it (:mod:`miniprogram_api.openapi`), and the
authorization-matrix test walks it.

Why our own and not a library: aiohttp-pydantic and aiohttp-apispec describe handlers, but
neither records what this API's authorization depends on — which path id names which kind of
thing (plant, form, bill, …) and what right on its plant a route needs — and the test of
DESIGN.md's "an owner sees only what is theirs" must be generated from exactly that. pydantic
v2 writes JSON Schema draft 2020-12, which is OpenAPI 3.1's own dialect, so the document is a
few dozen lines over ``pydantic.json_schema.models_json_schema``.

A handler is ``async def handler(request, call: Call) -> BaseModel | web.StreamResponse | None``.
Before it runs, the wrapper made here:

1. authenticates the session token (routes with ``auth="session"``: 401 when it is missing,
   forged, expired or closed) and counts the request against the user's rate limit (429);
2. resolves the path id to its plant and checks the user's right on it (404 when they have none,
   403 when it is too weak) — see :mod:`settlement.owners.access`;
3. checks every string of the query and the JSON body, names and keys included, against
   :mod:`settlement.text` (400 ``invalid_text``), then validates them with the route's pydantic
   models (400).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ValidationError

from settlement import i18n
from settlement import text as outside_text
from settlement.owners.access import Principal, Right
from settlement.errors import InvalidInput

Handler = Callable[[web.Request, "Call"], Awaitable[Any]]
MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI form, relative to /api/v1: /plants/{plant_id}
    handler: Handler
    summary: str
    tag: str
    auth: Literal["public", "session"] = "session"
    ends_session: bool = False  # logout: a token whose session already ended may repeat it (to finish it)
    resource: str | None = None  # the kind the first path id names: plant, form, bill, fault
    needs: Right | None = None  # the right on that thing's plant this route needs
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    multipart: type[BaseModel] | None = None  # form fields; photos are added as files
    response: type[BaseModel] | None = None
    status: int = 200
    stream: bool = False  # text/event-stream
    binary: bool = False  # an image, not JSON
    errors: tuple[int, ...] = ()
    description: str = ""

    @property
    def path_ids(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]

    @property
    def aiohttp_path(self) -> str:
        return "/".join(f"{{{p[1:-1]}:[0-9]+}}" if p.startswith("{") else p for p in self.path.split("/"))

    @property
    def error_statuses(self) -> list[int]:
        statuses = {400, 414, 429, *self.errors}  # 414: a URL too long (server.middleware)
        if self.auth == "session":
            statuses.add(401)
        if self.path_ids:
            statuses.add(404)
        if self.needs is not None and self.needs > Right.VIEW:
            statuses.add(403)
        if self.stream:
            statuses.add(503)
        if self.body is not None or self.multipart is not None:
            statuses.add(413)
        return sorted(statuses)


@dataclasses.dataclass
class Call:
    """What the wrapper learned before the handler runs."""

    principal: Principal | None
    ids: dict[str, int]
    plant_id: int | None = None
    right: Right | None = None
    query: Any = None
    body: Any = None


class Registry:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            summary = options.pop("summary", None) or (handler.__doc__ or handler.__name__).strip().splitlines()[0]
            self.routes.append(Route(method=method, path=path, handler=handler, summary=summary, **options))
            return handler

        return register

    def get(self, path: str, **options: Any):
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any):
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any):
        return self.route("PUT", path, **options)

    def delete(self, path: str, **options: Any):
        return self.route("DELETE", path, **options)


def validation_message(exc: ValidationError | list) -> str:
    """The first few problems of a pydantic error (or of some of its errors), as one line a
    developer can act on."""
    parts = []
    for error in (exc.errors() if isinstance(exc, ValidationError) else exc)[:5]:
        where = outside_text.shown(".".join(str(p) for p in error["loc"])) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def refused(exc: ValidationError, code: str) -> InvalidInput:
    """The 400 of a validation error: ``invalid_text`` naming the field when text from outside
    was refused (settlement.text), else ``code`` with the first few problems."""
    bad_text = [e for e in exc.errors() if e["type"] == outside_text.CODE]
    if bad_text:
        where = [str(p) for p in bad_text[0]["loc"] if not isinstance(p, int)]
        return outside_text.InvalidText(validation_message(bad_text), field=where[-1] if where else "body")
    return InvalidInput(validation_message(exc), code=code, params=validation_params(exc))


def validation_params(exc: ValidationError) -> dict[str, Any]:
    """The same problems as catalogue messages (``validation.<pydantic type>``) for the error's ``params``."""
    problems = []
    for error in exc.errors()[:5]:
        loc = [str(p) for p in error["loc"] if not isinstance(p, int)]
        kind = f"validation.{error['type']}"
        problem = i18n.Ref(kind if i18n.has(kind) else "validation._other",
                           {k: v for k, v in (error.get("ctx") or {}).items() if isinstance(v, (str, int, float))})
        problems.append(i18n.Ref("validation._item", {"field": i18n.field_label(loc[-1] if loc else "body"),
                                                      "problem": problem}))
    return {"problems": problems}


def invalid(message: str, problem: str, code: str = "invalid_body", **params: Any):
    """An InvalidInput of ``code`` whose one problem is the catalogue's ``problem.<problem>``."""
    from settlement.errors import InvalidInput

    return InvalidInput(message, code=code, params={"problems": [i18n.Ref(f"problem.{problem}", params)]})


def parse_json_body(model: type[BaseModel], raw: bytes) -> BaseModel:
    if not raw.strip():
        raise invalid("a JSON body is needed", "json_needed")
    # every string of the body, keys included, whatever the model makes of it: a field that is
    # not free text ("right": "view\x7f", "ttl_hours": "2\u0085", which int() takes as 2), a key
    # it does not know, a lone surrogate (which pydantic's parser refuses as broken JSON)
    bad_text = _refused_text_in(raw)
    if bad_text is not None:
        raise bad_text
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise InvalidInput("the body is not valid JSON", code="invalid_json") from None
        raise refused(exc, "invalid_body") from None


def _refused_text_in(raw: bytes) -> outside_text.InvalidText | None:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None  # not JSON: pydantic's parser says so
    return outside_text.document_refusal(document)


def parse_query(model: type[BaseModel], request: web.Request) -> BaseModel:
    values = {k: request.query.getone(k) for k in request.query}
    outside_text.check_document(values)  # names and values, whatever the model makes of them (as for bodies)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise refused(exc, "invalid_query") from None


def json_model(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=model.model_dump_json(), status=status, content_type="application/json")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
