"""Input models of a pitch's confidential part: financials, contact, attachments.

They are validated as strictly as the rest of a submission (unknown fields are a 422,
every figure and list is bounded) and never enter the text that is embedded or matched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator, model_validator

from shared.json_types import JsonDate, JsonInt, JsonNumber
from shared.vocab import Currency, Stage, parse_code
from shared.webhooks.ssrf import WebhookUrlError, check_address, parse_url

# The three parts; a pitch owner may disclose any subset of them for one match.
ConfidentialPart = Literal["financials", "contact", "attachments"]
CONFIDENTIAL_PARTS: tuple[ConfidentialPart, ...] = ("financials", "contact", "attachments")

MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 200 * 1024 * 1024
MAX_FIGURE = 1e13  # the same ceiling as a funding ask

_PHONE = re.compile(r"^\+?[0-9()\-\s]+$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# A WeChat ID: 6–20 letters, digits, '_' or '-', starting with a letter (a phone number also works).
_WECHAT = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{5,19}$")
# A file in the organizer's document store: path segments, no '..', no scheme.
_STORED_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*$")

StageCode = Annotated[Stage, BeforeValidator(partial(parse_code, Stage))]
CurrencyCode = Annotated[Currency, BeforeValidator(partial(parse_code, Currency))]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Figure = Annotated[JsonNumber, Field(ge=0, le=MAX_FIGURE)]


class _StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _phone_digits(value: str) -> int:
    return sum(char.isdigit() for char in value)


def check_phone(value: str) -> str:
    if not _PHONE.match(value) or "+" in value[1:] or not 7 <= _phone_digits(value) <= 15:
        raise ValueError(
            "a phone number has 7–15 digits, optionally '+' first, spaces, '-' or brackets / "
            "电话号码须为 7–15 位数字，可带开头的 '+'、空格、'-' 或括号"
        )
    return value


class LastRound(_StrictInput):
    stage: StageCode
    amount: Annotated[JsonNumber, Field(gt=0, le=MAX_FIGURE)]
    closed_on: JsonDate | None = None
    investors: Annotated[list[PersonName], Field(max_length=10)] = []

    @field_validator("closed_on")
    @classmethod
    def _not_future(cls, value: date | None) -> date | None:
        if value is not None and value > date.today():
            raise ValueError("a closed round cannot be in the future / 已完成的融资日期不能晚于今天")
        return value


class Financials(_StrictInput):
    currency: CurrencyCode = Currency.CNY
    fiscal_year: Annotated[JsonInt, Field(ge=1990, le=2100)] | None = None
    revenue: Figure | None = None
    net_profit: Annotated[JsonNumber, Field(ge=-MAX_FIGURE, le=MAX_FIGURE)] | None = None
    valuation: Annotated[JsonNumber, Field(gt=0, le=MAX_FIGURE)] | None = None
    last_round: LastRound | None = None

    @model_validator(mode="after")
    def _some_figure(self) -> Financials:
        if all(value is None for value in (self.revenue, self.net_profit, self.valuation, self.last_round)):
            raise ValueError(
                "give at least one of revenue, net_profit, valuation, last_round / "
                "请至少填写营收、净利润、估值或上一轮融资之一"
            )
        return self


class Contact(_StrictInput):
    name: PersonName
    phone: Annotated[str, StringConstraints(max_length=30)] | None = None
    email: Annotated[str, StringConstraints(max_length=254)] | None = None
    wechat: Annotated[str, StringConstraints(max_length=30)] | None = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else check_phone(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _EMAIL.match(value):
            raise ValueError("not an e-mail address / 邮箱地址格式不正确")
        local, domain = value.rsplit("@", 1)
        return f"{local}@{domain.lower()}"

    @field_validator("wechat")
    @classmethod
    def _wechat(cls, value: str | None) -> str | None:
        if value is None or _WECHAT.match(value):
            return value
        if _PHONE.match(value) and _phone_digits(value) == 11:
            return value  # a mobile number bound to the account
        raise ValueError(
            "a WeChat ID has 6–20 letters, digits, '_' or '-' and starts with a letter / "
            "微信号须为 6–20 位字母、数字、'_' 或 '-'，以字母开头"
        )

    @model_validator(mode="after")
    def _reachable(self) -> Contact:
        if not (self.phone or self.email or self.wechat):
            raise ValueError("give a phone, an e-mail or a WeChat ID / 请至少填写电话、邮箱或微信之一")
        return self


def check_attachment_url(url: str) -> str:
    """A public https link (checked without DNS: salon never fetches it, a counterpart opens it)."""
    try:
        _, host, _ = parse_url(url, allow_loopback=False)
        if ":" in host or host.replace(".", "").isdigit():
            check_address(host.strip("[]"), allow_loopback=False)
        elif "." not in host or host.endswith((".local", ".internal", ".localhost")):
            raise ValueError(f"{host!r} is not a public host name")
    except (WebhookUrlError, ValueError) as exc:
        raise ValueError(f"{exc}; an attachment link must be a public https URL / 附件链接须为公网 HTTPS 地址") from exc
    return url


class Attachment(_StrictInput):
    """A document for the counterpart: a public https link, or a file in the organizer's store."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    ref: Annotated[str, StringConstraints(max_length=300)] | None = None
    size_bytes: Annotated[JsonInt, Field(ge=1, le=MAX_ATTACHMENT_BYTES)] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_attachment_url(value)

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        if value is not None and (not _STORED_REF.match(value) or ".." in value):
            raise ValueError("a stored reference is a relative path without '..' / 存储引用须为不含 '..' 的相对路径")
        return value

    @model_validator(mode="after")
    def _one_location(self) -> Attachment:
        if (self.url is None) == (self.ref is None):
            raise ValueError("give either url or ref, not both / url 与 ref 须且仅须填写其一")
        return self


Attachments = Annotated[list[Attachment], Field(max_length=MAX_ATTACHMENTS)]


class ConfidentialIn(_StrictInput):
    """The whole confidential part of a pitch; a part left out is cleared (PUT replaces)."""

    financials: Financials | None = None
    contact: Contact | None = None
    attachments: Attachments = []


def parts_json(body: BaseModel, parts: Iterable[str]) -> dict[str, Any]:
    """The named confidential parts of a validated body, as stored (fields left empty are dropped)."""
    stored: dict[str, Any] = {}
    for part in parts:
        value = getattr(body, part)
        if isinstance(value, BaseModel):
            stored[part] = value.model_dump(mode="json", exclude_none=True)
        elif isinstance(value, list):
            stored[part] = [item.model_dump(mode="json", exclude_none=True) for item in value]
        else:
            stored[part] = None
    return stored
