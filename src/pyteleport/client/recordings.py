"""``recordings ls``: fetch the list from the auth API and show it as Teleport's tsh does.

Text is the table of ``tsh recordings ls`` (ID, Type, Participants, Hostname, Timestamp; the
timestamp in Teleport's ``Jan _2 2006 15:04:05 UTC`` form); JSON is an array of objects with the
field names of the audit events (``sid``, ``server_hostname``, ``session_start`` ...).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from pyteleport.api import wire
from pyteleport.api.client import AuthClient
from pyteleport.errors import BadParameterError
from pyteleport.events.sanitize import clean_text
from pyteleport.events.store import RecordingInfo, info_to_doc
from pyteleport.model.timefmt import format_time, parse_time

FORMATS = ("text", "json", "yaml")
PAGE = 1000  # recordings asked for at a time (the most the API answers)
_HEADERS = ("ID", "Type", "Participants", "Hostname", "Timestamp")


def info_from_wire(item: wire.Recording) -> RecordingInfo:
    return RecordingInfo(
        session_id=item.sid,
        kind=item.kind,
        user=item.user,
        login=item.login,
        participants=tuple(item.participants),
        server_hostname=item.server_hostname,
        timestamp=parse_time(item.session_start),
        duration_s=item.duration_s,
        command=item.command,
        server_labels=item.server_labels,
    )


@dataclass(frozen=True, slots=True)
class Listing:
    recordings: list[RecordingInfo]  # newest first
    more: bool  # more recordings matched than the limit let through
    running: frozenset[str] = frozenset()  # those running on the cluster's proxy now


async def list_recordings(
    client: AuthClient,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 50,
    node: str = "",
    labels: Mapping[str, str] | None = None,
) -> Listing:
    """The newest ``limit`` recordings that started in ``[since, until)``, on ``node`` and on
    a node with every one of ``labels``: as many pages as that takes."""
    params = _params(since, until, node, labels)
    found: list[RecordingInfo] = []
    running: set[str] = set()
    after = ""
    while True:
        page = await client.list_recordings(
            {
                **params,
                "limit": min(limit - len(found), PAGE),
                **({"after": after} if after else {}),
            }
        )
        found += [info_from_wire(item) for item in page.recordings]
        running.update(item.sid for item in page.recordings if item.running)
        if not page.next:
            return Listing(found, more=False, running=frozenset(running))
        if len(found) >= limit:
            return Listing(found, more=True, running=frozenset(running))
        after = page.next  # a page may hold none: the server reads a bounded number a time


def _params(
    since: dt.datetime | None,
    until: dt.datetime | None,
    node: str,
    labels: Mapping[str, str] | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "node": node,
        "labels": ",".join(f"{k}={v}" for k, v in (labels or {}).items()),
    }
    if since is not None:
        params["since"] = format_time(since)
    if until is not None:
        params["until"] = format_time(until)
    return params


async def any_recording(
    client: AuthClient,
    *,
    until: dt.datetime,
    node: str = "",
    labels: Mapping[str, str] | None = None,
) -> bool:
    """True if one answer shows a recording that started before ``until`` (a single request:
    with filters that match little, False may only mean none was found in what it read)."""
    page = await client.list_recordings({**_params(None, until, node, labels), "limit": 1})
    return bool(page.recordings)


def human_time(value: dt.datetime) -> str:
    """Go's ``Jan _2 2006 15:04:05 UTC``: the day padded with a space, not a zero."""
    utc = value.astimezone(dt.UTC)
    return f"{utc:%b} {utc.day:2d} {utc:%Y %H:%M:%S} UTC"


def info_to_dict(info: RecordingInfo) -> dict[str, Any]:
    """The stored entry, with the session's end after its start."""
    out: dict[str, Any] = {}
    for key, value in info_to_doc(info).items():
        out[key] = value
        if key == "session_start":
            out["session_stop"] = format_time(
                info.timestamp + dt.timedelta(seconds=info.duration_s)
            )
    return out


def format_recordings(infos: Sequence[RecordingInfo], fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps([info_to_dict(i) for i in infos], indent=4)
    if fmt == "yaml":
        return yaml.safe_dump([info_to_dict(i) for i in infos], sort_keys=False).rstrip()
    if fmt != "text":
        raise BadParameterError(f'unsupported format "{fmt}", expected one of: text, json, yaml')
    rows = [
        tuple(
            clean_text(cell)  # the meta frame's names came from a client
            for cell in (
                i.session_id,
                i.kind,
                ", ".join(i.participants),
                i.server_hostname,
                human_time(i.timestamp),
            )
        )
        for i in infos
    ]
    widths = [max([len(h)] + [len(row[n]) for row in rows]) for n, h in enumerate(_HEADERS)]
    lines = [" ".join(h.ljust(w) for h, w in zip(_HEADERS, widths, strict=True)).rstrip()]
    lines.append(" ".join("-" * w for w in widths))
    lines += [
        " ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)
