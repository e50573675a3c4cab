"""Surviving faults in a comparison: workers that die with their parent, and crashes that are not repeated forever.

* **Workers die with their parent.** A worker process calls :func:`die_with_parent` as it starts: on Linux the
  kernel sends it SIGKILL when its parent ends (``prctl(PR_SET_PDEATHSIG)``, which works even while the worker
  is deep in native code); elsewhere a watchdog thread ends it when its parent process is gone. A parent killed
  with SIGKILL cannot stop its workers itself, and orphans would go on computing rows no one writes.
  (``PR_SET_PDEATHSIG`` fires when the *thread* that started the worker ends; the runner starts and joins its
  workers within one call, in one thread.)
* **A crash is not repeated forever.** A sample that crashes a worker is retried once in a fresh worker and then
  recorded as failed (see ``_LocalPool``). A registrar that runs in the runner's own process (it uses a device,
  or it was registered in-process) cannot be isolated so: :class:`CrashJournal` writes down which samples are in
  flight before running them. A run that dies (a native crash, a SIGKILL) leaves them listed; the next run
  retries them once, and when the run dies again while they are in flight, records them as failed, with a
  message that says so, instead of dying on them at every resume.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from regkit.atomic import atomic_path

JOURNAL_NAME = ".inflight.json"
MAX_DEATHS = 2  # as many as the worker pool's tries: a first death is retried, a second one is recorded


def die_with_parent(parent_pid: int) -> None:
    """End this process when process ``parent_pid`` (its parent) ends; at once if it already has."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent ended before the call
                    os._exit(1)
                return
        except (OSError, AttributeError):  # no libc prctl: fall back on the watchdog
            pass
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="regkit-parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int, interval: float = 0.5) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os._exit(1)


def _key(label: str, start) -> str:
    return json.dumps([str(label), str(start.case), str(start.start_id), str(start.init)])


class CrashJournal:
    """``OUT/.inflight.json``: the samples running in this process, with how many runs died while they ran."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            doc = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, json.JSONDecodeError):
            doc = {}
        self.deaths: dict[str, int] = {k: v for k, v in doc.items() if isinstance(v, int) and v > 0}

    def prune(self, is_done: Callable[..., bool]) -> None:
        """Forget samples whose rows were written (a death just after writing them)."""
        kept = {k: v for k, v in self.deaths.items() if not is_done(*json.loads(k))}
        if kept != self.deaths:
            self.deaths = kept
            self._write()

    def _write(self) -> None:
        """Best effort: a journal that cannot be written (a full disk) only costs a repeated crash later."""
        try:
            if not self.deaths:
                self.path.unlink(missing_ok=True)
                return
            with atomic_path(self.path) as tmp:
                with open(tmp, "w") as fh:
                    fh.write(json.dumps(self.deaths, indent=0) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError:
            pass

    def _change(self, keys: Iterable[str], step: int) -> None:
        for k in keys:
            n = self.deaths.get(k, 0) + step
            if n > 0:
                self.deaths[k] = n
            else:
                self.deaths.pop(k, None)
        self._write()

    def run(self, tasks: Iterable, run_task: Callable, failed_rows: Callable[[object, str], list[dict]]
            ) -> Iterator[list[dict]]:
        """Run ``tasks`` in this process, yielding their rows; a task that was in flight when ``MAX_DEATHS`` runs
        died yields ``failed_rows(task, message)`` instead of running again."""
        for task in tasks:
            keys = [_key(task.method.label, s) for s in task.starts]
            if max(self.deaths.get(k, 0) for k in keys) >= MAX_DEATHS:
                yield failed_rows(task, f"the run died {MAX_DEATHS} times while this sample was registered in its "
                                        "process (a crash in native code?): recorded as failed, not tried again")
                self._change(keys, -MAX_DEATHS)
                continue
            self._change(keys, +1)
            try:
                rows = run_task(task)
                yield rows
            finally:  # the task ended, or an exception stopped the run: either way this process did not die
                self._change(keys, -1)
