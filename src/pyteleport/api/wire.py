"""Request and response bodies. The ``/webapi`` shapes match Teleport's (docs/compatibility.md);
``/v1`` is ours."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


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
    user: str
    password: str
    otp_token: str = ""
    pub_key: str  # base64 of the authorized_keys line
    ttl: int = 0  # nanoseconds


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
    token: str
    password: str
    second_factor_token: str = ""


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
    name: str
    roles: list[str]
    logins: list[str] = Field(default_factory=list)
    ttl_s: int = 3600


class InviteResponse(Strict):
    user: str
    token: str
    url: str
    expires: str
    otp_uri: str = ""


class SetPasswordRequest(Strict):
    password: str


class SetPasswordResponse(Strict):
    otp_uri: str = ""


class UpdateUserRequest(Strict):
    roles: list[str]


class Resource(Strict):
    """A resource in Teleport's ``kind/version/metadata/spec`` form, as tctl reads and writes it."""

    model_config = ConfigDict(extra="allow", frozen=True)


class PutRoleRequest(Strict):
    resource: dict[str, object]
    overwrite: bool = False


class PutRoleResponse(Strict):
    name: str
    created: bool


class CreateTokenRequest(Strict):
    roles: list[str]
    ttl_s: int = 0


class CreateLockRequest(Strict):
    target_kind: str  # user, login or node
    target: str
    message: str = ""
    ttl_s: int = 0  # 0: until removed


class TokenResponse(Strict):
    token: str
    roles: list[str]
    expires: str


class ExportResponse(Strict):
    text: str


class SignHostRequest(Strict):
    public_key: str  # authorized_keys line
    principals: list[str]
    ttl_s: int = 0  # 0: no expiry


class SignHostResponse(Strict):
    cert: str  # certificate line


class SignUserRequest(Strict):
    username: str
    public_key: str
    ttl_s: int = 0


class SignUserResponse(Strict):
    cert: str
    tls_cert: str
    valid_before: str


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


class RecordingsResponse(Strict):
    recordings: list[Recording]
