"""A run directory: one live run at a time (an advisory lock), and the config it was started with.

The lock is ``flock`` on ``<out>/.lock``: the kernel drops it when the process ends, however it
ends, so a crashed or killed run never leaves a directory locked.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path


class ConfigMismatchError(ValueError):
    """The run directory holds a run of another configuration."""


class RunDirBusyError(ValueError):
    """Another live process is training into this run directory."""


class RunLock:
    """``with RunLock(out):`` holds the directory's lock; raises RunDirBusyError if taken."""

    def __init__(self, out: Path):
        self.path = Path(out) / ".lock"
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                holder = self.path.read_text().strip() or "another process"
                raise RunDirBusyError(f"{self.path.parent} is in use by a live run ({holder}); "
                                      f"wait for it to finish or use another --out") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def read_run_config(out: Path) -> dict | None:
    """The config a run directory was started with, or None for a new directory."""
    file = Path(out) / "config.json"
    if not file.exists():
        return None
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ConfigMismatchError(f"{file}: unreadable ({e}); use a new --out directory") from None


def write_run_config(out: Path, config: dict) -> None:
    file = Path(out) / "config.json"
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    tmp.replace(file)
