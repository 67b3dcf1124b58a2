"""Request and response bodies. The ``/webapi`` shapes match Teleport's (docs/compatibility.md);
``/v1`` is ours."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- bounds on what clients send: every string and number a request carries has one ---------------
# A value out of bounds is a 400 naming the field, before any handler sees it.

MAX_TTL_S = 100 * 365 * 86400  # far beyond any TTL the core allows; it only keeps sums finite
MAX_TTL_NS = 2**63 - 1  # Go's time.Duration, which tsh sends
MAX_LIST = 256


def _valid_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _printable(value: str) -> str:
    _valid_text(value)
    if not value.isprintable():
        raise ValueError("must not contain control characters")
    return value


# A name (user, role, login, host, lock target): printable, short.
Name = Annotated[str, StringConstraints(max_length=255), AfterValidator(_printable)]
# A secret typed by a person (password, OTP code): any valid text, bounded.
Secret = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_valid_text)]
# A token from a link or a file: printable, short.
Token = Annotated[str, StringConstraints(max_length=256), AfterValidator(_printable)]
# Free text (a lock's message) and keys and certificates as text.
Text = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_valid_text)]
KeyText = Annotated[str, StringConstraints(max_length=16384), AfterValidator(_valid_text)]
Seconds = Annotated[int, Field(ge=0, le=MAX_TTL_S)]
Nanoseconds = Annotated[int, Field(ge=0, le=MAX_TTL_NS)]
Names = Annotated[list[Name], Field(max_length=MAX_LIST)]


# -- /webapi/ping ------------------------------------------------------------------------------


class AuthSettings(Strict):
    type: str = "local"
    second_factor: str = "off"
    local: dict[str, str] = Field(default_factory=lambda: {"name": ""})


class SSHProxySettings(Strict):
    listen_addr: str
    public_addr: str = ""
    ssh_public_addr: str = ""


class ProxySettings(Strict):
    ssh: SSHProxySettings


class PingResponse(Strict):
    auth: AuthSettings
    proxy: ProxySettings
    server_version: str
    min_client_version: str
    cluster_name: str


# -- /webapi/ssh/certs -------------------------------------------------------------------------


class CreateSSHCertRequest(Strict):
    user: Name
    password: Secret
    otp_token: Secret = ""
    pub_key: KeyText  # base64 of the authorized_keys line
    ttl: Nanoseconds = 0


class HostSigner(Strict):
    domain_name: str
    checking_keys: list[str]  # base64 of authorized_keys lines
    tls_certs: list[str]  # base64 of PEM


class CreateSSHCertResponse(Strict):
    username: str
    cert: str  # base64 of the certificate line
    tls_cert: str  # base64 of PEM
    host_signers: list[HostSigner]


# -- invites and password tokens ---------------------------------------------------------------


class UserTokenInfo(Strict):
    user: str
    expires: str
    otp_uri: str = ""


class ChangePasswordWithTokenRequest(Strict):
    token: Token
    password: Secret
    second_factor_token: Secret = ""


class ChangePasswordWithTokenResponse(Strict):
    username: str


# -- /v1: the auth API (tctl) -----------------------------------------------------------------


class StatusResponse(Strict):
    cluster_name: str
    version: str
    user_ca_fingerprint: str
    host_ca_fingerprint: str
    ca_pin: str


class CreateUserRequest(Strict):
    name: Name
    roles: Names
    logins: Names = Field(default_factory=list)
    ttl_s: Seconds = 3600


class InviteResponse(Strict):
    user: str
    token: str
    url: str
    expires: str
    otp_uri: str = ""


class SetPasswordRequest(Strict):
    password: Secret


class SetPasswordResponse(Strict):
    otp_uri: str = ""


class UpdateUserRequest(Strict):
    roles: Names


class Resource(Strict):
    """A resource in Teleport's ``kind/version/metadata/spec`` form, as tctl reads and writes it."""

    model_config = ConfigDict(extra="allow", frozen=True)


class PutResourceRequest(Strict):
    """``tctl create``: one resource of any kind a backup holds."""

    resource: dict[str, object]
    force: bool = False


class PutResourceResponse(Strict):
    kind: str
    name: str
    result: str  # created, updated or unchanged


class PutRoleRequest(Strict):
    resource: dict[str, object]
    overwrite: bool = False


class PutRoleResponse(Strict):
    name: str
    created: bool


class PutNodeRequest(Strict):
    resource: dict[str, object]
    overwrite: bool = False


class PutNodeResponse(Strict):
    name: str
    created: bool


class JoinOpenSSHRequest(Strict):
    """``teleport join openssh``: a host proves with a join token that it may join."""

    token: Token
    public_key: KeyText
    name: Name
    addr: Name
    hostname: Name = ""
    labels: Annotated[dict[Name, Name], Field(max_length=64)] = Field(default_factory=dict)
    principals: Names = Field(default_factory=list)


class JoinOpenSSHResponse(Strict):
    host_cert: str
    user_ca: str
    principals: list[str]


class CreateTokenRequest(Strict):
    roles: Names
    ttl_s: Seconds = 0


class CreateLockRequest(Strict):
    target_kind: Name  # user, login or node
    target: Name
    message: Text = ""
    ttl_s: Seconds = 0  # 0: until removed


class TokenResponse(Strict):
    token: str
    roles: list[str]
    expires: str


class ExportResponse(Strict):
    text: str


class SignHostRequest(Strict):
    public_key: KeyText  # authorized_keys line
    principals: Names
    ttl_s: Seconds = 0  # 0: no expiry


class SignHostResponse(Strict):
    cert: str  # certificate line


class SignUserRequest(Strict):
    username: Name
    public_key: KeyText
    ttl_s: Seconds = 0


class SignUserResponse(Strict):
    cert: str
    tls_cert: str
    valid_before: str


# -- /v1/access-requests ------------------------------------------------------------------------


class CreateAccessRequest(Strict):
    roles: Names
    reason: Text = ""
    reviewers: Names = Field(default_factory=list)
    max_duration_s: Seconds = 0


class ReviewAccessRequest(Strict):
    approve: bool
    reason: Text = ""


class SetAccessRequestState(Strict):
    state: Annotated[str, StringConstraints(pattern="^(APPROVED|DENIED)$")]
    reason: Text = ""


class RenewCertsRequest(Strict):
    """``tsh login --request-id``: new certificates for the caller, with these requests."""

    public_key: KeyText
    request_ids: Annotated[list[Token], Field(max_length=16)] = Field(default_factory=list)
    ttl_s: Seconds = 0


class EventsResponse(Strict):
    events: list[dict[str, object]]


# -- /v1/recordings ----------------------------------------------------------------------------


class Recording(Strict):
    sid: str
    kind: str  # "ssh" (interactive) or "exec"
    user: str
    login: str
    participants: list[str]
    server_hostname: str
    session_start: str  # RFC 3339
    duration_s: float
    command: str = ""
    server_labels: dict[str, str] = Field(default_factory=dict)
    # The session is running on this cluster's proxy now (its recording store takes its parts).
    running: bool = False


class SearchHit(Strict):
    sid: str
    user: str
    login: str
    node: str
    session_start: str  # RFC 3339
    offset_ms: int
    kind: str  # "input" (an exec's command) or "output"
    line: str


class SearchRequest(Strict):
    """A search, sent as a body: text of 4096 characters is up to 48 KiB in a URL's query."""

    q: Text
    user: Name = ""
    node: Name = ""
    since: Annotated[str, StringConstraints(max_length=64)] | None = None  # RFC 3339
    limit: int = 100  # at most 1000 are answered


class SearchResponse(Strict):
    hits: list[SearchHit]  # the newest that matched, oldest of them first
    truncated: bool = False  # more lines matched
    partial: list[str] = []  # sessions searched whose index holds only part of their output


class UnreadableRecording(Strict):
    name: str  # the file or object in the store
    reason: str


class ReindexResponse(Strict):
    added: list[str]  # sessions catalogued anew, or again with a changed entry
    removed: list[str]  # sessions whose recording is not in the store
    unreadable: list[UnreadableRecording] = []  # in the store, but no recording to list
    # Listed as named, but holding another session's recording (reason: whose).
    misnamed: list[UnreadableRecording] = []


class RecordingsResponse(Strict):
    recordings: list[Recording]
    next: str = ""  # the ``after`` of the next page; "" after the last
