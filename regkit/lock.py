"""One run per folder: an exclusive lock held for the whole run, that names its holder to whoever is refused.

The lock is ``fcntl.flock`` on ``FOLDER/.regkit.lock``. The operating system releases it when its holder ends,
however it ends (a SIGKILL, a crash, a power cut on the holder's host), so a killed run never leaves a stale
lock behind: the next run takes it and resumes. While it is held, the file names the holder (process id, host,
command and start time), and a second run on the folder stops at once with an error that says so.

Worker processes never hold it: its file descriptor is not inherited (Python opens files non-inheritable).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from regkit.errors import FolderInUseError, InputError

LOCK_NAME = ".regkit.lock"


def command_line() -> str:
    """This process's command line, as a user would type it (``regkit compare ...``)."""
    argv = list(sys.argv) or ["python"]
    first = Path(argv[0]).name or "python"
    return " ".join([first, *(shlex.quote(a) for a in argv[1:])])


@contextmanager
def hold_folder(folder: str | Path, what: str = "run") -> Iterator[dict]:
    """Hold ``folder``'s lock for the ``with`` block; yield the holder record written into the lock file.

    Raises
    ------
    FolderInUseError
        Another process holds the lock: the message names it (pid, host, command, start time).
    InputError
        The lock file cannot be created (the folder is missing or not writable).
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"cannot create the {what}'s lock file: {exc.strerror}", path,
                         "give an output folder you can write") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise FolderInUseError(_busy_message(folder, holder, what)) from None
    except OSError as exc:  # a file system without locks (some network mounts): say so, and go on unprotected
        warnings.warn(f"{folder}: this file system cannot lock files ({exc.strerror}), so nothing stops a second "
                      f"{what} on this folder while this one runs", RuntimeWarning, stacklevel=3)
    except BaseException:
        os.close(fd)
        raise
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command_line(),
              "started": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"), "what": what}
    try:
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        yield record
    finally:
        try:
            os.ftruncate(fd, 0)  # the record describes a live holder only
        except OSError:
            pass
        os.close(fd)  # releases the lock


def _read_holder(fd: int) -> dict:
    """The holder's record; it writes it just after taking the lock, so wait a moment for it if it is empty."""
    for _ in range(20):
        raw = os.pread(fd, 4096, 0)
        if raw.strip():
            try:
                doc = json.loads(raw.decode(errors="replace"))
                return doc if isinstance(doc, dict) else {}
            except json.JSONDecodeError:
                pass
        time.sleep(0.05)
    return {}


def _busy_message(folder: Path, holder: dict, what: str) -> str:
    who = (f"process {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"
           f", running `{holder.get('command', '?')}`") if holder else "a process that has not said who it is yet"
    return (f"{folder} is in use by another {holder.get('what', what)}: {who}. One run per folder: a second one "
            "would repeat its work and write its rows twice. Fix: wait for that run to end (or stop it), then run "
            "the same command to resume; or give another output folder")
