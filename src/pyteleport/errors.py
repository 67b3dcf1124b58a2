"""The few error kinds of the project, each with one HTTP status.

    TeleportError
    ├── BadParameterError      400  malformed input, invalid config
    ├── AccessDeniedError      403  wrong password, missing permission, bad certificate
    ├── NotFoundError          404
    ├── AlreadyExistsError     409
    ├── CompareFailedError     412  a compare-and-swap lost the race
    ├── LimitExceededError     429  rate limits, lockouts
    └── ConnectionProblemError 504  a peer could not be reached
        └── RecordingError          a session recording could not be written or stored

Foreign exceptions are translated at each boundary with ``raise ... from exc``; the client maps an
HTTP status back to the same kind, so a caller on either side of the wire catches the same class.
"""

from __future__ import annotations


class TeleportError(Exception):
    """Base of every error a user may see; ``str(err)`` is the one line shown to them."""

    status = 500
    kind = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadParameterError(TeleportError):
    status = 400
    kind = "bad_parameter"


class AccessDeniedError(TeleportError):
    status = 403
    kind = "access_denied"


class NotFoundError(TeleportError):
    status = 404
    kind = "not_found"


class AlreadyExistsError(TeleportError):
    status = 409
    kind = "already_exists"


class CompareFailedError(TeleportError):
    status = 412
    kind = "compare_failed"


class LimitExceededError(TeleportError):
    """``retry_after_s``, when known, is how long until a retry can succeed (whole seconds, at
    least 1); the web layer sends it as ``Retry-After`` (RFC 9110 section 10.2.3)."""

    status = 429
    kind = "limit_exceeded"

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = None if retry_after_s is None else max(1, retry_after_s)


class ConnectionProblemError(TeleportError):
    status = 504
    kind = "connection_problem"


class RecordingError(ConnectionProblemError):
    """The recording's storage (local disk or the recording store) did not take a write.

    A kind of ConnectionProblemError because, like an unreachable peer, it is a failure of
    something outside the request that may pass: the session itself was fine. In strict
    recording modes it ends the session with this message.
    """


_BY_STATUS: dict[int, type[TeleportError]] = {
    cls.status: cls
    for cls in (
        BadParameterError,
        AccessDeniedError,
        NotFoundError,
        AlreadyExistsError,
        CompareFailedError,
        LimitExceededError,
        ConnectionProblemError,
    )
}


def error_for_status(status: int, message: str) -> TeleportError:
    """The error kind a response status stands for (the client side of the mapping)."""
    if status == 401:
        return AccessDeniedError(message)
    return _BY_STATUS.get(status, TeleportError)(message)
