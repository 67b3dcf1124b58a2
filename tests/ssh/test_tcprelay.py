"""A forwarded TCP channel pair (ssh -L, -R, X11): what one end sends while the other end is
still opening waits in the relay, and the sending channel stops reading meanwhile, so its
window, not the proxy's memory, holds the rest."""

from __future__ import annotations

from typing import Any

from pyteleport.ssh import tcprelay


class Channel:
    """The part of an asyncssh channel the relay uses."""

    def __init__(self, on_write: Any = None) -> None:
        self.writes: list[bytes] = []
        self.paused = False
        self._on_write = on_write

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        if self._on_write is not None:
            self._on_write()

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        pass


def test_data_for_an_end_still_opening_waits_and_pauses_the_sender() -> None:
    inner, far = tcprelay.pair()
    far_chan: Any = Channel()
    far.connection_made(far_chan)
    far.data_received(b"banner", None)  # the target speaks first; the user's end is opening
    assert far_chan.paused
    inner_chan: Any = Channel()
    inner.connection_made(inner_chan)
    assert inner_chan.writes == [b"banner"]
    assert not far_chan.paused  # once delivered, the target's channel reads again
    far.data_received(b"more", None)
    assert inner_chan.writes == [b"banner", b"more"] and not far_chan.paused


def test_an_end_that_fills_while_opening_keeps_the_sender_paused() -> None:
    inner, far = tcprelay.pair()
    far_chan: Any = Channel()
    far.connection_made(far_chan)
    far.data_received(b"x" * 100_000, None)
    # The user's channel reports a full buffer as the waiting data goes in.
    inner_chan: Any = Channel(on_write=inner.pause_writing)
    inner.connection_made(inner_chan)
    assert far_chan.paused
    inner.resume_writing()
    assert not far_chan.paused
