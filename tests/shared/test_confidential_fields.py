"""Validation of a pitch's confidential part: contact channels, figures, attachment locations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.confidential.fields import Attachment, ConfidentialIn, Contact, Financials, parts_json


@pytest.mark.parametrize("phone", ["+86 138 0013 8000", "13800138000", "(0451) 8888-1234", "0468-555-0188"])
def test_phone_numbers_people_write_are_accepted(phone: str) -> None:
    assert Contact(name="王", phone=phone).phone == phone


@pytest.mark.parametrize("phone", ["12ab", "123", "+86 +138 0013 8000", "1" * 16, "138-0013-8000 ext 5"])
def test_bad_phone_numbers_are_refused(phone: str) -> None:
    with pytest.raises(ValidationError, match="电话号码"):
        Contact(name="王", phone=phone)


def test_email_and_wechat() -> None:
    contact = Contact(name="Li", email=" Li.Na@Hegang-Carbon.Example ", wechat="li_na-2025")
    assert contact.email == "Li.Na@hegang-carbon.example" and contact.wechat == "li_na-2025"
    assert Contact(name="Li", wechat="13800138000").wechat == "13800138000"  # a phone-bound account
    for email in ("li.na", "li@na", "li na@x.example", "@x.example"):
        with pytest.raises(ValidationError, match="邮箱"):
            Contact(name="Li", email=email)
    for wechat in ("1abcdef", "abc", "a" * 21, "li na_2025"):
        with pytest.raises(ValidationError, match="微信号"):
            Contact(name="Li", wechat=wechat)
    with pytest.raises(ValidationError, match="至少填写电话、邮箱或微信"):
        Contact(name="Li")


def test_financials_need_a_figure_and_stay_in_bounds() -> None:
    assert Financials(revenue=0).revenue == 0
    assert Financials(net_profit=-5e6, last_round={"stage": "B轮", "amount": 1e8}).last_round.stage == "series_b"  # type: ignore[union-attr]
    for bad in ({}, {"revenue": -1}, {"valuation": 0}, {"revenue": 1e14}, {"fiscal_year": 2024}):
        with pytest.raises(ValidationError):
            Financials.model_validate(bad)
    with pytest.raises(ValidationError, match="future"):
        Financials(last_round={"stage": "seed", "amount": 1, "closed_on": "2999-01-01"})


@pytest.mark.parametrize(
    "url",
    [
        "http://files.example/bp.pdf",
        "https://localhost/bp.pdf",
        "https://intranet/bp.pdf",
        "https://nas.local/bp.pdf",
        "https://127.0.0.1/bp.pdf",
        "https://10.1.2.3/bp.pdf",
        "https://[::1]/bp.pdf",
        "https://169.254.169.254/latest",
        "https://0x7f.1/bp.pdf",
        "https://user:secret@files.example/bp.pdf",
        "javascript:alert(1)",
    ],
)
def test_attachment_links_must_be_public_https(url: str) -> None:
    with pytest.raises(ValidationError, match="公网 HTTPS"):
        Attachment(name="BP", url=url)


def test_attachment_location_is_a_link_or_a_stored_ref() -> None:
    assert Attachment(name="BP", url="https://files.example/bp.pdf").url
    assert Attachment(name="BP", url="https://8.8.8.8/bp.pdf").url
    with pytest.raises(ValidationError, match="at most 2048"):
        Attachment(name="BP", url="https://files.example/" + "a" * 2100)
    assert Attachment(name="BP", ref="pitches/a/bp-2025.pdf", size_bytes=10).ref
    for bad in ({}, {"url": "https://files.example/a", "ref": "a"}, {"ref": "../a"}, {"ref": "/etc/passwd"}):
        with pytest.raises(ValidationError):
            Attachment.model_validate({"name": "BP"} | bad)
    with pytest.raises(ValidationError):
        Attachment(name="BP", ref="a", size_bytes=0)


def test_parts_are_stored_without_empty_fields_and_a_missing_part_clears() -> None:
    body = ConfidentialIn.model_validate(
        {"contact": {"name": "Li", "email": "li@x.example"}, "attachments": [{"name": "BP", "ref": "a/b.pdf"}]}
    )
    assert parts_json(body, ["financials", "contact", "attachments"]) == {
        "financials": None,
        "contact": {"name": "Li", "email": "li@x.example"},
        "attachments": [{"name": "BP", "ref": "a/b.pdf"}],
    }
    with pytest.raises(ValidationError):
        ConfidentialIn.model_validate({"contact": {"name": "Li", "email": "li@x.example"}, "visible": True})
