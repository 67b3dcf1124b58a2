"""OpenSSH certificates, encoded as PROTOCOL.certkeys describes and signed by a CA key.

asyncssh can sign certificates, but not with arbitrary extension values such as Teleport's
``teleport-roles`` JSON or the ``x-teleport-*`` host extensions, so the wire format is built here.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import asyncssh

USER_CERT = 1
HOST_CERT = 2
# PROTOCOL.certkeys: valid_before of all ones means "forever".
FOREVER = 0xFFFFFFFFFFFFFFFF


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _uint32(value: int) -> bytes:
    return struct.pack(">I", value)


def _uint64(value: int) -> bytes:
    return struct.pack(">Q", value)


def encode_options(options: Mapping[str, str]) -> bytes:
    """Critical options and extensions: sorted by name, each value itself a string (empty for
    flags), as OpenSSH and Go's x/crypto/ssh both encode them."""
    out = b""
    for name in sorted(options):
        value = options[name]
        data = _string(value.encode()) if value else b""
        out += _string(name.encode()) + _string(data)
    return out


def encode_principals(principals: Iterable[str]) -> bytes:
    return b"".join(_string(p.encode()) for p in principals)


@dataclass(frozen=True, slots=True)
class CertRequest:
    """What to certify; ``valid_before`` None means no expiry."""

    public_key: asyncssh.SSHKey
    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: dt.datetime | None = None
    valid_before: dt.datetime | None = None
    critical_options: Mapping[str, str] = field(default_factory=dict)
    extensions: Mapping[str, str] = field(default_factory=dict)
    serial: int = 0


def _signature_algorithm(ca_key: asyncssh.SSHKey) -> bytes:
    # RSA CAs sign with SHA-512: OpenSSH 8.8+ refuses ssh-rsa (SHA-1) certificate signatures.
    algorithms: list[bytes] = list(ca_key.sig_algorithms)
    if b"rsa-sha2-512" in algorithms:
        return b"rsa-sha2-512"
    return algorithms[0]


def _timestamp(value: dt.datetime | None, default: int) -> int:
    if value is None:
        return default
    return max(0, int(value.timestamp()))


def sign_certificate(ca_key: asyncssh.SSHKey, request: CertRequest) -> bytes:
    """The certificate as an authorized_keys-style line, e.g. b"ssh-ed25519-cert-v01@... AAAA..."."""
    public = request.public_key
    cert_alg = bytes(public.algorithm) + b"-cert-v01@openssh.com"
    # public_data is string(algorithm) || key fields; the certificate carries just the fields.
    public_blob = bytes(public.public_data)
    (alg_len,) = struct.unpack(">I", public_blob[:4])
    key_fields = public_blob[4 + alg_len :]
    body = (
        _string(cert_alg)
        + _string(os.urandom(32))
        + key_fields
        + _uint64(request.serial)
        + _uint32(request.cert_type)
        + _string(request.key_id.encode())
        + _string(encode_principals(request.principals))
        + _uint64(_timestamp(request.valid_after, 0))
        + _uint64(_timestamp(request.valid_before, FOREVER))
        + _string(encode_options(request.critical_options))
        + _string(encode_options(request.extensions))
        + _string(b"")
        + _string(bytes(ca_key.public_data))
    )
    signature = bytes(ca_key.sign(body, _signature_algorithm(ca_key)))
    blob = body + _string(signature)
    return cert_alg + b" " + base64.b64encode(blob)


def load_certificate(line: bytes | str) -> asyncssh.SSHCertificate:
    return asyncssh.import_certificate(line)


@dataclass(frozen=True, slots=True)
class CertInfo:
    """The fields of an OpenSSH certificate, extensions with their values (asyncssh keeps only
    the ones it knows)."""

    algorithm: str
    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: dict[str, str]
    extensions: dict[str, str]
    signature_key: bytes


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def string(self) -> bytes:
        (length,) = struct.unpack(">I", self._take(4))
        return self._take(length)

    def uint32(self) -> int:
        return int(struct.unpack(">I", self._take(4))[0])

    def uint64(self) -> int:
        return int(struct.unpack(">Q", self._take(8))[0])

    def _take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise ValueError("truncated certificate")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    @property
    def done(self) -> bool:
        return self._pos >= len(self._data)


def _decode_options(blob: bytes) -> dict[str, str]:
    reader = _Reader(blob)
    out: dict[str, str] = {}
    while not reader.done:
        name = reader.string().decode()
        data = reader.string()
        out[name] = _Reader(data).string().decode(errors="replace") if data else ""
    return out


# Public key fields per key type, to skip them when decoding (PROTOCOL.certkeys).
_KEY_FIELDS = {
    "ssh-ed25519": 1,
    "ssh-rsa": 2,
    "ecdsa-sha2-nistp256": 2,
    "ecdsa-sha2-nistp384": 2,
    "ecdsa-sha2-nistp521": 2,
}


def parse_certificate(line: bytes | str) -> CertInfo:
    """Decode an authorized_keys-style certificate line. Raises ValueError if malformed."""
    text = line.decode() if isinstance(line, bytes) else line
    parts = text.split()
    if len(parts) < 2:
        raise ValueError("not a certificate line")
    reader = _Reader(base64.b64decode(parts[1]))
    algorithm = reader.string().decode()
    base = algorithm.removesuffix("-cert-v01@openssh.com")
    if base == algorithm or base not in _KEY_FIELDS:
        raise ValueError(f"unsupported certificate type {algorithm}")
    reader.string()  # nonce
    for _ in range(_KEY_FIELDS[base]):
        reader.string()
    reader.uint64()  # serial
    cert_type = reader.uint32()
    key_id = reader.string().decode()
    principals_reader = _Reader(reader.string())
    principals = []
    while not principals_reader.done:
        principals.append(principals_reader.string().decode())
    valid_after = reader.uint64()
    valid_before = reader.uint64()
    critical = _decode_options(reader.string())
    extensions = _decode_options(reader.string())
    reader.string()  # reserved
    signature_key = reader.string()
    return CertInfo(
        algorithm=algorithm,
        cert_type=cert_type,
        key_id=key_id,
        principals=tuple(principals),
        valid_after=valid_after,
        valid_before=valid_before,
        critical_options=critical,
        extensions=extensions,
        signature_key=signature_key,
    )
