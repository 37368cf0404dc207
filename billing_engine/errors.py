"""The billing engine's one exception hierarchy.

::

    ValueError
    └── BillingError                 anything the engine refuses; ``where`` names the place
        ├── TariffError              a tariff file or record that cannot be billed
        │   └── UnsupportedTariffError   valid elsewhere, not here (e.g. URDB demand charges)
        ├── IntervalDataError        interval timestamps or kWh: gaps, duplicates, mixed step
        ├── ReadingError             register readings of the wrong shape or sign of multiplier
        └── PricingError             contract terms: unknown pricing model, negative price

Implausible *values* in otherwise well-formed readings (a register that went backwards, TOU
registers that do not add up) are not exceptions: they come back as per-meter flags
(:class:`billing_engine.registers.RegisterFlag`), because a reading cycle of a million meters
must not stop for one bad meter.

Every error carries ``where``, the place in the input (``"versions[0].prices.peak"``,
``"row 17"``), and ``index`` when the place is a position in an array, so the caller (the CLI,
the settlement layer) can translate it into a file line or a meter id.
"""

from __future__ import annotations

__all__ = [
    "BillingError",
    "TariffError",
    "UnsupportedTariffError",
    "IntervalDataError",
    "ReadingError",
    "PricingError",
]


class BillingError(ValueError):
    """Base class: input the engine refuses.

    Parameters
    ----------
    message : str
        What is wrong, in words an operator understands.
    where : str, optional
        The place in the input, e.g. ``"versions[0].day_schedules.summer"``.
    index : int, optional
        Position in the input array (interval or meter index) when that is the place.
    """

    def __init__(self, message: str, *, where: str | None = None, index: int | None = None):
        self.message = message
        self.where = where
        self.index = index
        super().__init__(f"{where}: {message}" if where else message)


class TariffError(BillingError):
    """A tariff (project file or URDB record) that is malformed or incomplete."""


class UnsupportedTariffError(TariffError):
    """A tariff feature the engine refuses rather than silently ignores."""


class IntervalDataError(BillingError):
    """Interval data that cannot be billed: gaps, duplicates, mixed step, bad kWh."""


class ReadingError(BillingError):
    """Register readings whose shape or parameters make billing impossible."""


class PricingError(BillingError):
    """Contract terms that cannot be priced."""
