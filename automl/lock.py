"""One writer per run directory: an advisory lock file holding the writer's pid and host.

``RunLock(run_dir).acquire()`` creates ``<run_dir>/.lock`` atomically (``O_CREAT | O_EXCL``) with
``{"pid", "host", "boot", "started", "argv"}``.  A second writer gets :class:`RunDirError` naming
the holder.  A lock is *stale* (and taken over, with a warning) when its host is this host and
its pid no longer runs, or runs but started after this boot with a different start time (pid
reuse); a lock from another host is never judged stale from here (we cannot see its processes):
the message says how to remove it.  Readers (``automl show``, ``plot``, ``reproduce``) never take
the lock: the log is append-only and state.json/run.json are replaced atomically.

Why not ``fcntl.flock``: advisory file locks are not reliable on network file systems (NFS,
Lustre), where shared run folders live on clusters, and a flock says nothing about *who* holds it.
An O_EXCL lock file works on every file system that matters and its content names the holder.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings
from typing import Any

from .errors import RunDirError

LOCK_FILE = ".lock"


def _proc_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), or None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = data[data.rfind(b")") + 2:].split()
    return fields[19].decode() if len(fields) > 19 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def holder_info() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _proc_start(os.getpid()),
            "started": time.time(), "argv": sys.argv[:8]}


class RunLock:
    """The writer's lock on a run directory (a context manager; released on exit)."""

    def __init__(self, run_dir: str):
        self.dir = run_dir
        self.path = os.path.join(run_dir, LOCK_FILE)
        self.held = False

    def read(self) -> dict[str, Any] | None:
        """The current holder's info, or None (no lock, or an unreadable one)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def is_stale(self, info: dict[str, Any] | None) -> bool:
        if info is None:  # empty or torn lock file: its writer died while writing it
            return True
        if info.get("host") != socket.gethostname():
            return False
        pid = info.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return True
        if not _alive(pid):
            return True
        start = info.get("start")
        return start is not None and _proc_start(pid) not in (None, start)  # pid reused by another process

    def acquire(self, create_dir: bool = False) -> "RunLock":
        """Take the lock (``create_dir``: make the run directory first); RunDirError when held."""
        if create_dir:
            try:
                os.makedirs(self.dir, exist_ok=True)
            except OSError as exc:
                raise RunDirError(f"cannot create run directory {self.dir}: {exc.strerror or exc}") from None
        if not os.path.isdir(self.dir):
            raise RunDirError(f"{self.dir} is not a directory")
        payload = json.dumps(holder_info()).encode()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = self.read()
                if not self.is_stale(info):
                    who = f"pid {info.get('pid')} on {info.get('host')}" if info else "another process"
                    raise RunDirError(
                        f"{self.dir} is in use by {who} (lock file {self.path}).  One process writes a run at a "
                        "time; read it with `automl show` meanwhile.  If that process is gone (e.g. it ran on "
                        "another machine that crashed), delete the lock file.") from None
                who = f"pid {info.get('pid')} on {info.get('host')}" if info else "a dead writer"
                warnings.warn(f"{self.dir}: removing the stale lock of {who}", stacklevel=2)
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            except OSError as exc:
                raise RunDirError(f"cannot lock run directory {self.dir}: {exc.strerror or exc}") from None
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.held = True
            return self
        raise RunDirError(f"{self.dir}: could not take the lock (another process keeps taking it)")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        info = self.read()
        if info is not None and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
