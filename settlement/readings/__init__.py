"""Meter readings in: the one service every source goes through (collectors over HTTP, CSV
imports, staff by hand), with the conflicts it keeps for staff.

Public: :mod:`.ingest` — ``ingest_readings``, ``list_conflicts``, ``add_collector``,
``collector_for_key``, ``is_rollover``.
"""
