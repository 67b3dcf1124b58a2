"""Ports for the servers the benchmarks and the tests start on 127.0.0.1 (both import this).

They come from below the kernel's ephemeral range (32768 and up by default): a port the kernel
hands out for bind(0) can be taken by any outgoing connection (ssh, the proxy dialling a
target) before the server started here binds it."""

from __future__ import annotations

import random
import socket

_PORTS = range(20000, 32768)
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
    raise RuntimeError("no free port between 20000 and 32767 on 127.0.0.1")
