"""A client that asks for a long answer and then reads none of it is closed once the listener
has waited its write timeout, and the answer's source (a recording file) is let go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

from pyteleport.web.server import HttpsServer, ListenerLimits

PIECE = b"x" * 65536
MOST = 4096  # pieces: 256 MiB, far more than any socket buffer holds


async def test_a_client_that_reads_nothing_of_an_answer_is_closed() -> None:
    sent: list[int] = []
    released = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            for n in range(MOST):
                sent.append(n)
                yield PIECE
                await asyncio.sleep(0)  # as a store's read does
        finally:
            released.set()

    async def download(request: object) -> StreamingResponse:
        return StreamingResponse(endless())

    app = Starlette(routes=[Route("/download", download)])
    server = HttpsServer(app, "127.0.0.1", 0, None, listener=ListenerLimits(write_timeout_s=0.5))
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(released.wait(), 30)  # a hang guard, not a measure
        assert len(sent) < MOST  # stopped by the close, not by the end of the answer
        received = 0
        while piece := await asyncio.wait_for(reader.read(1 << 20), 30):
            received += len(piece)
        assert received < MOST * len(PIECE)  # the connection ended early
        writer.close()
    finally:
        await server.aclose()
