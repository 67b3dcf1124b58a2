"""Where recordings go in S3-compatible object storage, as Teleport's config writes it:
``teleport.storage.audit_sessions_uri: s3://bucket/prefix?region=R&endpoint=URL&insecure=true``.
Parsed without boto3, so checking a config file does not load it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from pyteleport.errors import BadParameterError

_BOOL = ("true", "1", "yes")


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str = ""
    region: str = ""
    endpoint: str = ""  # a custom endpoint implies path-style addressing
    insecure: bool = False  # do not verify the endpoint's TLS certificate
    disable_sse: bool = False

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def parse_file_uri(uri: str, key: str = "audit_sessions_uri") -> PurePosixPath | None:
    """The directory of a ``file:///path`` recordings URI (as Teleport takes it: a local or
    mounted directory); None for any other scheme."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        return None
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise BadParameterError(f'{key}: expected file:///absolute/path, got "{uri}"')
    path = PurePosixPath(unquote(parts.path))
    if not path.is_absolute() or path == PurePosixPath("/"):
        raise BadParameterError(f'{key}: expected file:///absolute/path, got "{uri}"')
    return path


def parse_sessions_uri(uri: str, key: str = "audit_sessions_uri") -> S3Location:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise BadParameterError(
            f"{key}: expected s3://bucket/prefix?region=...&endpoint=... or "
            f'file:///absolute/path, got "{uri}"'
        )
    query = parse_qs(parts.query)
    known = {"region", "endpoint", "insecure", "disablesse"}
    for name in query:
        if name not in known:
            raise BadParameterError(
                f'{key}: unknown parameter "{name}", expected one of: ' + ",".join(sorted(known))
            )

    def one(name: str) -> str:
        return query.get(name, [""])[-1]

    endpoint = one("endpoint")
    if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
        raise BadParameterError(f"{key}: endpoint must be an http:// or https:// URL")
    return S3Location(
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        region=one("region"),
        endpoint=endpoint,
        insecure=one("insecure").lower() in _BOOL,
        disable_sse=one("disablesse").lower() in _BOOL,
    )
