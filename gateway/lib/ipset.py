"""IP address lists (API ACLs, app ACLs) compiled into sorted integer ranges.

Role in the pipeline: parsed and compiled at config-load time; at request time :meth:`IpSet.contains`
does one address parse and one ``bisect`` per address family, O(log n) in the number of entries.

Entry syntax (spec 02 §4.2, §5.5): a single address (``10.0.0.1``, ``2001:db8::1``), a range
``start-end`` (both of the same family, start <= end) or a CIDR block, non-strict (``192.168.0.100/28``
means ``192.168.0.96/28``). IPv4 and IPv6, surrounding whitespace ignored. An IPv4-mapped IPv6 client
address (``::ffff:10.0.0.1``) is matched as its IPv4 address.
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_right
from collections.abc import Iterable


def parse_entry(text: str) -> tuple[int, int, int]:
    """(version, first, last) of one entry; ValueError with a readable reason."""
    entry = text.strip()
    if not entry:
        raise ValueError("empty entry")
    if "/" in entry:
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address, range or CIDR block") from None
        return net.version, int(net.network_address), int(net.broadcast_address)
    if "-" in entry:
        left, _, right = entry.partition("-")
        try:
            a = ipaddress.ip_address(left.strip())
            b = ipaddress.ip_address(right.strip())
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address, range or CIDR block") from None
        if a.version != b.version:
            raise ValueError(f"{entry!r} mixes IPv4 and IPv6")
        if int(a) > int(b):
            raise ValueError(f"{entry!r}: range start is after its end")
        return a.version, int(a), int(b)
    try:
        addr = ipaddress.ip_address(entry)
    except ValueError:
        raise ValueError(f"{entry!r} is not an IP address, range or CIDR block") from None
    return addr.version, int(addr), int(addr)


def ip_key(text: str) -> tuple[int, int] | None:
    """(version, integer) of an address string, or None when it is not an IP address."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        pass
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0]), "big")
    except (OSError, ValueError):
        return None
    if value >> 32 == 0xFFFF:  # ::ffff:a.b.c.d
        return 4, value & 0xFFFFFFFF
    return 6, value


class IpSet:
    """A compiled set of address ranges: merged, sorted, looked up with bisect."""

    __slots__ = ("_ends", "_starts", "size")

    def __init__(self, entries: Iterable[str]) -> None:
        ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        count = 0
        for entry in entries:
            version, first, last = parse_entry(entry)
            ranges[version].append((first, last))
            count += 1
        self.size = count
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, items in ranges.items():
            merged: list[list[int]] = []
            for first, last in sorted(items):
                if merged and first <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], last)
                else:
                    merged.append([first, last])
            self._starts[version] = [m[0] for m in merged]
            self._ends[version] = [m[1] for m in merged]

    def contains_key(self, key: tuple[int, int]) -> bool:
        version, value = key
        starts = self._starts[version]
        i = bisect_right(starts, value) - 1
        return i >= 0 and value <= self._ends[version][i]

    def contains(self, address: str) -> bool:
        key = ip_key(address)
        return key is not None and self.contains_key(key)


def split_values(acl_value: str) -> list[str]:
    """The comma-separated entries of an ``acl_value`` string (blank entries dropped)."""
    return [v.strip() for v in acl_value.split(",") if v.strip()]
