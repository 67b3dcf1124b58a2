from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pyteleport.backend import Backend, MemoryBackend
from pyteleport.clock import FakeClock
from tests.backend.conformance import BackendConformance


class TestMemoryBackend(BackendConformance):
    @pytest.fixture
    async def backend(self, clock: FakeClock) -> AsyncIterator[Backend]:
        backend = MemoryBackend(clock)
        yield backend
        await backend.close()
