"""Whether a process is still alive: who this process is, written for a lease's holder, and the
one reading of such a holder.

A holder reads ``host:pid:start:tag`` (``start`` is the process's start time in clock ticks
after boot, ``-`` where it cannot be read; ``tag`` six random hex digits), and a user of the
lease may add ``:more`` (what in the process holds it). A process of this host is alive while
its pid runs *and* started at that time, so a pid the system has given to a new process is not
taken for the holder. Of another host nothing can be told here: its leases lapse on their own.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")

# host:pid:start:tag[:more]; before start times were written, host:pid:tag[:more]
_HOLDER = re.compile(r"(?P<host>[^:]+):(?P<pid>\d+):(?P<start>\d+|-):(?P<tag>[0-9a-f]{6})(?::.*)?")
_OLD_HOLDER = re.compile(r"(?P<host>[^:]+):(?P<pid>\d+)(?::.*)?")


@dataclass(frozen=True)
class ProcessId:
    """A process as a holder names it."""

    host: str
    pid: int
    started: int | None  # clock ticks after boot; None: not known

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"

    @property
    def here(self) -> bool:
        """Whether it is a process of this host."""
        return self.host == hostname()


@functools.cache
def hostname() -> str:
    return socket.gethostname()


def _stat(pid: int) -> tuple[bytes, int]:
    """The state letter and start time of ``pid`` from /proc (FileNotFoundError: there is no
    such process)."""
    raw = (PROC / str(pid) / "stat").read_bytes()
    # the command name (field 2) is in parentheses and may hold spaces and parentheses
    fields = raw[raw.rindex(b")") + 2 :].split()
    return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)


def start_time(pid: int) -> int | None:
    """When process ``pid`` of this host started (clock ticks after boot), if /proc says."""
    try:
        return _stat(pid)[1]
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: int, started: int | None = None) -> bool:
    """Whether process ``pid`` of this host runs (and, when ``started`` is given, is the one
    that started then). True when it cannot be told."""
    if pid <= 0:
        return False
    if (PROC / "self" / "stat").exists():
        try:
            state, start = _stat(pid)
        except FileNotFoundError:
            return False  # /proc is there and the process is not
        except (OSError, ValueError, IndexError):
            return True
        if state in (b"Z", b"X"):  # exited, not yet reaped by its parent
            return False
        return started is None or start == started
    try:  # no /proc: only whether the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process, alive
        return True
    return True


def process_identity() -> str:
    """Who this process is, for leases and for the operator: host, pid, start time and a
    random tag (the tag tells apart two holders in one process)."""
    started = start_time(os.getpid())
    return (
        f"{hostname()}:{os.getpid()}:{'-' if started is None else started}:{secrets.token_hex(3)}"
    )


def parse_holder(holder: str) -> ProcessId | None:
    """The process a lease's holder names, or None when it names none (a task's own name)."""
    found = _HOLDER.fullmatch(holder)
    if found is not None:
        start = found["start"]
        return ProcessId(found["host"], int(found["pid"]), None if start == "-" else int(start))
    found = _OLD_HOLDER.fullmatch(holder)
    if found is not None:
        return ProcessId(found["host"], int(found["pid"]), None)
    return None


def holder_dead(holder: str) -> bool:
    """Whether ``holder`` names a process of this host that is no longer running. False for
    a process of another host and for a holder that names no process: nothing can be told."""
    process = parse_holder(holder)
    return process is not None and process.here and not process_alive(process.pid, process.started)
