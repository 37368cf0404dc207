"""The domain model as tortoise models (DOMAIN.md glossary names).

One module per topic; this package re-exports every model so tortoise discovers them from
``settlement.models``. Unique constraints carry the idempotency keys of DESIGN.md "Rules":
(plant, period) for cycles and so for forms, (cycle, version) for form and bill versions,
``transaction_id`` for payments, (meter, register, read_at, revision) for readings,
(device, ts) for telemetry, ``dedupe_key`` for outbox messages.

No semicolon in a docstring's first line or a field description: tortoise writes them into the
SQLite DDL as comments and its migration runner splits statements at semicolons.

Avoid migrations that alter an existing column (AlterField): on SQLite tortoise 1.1 rebuilds the
table without its unique_together constraints (seen with a mere description change). Add new
fields instead; tests/integration/test_idempotency_constraints.py catches a lost constraint.
"""

from settlement.models.audit import AuditEvent
from settlement.models.billing import Bill, BillLine, CreditEntry, Payment, Refund
from settlement.models.cycles import ConfirmationForm, ReadingCycle
from settlement.models.enums import (
    BillState,
    FormState,
    LineKind,
    MeterKind,
    OutboxState,
    OwnerKind,
    PaymentChannel,
    PlantRight,
    PricingModel,
    ReadingSource,
    RefundState,
    StaffRole,
    TelemetryGranularity,
)
from settlement.models.ingest import Collector, FieldDeviceStatus, ReadingConflict
from settlement.models.miniapp import (
    Attachment,
    FaultReport,
    FaultState,
    MiniProgramSession,
    OwnerInvitation,
    PlantShare,
    SubscribeAcceptance,
    SubscribeAnswer,
)
from settlement.models.dunning import DunningPlan
from settlement.models.market import PriceCurve, PriceDay, PriceMarket
from settlement.models.nearby import NearbyConsumptionTerms
from settlement.models.outbox import OutboxMessage
from settlement.models.outages import AlarmState, OutageCause, PlantOutage, TripEpisode
from settlement.models.parties import Owner, PlantAccess, Staff, WechatIdentity
from settlement.models.pay import NotificationOutcome, PayNotification, PayOrder, PayOrderState, TradeBillReport
from settlement.models.plants import Contract, Meter, Plant, Tariff
from settlement.models.prepaid import (
    AlertState,
    CommandKind,
    CommandState,
    EntryKind,
    InvoiceRequest,
    InvoiceState,
    PrepaidAccount,
    PrepaidEntry,
    PrepaidService,
    PrepaidUsage,
    SupplyCommand,
    SupplyState,
    TopUpOrder,
    Utility,
)
from settlement.models.readings import Reading
from settlement.models.telemetry import TelemetryDevice, TelemetryRollup, TelemetrySample

__all__ = [
    "AuditEvent", "Bill", "BillLine", "BillState", "Collector", "ConfirmationForm", "Contract", "CreditEntry", "FieldDeviceStatus",
    "FormState", "LineKind", "Meter", "MeterKind", "NearbyConsumptionTerms", "OutboxMessage", "OutboxState", "Owner",
    "OwnerKind", "Payment", "PaymentChannel", "Plant", "PlantAccess", "PlantRight", "PricingModel",
    "Reading", "ReadingConflict", "ReadingCycle", "ReadingSource", "Refund", "RefundState", "Staff", "StaffRole",
    "Tariff", "TelemetryDevice", "TelemetryGranularity", "TelemetryRollup", "TelemetrySample",
    "WechatIdentity",
    "Attachment", "FaultReport", "FaultState", "MiniProgramSession", "OwnerInvitation", "PlantShare", "SubscribeAcceptance",
    "SubscribeAnswer",
    "AlarmState", "OutageCause", "PlantOutage", "TripEpisode",
    "NotificationOutcome", "PayNotification", "PayOrder", "PayOrderState", "TradeBillReport",
    "DunningPlan",
    "PriceCurve", "PriceDay", "PriceMarket",
    "AlertState", "CommandKind", "CommandState", "EntryKind", "InvoiceRequest", "InvoiceState", "PrepaidAccount",
    "PrepaidEntry", "PrepaidService", "PrepaidUsage", "SupplyCommand", "SupplyState", "TopUpOrder", "Utility",
]
