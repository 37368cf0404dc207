"""Terms of nearby-consumption (就近消纳) projects, versioned by effective date (DOMAIN.md).

The monthly fee report needs figures the grid company and the provincial price authority
publish per project or per voltage level: the T&D price, the average load rate, the project's
grid-connection capacity, the capacity charge under current policy, the system operation fee and
the wire-loss price. They are data, entered per project, never constants in code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from settlement.models.plants import Plant


class NearbyConsumptionTerms(Model):
    """What a nearby-consumption project pays the grid, from ``effective_from`` until the next version.

    Prices and rates are decimals, never floats; the fees computed from them are integer fen.
    """

    id = fields.IntField(primary_key=True)
    plant: fields.ForeignKeyRelation[Plant] = fields.ForeignKeyField(
        "settlement.Plant", related_name="nearby_terms", on_delete=fields.CASCADE)
    effective_from = fields.DateField()
    voltage_level = fields.CharField(max_length=32, description="e.g. 10kV, the T&D price's voltage level")
    td_price = fields.DecimalField(max_digits=10, decimal_places=6,
                                   description="per-kWh T&D price of the voltage level [yuan/kWh]")
    average_load_rate = fields.DecimalField(max_digits=7, decimal_places=6,
                                            description="published average load rate, e.g. 0.450000 [-]")
    connection_kva = fields.DecimalField(max_digits=12, decimal_places=3,
                                         description="grid-connection capacity [kVA]")
    current_capacity_charge = fields.DecimalField(max_digits=14, decimal_places=2,
                                                  description="capacity charge under current policy [yuan/month]")
    system_operation_fee = fields.DecimalField(max_digits=10, decimal_places=6,
                                               description="per grid-drawn kWh [yuan/kWh]")
    wire_loss_price = fields.DecimalField(max_digits=10, decimal_places=6,
                                          description="wire-loss cost per grid-drawn kWh [yuan/kWh]")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "nearby_consumption_terms"
        unique_together = (("plant", "effective_from"),)
