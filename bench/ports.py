"""Ports for the servers the benchmarks and the tests start on 127.0.0.1 (both import this).

They come from below the kernel's ephemeral range (32768 and up by default): a port the kernel
hands out for bind(0) can be taken by any outgoing connection (ssh, the proxy dialling a
target) before the server started here binds it. Test processes that run side by side
(pytest-xdist workers, named in PYTEST_XDIST_WORKER as gw0, gw1, ...) each draw from a slice of
their own, so two of them never hand out the same port."""

from __future__ import annotations

import os
import random
import re
import socket

_FIRST, _END = 20000, 32768
_SLICES = 8


def _ports() -> range:
    worker = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    if worker is None:
        return range(_FIRST, _END)
    size = (_END - _FIRST) // _SLICES
    first = _FIRST + (int(worker.group(1)) % _SLICES) * size
    return range(first, first + size)


_PORTS = _ports()
_handed_out: set[int] = set()


def free_port() -> int:
    for _ in range(200):
        port = random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {_PORTS[0]} and {_PORTS[-1]} on 127.0.0.1")
