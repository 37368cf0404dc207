"""Request and response models of /api/v1 (pydantic v2). The OpenAPI document is generated from them.

Conventions: money is integer fen (``*_fen``); energies are kWh as decimal strings with 3
decimals (``*_kwh``), never floats; times are ISO 8601 with their offset; a value that was not
measured is null. Lists are pages: ``{"items": [...], "next_cursor": "..." | null}``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Generic, Literal, TypeVar

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    RootModel,
    StrictInt,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from settlement import text as outside_text
from settlement.models import SubscribeAnswer
from settlement.notify.subscriptions import MAX_TEMPLATES_PER_REPORT, TEMPLATE_ID

T = TypeVar("T")


class FromOutside:
    """Marks a str as text from outside (:mod:`settlement.text`): checked before the handler runs,
    refused as ``invalid_text`` (see :func:`miniprogram_api.registry.parse_json_body`), and said
    so in the OpenAPI document by a pattern. Every str of a request model is one."""

    def __get_pydantic_core_schema__(self, source: type, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # before the field's own rules, so text that holds NUL is refused as such whatever else it breaks
        return core_schema.no_info_before_validator_function(_checked, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        out = handler(schema)
        out.setdefault("pattern", outside_text.JSON_SCHEMA_PATTERN)  # a narrower pattern of the field stays
        return out


def _checked(value: object) -> object:
    found = outside_text.problem(value) if isinstance(value, str) else None
    if found is not None:
        raise PydanticCustomError(outside_text.CODE, "{problem}: text may not hold NUL, control characters or "
                                  "lone surrogates", {"problem": found})
    return value


Text = Annotated[str, FromOutside()]
# text that must say something: the services strip it and refuse what is left empty, so the
# document says "one character that is not whitespace" within the outside-text rule
_KEPT = "[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]"
_SAID = "[^\\s\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]"
Said = Annotated[str, Field(pattern=f"^{_KEPT}*{_SAID}{_KEPT}*$"), FromOutside()]
Code = Annotated[str, Field(min_length=1, max_length=128), FromOutside()]
# what miniprogram_api.pagination.encode_cursor makes: base64url without padding
Cursor = Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9_-]*$",
                              json_schema_extra={"format": "pvsettle-cursor"}), FromOutside()]
# a year or month 2000–2099, or a day of one (its calendar written out: 30 days hath September, …;
# 29 February in leap years, which between 2000 and 2099 are those divisible by 4)
AT_PATTERN = ("^(20[0-9]{2}(-(0[1-9]|1[0-2]))?"
              "|20[0-9]{2}-(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
              "|20[0-9]{2}-(0[469]|11)-(0[1-9]|[12][0-9]|30)"
              "|20[0-9]{2}-02-(0[1-9]|1[0-9]|2[0-8])"
              "|20([02468][048]|[13579][26])-02-29)$")
At = Annotated[str, Field(pattern=AT_PATTERN), FromOutside()]
Kwh = Annotated[Decimal, Field(description="[kWh], decimal string")]


def _whole(value: object) -> object:
    # JSON Schema's integer is a number without a fraction, so 39.0 is one; a float that large
    # would already have lost fen is not taken (2**53)
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def fen(least: int, most: int) -> object:
    """An amount in request bodies [fen], ``least`` to ``most``: a JSON integer (39 or 39.0),
    never a string or a bool."""
    return Annotated[StrictInt, annotated_types.Ge(least), annotated_types.Le(most), BeforeValidator(_whole)]


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
    cursor: Cursor | None = Field(None, description="opaque: the next_cursor of the previous page")
    limit: int = Field(20, ge=1, le=100)


# --- sessions and binding -----------------------------------------------------------------------


# Codes that name something only WeChat or this server knows carry a format of their own, so a
# client (or a test generator) can tell them from free text: a schema cannot say which exist.
class SessionIn(Strict):
    code: Code = Field(description="the code wx.login gave", json_schema_extra={"format": "wx-login-code"})


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
    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["invitation_code"]},
                                                           {"required": ["phone_code"]}]})

    # one or the other, never null: what the oneOf above says
    invitation_code: Code = Field(None, description="the code staff issued for the owner account",
                                  json_schema_extra={"format": "pvsettle-invitation-code"})
    phone_code: Code = Field(None, description="the code of getPhoneNumber; its number must be on file",
                             json_schema_extra={"format": "wx-phone-code"})

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
    at: At | None = Field(None, description="a day, month or year (YYYY-MM-DD, YYYY-MM, YYYY, 2000–2099): the "
                                            "span containing its first day is shown; default today")


class HistoryBar(BaseModel):
    label: str
    start: dt.datetime
    energy_kwh: Kwh | None = Field(description="generation [kWh]; null where nothing was measured (see reason)")
    source: Literal["telemetry", "form", "telemetry+form"] | None = Field(
        description="where energy_kwh (and co2_kg, coal_kg) come from: the plant's telemetry, or the generation "
                    "of the confirmed form of billing_period for a month telemetry does not cover")
    reason: str | None = Field(description="why energy_kwh is null (\"no telemetry\", \"not yet\"), or that "
                                           "telemetry covers only part of the month (\"telemetry on 3 of 30 days\")")
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


# No "draft": a draft form (findings that need a look) stays with staff until it is sent, so owners
# never see one (404 by id, left out of lists) and cannot ask for them by state (400).
FormStateName = Literal["sent", "confirmed", "disputed", "adjusted", "auto_confirmed"]


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
    reason: Said = Field(min_length=1, max_length=500)


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
    description: str = Field(description="what the line is for, in the language of Accept-Language (zh, en; "
                                         "Chinese when it names neither)")
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


class InvoiceOut(BaseModel):
    number: str | None = Field(description="the tax system's invoice number; null until issued")
    amount_fen: int = Field(description="invoiced, VAT included")
    tax_fen: int = Field(description="VAT in amount_fen")
    issued_at: dt.datetime | None
    state: Literal["requested", "issued", "failed"] = Field(
        description="requested: waiting for the tax system; failed: refused (the buyer's details)")


class InvoiceAsked(InvoiceOut):
    """The answer to asking for a bill's e-invoice."""

    bill_id: int
    made: bool = Field(description="true: this call asked for it; false: the bill's request there was "
                                   "(asking again changes nothing)")


class BillDetail(BillSummary):
    plant_name: str
    discount: Decimal | None = Field(description="factor on the grid price of the contract the bill was priced "
                                                 "under (0.8500: 85 % of the grid price); null when not so priced")
    written_off_at: dt.datetime | None
    lines: list[BillLineOut]
    payments: list[PaymentOut]
    invoices: list[InvoiceOut] = Field(description="the e-invoices of the bill and of its payments, oldest first")
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
    code: Code = Field(description="the share code the owner passed on",
                       json_schema_extra={"format": "pvsettle-share-code"})


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
    text: Said = Field(min_length=1, max_length=1000)


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


def _subscribe_schema(schema: dict) -> None:
    # what settlement.notify.subscriptions.record_answers enforces: 1 to 20 template ids, each answered
    # accept, reject or ban; errMsg, if left in, is any text and not counted
    most = MAX_TEMPLATES_PER_REPORT
    schema.clear()
    schema.update({
        "type": "object",
        "properties": {"errMsg": {"type": "string", "pattern": outside_text.JSON_SCHEMA_PATTERN}},
        "propertyNames": {"pattern": TEMPLATE_ID.pattern},
        "additionalProperties": {"enum": [a.value for a in SubscribeAnswer]},
        "if": {"required": ["errMsg"]},
        "then": {"minProperties": 2, "maxProperties": most + 1},
        "else": {"minProperties": 1, "maxProperties": most},
    })


class SubscribeIn(RootModel[dict[Text, Text]]):
    """wx.requestSubscribeMessage's result as the mini-program got it: ``{template_id: "accept" |
    "reject" | "ban"}``; its ``errMsg`` key, if left in, is ignored."""

    model_config = ConfigDict(json_schema_extra=_subscribe_schema)

# --- the message catalogue ----------------------------------------------------------------------


class CatalogueQuery(Strict):
    lang: Literal["zh", "en"] = "zh"


class CatalogueOut(BaseModel):
    lang: Literal["zh", "en"]
    messages: dict[str, str] = Field(description="message id → text: error.<code>, rate.<period>, "
                                                 "form_state.<state>, bill_state.<state>, plant_status.<status>, "
                                                 "channel.<channel>, template.<name>.<field>, …")
