"""SSRF: which URLs salon calls, decided with a stub resolver (no DNS, no connection, ever)."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest

from shared.webhooks.ssrf import (
    ForbiddenAddressError,
    InvalidWebhookUrlError,
    UnresolvableHostError,
    check_url,
)

DNS = {
    "hooks.example.com": ["93.184.216.34"],
    "v6.example.com": ["2606:4700::1111"],
    "xn--fsqu00a.example": ["93.184.216.35"],  # 例子.example
    "localhost": ["127.0.0.1", "::1"],
    "metadata.internal": ["169.254.169.254"],
    "intranet.example.com": ["10.1.2.3"],
    "mixed.example.com": ["93.184.216.34", "192.168.0.10"],
    "empty.example.com": [],
}
looked_up: list[tuple[str, int]] = []


def stub_resolver(host: str, port: int) -> Sequence[str]:
    looked_up.append((host, port))
    if host not in DNS:
        raise UnresolvableHostError(f"{host} does not resolve")
    return DNS[host]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch):
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the SSRF tests must not touch the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    looked_up.clear()


REFUSED = [
    # (url, error, what it shows)
    ("http://hooks.example.com/salon", InvalidWebhookUrlError, "plain http"),
    ("ftp://hooks.example.com/salon", InvalidWebhookUrlError, "another scheme"),
    ("https://user:pw@hooks.example.com/", InvalidWebhookUrlError, "credentials in the URL"),
    ("https:///salon", InvalidWebhookUrlError, "no host"),
    ("https://hooks.example.com\\@127.0.0.1/", InvalidWebhookUrlError, "backslash parser confusion"),
    ("https://hooks example.com/", InvalidWebhookUrlError, "whitespace"),
    ("https://127.0.0.1/", ForbiddenAddressError, "loopback literal"),
    ("https://127.8.9.10:8443/", ForbiddenAddressError, "loopback range"),
    ("https://localhost/", ForbiddenAddressError, "loopback by name"),
    ("https://[::1]/", ForbiddenAddressError, "IPv6 loopback"),
    ("https://10.0.0.5/", ForbiddenAddressError, "10/8"),
    ("https://172.16.3.4/", ForbiddenAddressError, "172.16/12"),
    ("https://192.168.1.1/", ForbiddenAddressError, "192.168/16"),
    ("https://100.64.0.1/", ForbiddenAddressError, "carrier-grade NAT"),
    ("https://0.0.0.0/", ForbiddenAddressError, "unspecified"),
    ("https://169.254.169.254/latest/meta-data/", ForbiddenAddressError, "cloud metadata (link-local)"),
    ("https://metadata.internal/", ForbiddenAddressError, "link-local by name"),
    ("https://intranet.example.com/", ForbiddenAddressError, "private by name"),
    ("https://mixed.example.com/", ForbiddenAddressError, "one private address among public ones"),
    ("https://224.0.0.1/", ForbiddenAddressError, "multicast"),
    ("https://[fd12:3456::1]/", ForbiddenAddressError, "IPv6 ULA"),
    ("https://[fe80::1]/", ForbiddenAddressError, "IPv6 link-local"),
    ("https://[fe80::1%25eth0]/", InvalidWebhookUrlError, "IPv6 zone id"),
    ("https://[::ffff:10.0.0.1]/", ForbiddenAddressError, "IPv4-mapped private"),
    ("https://[::ffff:127.0.0.1]/", ForbiddenAddressError, "IPv4-mapped loopback"),
    ("https://[64:ff9b::a00:1]/", ForbiddenAddressError, "NAT64 of 10.0.0.1"),
    ("https://[2002:a9fe:a9fe::]/", ForbiddenAddressError, "6to4 of 169.254.169.254"),
    ("https://2130706433/", InvalidWebhookUrlError, "integer-encoded 127.0.0.1"),
    ("https://0x7f000001/", InvalidWebhookUrlError, "hex-encoded 127.0.0.1"),
    ("https://0177.0.0.1/", InvalidWebhookUrlError, "octal 127.0.0.1"),
    ("https://127.1/", InvalidWebhookUrlError, "shortened 127.0.0.1"),
    ("https://0xa9.254.169.254/", InvalidWebhookUrlError, "hex-mixed metadata address"),
    ("https://nowhere.example.com/", UnresolvableHostError, "does not resolve"),
    ("https://empty.example.com/", UnresolvableHostError, "resolves to nothing"),
]


@pytest.mark.parametrize(("url", "error", "case"), REFUSED, ids=[case for _, _, case in REFUSED])
def test_refused(url: str, error: type[Exception], case: str):
    with pytest.raises(error):
        check_url(url, resolver=stub_resolver)


ALLOWED = [
    ("https://hooks.example.com/salon?x=1", ("93.184.216.34",), "public name"),
    ("https://HOOKS.example.com./salon", ("93.184.216.34",), "case and trailing dot"),
    ("https://8.8.8.8:8443/salon", ("8.8.8.8",), "public literal with a port"),
    ("https://[2606:4700::1111]/salon", ("2606:4700::1111",), "public IPv6 literal"),
    ("https://v6.example.com/salon", ("2606:4700::1111",), "public IPv6 by name"),
    ("https://例子.example/salon", ("93.184.216.35",), "internationalised name"),
]


@pytest.mark.parametrize(("url", "addresses", "case"), ALLOWED, ids=[case for _, _, case in ALLOWED])
def test_allowed(url: str, addresses: tuple[str, ...], case: str):
    assert check_url(url, resolver=stub_resolver).addresses == addresses


LOOPBACK_DEV = [
    ("http://127.0.0.1:8080/hook", True),
    ("http://localhost:8080/hook", True),
    ("http://[::1]:8080/hook", True),
    ("https://127.0.0.1/hook", True),
    ("http://10.0.0.1/hook", False),
    ("https://192.168.0.1/hook", False),
    ("https://169.254.169.254/", False),
    ("http://hooks.example.com/hook", False),  # plain http only to loopback, even in development
    ("http://2130706433/", False),
]


@pytest.mark.parametrize(("url", "allowed"), LOOPBACK_DEV)
def test_the_development_setting_allows_loopback_and_nothing_else(url: str, allowed: bool):
    if allowed:
        assert check_url(url, resolver=stub_resolver, allow_loopback=True)
    else:
        with pytest.raises((ForbiddenAddressError, InvalidWebhookUrlError)):
            check_url(url, resolver=stub_resolver, allow_loopback=True)


def test_the_resolver_is_asked_for_the_ascii_name_and_port():
    check_url("https://例子.example:8443/x", resolver=stub_resolver)
    assert looked_up == [("xn--fsqu00a.example", 8443)]


def test_literals_are_checked_without_asking_the_resolver():
    with pytest.raises(ForbiddenAddressError):
        check_url("https://10.0.0.1/", resolver=stub_resolver)
    assert looked_up == []


def test_delivery_connects_to_the_checked_address_and_sends_the_registered_host():
    checked = check_url("https://hooks.example.com:8443/salon?a=1", resolver=stub_resolver)
    assert checked.pinned_url == "https://93.184.216.34:8443/salon?a=1"
    assert checked.host_header == "hooks.example.com:8443"
    v6 = check_url("https://v6.example.com/salon", resolver=stub_resolver)
    assert v6.pinned_url == "https://[2606:4700::1111]/salon"
    assert v6.host_header == "v6.example.com"
