"""The table: one row per figure, a column per route (median, min-max of the runs), the proxy's
ratio to each baseline measured in the same run, the target of issue #5 and whether it is met."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.stats import Figure

COLUMNS = ("proxy", "jump", "direct", "pipe")
HEADINGS = {"proxy": "proxy", "jump": "ssh -J", "direct": "direct", "pipe": "byte pipe"}
RATIO_BASES = ("jump", "direct", "pipe")


@dataclass(frozen=True, slots=True)
class Target:
    """``proxy`` ≥/≤ ``bound``, or ``proxy / base`` ≥/≤ ``bound`` when ``base`` is set."""

    op: str  # ">=", "<=", "<"
    bound: float
    base: str = ""

    def met(self, proxy: float, base: float | None) -> bool | None:
        if self.base and not base:
            return None
        value = proxy / base if base else proxy
        if math.isnan(value):
            return None
        if self.op == ">=":
            return value >= self.bound
        if self.op == "<=":
            return value <= self.bound
        return value < self.bound

    def describe(self, unit: str) -> str:
        if self.base:
            return f"{self.op} {self.bound:g}x {HEADINGS[self.base]}"
        return f"{self.op} {self.bound:g} {unit}"


@dataclass(frozen=True, slots=True)
class Row:
    key: str  # stable name: the smoke test and the JSON output use it
    label: str
    unit: str
    values: dict[str, Figure]
    target: Target | None = None
    digits: int = 1
    notes: dict[str, Any] = field(default_factory=dict)
    # Samples that failed (a session that did not open, a keystroke that timed out), by route:
    # shown in the table and failing the run, never dropped from the figure.
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> str:
        return ", ".join(f"{HEADINGS[r]} {n}" for r, n in self.failures.items() if n)

    def ratio(self, base: str) -> float | None:
        proxy, other = self.values.get("proxy"), self.values.get(base)
        if proxy is None or other is None or not proxy.samples or not other.samples:
            return None
        if other.median == 0:
            return None
        return proxy.median / other.median

    def met(self) -> bool | None:
        if self.target is None or "proxy" not in self.values:
            return None
        base = self.values.get(self.target.base) if self.target.base else None
        return self.target.met(self.values["proxy"].median, base.median if base else None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "values": {
                route: {
                    "median": fig.median,
                    "min": fig.low,
                    "max": fig.high,
                    "samples": list(fig.samples),
                }
                for route, fig in self.values.items()
            },
            "ratios": {base: self.ratio(base) for base in RATIO_BASES if self.ratio(base)},
            "target": self.target.describe(self.unit) if self.target else None,
            "met": self.met(),
            "failures": self.failures,
            "notes": self.notes,
        }


def cell(figure: Figure | None, digits: int) -> str:
    if figure is None or not figure.samples:
        return "—"
    if len(figure.samples) == 1 or figure.low == figure.high:
        return f"{figure.median:.{digits}f}"
    return f"{figure.median:.{digits}f} ({figure.low:.{digits}f} .. {figure.high:.{digits}f})"


def render(rows: list[Row]) -> str:
    """A Markdown table: readable in a terminal and pasted as is into docs/performance.md."""
    head = ["figure", *(HEADINGS[c] for c in COLUMNS)]
    head += [f"proxy / {HEADINGS[b]}" for b in RATIO_BASES] + ["target", "met", "failed"]
    lines = [head]
    for row in rows:
        ratios = []
        for base in RATIO_BASES:
            value = row.ratio(base)
            ratios.append("—" if value is None else f"{value:.2f}")
        met = row.met()
        lines.append(
            [
                f"{row.label} ({row.unit})",
                *(cell(row.values.get(c), row.digits) for c in COLUMNS),
                *ratios,
                row.target.describe(row.unit) if row.target else "",
                {True: "yes", False: "**no**", None: ""}[met],
                f"**{row.failed}**" if row.failed else "",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def failed_rows(rows: list[Row]) -> list[Row]:
    return [row for row in rows if row.failed]
