"""Nodes: the hosts of the fleet, by name, address and labels.

An agentless OpenSSH host is ``{kind: node, sub_kind: openssh, version: v2, metadata: {name,
labels}, spec: {addr: "10.0.0.5:22", hostname: "db1"}}``, as Teleport writes it. The proxy dials
``spec.addr``; roles' ``node_labels`` decide who reaches it; locks name it by ``metadata.name``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyteleport.errors import BadParameterError
from pyteleport.model.role import check_name
from pyteleport.model.timefmt import format_time, parse_time

SUB_KINDS = ("openssh",)
MAX_LABELS = 64
_LABEL_KEY = re.compile(r"^[a-zA-Z0-9/._:-]{1,63}$")
_LABEL_VALUE_MAX = 253
_HOST = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,252})$")


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    addr: str  # host:port the proxy dials ([v6]:port for IPv6)
    hostname: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    sub_kind: str = "openssh"
    created_by: str = ""
    created: dt.datetime | None = None

    @property
    def host(self) -> str:
        return split_addr(self.addr)[0]

    @property
    def port(self) -> int:
        return split_addr(self.addr)[1]

    def names(self) -> frozenset[str]:
        """Every name this node answers to, lower-cased: its name, hostname and address host."""
        return frozenset(n.lower() for n in (self.name, self.hostname, self.host) if n)

    def labels_text(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))


def split_addr(addr: str, default_port: int = 22) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``host`` or a bare IPv6 address → (host, port)."""
    text = addr.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise BadParameterError(f'invalid address "{addr}", expected host:port')
        port_text = rest[1:]
    elif text.count(":") > 1:
        host, port_text = text, ""  # a bare IPv6 address
    else:
        host, _, port_text = text.partition(":")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise BadParameterError(f'invalid port in address "{addr}", expected 1-65535')
        port = int(port_text)
    if not valid_host(host):
        raise BadParameterError(f'invalid host in address "{addr}"')
    return host, port


def join_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def valid_host(host: str) -> bool:
    if _HOST.match(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_labels(labels: Any, where: str) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise BadParameterError(f"{where} must be a mapping of label names to values")
    if len(labels) > MAX_LABELS:
        raise BadParameterError(f"{where}: at most {MAX_LABELS} labels")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            raise BadParameterError(
                f'{where}: invalid label name "{key}": use letters, digits and / . _ : - '
                "(at most 63)"
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadParameterError(f"{where}.{key} must be a string")
        text = str(value)
        if len(text) > _LABEL_VALUE_MAX or any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise BadParameterError(
                f"{where}.{key}: a label value is printable text of at most {_LABEL_VALUE_MAX}"
            )
        out[key] = text
    return out


def parse_label_selector(args: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``env=prod team=db`` (or ``env=prod,team=db``) → {"env": "prod", "team": "db"}."""
    out: dict[str, str] = {}
    for arg in args:
        for part in arg.split(","):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep or not key:
                raise BadParameterError(f'invalid label "{part}", expected key=value')
            out[key.strip()] = value.strip()
    return out


def node_from_dict(data: Any) -> Node:
    """A node from its resource form; every bad field is refused with a message naming it."""
    if not isinstance(data, dict):
        raise BadParameterError("a node must be a mapping")
    for key in data:
        if key not in ("kind", "sub_kind", "version", "metadata", "spec"):
            raise BadParameterError(f"unknown field node.{key}")
    if data.get("kind", "node") != "node":
        raise BadParameterError(f'expected kind "node", got "{data.get("kind")}"')
    if data.get("version", "v2") != "v2":
        raise BadParameterError(f'node version "{data.get("version")}" is not supported, use v2')
    sub_kind = data.get("sub_kind", "openssh")
    if sub_kind not in SUB_KINDS:
        raise BadParameterError(
            f'node sub_kind "{sub_kind}" is not supported: this cluster registers OpenSSH '
            "hosts (sub_kind: openssh)"
        )
    meta = data.get("metadata")
    if not isinstance(meta, dict) or "name" not in meta:
        raise BadParameterError("metadata.name is required")
    for key in meta:
        if key not in ("name", "labels", "description", "revision", "id", "expires"):
            raise BadParameterError(f"unknown field metadata.{key}")
    spec = data.get("spec")
    if not isinstance(spec, dict) or not spec.get("addr"):
        raise BadParameterError(
            'spec.addr is required: the host:port the proxy dials, e.g. "10.0.0.5:22"'
        )
    for key in spec:
        if key not in ("addr", "hostname", "created_by", "created_at"):
            raise BadParameterError(f"unknown field spec.{key}")
    host, port = split_addr(str(spec["addr"]))
    hostname = str(spec.get("hostname") or "")
    if hostname and not valid_host(hostname):
        raise BadParameterError(f'invalid spec.hostname "{hostname}"')
    created = spec.get("created_at")
    return Node(
        name=check_name("node", str(meta["name"])),
        addr=join_addr(host, port),
        hostname=hostname,
        labels=check_labels(meta.get("labels"), "metadata.labels"),
        sub_kind=str(sub_kind),
        created_by=str(spec.get("created_by") or ""),
        created=parse_time(str(created)) if created else None,
    )


def node_to_dict(node: Node) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": node.name}
    if node.labels:
        metadata["labels"] = dict(sorted(node.labels.items()))
    spec: dict[str, Any] = {"addr": node.addr, "hostname": node.hostname or node.host}
    if node.created_by:
        spec["created_by"] = node.created_by
    if node.created is not None:
        spec["created_at"] = format_time(node.created)
    return {
        "kind": "node",
        "sub_kind": node.sub_kind,
        "version": "v2",
        "metadata": metadata,
        "spec": spec,
    }
