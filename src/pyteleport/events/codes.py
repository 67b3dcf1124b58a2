"""Event names and codes, as Teleport's audit log writes them."""

from __future__ import annotations

USER_LOGIN = "user.login"
USER_CREATE = "user.create"
USER_DELETE = "user.delete"
USER_PASSWORD_CHANGE = "user.password_change"
USER_UPDATE = "user.update"
RESET_TOKEN_CREATE = "reset_password_token.create"
ROLE_CREATED = "role.created"
ROLE_DELETED = "role.deleted"
TOKEN_CREATED = "join_token.create"
# Ours: Teleport emits no event when a join token is deleted.
TOKEN_DELETED = "join_token.delete"
CERT_CREATE = "cert.create"
SESSION_START = "session.start"
RESIZE = "resize"
SESSION_END = "session.end"
SESSION_UPLOAD = "session.upload"
SESSION_DATA = "session.data"
EXEC = "exec"
SUBSYSTEM = "subsystem"
PORT = "port"
AUTH = "auth"
X11_FORWARD = "x11-forward"
# Ours, no Teleport equivalent: a signature the target asked of the user's forwarded agent.
AGENT_SIGN = "agent.sign"
# Ours: one file that crossed an SFTP session (path, direction, size, SHA-256).
FILE_TRANSFER = "file.transfer"
LOCK_CREATED = "lock.created"
LOCK_DELETED = "lock.deleted"
# Ours: Teleport emits none when an OpenSSH node is registered or removed.
NODE_CREATED = "node.created"
# Ours: a signed checkpoint of a recording's hash chain (docs/recording-format.md).
SESSION_CHECKPOINT = "session.checkpoint"
# Ours: a recording removed (auth_service.recordings.retention).
RECORDING_DELETE = "session.recording.delete"
NODE_DELETED = "node.deleted"
ACCESS_REQUEST_CREATE = "access_request.create"
ACCESS_REQUEST_UPDATE = "access_request.update"
ACCESS_REQUEST_REVIEW = "access_request.review"
ACCESS_REQUEST_DELETE = "access_request.delete"

# The ``ei`` of session.upload: Teleport's SessionUploadIndex (math.MaxInt32), so the upload
# sorts after every event of its session.
SESSION_UPLOAD_INDEX = 2**31 - 1

CODES = {
    (USER_LOGIN, True): "T1000I",
    (USER_LOGIN, False): "T1000W",
    (USER_CREATE, True): "T1002I",
    (USER_DELETE, True): "T1004I",
    (USER_UPDATE, True): "T1003I",
    (USER_PASSWORD_CHANGE, True): "T1005I",
    (RESET_TOKEN_CREATE, True): "T6000I",
    (SESSION_START, True): "T2000I",
    (RESIZE, True): "T2002I",
    (SESSION_END, True): "T2004I",
    (SESSION_UPLOAD, True): "T2005I",
    (SESSION_DATA, True): "T2006I",
    (SUBSYSTEM, True): "T3001I",
    (SUBSYSTEM, False): "T3001E",
    (EXEC, True): "T3002I",
    (EXEC, False): "T3002E",
    (PORT, True): "T3003I",
    # A failed SSH authentication is only ever a failure: T3007W whichever way it is emitted.
    (AUTH, True): "T3007W",
    (AUTH, False): "T3007W",
    (X11_FORWARD, True): "T3008I",
    (X11_FORWARD, False): "T3008W",
    (AGENT_SIGN, True): "TPA01I",
    (FILE_TRANSFER, True): "TPF00I",
    (LOCK_CREATED, True): "TLK00I",
    (LOCK_DELETED, True): "TLK01I",
    (NODE_CREATED, True): "TND00I",
    (SESSION_CHECKPOINT, True): "TPC00I",
    (RECORDING_DELETE, True): "TPR00I",
    (NODE_DELETED, True): "TND01I",
    (ROLE_CREATED, True): "T9000I",
    (ROLE_DELETED, True): "T9001I",
    (TOKEN_CREATED, True): "TJT00I",
    (TOKEN_DELETED, True): "TJT01I",
    (CERT_CREATE, True): "TC000I",
    (ACCESS_REQUEST_CREATE, True): "T5000I",
    (ACCESS_REQUEST_UPDATE, True): "T5001I",
    (ACCESS_REQUEST_REVIEW, True): "T5002I",
    (ACCESS_REQUEST_DELETE, True): "T5003I",
}


def code_for(event: str, success: bool = True) -> str:
    return CODES.get((event, success), CODES.get((event, True), ""))
