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


# ---- the data a run trains on: names and sizes, compared when it resumes ----

MANIFEST_NAME = "data_manifest.json"
_LISTED_FILES = 200_000  # above this, the manifest keeps only the count and a digest


class DataChangedError(ValueError):
    """The data folder changed between a run and its resumption."""


def data_manifest(dataset) -> dict | None:
    """Names (relative to the folder) and byte sizes of a folder dataset's files, or None for
    data without files (the embedded set, latent shards)."""
    import hashlib

    files, root = getattr(dataset, "files", None), getattr(dataset, "root", None)
    if files is None or root is None:
        return None
    rows = [(str(Path(f).relative_to(root)), os.stat(f).st_size) for f in files]
    digest = hashlib.sha256("\n".join(f"{n}\t{s}" for n, s in rows).encode()).hexdigest()
    return {"root": str(root), "count": len(rows), "sha256": digest,
            "files": rows if len(rows) <= _LISTED_FILES else None}


def check_data_manifest(out: Path, manifest: dict | None, allow_change: bool) -> None:
    """Refuse (DataChangedError) to resume a run whose data folder changed since the manifest
    it recorded, unless ``allow_change``."""
    file = Path(out) / MANIFEST_NAME
    if manifest is None or allow_change or not file.exists():
        return
    try:
        old = json.loads(file.read_text())
    except (OSError, ValueError):
        old = {}
    if old.get("sha256") == manifest["sha256"]:
        return
    was = {n: s for n, s in old.get("files") or []}
    now = {n: s for n, s in manifest["files"] or []}
    diff = ([f"added {n}" for n in sorted(set(now) - set(was))]
            + [f"removed {n}" for n in sorted(set(was) - set(now))]
            + [f"{n} changed size" for n in sorted(set(now) & set(was)) if now[n] != was[n]])
    detail = "; ".join(diff[:3]) + (f"; ... ({len(diff)} in all)" if len(diff) > 3 else "")
    raise DataChangedError(
        f"{manifest['root']}: the data changed since this run started ({old.get('count', '?')} "
        f"files then, {manifest['count']} now: {detail or 'other contents'}); pass "
        f"--allow-data-change to go on with the new data, or use a new --out directory")


def write_data_manifest(out: Path, manifest: dict | None) -> None:
    if manifest is not None:
        from swycc.io.outputs import write_text_atomic

        write_text_atomic(Path(out) / MANIFEST_NAME, json.dumps(manifest))
