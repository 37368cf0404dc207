"""What the web layer shares: the layer between the sub-apps and ``settlement``.

The sub-apps (``bot``, ``miniprogram_api``, ``ingest_api``, ``pages``, ``pay_api``) and the
composition root (``server``) all need the same typed app state, the same settings and the same
JSON error shape; kept in ``server/`` they made every sub-app import the package that mounts it.
Here they sit below the sub-apps, as aiohttp-demos keeps its ``typedefs.py`` under the views:

- :mod:`webapp.keys` — the ``web.AppKey`` of every shared resource, declared once;
- :mod:`webapp.settings` — :class:`~webapp.settings.Settings` from the environment (the type
  ``settings_key`` holds, so it has to live at least as low as the keys);
- :mod:`webapp.json_errors` — ``{"error": {"code": …, "message": …}}`` answers in the caller's
  language.

It imports ``settlement`` (the ports the keys hold, the message catalogue) and aiohttp, never a
sub-app or ``server``. What fills the keys (one ``cleanup_ctx`` per resource) and the middlewares
stay in ``server/``: they are the composition root's.
"""
