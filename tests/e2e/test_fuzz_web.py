"""Fuzzing the proxy's web port from its own OpenAPI schema (schemathesis): every route, with
inputs the schema allows and inputs it does not, as a stranger and as the cluster's admin. No
input may get a 5xx, and nothing a client sends may leave a traceback in the server's log.

The schema is built from the application object (the server does not publish it); the requests
go to a real cluster over HTTPS. The seed is fixed and the examples per route are bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from pyteleport.auth.http import auth_router
from pyteleport.proxy.webapi import webapi_app, webapi_router
from tests.e2e.harness import Cluster

EXAMPLES_PER_ROUTE = 40


def app_schema() -> dict[str, Any]:
    """The web port's routes as the proxy mounts them; the routes use their server only when
    called, so a placeholder is enough to describe them."""
    nothing = cast(Any, None)
    router = webapi_router(nothing, ssh_listen_addr="", ssh_public_addr="", public_addr="")
    return webapi_app(router, auth_router(nothing, "")).openapi()


SCHEMA = schemathesis.openapi.from_dict(app_schema())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(root=tmp_path_factory.mktemp("fuzz") / "cluster")
    c.root.mkdir()
    c.start()
    c.add_user("joe", roles="access", logins="root")
    yield c
    assert c.stop() == 0
    log = Path(c.log_path).read_text()
    assert "Traceback" not in log, log[-4000:]


@pytest.fixture(scope="module")
def sessions(cluster: Cluster) -> Iterator[dict[str, requests.Session]]:
    keys = cluster.data_dir / "keys"
    # The web port's certificate is issued by the cluster's own TLS CA.
    SCHEMA.config.update(tls_verify=str(keys / "cluster-ca.crt"))
    stranger = requests.Session()
    admin = requests.Session()
    admin.cert = (str(keys / "admin.crt"), str(keys / "admin.key"))
    yield {"stranger": stranger, "admin": admin}
    stranger.close()
    admin.close()


def test_the_schema_covers_the_routes() -> None:
    paths = set(app_schema()["paths"])
    assert {"/webapi/ping", "/webapi/ssh/certs", "/v1/users", "/v1/locks", "/v1/events"} <= paths


@pytest.mark.parametrize("who", ["stranger", "admin"])
@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_ROUTE,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_server_error(
    case: Any, who: str, cluster: Cluster, sessions: dict[str, requests.Session]
) -> None:
    response = case.call(base_url=f"https://{cluster.web_addr}", session=sessions[who], timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400:
        # Every refusal is the JSON error shape with a one-line message.
        message = response.json()["error"]["message"]
        assert message and "\n" not in message and "Traceback" not in message
