"""pvsettle's billing engine: pure numpy, meter data in, energies and integer fen out.

No I/O and no project imports (only numpy and the standard library), so the settlement layer,
the CLI and the tests can all call it the same way.  Modules, one per topic:

===============  ==========================================================================
``tariff``       tariffs in the project's JSON format, versions by effective date
``urdb``         OpenEI URDB rate records → the same tariffs (demand charges refused)
``tou``          the calendar: local time → month, version, day type, period (15 minutes)
``intervals``    interval kWh (meters × intervals) → kWh per month per period
``billing``      interval kWh under a tariff → lines in fen (the CLI's ``bill``)
``registers``    readings (meters × registers) → energy per register, with flags
``pricing``      a cycle's energies under contract terms → bill lines in fen
``market``       interval energy × market price per interval → day lines in fen
``money``        the one place amounts are rounded: integer fen, half up
``latefee``      late fee on arrears by days overdue
``capacity``     nearby consumption: 730 h capacity charge, system operation fee, wire loss
``bench``        the benchmark behind ``python -m billing_engine bench``
``errors``       the exception hierarchy
===============  ==========================================================================
"""

from .billing import IntervalBill, bill, summary
from .errors import (
    BillingError,
    IntervalDataError,
    PricingError,
    ReadingError,
    TariffError,
    UnsupportedTariffError,
)
from .latefee import LateFeeRates, late_fee_fen
from .pricing import PRICING_MODELS, BillLine, ContractTerms, CycleBill, LineKind, price_cycle
from .registers import (
    MeterReplacement,
    RegisterEnergy,
    RegisterFlag,
    register_energy,
    self_consumption,
)
from .tariff import Tariff, TariffVersion, parse_tariff
from .tariff_files import example, loads
from .urdb import from_urdb

__all__ = [
    "BillLine",
    "BillingError",
    "ContractTerms",
    "CycleBill",
    "IntervalBill",
    "IntervalDataError",
    "LateFeeRates",
    "LineKind",
    "MeterReplacement",
    "PRICING_MODELS",
    "PricingError",
    "ReadingError",
    "RegisterEnergy",
    "RegisterFlag",
    "Tariff",
    "TariffError",
    "TariffVersion",
    "UnsupportedTariffError",
    "bill",
    "example",
    "from_urdb",
    "late_fee_fen",
    "loads",
    "parse_tariff",
    "price_cycle",
    "register_energy",
    "self_consumption",
    "summary",
]
