"""The key/value store every service keeps its state in: items under "/"-separated keys, with
leases (an expiry after which an item is gone) and watches (a stream of committed changes).

`Backend` is the one protocol; `MemoryBackend` serves tests, `SqliteBackend` is the embedded
default under data_dir, and a PostgreSQL backend for several auth/proxy processes plugs into the
same conformance suite (tests/backend/conformance.py). Callers are storage/ (typed stores),
events/ (the audit log) and auth/; this package talks to nothing above it.
"""

from pyteleport.backend.base import Backend, Event, EventType, Item, Watcher, prefix_end
from pyteleport.backend.memory import MemoryBackend
from pyteleport.backend.sqlite import SqliteBackend

__all__ = [
    "Backend",
    "Event",
    "EventType",
    "Item",
    "MemoryBackend",
    "SqliteBackend",
    "Watcher",
    "prefix_end",
]
