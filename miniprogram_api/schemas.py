"""Request and response models of /api/v1 (pydantic v2). The OpenAPI document is generated from them.

Conventions: money is integer fen (``*_fen``); energies are kWh as decimal strings with 3
decimals (``*_kwh``), never floats; times are ISO 8601 with their offset; a value that was not
measured is null. Lists are pages: ``{"items": [...], "next_cursor": "..." | null}``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

T = TypeVar("T")

Code = Annotated[str, Field(min_length=1, max_length=128)]
Kwh = Annotated[Decimal, Field(description="[kWh], decimal string")]


class Strict(BaseModel):
    """Request bodies refuse fields they do not know, so a typo is an error, not silence."""

    model_config = ConfigDict(extra="forbid")


class Error(BaseModel):
    class ErrorBody(BaseModel):
        code: str
        message: str

    error: ErrorBody


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class PageQuery(Strict):
    cursor: str | None = Field(None, max_length=200, description="opaque, from the previous page")
    limit: int = Field(20, ge=1, le=100)


# --- sessions and binding -----------------------------------------------------------------------


class SessionIn(Strict):
    code: Code = Field(description="the code wx.login gave")


class OwnerOut(BaseModel):
    id: int
    name: str


class MeOut(BaseModel):
    identity_id: int
    bound: bool
    owner: OwnerOut | None


class SessionOut(BaseModel):
    token: str = Field(description="send as Authorization: Bearer <token>")
    expires_at: dt.datetime
    me: MeOut


class BindingIn(Strict):
    invitation_code: Code | None = Field(None, description="the code staff issued for the owner account")
    phone_code: Code | None = Field(None, description="the code of getPhoneNumber; its number must be on file")

    @model_validator(mode="after")
    def exactly_one(self) -> BindingIn:
        if (self.invitation_code is None) == (self.phone_code is None):
            raise ValueError("give either invitation_code or phone_code")
        return self


class BindingOut(BaseModel):
    owner: OwnerOut
    by: Literal["invitation", "phone", "link"] = Field(
        description="link: a link code the same person made in the official account")


class LinkCodeOut(BaseModel):
    code: str = Field(description="one-time code that binds this person in the official account too")
    expires_at: dt.datetime
    send: str = Field(description="what to send to the official account, e.g. 绑定 7KQ2M9XH4C")


class AccountOut(BaseModel):
    owner: OwnerOut
    credit_fen: int = Field(description="account credit from overpayments, used by the next bill [fen]")


# --- plants -------------------------------------------------------------------------------------


RightName = Literal["owner", "pay", "view"]


class PlantSummary(BaseModel):
    id: int
    code: str
    name: str
    capacity_kwp: Decimal = Field(description="[kWp], decimal string")
    right: RightName
    status: Literal["online", "offline", "unknown"]
    power_w: int | None = Field(description="last known power [W]")
    last_seen: dt.datetime | None
    today_kwh: Kwh | None
    lifetime_kwh: Kwh | None


class ContractOut(BaseModel):
    effective_from: dt.date
    pricing_model: str
    tariff_code: str
    discount: Decimal | None
    fixed_price: Decimal | None = Field(description="[yuan/kWh]")
    due_days: int


class PlantDetail(PlantSummary):
    address: str
    reading_day: int
    commissioned_on: dt.date | None
    owner_name: str
    contract: ContractOut | None


class HistoryQuery(Strict):
    span: Literal["day", "month", "year", "lifetime"] = "day"
    at: str | None = Field(None, max_length=10, description="YYYY-MM-DD (day), YYYY-MM (month), YYYY (year)")


class HistoryBar(BaseModel):
    label: str
    start: dt.datetime
    energy_kwh: Kwh | None
    self_use_kwh: Kwh | None
    export_kwh: Kwh | None
    revenue_fen: int | None = Field(description="self-used energy at the owner's contract price, as billed [fen]")
    billing_period: str | None = Field(description="the reading cycle self-use, export and revenue come from")
    co2_kg: Decimal | None = Field(description="CO2 avoided [kg]")
    coal_kg: Decimal | None = Field(description="standard coal saved [kg]")


class FactorsOut(BaseModel):
    co2_kg_per_kwh: Decimal
    coal_kg_per_kwh: Decimal


class HistoryOut(BaseModel):
    plant_id: int
    span: str
    bars: list[HistoryBar]
    total: HistoryBar
    factors: FactorsOut


# --- forms --------------------------------------------------------------------------------------


FormStateName = Literal["draft", "sent", "confirmed", "disputed", "adjusted", "auto_confirmed"]


class FormQuery(PageQuery):
    state: FormStateName | None = None


class FormSummary(BaseModel):
    id: int
    plant_id: int
    plant_code: str
    period: str
    version: int
    state: FormStateName
    generation_kwh: Kwh
    self_use_kwh: Kwh
    export_kwh: Kwh
    grid_kwh: Kwh
    sent_at: dt.datetime | None
    answer_due_at: dt.datetime | None
    answered_at: dt.datetime | None


class FormLine(BaseModel):
    # "register" would shadow a BaseModel attribute: named otherwise here, "register" on the wire
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    group: str
    meter: str | None
    register_id: str = Field(alias="register")
    previous: str | None
    previous_at: str | None
    current: str | None
    current_at: str | None
    multiplier: int
    kwh: str


class FormPeriod(BaseModel):
    generation: str
    self_use: str
    export: str
    grid: str


class AttachmentOut(BaseModel):
    id: int
    content_type: str
    size_bytes: int


class FormAdjustment(BaseModel):
    """A correction staff made that led to this version (from the audit trail)."""

    version: int = Field(description="the form version the correction made")
    kind: Literal["energy", "reading"]
    field: str = Field(description="energy: <generation|export|grid>.<rate>; reading: <meter> <register> "
                                   "<previous|current> (readings: an old correction that did not name it)")
    before: str | None = Field(description="the value before [kWh, or as read]")
    after: str | None
    by: str = Field(description="the staff member who made it")
    at: dt.datetime
    reason: str


class FormDetail(FormSummary):
    plant_name: str
    plant_address: str
    owner_name: str
    cycle_starts_at: dt.datetime
    cycle_ends_at: dt.datetime
    reader: str
    lines: list[FormLine]
    periods: dict[str, FormPeriod]
    flags: list[str]
    dispute_reason: str | None
    attachments: list[AttachmentOut]
    superseded: bool = Field(description="a newer version of this form exists")
    can_answer: bool = Field(description="this user may confirm or dispute it now")
    ebill_url: str = Field(description="the printable form: an absolute signed link (PVSETTLE_PUBLIC_URL, else this server), valid 30 days")
    adjustments: list[FormAdjustment] = Field(description="what staff corrected to make this version, oldest first")


class DisputeFields(Strict):
    reason: str = Field(min_length=1, max_length=500)


# --- bills --------------------------------------------------------------------------------------


BillStateName = Literal["open", "partly_paid", "paid", "written_off", "superseded"]


class BillQuery(PageQuery):
    state: BillStateName | None = None


class BillSummary(BaseModel):
    id: int
    number: str
    plant_id: int
    plant_code: str
    period: str
    version: int
    state: BillStateName
    issued_at: dt.datetime
    due_on: dt.date
    total_fen: int
    tax_fen: int
    paid_fen: int
    credit_applied_fen: int
    owed_fen: int


class BillLineOut(BaseModel):
    seq: int
    kind: str
    description: str
    kwh: Kwh | None
    unit_price: Decimal | None = Field(description="[yuan/kWh]")
    amount_fen: int
    tax_fen: int


class PaymentOut(BaseModel):
    id: int
    bill_id: int | None
    bill_number: str | None
    channel: str
    amount_fen: int
    paid_at: dt.datetime


class BillDetail(BillSummary):
    plant_name: str
    written_off_at: dt.datetime | None
    lines: list[BillLineOut]
    payments: list[PaymentOut]
    ebill_url: str = Field(description="the printable bill: an absolute signed link (PVSETTLE_PUBLIC_URL, else this server), valid 30 days")


# --- sharing ------------------------------------------------------------------------------------


class ShareIn(Strict):
    right: Literal["view", "pay"]
    ttl_hours: int = Field(24, ge=1, le=168)


class ShareOut(BaseModel):
    code: str = Field(description="give it to the person; it works once")
    plant_id: int
    right: Literal["view", "pay"]
    expires_at: dt.datetime


class RedeemIn(Strict):
    code: Code


class GrantOut(BaseModel):
    id: int
    plant_id: int
    right: Literal["view", "pay"]
    grantee: str = Field(description="the grantee's WeChat nickname, or the end of their openid")
    granted_at: dt.datetime
    revoked_at: dt.datetime | None


# --- subscribe messages, faults -----------------------------------------------------------------


class SubscriptionOut(BaseModel):
    template_id: str
    answer: Literal["accept", "reject", "ban"]
    accepts: int
    used: int


class SubscriptionsOut(BaseModel):
    items: list[SubscriptionOut]


FaultStateName = Literal["open", "in_progress", "resolved"]


class FaultQuery(PageQuery):
    state: FaultStateName | None = None


class FaultFields(Strict):
    text: str = Field(min_length=1, max_length=1000)


class FaultOut(BaseModel):
    id: int
    plant_id: int
    text: str
    state: FaultStateName
    staff_note: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    resolved_at: dt.datetime | None
    attachments: list[AttachmentOut]


class SubscribeIn(RootModel[dict[str, str]]):
    """wx.requestSubscribeMessage's result as the mini-program got it: ``{template_id: "accept" |
    "reject" | "ban"}``; its ``errMsg`` key, if left in, is ignored."""
