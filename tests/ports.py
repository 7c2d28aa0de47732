"""Free TCP ports on loopback for the servers tests start, chosen below the ephemeral range.

A port the kernel hands out for ``bind(0)`` lies in the ephemeral range, where any outgoing
connection (a PostgreSQL client, an S3 request) may take it as its local port before the
server binds it; weed mini then fails with "Port allocation failed". Below that range only
listeners take ports, and this module never hands the same port out twice in a process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

#: weed mini also listens on each port + 10000 (its gRPC twin).
GRPC_OFFSET = 10000
_LOWEST = 12000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(size: int = 1, twins: bool = False) -> int:
    """A port p with p..p+size-1 (and with ``twins`` their +10000 gRPC twins) free."""
    span = size + (GRPC_OFFSET if twins else 0)
    top = _ephemeral_start() - span
    if top < _LOWEST + 1000:  # a machine whose ephemeral range starts low: bind checks only
        top = 65535 - span
    for _ in range(500):
        base = random.randrange(_LOWEST, top)
        ports = [base + i for i in range(size)]
        if twins:
            ports += [p + GRPC_OFFSET for p in ports]
        if _handed_out.isdisjoint(ports) and all(_bindable(p) for p in ports):
            _handed_out.update(ports)
            return base
    raise RuntimeError(f"no free block of {size} ports below {top + size} on 127.0.0.1")


def free_port() -> int:
    """One free port (see the module's docstring for why not ``bind(0)``)."""
    return free_block(1)
