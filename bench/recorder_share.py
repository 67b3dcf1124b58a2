"""``python -m bench.recorder_share [--size 1G]``: the recorder's share of the proxy's CPU in a
bulk transfer, sampled with py-spy (``pip install py-spy``).

One transfer of ``head -c SIZE /dev/zero`` down through the recording proxy while py-spy
samples the proxy process; the share is the fraction of samples whose stack is in the recorder
(events/recorder.py and the chunk format, events/chunks.py). The transfer's bytes are counted
(bench/transfer.py): a short transfer fails the figure instead of flattering it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from bench import transfer
from bench.__main__ import parse_size
from bench.lab import Lab, binary
from bench.route import Route

RECORDER_FILES = ("events/recorder.py", "events/chunks.py")


def share(collapsed: str) -> tuple[int, int]:
    """(samples in the recorder, all samples) from py-spy's collapsed (raw) output."""
    inside = total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        if any(name in stack for name in RECORDER_FILES):
            inside += int(count)
    return inside, total


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recorder_share")
    p.add_argument("--size", type=parse_size, default=parse_size("1G"))
    p.add_argument("--workdir", type=Path, default=Path("/tmp/pyteleport-recorder-share"))
    args = p.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    lab = Lab(args.workdir)
    try:
        lab.start()
        out = args.workdir / "profile.txt"
        spy = subprocess.Popen(
            [
                binary("py-spy"),
                "record",
                "--pid",
                str(lab.proxy.pid),
                "--format",
                "raw",
                "--rate",
                "200",
                "--output",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        done = threading.Event()
        result: list[transfer.Transfer] = []

        def move() -> None:
            try:
                result.append(transfer.measure(Route("proxy", lab), "down", args.size))
            finally:
                done.set()

        threading.Thread(target=move).start()
        done.wait()
        spy.send_signal(2)  # SIGINT: py-spy writes what it sampled
        spy.wait(timeout=60)
        if not result or not out.exists():
            print("recorder share: the transfer or the profile failed", file=sys.stderr)
            return 1
        inside, total = share(out.read_text())
        if not total:
            print("recorder share: py-spy took no samples", file=sys.stderr)
            return 1
        size_mib = args.size / (1 << 20)
        print(
            f"recorder share of the proxy's samples, {size_mib:g} MiB down: "
            f"{100 * inside / total:.1f} % ({inside} of {total} samples; "
            f"{result[0].mb_per_s:.1f} MB/s)"
        )
        return 0
    finally:
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
