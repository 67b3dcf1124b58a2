"""What the services count for ``/metrics`` (``teleport start --diag-addr``): a protocol the
auth service and the proxy call, so neither knows how the numbers are kept. ``NO_METRICS``
counts nothing (tests, and a process without a diagnostics listener)."""

from __future__ import annotations

from typing import Protocol


class Metrics(Protocol):
    def session_started(self, interactive: bool) -> None:
        """A recorded (or audited) session began on a target."""

    def session_ended(self, interactive: bool, tx: int, rx: int) -> None:
        """It ended, having carried ``tx`` bytes to the user and ``rx`` from them."""

    def session_refused(self) -> None:
        """A session the proxy could not open: admission refused it or the target did."""

    def password_login(self, success: bool) -> None:
        """A password login (``tsh login``), good or bad."""

    def ssh_auth_failed(self) -> None:
        """An SSH authentication the proxy refused."""

    def upload_failed(self) -> None:
        """A recording (or part of one) the store did not take; it stays in the spool."""

    def recording_failed(self) -> None:
        """A session's recording could not be written to the spool (a full or read-only
        disk): the session went on unrecorded, or was ended in the strict modes."""


class NoMetrics:
    """Counts nothing (a test counts what it looks at by overriding that)."""

    def session_started(self, interactive: bool) -> None:
        pass

    def session_ended(self, interactive: bool, tx: int, rx: int) -> None:
        pass

    def session_refused(self) -> None:
        pass

    def password_login(self, success: bool) -> None:
        pass

    def ssh_auth_failed(self) -> None:
        pass

    def upload_failed(self) -> None:
        pass

    def recording_failed(self) -> None:
        pass


NO_METRICS: Metrics = NoMetrics()
