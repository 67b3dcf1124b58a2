from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Client, Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(root=tmp_path / "cluster")
    c.root.mkdir()
    c.start()
    yield c
    code = c.stop()
    assert code == 0, f"teleport did not shut down cleanly (exit {code}):\n{c.log_path.read_text()}"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    c = Client(root=tmp_path / "client")
    c.root.mkdir()
    c.start_agent()
    yield c
    c.stop_agent()
