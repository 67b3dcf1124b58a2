"""The proxy's web port against a client with no credentials and bad intentions: the requests of
the hostile-client review, each answered with a clear 4xx, nothing held that a stranger sent, and
the audit log still readable afterwards.

One cluster serves the module; each test leaves it as it found it (tests that spend the login
rate limit come from their own loopback address).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.procfs import rss_kib

from tests.e2e.guide import make_guide
from tests.e2e.harness import Client, Cluster

LOGIN = "/webapi/ssh/certs"


def rss_mib(pid: int) -> float:
    return rss_kib(pid) / 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(root=tmp_path_factory.mktemp("hostile") / "cluster")
    c.root.mkdir()
    c.start()
    yield c
    assert c.stop() == 0


def tls_socket(cluster: Cluster, source: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(
        ("127.0.0.1", cluster.web_port), timeout=10, source_address=(source, 0)
    )
    return ssl._create_unverified_context().wrap_socket(raw)


def read_response(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def post(cluster: Cluster, path: str, body: Any, source: str = "127.0.0.1") -> httpx.Response:
    """``body`` as JSON, or as it is when it is bytes (JSON no encoder would write)."""
    transport = httpx.HTTPTransport(verify=False, local_address=source)
    with httpx.Client(transport=transport, base_url=f"https://{cluster.web_addr}") as client:
        if isinstance(body, bytes):
            headers = {"content-type": "application/json"}
            return client.post(path, content=body, headers=headers)
        return client.post(path, json=body)


def message(response: httpx.Response) -> str:
    return str(response.json()["error"]["message"])


def test_a_lone_surrogate_in_a_login_is_refused_and_the_audit_log_still_reads(
    cluster: Cluster,
) -> None:
    raw = b'{"user": "\\ud800", "password": "x", "pub_key": "x"}'
    res = post(cluster, LOGIN, raw, source="127.0.0.2")
    assert res.status_code == 400
    # pydantic's own JSON reader refuses it; the Name type would too.
    assert message(res).startswith("user: Input should be a valid string")
    for args in (("events", "ls"), ("events", "ls", "--type=user.login")):
        res_cli = cluster.tctl(*args)
        assert res_cli.code == 0, res_cli.text


def test_a_200_mb_body_is_refused_before_it_is_read(cluster: Cluster) -> None:
    assert cluster.proc is not None
    before = rss_mib(cluster.proc.pid)
    sock = tls_socket(cluster)
    with sock:
        sock.sendall(
            f"POST {LOGIN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {200 << 20}\r\n\r\n".encode()
        )
        sock.sendall(b'{"user": "' + b"a" * (1 << 20))  # the start of it, all the same
        status, headers, body = read_response(sock)
    assert status == 413, body
    assert json.loads(body) == {"error": {"message": "request body too large: at most 65536 bytes"}}
    assert headers["connection"] == "close"
    assert rss_mib(cluster.proc.pid) - before < 20


def test_a_chunked_body_is_cut_off_at_the_limit(cluster: Cluster) -> None:
    """No length declared: the body is counted as it comes, refused once past the limit (what
    the socket buffers already hold aside), and the connection is closed."""
    assert cluster.proc is not None
    before = rss_mib(cluster.proc.pid)
    sock = tls_socket(cluster)
    chunk = b"a" * 65536
    sent = 0
    answer = b""
    with sock:
        sock.sendall(
            f"POST {LOGIN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        sock.setblocking(False)
        deadline = time.monotonic() + 30
        while not answer and time.monotonic() < deadline and sent < 200 << 20:
            with contextlib.suppress(ssl.SSLWantWriteError, BlockingIOError):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            with contextlib.suppress(ssl.SSLWantReadError, BlockingIOError):
                answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413 "), answer
        assert sent < 32 << 20, f"{sent} bytes went in before the refusal"
        # The server closes the connection: the rest of the response, then end of stream.
        sock.setblocking(True)
        sock.settimeout(10)
        with contextlib.suppress(ssl.SSLError, OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    body = answer.partition(b"\r\n\r\n")[2]
    assert json.loads(body)["error"]["message"] == "request body too large: at most 65536 bytes"
    assert rss_mib(cluster.proc.pid) - before < 20


def send_in_pieces(sock: ssl.SSLSocket, data: bytes, piece: int = 1024) -> None:
    """A TLS record at a time: the server reads the head as it comes, never whole at once."""
    for start in range(0, len(data), piece):
        sock.sendall(data[start : start + piece])


@pytest.mark.parametrize("piece", [1024, 1 << 20])
def test_a_long_uri_is_refused_the_same_way_however_it_arrives(
    cluster: Cluster, piece: int
) -> None:
    # Found by the fuzz run: a query of a few thousand characters was answered by the HTTP
    # layer in plain text or by the app in JSON, depending on how its TLS records arrived.
    query = "%E2%80%94" * 2500  # 22 KiB of em dashes, as the fuzzer sent them
    sock = tls_socket(cluster)
    with sock:
        send_in_pieces(
            sock, f"GET /v1/recordings?user={query} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), piece
        )
        status, _, body = read_response(sock)
    assert (status, json.loads(body)) == (
        414,
        {"error": {"message": "request URI too long: at most 8192 bytes"}},
    )


@pytest.mark.parametrize("piece", [1024, 1 << 20])
def test_a_head_past_the_limit_is_refused_in_json_and_closed(cluster: Cluster, piece: int) -> None:
    # Refused by the HTTP layer as it comes in pieces, by the app if it came at once: the
    # same answer either way.
    sock = tls_socket(cluster)
    with sock:
        head = b"GET /webapi/ping HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * (70 << 10)
        send_in_pieces(sock, head + b"\r\n\r\n", piece)
        status, headers, body = read_response(sock)
        assert sock.recv(1) == b""  # closed
    assert (status, headers.get("connection")) == (400, "close"), headers
    message = json.loads(body)["error"]["message"]
    assert message == (
        "invalid HTTP request: it is not HTTP/1.1, or its request line and headers are over "
        "65536 bytes"
    )
    garbage = tls_socket(cluster)
    with garbage:
        garbage.sendall(b"\x16\x03 not http at all\r\n\r\n")
        status, _, body = read_response(garbage)
    assert status == 400 and json.loads(body)["error"]["message"] == message


def test_the_rate_limit_is_applied_before_the_body_is_parsed(cluster: Cluster) -> None:
    answers = [post(cluster, LOGIN, {"not": "a login"}, source="127.0.0.3") for _ in range(22)]
    codes = [a.status_code for a in answers]
    assert codes[:20] == [400] * 20 and codes[20:] == [429, 429], codes
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert message(answers[-1]).startswith("rate limit exceeded")


@pytest.mark.parametrize("ttl", [10**19, 2**63, -1, 10**400])
def test_a_ttl_out_of_bounds_is_a_400(cluster: Cluster, ttl: int) -> None:
    raw = b'{"user": "joe", "password": "x", "pub_key": "x", "ttl": %d}' % ttl
    res = post(cluster, LOGIN, raw, source="127.0.0.4")
    assert res.status_code == 400, res.text
    assert message(res).startswith("ttl: ")


def admin_client(cluster: Cluster) -> httpx.Client:
    keys = cluster.data_dir / "keys"
    context = ssl.create_default_context(cafile=str(keys / "cluster-ca.crt"))
    context.load_cert_chain(str(keys / "admin.crt"), str(keys / "admin.key"))
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return httpx.Client(verify=context, base_url=f"https://{cluster.web_addr}")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/locks", {"target_kind": "user", "target": "joe", "ttl_s": 10**30}),
        ("/v1/users", {"name": "joe", "roles": ["access"], "ttl_s": 10**30}),
        ("/v1/certs/user", {"username": "joe", "public_key": "x", "ttl_s": 10**30}),
        ("/v1/certs/host", {"public_key": "x", "principals": ["h"], "ttl_s": 10**30}),
    ],
)
def test_admin_routes_answer_400_to_a_huge_ttl(
    cluster: Cluster, path: str, body: dict[str, Any]
) -> None:
    with admin_client(cluster) as client:
        res = client.post(path, json=body)
    assert res.status_code == 400, res.text
    assert message(res).startswith("ttl_s: Input should be less than or equal to")


def test_a_token_with_a_nul_names_no_internal_key(cluster: Cluster) -> None:
    with httpx.Client(verify=False) as client:
        res = client.get(f"https://{cluster.web_addr}/webapi/users/password/token/a%00b")
    assert res.status_code == 400, res.text
    assert message(res) == "token: Value error, must not contain NUL"
    with admin_client(cluster) as admin:
        res = admin.delete("/v1/roles/a%00b")
    assert res.status_code == 400 and "/roles/" not in res.text, res.text


def test_the_api_schema_and_docs_are_not_served(cluster: Cluster) -> None:
    with httpx.Client(verify=False, base_url=f"https://{cluster.web_addr}") as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert client.get(path).status_code == 404, path


def test_a_method_not_allowed_says_which_are(cluster: Cluster) -> None:
    with httpx.Client(verify=False, base_url=f"https://{cluster.web_addr}") as client:
        res = client.request("TRACE", "/webapi/ping")
    assert res.status_code == 405
    assert res.headers["allow"] == "GET"


def test_no_route_answers_500_to_an_unknown_or_malformed_request(cluster: Cluster) -> None:
    with httpx.Client(verify=False, base_url=f"https://{cluster.web_addr}") as client:
        for path, content in [
            (LOGIN, b"{"),
            (LOGIN, b"[]"),
            (LOGIN, b'{"user": 1}'),
            (LOGIN, b"\xff\xfe"),
            ("/webapi/users/password/token", b'{"token": null}'),
        ]:
            res = client.post(path, content=content, headers={"content-type": "application/json"})
            assert 400 <= res.status_code < 500, (path, content, res.text)


def test_the_log_holds_no_traceback_for_the_clients_mistakes(cluster: Cluster) -> None:
    log = Path(cluster.log_path).read_text()
    assert "Traceback" not in log, log[-3000:]
    # The process raised its open-file limit to the hard limit at start, and said so.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        assert f"open-file limit: {hard}" in log


HEADER_TIMEOUT_S = 10.0  # ListenerLimits.header_timeout_s


async def slow_client(port: int, source: str, closed: list[float]) -> None:
    """A TLS client that sends part of a request's headers and then nothing; notes when the
    server closes its connection."""
    context = ssl._create_unverified_context()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, local_addr=(source, 0)
    )
    started = time.monotonic()
    writer.write(b"POST /webapi/ssh/certs HTTP/1.1\r\nHost: x\r\nContent-Le")
    await writer.drain()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await asyncio.wait_for(reader.read(), HEADER_TIMEOUT_S + 20)
    closed.append(time.monotonic() - started)
    writer.close()


def test_a_thousand_slow_clients_are_closed_in_time_and_others_get_through(
    cluster: Cluster, tmp_path: Path
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    closed: list[float] = []
    opened = threading.Event()

    async def attack() -> None:
        tasks = []
        for i in range(1000):
            source = f"127.0.1.{10 + i % 20}"  # 50 from each of 20 addresses
            tasks.append(asyncio.create_task(slow_client(cluster.web_port, source, closed)))
            if i % 50 == 49:
                await asyncio.sleep(0)
        await asyncio.sleep(1)
        opened.set()
        await asyncio.gather(*tasks)

    attacker = threading.Thread(target=asyncio.run, args=(attack(),))
    attacker.start()
    try:
        assert opened.wait(60)
        # While they hang: a real tsh login and an SSH session through the proxy.
        client = Client(root=tmp_path / "client")
        client.root.mkdir()
        client.start_agent()
        try:
            guide = make_guide(tmp_path, cluster, client)
            try:
                res = guide.ssh("echo through")
                assert (res.code, res.out) == (0, "through\n"), res.text
            finally:
                guide.sshd.stop()
        finally:
            client.stop_agent()
    finally:
        attacker.join(HEADER_TIMEOUT_S + 40)
    assert len(closed) == 1000
    assert max(closed) < HEADER_TIMEOUT_S + 5, sorted(closed)[-5:]
    assert min(closed) > HEADER_TIMEOUT_S - 1, sorted(closed)[:5]


def test_one_address_holds_a_bounded_number_of_connections(cluster: Cluster) -> None:
    async def probe() -> int:
        closed: list[float] = []
        tasks = [
            asyncio.create_task(slow_client(cluster.web_port, "127.0.2.1", closed))
            for _ in range(140)
        ]
        await asyncio.sleep(2)
        refused = len(closed)
        await asyncio.gather(*tasks)
        return refused

    assert asyncio.run(probe()) == 140 - 128


def test_an_unknown_user_and_a_real_one_get_the_same_answers_lockout_included(
    cluster: Cluster,
) -> None:
    cluster.add_user("realuser")

    def tries(user: str) -> list[tuple[int, str]]:
        body = {"user": user, "password": "wrong-password!", "pub_key": "x"}
        return [
            (r.status_code, message(r))
            for r in (post(cluster, LOGIN, body, source="127.0.0.5") for _ in range(6))
        ]

    real, unknown = tries("realuser"), tries("nobody-here")
    assert real == unknown
    assert (
        real
        == [(403, "invalid username or password")] * 4
        + [(403, "too many incorrect attempts, please try again later")] * 2
    )
