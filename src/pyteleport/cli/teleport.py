"""``teleport``: start the services of a cluster, write a config file."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from pyteleport import TELEPORT_VERSION, __version__
from pyteleport.cli.runner import invoke, read_resources, run_async, split_csv
from pyteleport.client import openssh
from pyteleport.client.profile import write_private_file
from pyteleport.errors import BadParameterError
from pyteleport.model.node import parse_label_selector
from pyteleport.service.config import default_config, parse_config, render_config
from pyteleport.service.process import TeleportProcess, run_until_signal

DEFAULT_CONFIG = "/etc/teleport.yaml"


class JsonLineFormatter(logging.Formatter):
    """``teleport.log.format.output: json``: one JSON object per line, with the fields
    Teleport's JSON log uses (``timestamp``, ``level``, ``component``, ``message``), escaped so
    any message (quotes, newlines, a traceback) stays one parseable line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "component": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def _setup_logging(output: str, severity: str, fmt: str) -> None:
    level = {"WARN": "WARNING"}.get(severity.upper(), severity.upper())
    if output in ("stderr", "", None):
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    elif output == "stdout":
        handler = logging.StreamHandler(sys.stdout)
    else:
        handler = logging.FileHandler(output)
    if fmt == "json":
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-5s [%(name)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's per-request and asyncssh's per-connection and per-channel noise stay out of
    # the log unless debugging (asyncssh logs several INFO lines for every SSH session, which
    # cost the proxy more CPU per session than the audit log does).
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("asyncssh").setLevel(max(logging.WARNING, root.level))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Teleport: SSH access behind short-lived certificates, every session recorded."""


@cli.command("version")
def version() -> None:
    """Print the version."""
    click.echo(f"Teleport v{TELEPORT_VERSION} (pyteleport {__version__})")


@cli.command("start")
@click.option(
    "-c",
    "--config",
    "config_path",
    default=None,
    help=f"Path to the config file (default {DEFAULT_CONFIG}).",
)
@click.option("-d", "--debug", is_flag=True, help="Log at DEBUG severity.")
@click.option(
    "--diag-addr",
    default="",
    help="Serve /healthz, /readyz and /metrics over HTTP here, e.g. 127.0.0.1:3000.",
)
@click.option(
    "--bootstrap",
    "bootstrap_path",
    default=None,
    help="Start a new cluster from a backup (tctl get all --with-secrets) if data_dir is empty.",
)
def start(config_path: str | None, debug: bool, diag_addr: str, bootstrap_path: str | None) -> None:
    """Start the services the config file enables (auth and proxy)."""
    path = config_path or (DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None)
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise BadParameterError(f"cannot read config file {path}: {exc.strerror}") from exc
        config = parse_config(text, source=path)
    else:
        config = default_config(
            cluster_name=socket.gethostname(),
            data_dir="/var/lib/teleport",
            public_addr=None,
            nodename=socket.gethostname(),
        )
    if diag_addr:
        config.teleport.diag_addr = diag_addr
    log = config.teleport.log
    _setup_logging(log.output, "DEBUG" if debug else log.severity, log.format.output)
    bootstrap = (
        read_resources(bootstrap_path, f"--bootstrap file {bootstrap_path}")
        if bootstrap_path
        else []
    )
    process = TeleportProcess(config, bootstrap=bootstrap)
    run_async(
        run_until_signal(
            process,
            "pyteleport is running: auth on port {auth_port}, proxy web API on port {web_port}, "
            "proxy SSH on port {ssh_port}.",
        )
    )


@cli.command("configure")
@click.option("--cluster-name", default=None, help="Cluster name (default: this host's name).")
@click.option("--data-dir", default="/var/lib/teleport", help="Where the cluster keeps its state.")
@click.option("--public-addr", default=None, help="Public HOST:PORT of the proxy's web API.")
@click.option("-o", "--output", default="stdout", help="File to write, or stdout.")
@click.option("--nodename", default=None, help="Name of this host in the cluster.")
def configure(
    cluster_name: str | None,
    data_dir: str,
    public_addr: str | None,
    output: str,
    nodename: str | None,
) -> None:
    """Write a working config file (auth + proxy, recording proxy mode)."""
    host = socket.gethostname()
    config = default_config(
        cluster_name=cluster_name or host,
        data_dir=data_dir,
        public_addr=public_addr,
        nodename=nodename or host,
    )
    text = render_config(config)
    if output == "stdout":
        click.echo(text, nl=False)
        return
    path = Path(output.removeprefix("file://"))
    if path.exists():
        raise BadParameterError(f"{path} already exists: remove it or choose another -o path")
    write_private_file(path, text.encode())
    click.echo(
        f'A Teleport configuration file has been created at "{path}".\n'
        f'To start Teleport with this configuration file, run:\n\nteleport start --config="{path}"'
    )


@cli.group("join")
def join_group() -> None:
    """Join hosts to the cluster."""


@join_group.command("openssh")
@click.option("--proxy-server", required=True, help="The proxy's web address, HOST:PORT.")
@click.option(
    "--token", "token_file", required=True, help="File holding a join token of type node (0600)."
)
@click.option("--address", required=True, help="HOST:PORT where the proxy reaches this sshd.")
@click.option("--name", default=None, help="Node name users type (default: this host's name).")
@click.option("--hostname", default=None, help="The host's name (default: this host's name).")
@click.option("--labels", default="", help="Labels, e.g. env=prod,team=db.")
@click.option(
    "--additional-principals", default="", help="More names for the host certificate, a,b."
)
@click.option(
    "--openssh-config", default="/etc/ssh/sshd_config", show_default=True, help="sshd config."
)
@click.option(
    "--data-dir",
    default="/etc/ssh/teleport",
    show_default=True,
    help="Where the host key, certificate and user CA are written.",
)
@click.option("--restart-sshd", is_flag=True, help="Reload sshd after editing its config.")
@click.option(
    "--print", "print_only", is_flag=True, help="Print the sshd lines instead of editing it."
)
@click.option("--ca-pin", default="", help="The cluster's CA pin (tctl status), to trust it.")
@click.option("--insecure", is_flag=True, help="Do not verify the proxy's TLS certificate.")
def join_openssh(
    proxy_server: str,
    token_file: str,
    address: str,
    name: str | None,
    hostname: str | None,
    labels: str,
    additional_principals: str,
    openssh_config: str,
    data_dir: str,
    restart_sshd: bool,
    print_only: bool,
    ca_pin: str,
    insecure: bool,
) -> None:
    """Make this OpenSSH host a node: sign its host certificate, trust the user CA, register it."""
    host = socket.gethostname()
    request = openssh.JoinRequest(
        proxy=proxy_server,
        token_file=Path(token_file),
        name=name or host,
        addr=address,
        hostname=hostname or host,
        labels=parse_label_selector((labels,)) if labels else {},
        principals=tuple(split_csv(additional_principals)),
        data_dir=Path(data_dir),
        ca_pin=ca_pin,
        insecure=insecure,
    )
    joined = run_async(openssh.join(request))
    click.echo(
        f'Node "{request.name}" has joined the cluster; its host certificate names '
        f"{','.join(joined.principals)}."
    )
    lines = joined.sshd_lines()
    if print_only:
        click.echo("Add these lines to the top of sshd_config, then reload sshd:\n")
        click.echo("\n".join(lines))
        return
    config = Path(openssh_config)
    changed = openssh.edit_sshd_config(config, lines)
    click.echo(f"{config}: {'updated' if changed else 'already up to date'} (sshd -t passed).")
    if restart_sshd:
        click.echo(f"Reloaded sshd: {openssh.reload_sshd(config)}.")
    else:
        click.echo("Reload sshd to use it (or run this again with --restart-sshd).")


def main(argv: Sequence[str] | None = None) -> int:
    return invoke(cli, argv, "teleport")


if __name__ == "__main__":
    raise SystemExit(main())
