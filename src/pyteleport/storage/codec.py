"""JSON in, JSON out: the byte form every store keeps in the backend."""

from __future__ import annotations

import json
from typing import Any

from pyteleport.errors import BadParameterError


def dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def load(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise BadParameterError(f"stored {what} is corrupt: {exc}") from exc
