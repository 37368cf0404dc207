"""Per-request context the domain records but does not own: the request id the server assigned,
stored on audit events so that a log line and an audit event can be matched."""

import contextvars

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
