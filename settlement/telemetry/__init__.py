"""Inverter and data-logger telemetry: samples in, their store, interval energy, live state,
outages, repeated trips, reliability figures and the owners' generation views.

Public: :mod:`.ingest` — ``ingest_samples``, ``rebuild_rollups``, ``LivePublisher``;
:mod:`.store` — ``TelemetryStore`` (where a sample is stored); :mod:`.energy`; :mod:`.live` —
``publish_state``, ``latest_state``; :mod:`.outages` — ``check_outages``, ``send_outage_alarms``;
:mod:`.trips`; :mod:`.reliability`; :mod:`.generation` — ``history``; :mod:`.solar`.
"""
