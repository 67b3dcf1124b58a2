"""Channel windows: asyncssh tops a channel's receive window up to its full size whenever it
delivers data, even while what the peer sent earlier still waits in the channel because the
session paused reading. Each pause and resume then lets the peer send up to another window, so
a paused channel buffers without bound (a 256 MiB upload to a target that reads slowly ended
up whole in the proxy's memory). ``SSHChannel._deliver_data`` is replaced, for every channel, by
one that credits the peer only with what the session took, so a window bounds the buffer.

A global patch, installed by ``install_window_hook`` (idempotent), which the ``pyteleport.ssh``
package calls when it is first imported: every channel of the process gets it.
"""

from __future__ import annotations

from typing import Any

from asyncssh.channel import SSHChannel
from asyncssh.constants import MSG_CHANNEL_WINDOW_ADJUST
from asyncssh.misc import ProtocolError
from asyncssh.packet import UInt32


def _deliver_data(self: Any, data: bytes, datatype: Any) -> None:
    """asyncssh's ``SSHChannel._deliver_data``, crediting the window for taken data only.

    The peer may send ``_recv_window`` more bytes; what it sent that the session has not taken
    yet waits in ``_recv_buf``. asyncssh re-opens the window to its full size once half of it
    is used, counting the waiting bytes as taken; here they are not."""
    full = self._init_recv_window
    if self._recv_window < full / 2:
        waiting = sum(len(item[0]) for item in self._recv_buf) if self._recv_buf else 0
        taken = full - self._recv_window - waiting
        if taken > full / 2:
            self.send_packet(MSG_CHANNEL_WINDOW_ADJUST, UInt32(taken))
            self._recv_window += taken
    delivered: Any = data
    if self._encoding:
        try:
            delivered = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise ProtocolError(str(exc)) from None
    if self._session is not None:
        self._session.data_received(delivered, datatype)


def install_window_hook() -> None:
    SSHChannel._deliver_data = _deliver_data  # type: ignore[method-assign]
