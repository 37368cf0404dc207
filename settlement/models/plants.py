"""Plants, their meters, tariffs and contract terms (versioned by effective date)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from settlement.models.enums import MeterKind, PricingModel

if TYPE_CHECKING:
    from settlement.models.cycles import ReadingCycle
    from settlement.models.parties import Owner
    from settlement.models.readings import Reading


class Tariff(Model):
    """A grid tariff (TOU shape and price levels) in billing_engine's own format.

    Versions share a ``code`` and differ by ``effective_from``; a cycle that spans a change is
    split by date by the engine.
    """

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64)
    name = fields.CharField(max_length=200)
    effective_from = fields.DateField()
    # the tariff as written, in ``format``: billing_engine's own document or an OpenEI URDB record
    # (the column's description stays as it was: changing it makes SQLite rebuild the table, and
    # tortoise's rebuild drops the (code, effective_from) key)
    document = fields.JSONField(description="billing_engine tariff document")
    format = fields.CharField(max_length=8, default="pvsettle", description="pvsettle (billing_engine's format) or urdb")
    currency = fields.CharField(max_length=3, default="CNY", description="ISO 4217 code of the tariff's prices")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tariff"
        unique_together = (("code", "effective_from"),)


class Plant(Model):
    """电站: one PV installation on an owner's roof."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=200)
    owner: fields.ForeignKeyRelation[Owner] = fields.ForeignKeyField(
        "settlement.Owner", related_name="plants", on_delete=fields.RESTRICT)
    capacity_kwp = fields.DecimalField(max_digits=10, decimal_places=3, description="[kWp]")
    address = fields.CharField(max_length=300, default="")
    latitude = fields.DecimalField(max_digits=9, decimal_places=6, null=True, description="[deg]")
    longitude = fields.DecimalField(max_digits=9, decimal_places=6, null=True, description="[deg]")
    reading_day = fields.SmallIntField(default=1, description="抄表例日, day of month 1-28")
    commissioned_on = fields.DateField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    meters: fields.ReverseRelation[Meter]
    contracts: fields.ReverseRelation[Contract]
    cycles: fields.ReverseRelation[ReadingCycle]

    class Meta:
        table = "plant"


class Contract(Model):
    """The contract terms a plant is settled under, from ``effective_from`` until the next version.

    Rates are decimals, never floats; amounts computed from them are integer fen.
    """

    id = fields.IntField(primary_key=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="contracts", on_delete=fields.CASCADE)
    effective_from = fields.DateField()
    tariff_code = fields.CharField(max_length=64)
    pricing_model = fields.CharEnumField(PricingModel, max_length=16)
    discount = fields.DecimalField(max_digits=6, decimal_places=4, null=True,
                                   description="factor on the grid price, e.g. 0.8500")
    floor_price = fields.DecimalField(max_digits=10, decimal_places=6, null=True, description="[yuan/kWh]")
    cap_price = fields.DecimalField(max_digits=10, decimal_places=6, null=True, description="[yuan/kWh]")
    fixed_price = fields.DecimalField(max_digits=10, decimal_places=6, null=True, description="[yuan/kWh]")
    tiers = fields.JSONField(null=True, description="[[upper kWh or null, yuan/kWh], …]")
    vat_rate = fields.DecimalField(max_digits=5, decimal_places=4, default="0.1300")
    prices_include_vat = fields.BooleanField(default=True)
    due_days = fields.SmallIntField(default=15)
    late_fee_rate = fields.DecimalField(max_digits=6, decimal_places=5, default="0.00200",
                                        description="[1/day] on arrears of the current year")
    late_fee_rate_cross_year = fields.DecimalField(max_digits=6, decimal_places=5, default="0.00300",
                                                   description="[1/day] on arrears crossing a year end")
    auto_confirm_days = fields.SmallIntField(default=7)
    allow_partial_payment = fields.BooleanField(default=True)
    share_export = fields.BooleanField(default=False)
    owner_bears_nearby_fees = fields.BooleanField(
        default=False,
        description="the owner pays the nearby-consumption (就近消纳) fees — capacity, system "
                    "operation, wire loss — on the plant's bill while NearbyConsumptionTerms are in force")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "contract"
        unique_together = (("plant", "effective_from"),)


class Meter(Model):
    """A meter on the plant's site: grid (关口表), generation (发电表), water or gas.

    Electricity energy = Δreading × multiplier. Water and gas meters are read and kept, never put
    on an electricity form or bill.
    """

    id = fields.IntField(primary_key=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="meters", on_delete=fields.CASCADE)
    serial = fields.CharField(max_length=32, unique=True)
    kind = fields.CharEnumField(MeterKind, max_length=16)
    multiplier = fields.IntField(default=1, description="倍率 = CT ratio × PT ratio")
    register_digits = fields.SmallIntField(default=6, description="whole digits — rolls over at 10**digits")
    registers = fields.JSONField(description="DL/T 645 register ids this meter reports")
    installed_on = fields.DateField()
    removed_on = fields.DateField(null=True)
    # 换表: the meter this one took the place of, and when; the old meter's final readings and this
    # one's first readings are stored at that time, so a cycle spanning the swap adds both parts
    replaces: fields.ForeignKeyNullableRelation[Meter] = fields.ForeignKeyField(
        "settlement.Meter", related_name=False, null=True, on_delete=fields.RESTRICT,
        description="the meter this one replaced")
    replaced_at = fields.DatetimeField(null=True, description="when it replaced that meter")
    created_at = fields.DatetimeField(auto_now_add=True)

    readings: fields.ReverseRelation[Reading]

    class Meta:
        table = "meter"
