"""The closed vocabularies of the domain, stored as short strings."""

from enum import StrEnum


class OwnerKind(StrEnum):
    """Decides the default late-fee rate (DOMAIN.md "Money")."""

    RESIDENTIAL = "residential"
    COMMERCIAL = "commercial"
    INDUSTRIAL = "industrial"


class StaffRole(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class PlantRight(StrEnum):
    """What an owner lets another WeChat user do on a plant (family, finance staff)."""

    VIEW = "view"
    PAY = "pay"


class MeterKind(StrEnum):
    GRID = "grid"  # 并网点/关口表: forward = import from the grid, reverse = export
    GENERATION = "generation"  # 发电表
    # 水表 / 气表 on the same site (State Grid's smart payment reads all of a site's utilities):
    # CJ/T 188 meters, volume in m³; read and kept, never on an electricity form or bill
    WATER = "water"
    GAS = "gas"


class ReadingSource(StrEnum):
    AMI = "ami"
    MANUAL = "manual"
    IMPORTED = "imported"
    ADJUSTED = "adjusted"


class PricingModel(StrEnum):
    GRID_DISCOUNT = "grid_discount"  # self-use kWh × grid TOU price × discount, floor/cap
    FIXED_PRICE = "fixed_price"
    TIERED = "tiered"


class FormState(StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    CONFIRMED = "confirmed"
    DISPUTED = "disputed"
    ADJUSTED = "adjusted"  # replaced by a newer version after a staff adjustment
    AUTO_CONFIRMED = "auto_confirmed"


class BillState(StrEnum):
    OPEN = "open"
    PARTLY_PAID = "partly_paid"
    PAID = "paid"
    WRITTEN_OFF = "written_off"
    SUPERSEDED = "superseded"


class LineKind(StrEnum):
    ENERGY = "energy"
    FIXED = "fixed"
    CAPACITY = "capacity"
    SYSTEM_OPERATION = "system_operation"
    WIRE_LOSS = "wire_loss"
    LATE_FEE = "late_fee"
    CREDIT = "credit"
    EXPORT_INFO = "export_info"  # shown for information, not charged unless the contract shares it


class PaymentChannel(StrEnum):
    WECHAT = "wechat"
    BANK_TRANSFER = "bank_transfer"
    COUNTER = "counter"
    OTHER = "other"


class RefundState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class TelemetryGranularity(StrEnum):
    QUARTER_HOUR = "15m"
    DAY = "day"
    MONTH = "month"
