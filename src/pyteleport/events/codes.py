"""Event names and codes, as Teleport's audit log writes them."""

from __future__ import annotations

USER_LOGIN = "user.login"
USER_CREATE = "user.create"
USER_DELETE = "user.delete"
USER_PASSWORD_CHANGE = "user.password_change"
ROLE_CREATED = "role.created"
ROLE_DELETED = "role.deleted"
TOKEN_CREATED = "join_token.create"
CERT_CREATE = "cert.create"

CODES = {
    (USER_LOGIN, True): "T1000I",
    (USER_LOGIN, False): "T1000W",
    (USER_CREATE, True): "T1002I",
    (USER_DELETE, True): "T1004I",
    (USER_PASSWORD_CHANGE, True): "T1005I",
    (ROLE_CREATED, True): "T9000I",
    (ROLE_DELETED, True): "T9001I",
    (TOKEN_CREATED, True): "TJT00I",
    (CERT_CREATE, True): "TC000I",
}


def code_for(event: str, success: bool = True) -> str:
    return CODES.get((event, success), CODES.get((event, True), ""))
