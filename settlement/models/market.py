"""Market price curves: day-ahead and real-time prices per trading node or province (issue 17).

A :class:`PriceCurve` is one (node, market, source, version): where the prices came from and
which edition of them. Its prices are stored one row per local day (:class:`PriceDay`), the
day's 96 quarter-hour or 24 hourly prices as one JSON array of integers in µyuan/kWh, interval
``i`` starting at 00:00 + i × step (China time, UTC+8 without daylight saving). A year of
15-minute prices of one node and market is 365 rows, not 35 040: reading a month for a bill is
one indexed query of 31 rows, and both SQLite and PostgreSQL store the arrays compactly.

A stored day of a version is never rewritten: a corrected curve is a new version, kept beside
the old one (:mod:`settlement.market.prices`).
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class PriceMarket(StrEnum):
    DAY_AHEAD = "day-ahead"
    REAL_TIME = "real-time"


class PriceCurve(Model):
    """One edition of a node's prices in one market, from one source."""

    id = fields.IntField(primary_key=True)
    node = fields.CharField(max_length=64, description="trading node or province, as the source names it")
    market = fields.CharEnumField(PriceMarket, max_length=16)
    source = fields.CharField(max_length=64, description="who published the prices, e.g. the exchange")
    version = fields.CharField(max_length=64, description="the edition of the prices, as the file states it")
    unit = fields.CharField(max_length=16, description="the unit the first file stated, yuan/MWh or yuan/kWh")
    step_minutes = fields.SmallIntField(description="15 or 60 [min]")
    file_name = fields.CharField(max_length=255, description="the file that created the curve")
    imported_at = fields.DatetimeField(auto_now_add=True)

    days: fields.ReverseRelation[PriceDay]

    class Meta:
        table = "price_curve"
        unique_together = (("node", "market", "source", "version"),)


class PriceDay(Model):
    """A curve's prices of one local day, 96 or 24 integers [µyuan/kWh]."""

    id = fields.IntField(primary_key=True)
    curve: fields.ForeignKeyRelation[PriceCurve] = fields.ForeignKeyField(
        "settlement.PriceCurve", related_name="days", on_delete=fields.CASCADE)
    day = fields.DateField(description="the local date (UTC+8)")
    prices_micro = fields.JSONField(description="the day's interval prices in order [µyuan/kWh]")
    file_name = fields.CharField(max_length=255, description="the file the day came from")
    imported_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "price_day"
        unique_together = (("curve", "day"),)
