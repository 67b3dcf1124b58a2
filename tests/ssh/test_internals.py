"""The start-up check of the asyncssh internals pyteleport hooks into."""

from __future__ import annotations

import pytest
from asyncssh import channel, connection

from pyteleport.errors import BadParameterError
from pyteleport.ssh.internals import missing_names, require_tested_asyncssh


def test_the_installed_asyncssh_has_everything_hooked() -> None:
    assert missing_names() == []
    require_tested_asyncssh()


@pytest.mark.parametrize("version", ["2.24.0", "2.25.0", "3.0.0", "2.23.9"])
def test_a_version_outside_the_tested_range_is_refused_in_one_line(version: str) -> None:
    with pytest.raises(BadParameterError) as caught:
        require_tested_asyncssh(version)
    assert str(caught.value) == (
        f"asyncssh {version} is installed, but this release is tested with asyncssh "
        ">=2.24.1,<2.25.0: reinstall with pip install -e . (or pip install "
        "'asyncssh>=2.24.1,<2.25')"
    )


def test_a_missing_internal_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(connection.SSHConnection, "_make_global_request")
    monkeypatch.delattr(channel.SSHChannel, "_deliver_data")
    assert missing_names() == ["SSHConnection._make_global_request", "SSHChannel._deliver_data"]
    with pytest.raises(BadParameterError, match=r"lacks what pyteleport hooks into \(SSHConn"):
        require_tested_asyncssh("2.24.1")
