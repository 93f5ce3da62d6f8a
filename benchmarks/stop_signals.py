"""How fast a stop signal ends a study: SIGINT and SIGTERM, to the driver and to its process group,
at moments spread over a batched study's run (the test suite tries four; this tries 10 of each).

Prints, per signal and target, each try's exit status and seconds from the signal to the driver's
exit, and whether any run process outlived it.

    .venv/bin/python benchmarks/stop_signals.py [--tries 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def one_try(sig: int, to_group: bool, after: float) -> tuple[int, float, bool]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "wdscale", "study", "run", "--out", out, "--task", "digits_mlp", "--sizes",
               "16,32", "--rules", "sum,decoupled", "--seeds", "4", "--epochs", "400", "--workers", "2",
               "--no-progress"]  # fmt: skip
        driver = subprocess.Popen(
            cmd,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.time() + 120
        while time.time() < deadline and not children(driver.pid):
            time.sleep(0.05)
        time.sleep(after)
        seen = children(driver.pid)
        sent = time.monotonic()
        os.killpg(driver.pid, sig) if to_group else driver.send_signal(sig)
        try:
            code = driver.wait(timeout=60)
        except subprocess.TimeoutExpired:
            driver.kill()
            code = driver.wait()
        took = time.monotonic() - sent
        time.sleep(1.0)
        return code, took, any(alive(p) for p in seen)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tries", type=int, default=10)
    args = p.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM):
        for to_group in (False, True):
            rows = [one_try(sig, to_group, 0.1 + 0.5 * i) for i in range(args.tries)]
            codes = sorted({c for c, _, _ in rows})
            slowest = max(t for _, t, _ in rows)
            orphans = sum(o for _, _, o in rows)
            target = "group" if to_group else "driver"
            print(f"{sig.name} to the {target}: exit {codes}, slowest stop {slowest:.2f} s, orphaned: {orphans} tries")


if __name__ == "__main__":
    main()
