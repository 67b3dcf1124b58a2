"""``tsh ls`` and ``tctl nodes ls``: the registered nodes, as Teleport prints them.

tsh ls [label=value ...] [--format text|json]   the nodes your roles let you reach
tctl nodes ls [--format text|json]               every node (tctl get nodes prints YAML)
"""

from __future__ import annotations

import json
from typing import Any

import click

from pyteleport.cli.runner import AuthConnection, run_async, table
from pyteleport.client.authclient import auth_client_for_profile
from pyteleport.model.node import parse_label_selector

FORMATS = ("text", "json")


def _labels(item: dict[str, Any]) -> dict[str, str]:
    labels = item.get("metadata", {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def _labels_text(item: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(_labels(item).items()))


def render(nodes: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(nodes, indent=2)
    rows = [
        [str(n["metadata"]["name"]), str(n["spec"]["addr"]), _labels_text(n)]
        for n in sorted(nodes, key=lambda n: str(n["metadata"]["name"]))
    ]
    return table(["Node Name", "Address", "Labels"], rows)


@click.command("ls")
@click.argument("labels", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
def tsh_ls(labels: tuple[str, ...], fmt: str) -> None:
    """List the nodes you may reach, optionally only those with every label=value given."""
    wanted = parse_label_selector(labels)

    async def go() -> list[dict[str, Any]]:
        client = auth_client_for_profile()
        try:
            return await client.list_nodes(reachable=True)
        finally:
            await client.aclose()

    nodes: list[dict[str, Any]] = run_async(go())
    nodes = [n for n in nodes if all(_labels(n).get(k) == v for k, v in wanted.items())]
    click.echo(render(nodes, fmt))


@click.group("nodes")
def nodes() -> None:
    """Registered nodes (add them with tctl create, remove them with tctl rm node/NAME)."""


@nodes.command("ls")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.pass_obj
def nodes_ls(conn: AuthConnection, fmt: str) -> None:
    """List every registered node."""
    click.echo(render(conn.call(lambda c: c.list_nodes()), fmt))


def register_tsh(group: click.Group) -> None:
    group.add_command(tsh_ls)


def register_tctl(group: click.Group) -> None:
    group.add_command(nodes)
