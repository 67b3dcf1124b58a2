"""teleport.yaml: the v3-shaped config file, parsed strictly.

Every unknown key or bad value is refused with one line that names the dotted key, so a
typo never silently falls back to a default. YAML 1.1 booleans (`yes`/`no`/`off`) are
accepted where Teleport accepts them, including an unquoted `off` for recording modes.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from pyteleport.errors import BadParameterError
from pyteleport.model.duration import format_duration, parse_duration

RECORDING_MODES = ("node", "proxy", "node-sync", "proxy-sync", "off")
SECOND_FACTORS = ("off", "otp")
STORAGE_TYPES = ("sqlite", "memory")
LOG_SEVERITIES = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")

DEFAULT_DATA_DIR = "/var/lib/teleport"
DEFAULT_AUTH_PORT = 3025
DEFAULT_WEB_PORT = 3080
DEFAULT_SSH_PROXY_PORT = 3023
DEFAULT_DIAG_PORT = 3000


@dataclass
class LogFormat:
    output: str = "text"


@dataclass
class LogConfig:
    output: str = "stderr"
    severity: str = "INFO"
    format: LogFormat = field(default_factory=LogFormat)


@dataclass
class StorageConfig:
    type: str = "sqlite"
    # where finished recordings go: "" is <data_dir>/records; s3://bucket/prefix?... is S3
    audit_sessions_uri: str = ""


@dataclass
class TeleportSection:
    nodename: str = ""
    data_dir: str = DEFAULT_DATA_DIR
    log: LogConfig = field(default_factory=LogConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    diag_addr: str = ""  # /healthz, /readyz, /metrics over HTTP; "" serves none


@dataclass
class Authentication:
    type: str = "local"
    second_factor: str = "off"


@dataclass
class AuthService:
    enabled: bool = True
    cluster_name: str = ""
    listen_addr: str = f"0.0.0.0:{DEFAULT_AUTH_PORT}"
    session_recording: str = "node"
    proxy_checks_host_keys: bool = True
    authentication: Authentication = field(default_factory=Authentication)
    # recordings.retention: recordings older than this are removed (None: kept for ever)
    recordings_retention: dt.timedelta | None = None


@dataclass
class KeyPair:
    key_file: str
    cert_file: str


@dataclass(frozen=True)
class ConnectionRate:
    """``average`` new connections per ``period`` from one source address, after ``burst``."""

    period: dt.timedelta
    average: int
    burst: int

    @property
    def per_second(self) -> float:
        return self.average / self.period.total_seconds()


# Without ``rates`` in the config: 10 new connections a second per address after 100.
DEFAULT_CONNECTION_RATES = (ConnectionRate(dt.timedelta(seconds=1), 10, 100),)


@dataclass
class ConnectionLimits:
    """Teleport's defaults: 15,000 connections and 250 distinct users per proxy."""

    max_connections: int = 15_000
    max_users: int = 250
    rates: tuple[ConnectionRate, ...] = DEFAULT_CONNECTION_RATES


@dataclass
class ProxyService:
    enabled: bool = True
    web_listen_addr: str = f"0.0.0.0:{DEFAULT_WEB_PORT}"
    listen_addr: str = f"0.0.0.0:{DEFAULT_SSH_PROXY_PORT}"
    public_addr: tuple[str, ...] = ()
    ssh_public_addr: tuple[str, ...] = ()
    https_keypairs: list[KeyPair] = field(default_factory=list)
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)


@dataclass
class SSHService:
    enabled: bool = False


@dataclass
class Config:
    teleport: TeleportSection = field(default_factory=TeleportSection)
    auth_service: AuthService = field(default_factory=AuthService)
    proxy_service: ProxyService = field(default_factory=ProxyService)
    ssh_service: SSHService = field(default_factory=SSHService)
    version: str = "v3"


def parse_addr(value: str, default_port: int) -> tuple[str, int]:
    """Split HOST[:PORT] (IPv6 in brackets) into host and port; bad ports raise."""
    text = value.strip()
    if not text:
        raise BadParameterError("empty address")
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BadParameterError(f'invalid address "{value}": missing "]"')
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise BadParameterError(f'invalid address "{value}"')
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        host = text  # a bare IPv6 address
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BadParameterError(f'invalid port "{port_text}" in address "{value}"')
    return host, int(port_text)


class _Reader:
    """Walks one mapping, checking each key once, and reports leftovers by dotted path."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise BadParameterError(f"{path or 'config'}: expected a mapping, got {_kind(data)}")
        self.data = dict(data)
        self.path = path
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def has(self, name: str) -> bool:
        return name in self.data and self.data[name] is not None

    def child(self, name: str) -> _Reader:
        return _Reader(self.raw(name), self.key(name))

    def string(self, name: str, default: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadParameterError(f"{self.key(name)}: expected a string, got {_kind(value)}")
        return str(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("yes", "true", "on", "no", "false", "off"):
            return value.lower() in ("yes", "true", "on")
        raise BadParameterError(f"{self.key(name)}: expected yes or no, got {value!r}")

    def choice(
        self, name: str, default: str, choices: tuple[str, ...], message: str | None = None
    ) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value is False:  # YAML 1.1 reads an unquoted off/no as false
            value = "off"
        text = str(value)
        if text not in choices:
            raise BadParameterError(
                message or f"{self.key(name)} must be one of: {','.join(choices)}, got {text!r}"
            )
        return text

    def addr(self, name: str, default: str, default_port: int) -> str:
        value = self.string(name, default)
        try:
            parse_addr(value, default_port)
        except BadParameterError as exc:
            raise BadParameterError(f"{self.key(name)}: {exc}") from None
        return value

    def addr_list(self, name: str, default_port: int) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        items = value if isinstance(value, list) else [value]
        out: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise BadParameterError(f"{self.key(name)}: expected HOST:PORT, got {_kind(item)}")
            try:
                parse_addr(item, default_port)
            except BadParameterError as exc:
                raise BadParameterError(f"{self.key(name)}: {exc}") from None
            out.append(item)
        return tuple(out)

    def done(self) -> None:
        extra = [k for k in self.data if k not in self.seen]
        if extra:
            raise BadParameterError(
                f"unknown config key {self.key(str(extra[0]))}: check its spelling and indentation"
            )


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


T = TypeVar("T")


def _section(reader: _Reader, name: str, build: Callable[[_Reader], T]) -> T:
    child = reader.child(name)
    result = build(child)
    child.done()
    return result


def _log(r: _Reader) -> LogConfig:
    fmt = _section(r, "format", lambda f: LogFormat(output=f.choice("output", "text", LOG_FORMATS)))
    severity = r.string("severity", "INFO").upper()
    if severity not in LOG_SEVERITIES:
        raise BadParameterError(
            f"{r.key('severity')} must be one of: DEBUG,INFO,WARN,ERROR, got {severity!r}"
        )
    return LogConfig(output=r.string("output", "stderr"), severity=severity, format=fmt)


def _teleport(r: _Reader) -> TeleportSection:
    return TeleportSection(
        nodename=r.string("nodename", "") or socket.gethostname(),
        data_dir=r.string("data_dir", DEFAULT_DATA_DIR),
        log=_section(r, "log", _log),
        storage=_section(r, "storage", _storage),
        diag_addr=_diag_addr(r),
    )


def _diag_addr(r: _Reader) -> str:
    value = r.string("diag_addr", "")
    if value:
        host, _ = parse_addr(value, DEFAULT_DIAG_PORT)
        if not host:
            raise BadParameterError(f"{r.key('diag_addr')}: give a host, e.g. 127.0.0.1:3000")
    return value


def _storage(r: _Reader) -> StorageConfig:
    uri = r.string("audit_sessions_uri", "")
    if uri:
        from pyteleport.events.s3location import parse_file_uri, parse_sessions_uri

        if parse_file_uri(uri, r.key("audit_sessions_uri")) is None:
            parse_sessions_uri(uri, r.key("audit_sessions_uri"))
    return StorageConfig(type=r.choice("type", "sqlite", STORAGE_TYPES), audit_sessions_uri=uri)


def _auth(r: _Reader, nodename: str) -> AuthService:
    auth = AuthService(
        enabled=r.boolean("enabled", True),
        cluster_name=r.string("cluster_name", "") or nodename,
        listen_addr=r.addr("listen_addr", AuthService.listen_addr, DEFAULT_AUTH_PORT),
        session_recording=r.choice(
            "session_recording",
            "node",
            RECORDING_MODES,
            "session_recording must either be: " + ",".join(RECORDING_MODES),
        ),
        authentication=_section(
            r,
            "authentication",
            lambda a: Authentication(
                type=a.choice("type", "local", ("local",)),
                second_factor=a.choice("second_factor", "off", SECOND_FACTORS),
            ),
        ),
        recordings_retention=_section(r, "recordings", _retention),
    )
    value = r.raw("proxy_checks_host_keys")
    if value is not None:
        if isinstance(value, bool):
            auth.proxy_checks_host_keys = value
        elif isinstance(value, str) and value in ("yes", "no"):
            auth.proxy_checks_host_keys = value == "yes"
        else:
            raise BadParameterError("proxy_checks_host_keys must be one of: yes,no")
    return auth


def _retention(r: _Reader) -> dt.timedelta | None:
    text = r.string("retention", "")
    if not text or text in ("0", "forever"):
        return None
    try:
        value = parse_duration(text)
    except (BadParameterError, OverflowError):
        value = dt.timedelta(0)
    if not dt.timedelta(hours=1) <= value <= dt.timedelta(days=36500):
        raise BadParameterError(
            f"{r.key('retention')}: expected a duration of at least 1h such as 90d or 2160h, "
            f"got {text!r} (leave it out to keep recordings for ever)"
        )
    return value


def _keypairs(r: _Reader) -> list[KeyPair]:
    value = r.raw("https_keypairs")
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadParameterError(f"{r.key('https_keypairs')}: expected a list of key_file/cert_file")
    pairs = []
    for i, item in enumerate(value):
        entry = _Reader(item, f"{r.key('https_keypairs')}[{i}]")
        key_file, cert_file = entry.string("key_file", ""), entry.string("cert_file", "")
        entry.done()
        if not key_file or not cert_file:
            raise BadParameterError(f"{entry.path}: both key_file and cert_file are required")
        pairs.append(KeyPair(key_file=key_file, cert_file=cert_file))
    return pairs


def _proxy(r: _Reader) -> ProxyService:
    return ProxyService(
        enabled=r.boolean("enabled", True),
        web_listen_addr=r.addr("web_listen_addr", ProxyService.web_listen_addr, DEFAULT_WEB_PORT),
        listen_addr=r.addr("listen_addr", ProxyService.listen_addr, DEFAULT_SSH_PROXY_PORT),
        public_addr=r.addr_list("public_addr", DEFAULT_WEB_PORT),
        ssh_public_addr=r.addr_list("ssh_public_addr", DEFAULT_SSH_PROXY_PORT),
        https_keypairs=_keypairs(r),
        connection_limits=_section(r, "connection_limits", _limits),
    )


def _limits(r: _Reader) -> ConnectionLimits:
    def positive(name: str, default: int) -> int:
        value = r.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadParameterError(f"{r.key(name)}: expected a positive number, got {value!r}")
        return value

    return ConnectionLimits(
        max_connections=positive("max_connections", ConnectionLimits.max_connections),
        max_users=positive("max_users", ConnectionLimits.max_users),
        rates=_rates(r),
    )


def _rates(r: _Reader) -> tuple[ConnectionRate, ...]:
    """``rates: [{period: 1m, average: 600, burst: 100}, ...]``: a new connection must pass
    every one of them."""
    value = r.raw("rates")
    if value is None:
        return DEFAULT_CONNECTION_RATES
    if not isinstance(value, list) or not value:
        raise BadParameterError(
            f"{r.key('rates')}: expected a list of period/average/burst, got {_kind(value)}"
        )
    rates = []
    for i, item in enumerate(value):
        entry = _Reader(item, f"{r.key('rates')}[{i}]")
        period_text = entry.string("period", "")
        raw = {name: entry.raw(name) for name in ("average", "burst")}
        entry.done()  # a misspelt key is named before a missing one
        try:
            period = parse_duration(period_text)
        except BadParameterError as exc:
            raise BadParameterError(f"{entry.key('period')}: {exc}") from None
        if period <= dt.timedelta(0):
            raise BadParameterError(
                f"{entry.key('period')}: expected a positive duration such as 1m, "
                f"got {period_text!r}"
            )
        numbers = {}
        for name, number in raw.items():
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise BadParameterError(
                    f"{entry.key(name)}: expected a positive number, got {number!r}"
                )
            numbers[name] = number
        rates.append(ConnectionRate(period, numbers["average"], numbers["burst"]))
    return tuple(rates)


def _ssh(r: _Reader) -> SSHService:
    enabled = r.boolean("enabled", False)
    if enabled:
        raise BadParameterError(
            "ssh_service.enabled: the node service is not available yet: set it to no "
            "and keep sshd on the hosts (recording proxy mode)"
        )
    return SSHService(enabled=False)


def parse_config(text: str, source: str = "config") -> Config:
    """Parse teleport.yaml text; raise BadParameterError with one line on any problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise BadParameterError(f"{source}: invalid YAML{where}: {problem}") from None
    try:
        root = _Reader(data, "")
        version = root.string("version", "v3")
        if version != "v3":
            raise BadParameterError(f'version: "{version}" is not supported: use v3')
        teleport = _section(root, "teleport", _teleport)
        config = Config(
            version=version,
            teleport=teleport,
            auth_service=_section(root, "auth_service", lambda r: _auth(r, teleport.nodename)),
            proxy_service=_section(root, "proxy_service", _proxy),
            ssh_service=_section(root, "ssh_service", _ssh),
        )
        root.done()
    except BadParameterError as exc:
        raise BadParameterError(f"{source}: {exc.message}") from None
    if not config.auth_service.enabled:
        raise BadParameterError(
            f"{source}: auth_service.enabled: a proxy without a local auth service is not "
            "supported yet: set it to yes"
        )
    return config


def default_config(
    cluster_name: str, data_dir: str, public_addr: str | None, nodename: str
) -> Config:
    """The all-in-one config `teleport configure` writes: auth + proxy, recording proxy mode."""
    config = Config(
        teleport=TeleportSection(nodename=nodename, data_dir=data_dir),
        auth_service=AuthService(cluster_name=cluster_name, session_recording="proxy"),
        proxy_service=ProxyService(public_addr=(public_addr,) if public_addr else ()),
    )
    if public_addr:
        try:
            parse_addr(public_addr, DEFAULT_WEB_PORT)
        except BadParameterError as exc:
            raise BadParameterError(f"--public-addr: {exc}") from None
    return config


def render_config(config: Config) -> str:
    """YAML text that parse_config reads back to the same Config."""
    t, a, p = config.teleport, config.auth_service, config.proxy_service
    proxy: dict[str, Any] = {
        "enabled": p.enabled,
        "web_listen_addr": p.web_listen_addr,
        "listen_addr": p.listen_addr,
    }
    if p.public_addr:
        proxy["public_addr"] = list(p.public_addr)
    if p.ssh_public_addr:
        proxy["ssh_public_addr"] = list(p.ssh_public_addr)
    if p.connection_limits != ConnectionLimits():
        limits: dict[str, Any] = {
            "max_connections": p.connection_limits.max_connections,
            "max_users": p.connection_limits.max_users,
        }
        if p.connection_limits.rates != DEFAULT_CONNECTION_RATES:
            limits["rates"] = [
                {
                    "period": format_duration(rate.period),
                    "average": rate.average,
                    "burst": rate.burst,
                }
                for rate in p.connection_limits.rates
            ]
        proxy["connection_limits"] = limits
    if p.https_keypairs:
        proxy["https_keypairs"] = [
            {"key_file": k.key_file, "cert_file": k.cert_file} for k in p.https_keypairs
        ]
    data = {
        "version": config.version,
        "teleport": {
            "nodename": t.nodename,
            "data_dir": t.data_dir,
            "log": {
                "output": t.log.output,
                "severity": t.log.severity,
                "format": {"output": t.log.format.output},
            },
            **({"diag_addr": t.diag_addr} if t.diag_addr else {}),
            "storage": {
                "type": t.storage.type,
                **(
                    {"audit_sessions_uri": t.storage.audit_sessions_uri}
                    if t.storage.audit_sessions_uri
                    else {}
                ),
            },
        },
        "auth_service": {
            "enabled": a.enabled,
            "cluster_name": a.cluster_name,
            "listen_addr": a.listen_addr,
            "session_recording": a.session_recording,
            "proxy_checks_host_keys": a.proxy_checks_host_keys,
            "authentication": {
                "type": a.authentication.type,
                "second_factor": a.authentication.second_factor,
            },
            **(
                {"recordings": {"retention": format_duration(a.recordings_retention)}}
                if a.recordings_retention
                else {}
            ),
        },
        "proxy_service": proxy,
        "ssh_service": {"enabled": config.ssh_service.enabled},
    }
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    # Teleport's own files say yes/no; YAML 1.1 reads both the same as true/false.
    return text.replace(": true\n", ": yes\n").replace(": false\n", ": no\n")


__all__ = [
    "RECORDING_MODES",
    "Config",
    "KeyPair",
    "default_config",
    "parse_addr",
    "parse_config",
    "render_config",
]
