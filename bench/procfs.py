"""CPU time and memory of a process, read from /proc (Linux only)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU of ``pid``; with ``children``, also that of the children it reaped
    (an sshd listener reaps every per-connection sshd, so this is the jump host's total)."""
    fields = _stat_fields(pid)
    # man proc(5): utime is field 14, stime 15, cutime 16, cstime 17; ``fields`` starts at 3.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid``, of the children it reaped, and of every live process below it: the
    whole cost of a forking server such as sshd, even while its sessions are open."""
    total = cpu_seconds(pid, children=True)
    for child in descendants(pid):
        try:
            total += cpu_seconds(child, children=True)
        except (OSError, ValueError):
            continue
    return total


def parent_pid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for process {pid}")


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            children.setdefault(parent_pid(int(entry)), []).append(int(entry))
        except (OSError, ValueError):
            continue  # ended while we looked
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages split among the processes that map them, so the
    sum over many forked sshd processes is what they really cost."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise ValueError(f"no Pss for process {pid}")


def tree_pss_kib(pid: int, *, include_root: bool = False) -> int:
    total = 0
    for child in descendants(pid) + ([pid] if include_root else []):
        try:
            total += pss_kib(child)
        except (OSError, ValueError):
            continue
    return total


@dataclass
class RssSampler:
    """Samples a process's RSS on a thread while a measurement runs."""

    pid: int
    interval_s: float = 0.05
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.samples.append(rss_kib(self.pid))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(rss_kib(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.samples.append(rss_kib(self.pid))
            except OSError:
                return

    @property
    def growth_kib(self) -> int:
        """Largest RSS seen during the measurement minus the RSS at its start."""
        return max(self.samples) - self.samples[0]
