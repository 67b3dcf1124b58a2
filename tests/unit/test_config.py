"""teleport.yaml parsing: every bad key or value refused naming it, YAML 1.1 booleans read."""

from __future__ import annotations

import datetime as dt

import pytest

from pyteleport.errors import BadParameterError
from pyteleport.service.config import default_config, parse_addr, parse_config, render_config


def test_full_example_from_the_spec_parses() -> None:
    config = parse_config(
        """
version: v3
teleport:
  nodename: proxy1
  data_dir: /var/lib/teleport
  log: {output: stderr, severity: INFO, format: {output: text}}
  storage: {type: sqlite}
auth_service:
  enabled: yes
  cluster_name: teleport.example.com
  listen_addr: 0.0.0.0:3025
  session_recording: "proxy"
  proxy_checks_host_keys: no
  authentication: {type: local, second_factor: off}
proxy_service:
  enabled: yes
  web_listen_addr: 0.0.0.0:3080
  listen_addr: 0.0.0.0:3023
  public_addr: teleport.example.com:3080
  https_keypairs: [{key_file: /k, cert_file: /c}]
ssh_service:
  enabled: no
"""
    )
    assert config.teleport.nodename == "proxy1"
    assert config.auth_service.cluster_name == "teleport.example.com"
    assert config.auth_service.session_recording == "proxy"
    assert config.auth_service.proxy_checks_host_keys is False
    assert config.auth_service.authentication.second_factor == "off"
    assert config.proxy_service.public_addr == ("teleport.example.com:3080",)
    assert config.proxy_service.https_keypairs[0].cert_file == "/c"


def test_defaults_follow_teleport() -> None:
    config = parse_config("version: v3\nteleport:\n  nodename: n1\n")
    assert config.auth_service.session_recording == "node"
    assert config.auth_service.proxy_checks_host_keys is True
    assert config.auth_service.cluster_name == "n1"
    assert config.proxy_service.listen_addr == "0.0.0.0:3023"


def test_unquoted_off_is_a_recording_mode() -> None:
    config = parse_config("auth_service:\n  session_recording: off\n")
    assert config.auth_service.session_recording == "off"


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "auth_service:\n  session_recording: always\n",
            "session_recording must either be: node,proxy,node-sync,proxy-sync,off",
        ),
        (
            "auth_service:\n  proxy_checks_host_keys: maybe\n",
            "proxy_checks_host_keys must be one of: yes,no",
        ),
        ("teleport:\n  log:\n    colour: red\n", "unknown config key teleport.log.colour"),
        ("teleport:\n  diag_addr: 127.0.0.1:http\n", 'invalid port "http"'),
        ("teleport:\n  diag_addr: ':3000'\n", "teleport.diag_addr: give a host"),
        ("proxy_services:\n  enabled: yes\n", "unknown config key proxy_services"),
        ("proxy_service:\n  listen_addr: 'h:0'\n", "proxy_service.listen_addr"),
        ("proxy_service:\n  https_keypairs: [{key_file: /k}]\n", "https_keypairs[0]"),
        ("ssh_service:\n  enabled: yes\n", "node service is not available yet"),
        ("version: v2\n", "use v3"),
        ("teleport: [1, 2]\n", "teleport: expected a mapping"),
        ("teleport: {\n", "line"),
        ("auth_service:\n  authentication: {second_factor: webauthn}\n", "second_factor"),
        (
            "proxy_service:\n  connection_limits: {rates: [{period: 1m, average: 0, burst: 5}]}\n",
            "proxy_service.connection_limits.rates[0].average: expected a positive number",
        ),
        (
            "proxy_service:\n  connection_limits: {rates: [{period: soon, average: 1, burst: 5}]}\n",
            "proxy_service.connection_limits.rates[0].period: invalid duration",
        ),
        (
            "proxy_service:\n  connection_limits: {rates: [{period: 1m, average: 1, brust: 5}]}\n",
            "unknown config key proxy_service.connection_limits.rates[0].brust",
        ),
        ("proxy_service:\n  connection_limits: {rates: 5}\n", "expected a list"),
    ],
)
def test_bad_config_names_the_key(text: str, message: str) -> None:
    with pytest.raises(BadParameterError) as info:
        parse_config(text, source="teleport.yaml")
    line = info.value.message
    assert message in line and "\n" not in line
    assert line.startswith("teleport.yaml")


def test_render_reads_back_the_same() -> None:
    config = default_config("c.test", "/tmp/d", "example.test:443", "n1")
    text = render_config(config)
    assert "session_recording: proxy" in text and "enabled: yes" in text
    assert parse_config(text) == config


def test_connection_rates_read_as_teleport_writes_them() -> None:
    config = parse_config(
        "proxy_service:\n  connection_limits:\n    rates:\n"
        "      - {period: 1m, average: 600, burst: 100}\n"
        "      - {period: 1s, average: 20, burst: 40}\n"
    )
    rates = config.proxy_service.connection_limits.rates
    assert [(r.per_second, r.burst) for r in rates] == [(10.0, 100), (20.0, 40)]
    assert parse_config(render_config(config)) == config


@pytest.mark.parametrize(
    "value,expected",
    [
        ("h:1", ("h", 1)),
        ("h", ("h", 3080)),
        ("[::1]:22", ("::1", 22)),
        ("::1", ("::1", 3080)),
    ],
)
def test_parse_addr(value: str, expected: tuple[str, int]) -> None:
    assert parse_addr(value, 3080) == expected


@pytest.mark.parametrize("value", ["h:99999", "h:x", "[::1", ""])
def test_parse_addr_refuses(value: str) -> None:
    with pytest.raises(BadParameterError):
        parse_addr(value, 3080)


def test_recordings_retention_parses_and_round_trips() -> None:
    config = parse_config(
        "teleport: {data_dir: /tmp/x}\nauth_service: {recordings: {retention: 90d}}\n"
    )
    assert config.auth_service.recordings_retention == dt.timedelta(days=90)
    assert parse_config(render_config(config)) == config
    assert parse_config("teleport: {data_dir: /tmp/x}\n").auth_service.recordings_retention is None


@pytest.mark.parametrize("value", ["5m", "soon", "-1h", "99999999999d"])
def test_a_bad_retention_is_refused_with_its_key(value: str) -> None:
    with pytest.raises(BadParameterError, match=r"auth_service\.recordings\.retention: expected"):
        parse_config(f"auth_service: {{recordings: {{retention: '{value}'}}}}\n")


def test_diag_addr_parses_and_round_trips() -> None:
    config = parse_config("teleport: {data_dir: /tmp/x, diag_addr: '127.0.0.1:3000'}\n")
    assert config.teleport.diag_addr == "127.0.0.1:3000"
    assert parse_config(render_config(config)) == config
