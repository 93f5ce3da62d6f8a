"""One job in its own process, watched by the driver: a forked worker (wdscale's loop, or the
user's `train_fn`) or the user's command. User code never runs in the driver, so a run that
exits, is killed, segfaults or hangs ends as that run's outcome, never the study's.

Each child leads its own process group (a terminal's Ctrl-C reaches the driver alone, which then
ends every child), dies with the driver (the kernel's parent-death signal), and is killed with
everything it started — launcher workers in sessions of their own included — when the driver
stops it.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..plan.config import RunConfig, RunResult
from .command import Command, RunFiles, command_result, write_spec
from .jobs import Job, Source, execute
from .placement import Slot

KILL_GRACE = 3.0  # seconds a command gets after SIGTERM (torchrun ends its workers) before SIGKILL


@dataclass(frozen=True)
class Died:
    """A job whose process ended without a result: why, in words."""

    cause: str


Outcome = Union[list[RunResult], Died]


def exit_cause(code: Optional[int]) -> str:
    """A process's end in words: a signal (with what usually sends it) or an exit status."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {"SIGKILL": " — out of memory?", "SIGSEGV": " — a segmentation fault", "SIGABRT": " — an abort"}
        return f"killed by {name}{hint.get(name, '')}"
    if code == 0:
        return "exit status 0 before returning a result (os._exit inside the run's code?)"
    return f"exit status {code}"


def warm_up() -> None:
    """What every forked run would otherwise import on its own, once in the driver before any fork:
    torch builds its first optimizer through `torch._dynamo` (a lazy import of ~1.5 s measured here,
    paid by every cold child: a 54-run study took 54 s instead of 11 s)."""
    p = torch.zeros(2, requires_grad=True)
    for opt in (torch.optim.AdamW([p]), torch.optim.Adam([p]), torch.optim.SGD([p], lr=0.1, momentum=0.9)):
        (p * p).sum().backward()
        opt.step()
        opt.zero_grad()


def _set_parent_death_signal(sig: int) -> None:
    """The kernel sends `sig` to this process when its parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, sig)


def descendants(pid: int) -> list[int]:
    """Every living process below `pid` (Linux /proc; elsewhere none): launchers such as torchrun
    start their workers in sessions of their own, out of the run's process group."""
    if not os.path.isdir("/proc"):
        return []
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send `sig` to the process group `pid` leads and to every process below it."""
    below = descendants(pid)
    for target in (lambda: os.killpg(pid, sig), *(lambda p=p: os.kill(p, sig) for p in below)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


class ForkedJob:
    """A job trained by `jobs.execute` in a forked process; its results come back through a pipe."""

    def __init__(
        self, job: Job, source: Source, device: str, threads: int, slot: Slot, log: Optional[Path] = None
    ) -> None:
        self.job, self.slot, self.started = job, slot, time.monotonic()
        ctx = mp.get_context("fork")
        self._conn, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_forked_main,
            args=(send, job, source, device, threads, slot.env(), os.getpid(), log),
            name="wdscale-run",
        )
        self._proc.start()
        send.close()
        assert self._proc.pid is not None  # started
        self.pid: int = self._proc.pid
        try:
            os.setpgid(self.pid, self.pid)  # also done in the child: whichever runs first
        except OSError:
            pass
        self._results: Optional[list[RunResult]] = None
        self._cause: Optional[str] = None

    def waitables(self) -> list[Any]:
        return [self._conn, self._proc.sentinel]

    def poll(self) -> Optional[Outcome]:
        """The outcome once the process has ended (None while it runs)."""
        if self._results is None and self._cause is None and self._conn.poll():
            try:
                kind, value = self._conn.recv()
            except (EOFError, OSError):
                kind, value = "eof", None
            if kind == "ok":
                self._results = value
            elif kind == "died":
                self._cause = value
        if self._proc.is_alive():
            if self._results is not None or self._cause is not None:
                self._proc.join(5.0)  # it exits right after sending
                if self._proc.is_alive():
                    kill_tree(self.pid)
                    self._proc.join()
            else:
                return None
        self._proc.join()
        self._conn.close()
        if self._results is not None:
            return self._results
        return Died(self._cause or exit_cause(self._proc.exitcode))

    def kill(self) -> None:
        kill_tree(self.pid)
        self._proc.join(5.0)
        self._conn.close()


def _forked_main(
    conn: Connection,
    job: Job,
    source: Source,
    device: str,
    threads: int,
    env: dict[str, str],
    driver_pid: int,
    log: Optional[Path],
) -> None:
    """The child: its own process group, tied to the driver, its GPU share, the job, the result."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != driver_pid:  # the driver died between fork and prctl
        os._exit(1)
    threading.Thread(target=_watch_driver, args=(driver_pid,), name="wdscale-driver-watch", daemon=True).start()
    os.environ.update(env)
    if log is not None:  # the run's own output goes to its log, not over the driver's progress bar
        log.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        # Python's streams too: a notebook or a test runner may have put others in their place
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    message: tuple[str, Any]
    try:
        message = ("ok", execute(job, source, device, threads))
    except SystemExit as e:
        message = ("died", f"sys.exit({e.code!r}) inside the run's code")
    except KeyboardInterrupt:
        message = ("died", "KeyboardInterrupt raised inside the run's code")
    except BaseException as e:  # noqa: BLE001 - execute records a run's own failures; this is anything else
        message = ("died", f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
    try:
        conn.send(message)
        conn.close()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # skip the driver's inherited exit handlers


def _watch_driver(driver_pid: int) -> None:
    """Exit if re-parented (systems without a parent-death signal)."""
    while os.getppid() == driver_pid:
        time.sleep(1.0)
    os._exit(1)


class CommandJob:
    """One run trained by the user's command, in a session of its own, its output to its log."""

    def __init__(
        self,
        job: Job,
        command: Command,
        weight_decay: float,
        device: str,
        threads: int,
        slot: Slot,
        out: Path,
    ) -> None:
        (config,) = job.configs
        self.job, self.slot, self.started, self.config = job, slot, time.monotonic(), config
        self.files = RunFiles.of(out, config.run_id)
        write_spec(self.files, config, "cuda" if slot.gpus and device.startswith("cuda") else device, threads)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), **slot.env(), **self.files.env()}
        argv = command.argv_for(config, weight_decay)
        with self.files.log.open("ab") as log:
            log.write(f"$ {shlex.join(argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                # a launcher (torchrun) ends its workers on SIGTERM: sent by the kernel if the driver dies
                preexec_fn=lambda: _set_parent_death_signal(signal.SIGTERM),
            )
        self.pid = self._popen.pid
        self._pidfd: Optional[int] = None
        if hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except OSError:
                self._pidfd = None

    def waitables(self) -> list[Any]:
        return [self._pidfd] if self._pidfd is not None else []

    def poll(self) -> Optional[Outcome]:
        code = self._popen.poll()
        if code is None:
            return None
        self._close()
        # whatever the script left running (a launcher's workers) ends with it
        kill_tree(self.pid)
        return [command_result(self.config, self.files, code, time.monotonic() - self.started, exit_cause(code))]

    def kill(self) -> None:
        kill_tree(self.pid, signal.SIGTERM)
        try:
            self._popen.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass
        kill_tree(self.pid, signal.SIGKILL)
        self._popen.wait()
        self._close()

    def _close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


Child = Union[ForkedJob, CommandJob]


def config_label(c: RunConfig) -> str:
    """A run named as a user would: rule, size, setting, lr, seed."""
    return f"{c.rule} {c.size_axis}={c.size} setting={c.setting:.3g} lr={c.lr:.3g} seed={c.seed}"
