"""What the domain runs on: the database, Redis, photo storage and background loops.

Public: :mod:`.db` — ``open_database``, ``migrate``, ``ping``; :mod:`.redis_client` —
``open_redis``, ``Namespace``, ``RedisGuard``; :mod:`.storage` — ``check_photo``, ``PhotoStore``;
:mod:`.background` — ``repeat``, ``pause``, ``stop``; :mod:`.sqlite_backend` (tortoise's engine).
"""
