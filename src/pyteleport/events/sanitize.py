"""What reaches the audit log from outside, made safe to store, show and serialize.

A username, a command or a file path comes from a client. Before it is stored (and again when it
is read, for events stored before this existed), every string in an event is:

- valid Unicode that encodes to UTF-8: a lone surrogate (which JSON's ``\\ud800`` escape can
  carry) becomes the visible text ``\\ud800``;
- free of control characters: newlines, escapes and the like become ``\\n``, ``\\x1b``, so
  nothing a client sends can forge a line of a log or move a terminal's cursor;
- at most ``MAX_TEXT`` characters, the rest replaced by a marker that says how much was cut.

Plain functions over values, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_TEXT = 4096
MAX_ITEMS = 256  # entries of one list or mapping
MAX_DEPTH = 8

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` escaped and capped as the module says, at most ``limit`` characters in all;
    printable text within the limit is returned as is, so cleaning twice changes nothing."""
    if len(text) <= limit and text.isprintable():
        return text
    head = text[:limit]
    if not head.isprintable():
        head = "".join(ch if ch.isprintable() else _escape(ch) for ch in head)
    if len(text) <= limit and len(head) <= limit:
        return head
    marker = f"…[cut from {len(text)} characters]"
    return head[: max(0, limit - len(marker))] + marker


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def clean_value(value: Any, depth: int = 0) -> Any:
    """A JSON-like value with every string (keys too) cleaned and every container capped."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= MAX_DEPTH:
        return clean_text(repr(value), 256)
    if isinstance(value, Mapping):
        out = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["…"] = f"[{len(value) - MAX_ITEMS} more entries]"
                break
            out[clean_text(str(key), 256)] = clean_value(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        items = [clean_value(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"…[{len(value) - MAX_ITEMS} more items]")
        return items
    return clean_text(str(value))
