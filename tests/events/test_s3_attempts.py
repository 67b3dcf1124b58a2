"""docs/compatibility.md (audit_sessions_uri: s3://...): "A store that takes connections and
never answers costs a call about a minute (5 s to connect, 30 s to answer, two attempts)".
The store configures botocore with ``retries={"max_attempts": 2}``, which botocore reads as two
*retries* after the first request (``total_max_attempts`` 3): three attempts of 30 s each, about
a minute and a half per call. On a loopback listener that accepts and never answers, one call
opens three connections."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import botocore.config
import pytest

from pyteleport.events import s3store
from pyteleport.events.s3location import parse_sessions_uri
from pyteleport.events.s3store import S3RecordingStore


def test_a_store_that_never_answers_is_tried_twice_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    location = parse_sessions_uri(
        f"s3://recs/pfx?region=us-east-1&endpoint=http://127.0.0.1:{port}&insecure=true"
    )
    given: dict[str, Any] = {}
    real_config = botocore.config.Config

    def config(**kwargs: Any) -> botocore.config.Config:
        # Shorten the wait per attempt only (1 s, not 30), to count the attempts quickly.
        given.update(kwargs)
        return real_config(**{**kwargs, "read_timeout": 1})

    monkeypatch.setattr(s3store.botocore.config, "Config", config)
    client = S3RecordingStore(location)._client
    # What the docs promise per attempt (5 s to connect, 30 s to answer) holds.
    assert (given["connect_timeout"], given["read_timeout"]) == (5, 30)
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever botocore raises at the end
            client.list_objects_v2(Bucket="recs", Prefix="pfx/")
    finally:
        stop.set()
        thread.join()
        listener.close()
        for conn in accepted:
            conn.close()
    assert len(accepted) == 2, f"{len(accepted)} attempts for one call"
