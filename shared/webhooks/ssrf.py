"""Which webhook URLs salon will call: public HTTPS hosts only (SSRF protection).

A URL is refused when its host is, or resolves to, anything but a global unicast
address: loopback, private ranges, link-local (169.254.169.254, the cloud metadata
service), carrier-grade NAT, IPv6 ULA, multicast, and IPv4 hidden in IPv6 (mapped,
6to4, NAT64). Hosts written as integers or in octal/hex (`2130706433`, `0x7f.1`,
`127.1`) are refused outright. Every address a host resolves to must pass, so a DNS
answer mixing a public and a private address is refused. Delivery then connects to the
checked address itself, so a second DNS answer (rebinding) cannot redirect it.

Loopback (and plain http to it) is allowed only with `allow_loopback`, the development
setting `SALON_WEBHOOK_ALLOW_LOOPBACK`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from shared.errors import SalonError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) → the addresses it resolves to, as strings; injectable so tests never touch DNS.
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"https": 443, "http": 80}
_HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookUrlError(SalonError):
    """A webhook URL salon will not call (base class)."""


class InvalidWebhookUrlError(WebhookUrlError):
    """Not an absolute https URL with a plain host name or address."""


class ForbiddenAddressError(WebhookUrlError):
    """The host is, or resolves to, a non-global address."""


class UnresolvableHostError(WebhookUrlError):
    """The host name does not resolve."""


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the checks, with the addresses to connect to."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA) form, lower case, as sent in Host and SNI
    port: int
    addresses: tuple[str, ...]

    @property
    def pinned_url(self) -> str:
        """The URL with its host replaced by the first checked address (what is connected to)."""
        return str(httpx.URL(self.url).copy_with(host=self.addresses[0]))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHostError(f"{host} does not resolve: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv6 one (mapped, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_allowed(address: IPAddress, *, allow_loopback: bool) -> bool:
    inner = embedded_ipv4(address)
    if inner is not None:
        return address_allowed(inner, allow_loopback=allow_loopback)
    if address.is_loopback:
        return allow_loopback
    return address.is_global and not address.is_multicast


def check_address(raw: str, *, allow_loopback: bool) -> IPAddress:
    try:
        address = ipaddress.ip_address(raw)
    except ValueError as exc:
        raise ForbiddenAddressError(f"{raw!r} is not an IP address") from exc
    if not address_allowed(address, allow_loopback=allow_loopback):
        raise ForbiddenAddressError(f"{address} is not a public address")
    return address


def _literal_address(host: str) -> str | None:
    """The address if `host` is an IP literal; refuses numeric hosts in any other notation."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    # As browsers do (WHATWG URL), a host whose last label is numeric is an IPv4 address.
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        raise InvalidWebhookUrlError(f"{host!r} is an IP address in a non-canonical notation")
    return None


def parse_url(url: str, *, allow_loopback: bool) -> tuple[str, str, int]:
    """(scheme, ASCII host, port) of a syntactically acceptable URL; no DNS."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(char.isspace() or ord(char) < 0x20 or char == "\\" for char in url):
        raise InvalidWebhookUrlError("the URL contains whitespace, control characters or backslashes")
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")  # the root label changes nothing
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise InvalidWebhookUrlError(f"not a valid URL: {exc}") from exc
    allowed_schemes = ("https", "http") if allow_loopback else ("https",)
    if parsed.scheme not in allowed_schemes:
        raise InvalidWebhookUrlError("the URL must start with https://")
    if parsed.userinfo:
        raise InvalidWebhookUrlError("credentials in the URL are not accepted")
    if not host:
        raise InvalidWebhookUrlError("the URL has no host")
    if "%" in host:
        raise InvalidWebhookUrlError("the host contains escapes or an IPv6 zone")
    if ":" not in host and _literal_address(host) is None:
        labels = host.split(".")
        if not all(_HOSTNAME_LABEL.match(label) for label in labels):
            raise InvalidWebhookUrlError(f"{host!r} is not a valid host name")
    return parsed.scheme, host, parsed.port or _DEFAULT_PORTS[parsed.scheme]


def check_url(url: str, *, resolver: Resolver = system_resolver, allow_loopback: bool = False) -> CheckedUrl:
    """Validate `url` and resolve its host; every address must be allowed."""
    scheme, host, port = parse_url(url, allow_loopback=allow_loopback)
    literal = _literal_address(host)
    if literal is not None:
        raw_addresses: Sequence[str] = [literal]
    else:
        try:
            raw_addresses = resolver(host, port)
        except UnresolvableHostError:
            raise
        except OSError as exc:
            raise UnresolvableHostError(f"{host} does not resolve: {exc}") from exc
        if not raw_addresses:
            raise UnresolvableHostError(f"{host} resolves to no address")
    addresses = [check_address(raw, allow_loopback=allow_loopback) for raw in raw_addresses]
    if scheme == "http" and not all(address.is_loopback for address in addresses):
        raise InvalidWebhookUrlError("plain http is allowed only to loopback in development; use https://")
    return CheckedUrl(
        url=url, scheme=scheme, host=host, port=port, addresses=tuple(str(address) for address in addresses)
    )
