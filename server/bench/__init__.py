"""The benchmarks behind ``pvsettle bench NAME`` (registered by :mod:`server.cli.bench`): each
starts what it measures on its own database and Redis namespace (:mod:`.support`) and prints its
figures as ratios against a reference run in the same process, as the machine is shared.

:mod:`.cycle` (forms and bills of a reading cycle), :mod:`.api` (the mini-program API),
:mod:`.pay` (payment notifications), :mod:`.bot`, :mod:`.notify` (the outbox), :mod:`.ingest`
(telemetry), :mod:`.gateway` (the field gateway).
"""
