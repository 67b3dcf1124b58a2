"""The private parts of asyncssh that the hook modules of ``pyteleport.ssh`` rely on (requests,
certcheck, agentfwd, x11, transport, windows), and the check, run once at
start, that the installed asyncssh still has them.

asyncssh offers no public hook for these (each module says why it needs them). They were written
and tested against the versions in ``TESTED``; pyproject.toml pins the same range. Another
version may rename or change any of them silently: on 2.24.0, for one, the window hook never
re-opened a channel's window and a transfer stopped after its first 2 MiB. So the process
refuses to start with another version, or when a name below is missing, in one line that says
which and what to do.
"""

from __future__ import annotations

import inspect
from types import ModuleType

import asyncssh
from asyncssh import channel, connection

from pyteleport.errors import BadParameterError

TESTED = ((2, 24, 1), (2, 25, 0))  # from (inclusive) .. to (exclusive)

# Methods and attributes looked up on the class, and instance attributes that the class's
# module assigns (``self.<name> = ...``), by class.
CONNECTION_METHODS = (
    "_report_global_response",  # answer a global request ourselves (recording-proxy@teleport.com)
    "_make_global_request",  # ask one and read the raw reply (tsh's side)
    "create_x11_channel",  # an x11 channel the target opens, relayed to the user
)
SERVER_METHODS = (
    "_validate_openssh_certificate",  # see the certificate behind validate_ca_key
    "create_agent_listener",  # agent forwarding without a socket on disk
    "attach_x11_listener",  # x11-req relayed to the target, not served
    "detach_x11_listener",
)
CLIENT_METHODS = ("attach_x11_listener", "detach_x11_listener")
CONNECTION_FIELDS = (
    "_transport",  # one socket write per loop pass (coalesce_writes)
    "_cert_options",  # certificate options the permit-* extensions grant
    "_agent_forward_path",  # the agent a client connection forwards, decided per session
    "_agent_forwarding",
    "_agent_listener",
)
CHANNEL_METHODS = ("_deliver_data", "send_packet")  # the window hook replaces _deliver_data
CHANNEL_FIELDS = (
    "_init_recv_window",
    "_recv_window",
    "_recv_buf",
    "_encoding",
    "_decoder",
    "_session",
)
# Also dispatched by name with getattr, and checked below: ``_process_<request>_global_request``
# and ``_process_<type>_open`` (x11 channels) on the connection.
# Imported from asyncssh's modules rather than its package.
MODULE_NAMES = (
    ("asyncssh.channel", "SSHChannel"),
    ("asyncssh.constants", "MSG_CHANNEL_WINDOW_ADJUST"),
    ("asyncssh.misc", "ProtocolError"),
    ("asyncssh.misc", "map_handler_name"),
    ("asyncssh.packet", "UInt32"),
)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def missing_names() -> list[str]:
    """The names above that the installed asyncssh does not have."""
    missing = []
    checks: list[tuple[type, ModuleType, tuple[str, ...], tuple[str, ...]]] = [
        (connection.SSHConnection, connection, CONNECTION_METHODS, CONNECTION_FIELDS),
        (connection.SSHServerConnection, connection, SERVER_METHODS, ()),
        (connection.SSHClientConnection, connection, CLIENT_METHODS, ()),
        (channel.SSHChannel, channel, CHANNEL_METHODS, CHANNEL_FIELDS),
    ]
    for cls, module, methods, fields in checks:
        for name in methods:
            if not callable(getattr(cls, name, None)):
                missing.append(f"{cls.__name__}.{name}")
        source = inspect.getsource(module)
        for name in fields:
            if f"self.{name} =" not in source and f"self.{name}:" not in source:
                missing.append(f"{cls.__name__}.{name}")
    source = inspect.getsource(connection)
    for dispatch in ("'_process_' + map_handler_name(", "_global_request'"):
        if dispatch not in source:
            missing.append(f"SSHConnection dispatch by name ({dispatch})")
            break
    for module_name, name in MODULE_NAMES:
        module = __import__(module_name, fromlist=[name])
        if not hasattr(module, name):
            missing.append(f"{module_name}.{name}")
    return missing


def require_tested_asyncssh(version: str | None = None) -> None:
    """BadParameterError (one line) unless the installed asyncssh is a tested one."""
    version = version or asyncssh.__version__
    low, high = TESTED
    have = _version(version)
    if not low <= have < high:
        raise BadParameterError(
            f"asyncssh {version} is installed, but this release is tested with asyncssh "
            f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}: reinstall with "
            "pip install -e . (or pip install 'asyncssh>=2.24.1,<2.25')"
        )
    missing = missing_names()
    if missing:
        raise BadParameterError(
            f"asyncssh {version} lacks what pyteleport hooks into ({', '.join(missing)}): "
            "install asyncssh>=2.24.1,<2.25"
        )
