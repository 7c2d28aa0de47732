"""`tests/ports.py`: the ports the tests' servers get are free, outside the ephemeral range
(where an outgoing connection could take one first) when the machine leaves room, and never
handed out twice."""

import importlib.util
import socket
from pathlib import Path

import pytest


@pytest.fixture
def ports(monkeypatch):
    """A private copy of the module (its own record of handed-out ports)."""
    spec = importlib.util.spec_from_file_location(
        "ports_copy", Path(__file__).with_name("ports.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blocks_are_free_below_the_ephemeral_range_and_never_repeat(ports):
    start = ports._ephemeral_start()
    handed = set()
    for _ in range(50):
        base = ports.free_block(5, twins=True)
        block = {base + i for i in range(5)} | {base + 10000 + i for i in range(5)}
        assert max(block) < start and not block & handed
        handed |= block
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", base))  # still free: nothing holds it after the check


def test_a_taken_port_is_never_handed_out(ports, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        picks = iter([taken, taken + 1])
        monkeypatch.setattr(ports.random, "randrange", lambda lo, hi: next(picks))
        assert ports.free_port() == taken + 1


def test_a_machine_whose_ephemeral_range_starts_low_still_gets_ports(ports, monkeypatch):
    monkeypatch.setattr(ports, "_ephemeral_start", lambda: 1024)
    base = ports.free_block(5, twins=True)
    assert 12000 <= base and base + 10004 <= 65535
