"""``tctl recordings verify`` reads a session's checkpoints a page at a time: a session of more
than a page of them (a week at one a minute) is checked against all of them."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from pyteleport.cli import recordings
from pyteleport.model.timefmt import format_time, parse_time

START = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class FakeAuditLog:
    """The auth API's event search over a list of events, oldest first, ``limit`` at most."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.requests = 0

    async def search_events(self, params: dict[str, Any]) -> SimpleNamespace:
        self.requests += 1
        since = parse_time(params["since"])
        found = [
            e
            for e in self.events
            if parse_time(e["time"]) >= since and params.get("sid", e["sid"]) == e["sid"]
        ]
        return SimpleNamespace(events=found[: params["limit"]])


def events(count: int, sid: str, same_time_every: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "uid": f"{sid}-{n}",
            "sid": sid,
            "chunk": n,
            "time": format_time(START + dt.timedelta(seconds=n // same_time_every)),
        }
        for n in range(count)
    ]


@pytest.mark.parametrize("same_time_every", [1, 3])  # several events written in one second
async def test_every_checkpoint_of_a_session_is_read_across_pages(
    monkeypatch: pytest.MonkeyPatch, same_time_every: int
) -> None:
    monkeypatch.setattr(recordings, "_EVENTS_PAGE", 10)
    log = FakeAuditLog(sorted(events(95, "a", same_time_every) + events(7, "b"), key=str))
    log.events.sort(key=lambda e: e["time"])
    found = await recordings._events_since(log, "a", START)  # type: ignore[arg-type]
    assert sorted(e["chunk"] for e in found) == list(range(95))
    assert 10 <= log.requests <= 20
    every = await recordings._events_since(log, "", START)  # type: ignore[arg-type]
    assert len(every) == 102
    kept = await recordings._events_since(log, "", START, keep={"b"})  # type: ignore[arg-type]
    assert sorted(e["chunk"] for e in kept) == list(range(7))


async def test_many_checkpoints_of_one_proxy_hold_its_certificate_once() -> None:
    # verify --all holds every listed session's checkpoints: the signer certificate (most of
    # an event) is kept once per proxy, and the event's other fields not at all.
    certificate = "ssh-ed25519-cert-v01@openssh.com " + "A" * 600
    many = events(2000, "a")
    for event in many:
        event |= {"signer": "".join(certificate), "addr.remote": "x" * 100, "hash": "00"}
    found = await recordings._events_since(FakeAuditLog(many), "", START)  # type: ignore[arg-type]
    assert len(found) == 2000 and len({id(e["signer"]) for e in found}) == 1
    assert found[0]["signer"] == certificate and "addr.remote" not in found[0]
    assert set(found[0]) == {"sid", "chunk", "time", "hash", "signer"}
