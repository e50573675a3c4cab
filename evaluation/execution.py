"""Running a comparison's samples, and containing their faults.

A :class:`Task` is one method on one case's starts; :func:`run_task` registers them and returns their
:class:`~regkit.evaluation.store.ResultRow` rows. Classical methods run in worker processes (:class:`LocalPool`,
spawned, one single-worker executor per slot; ITK and torch threads per worker = cores / workers, so the cores
are not oversubscribed), or on a Dask cluster (:class:`DaskPool`); deep methods run batched in the runner's
process (:func:`in_process`).

Faults: a failure of a method or a case is recorded in its rows, and so is a result that is not a sound
``RegistrationResult`` (:func:`regkit.registrar.check_results`); only a registrar that cannot be constructed at all,
or that cannot run with its options (:class:`~regkit.errors.ConfigurationError`), raises: a configuration error, the
same for every sample, stops the run at its first sample. A native crash takes down a worker, not the run: its task
is retried once, then recorded as failed (:func:`crashed_row`). Workers end with their parent
(:func:`regkit.evaluation.faults.die_with_parent`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from regkit.errors import ConfigurationError, InputError
from regkit.evaluation.faults import die_with_parent
from regkit.evaluation.method_specs import MethodSpec
from regkit.evaluation.store import ResultRow
from regkit.registrar import Registrar
from regkit.sre import sre
from regkit.starts import Start
from regkit.transform import RigidTransform


@dataclass
class Task:
    method: MethodSpec
    dataset: str
    case: str
    starts: list[Start]
    attempt: int = 0
    qa: bool = False  # measure each result's consistency (regkit.consistency)


_WORKER_CACHE: dict = {}


def _worker_setup(threads: int, parent_pid: int | None = None) -> None:
    """Per-process thread limits, set before ITK or torch start their thread pools; the worker ends with its parent."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("REGKIT_NO_PROGRESS", "1")
    if "torch" in sys.modules:  # else torch reads OMP_NUM_THREADS when a registrar imports it (no ~3 s import here)
        sys.modules["torch"].set_num_threads(threads)


def _cached(key, make):
    if key not in _WORKER_CACHE:
        _WORKER_CACHE[key] = make()
    return _WORKER_CACHE[key]


def run_task(task: Task) -> list[ResultRow]:
    """Register one case's starts with one method and return the result rows.

    A failure of a method or a case is recorded in its rows, and so is a result that is not a sound
    ``RegistrationResult`` (see :func:`regkit.registrar.check_results`). Only a registrar that cannot be constructed
    (:class:`InputError`), or that raises a :class:`ConfigurationError` (it cannot run with its options at all, e.g.
    elastix refuses its parameter map) raises: that is a configuration error, the same for every sample.
    """
    from regkit.consistency import check_safely
    from regkit.dataset import load_dataset
    from regkit.registrar import RegistrationResult, check_results

    spec = task.method
    case, results, error = None, None, ""
    reg = setup_registrar(spec)
    try:
        ds = _cached(("dataset", task.dataset), lambda: load_dataset(task.dataset))
        case = ds.load(task.case)
        pairs = [(case, s.transform) for s in task.starts]
        results = check_results(reg.register_many(pairs), pairs, spec.label)
    except ConfigurationError as exc:  # the registrar cannot run at all: the same for every sample, so stop here
        raise ConfigurationError(f"registrar {spec.label!r} ({spec.registrar}) cannot run with options {spec.options}"
                                 f" (the run stopped at {task.case}): {exc.what}",
                                 fix=f"{exc.fix + '; then ' if exc.fix else ''}correct the options (-O) and run the "
                                     "same command again (rows written before are kept)") from None
    except (Exception, SystemExit) as exc:  # a broken method or case is recorded, never fatal (even sys.exit())
        error = f"{type(exc).__name__}: {exc}"
    checks, note = check_safely(reg, pairs, results) if task.qa and results is not None else \
        ([None] * len(task.starts), "")
    rows = []
    for k, s in enumerate(task.starts):
        r = results[k] if results is not None else RegistrationResult.failure(s.transform, float("nan"), error)
        row = ResultRow.of_start(spec.label, s, status=r.status, message=r.message, runtime_s=float(r.runtime),
                                 transform=r.transform)
        if case is not None and case.ground_truth is not None:
            gt, pts = case.ground_truth, case.surface_points
            row.initial_sre = sre(s.transform, gt, pts)
            row.final_sre = sre(r.transform, gt, pts)
            stages = r.info.get("stage_transforms") or []
            if len(stages) > 1:
                row.stage1_sre = sre(stages[0], gt, pts)
                row.stages = _stages_column(r.info, [sre(t, gt, pts) for t in stages])
        if case is not None:
            _add_measures(row, case, r.transform)
        if checks[k] is not None:
            row.consistency_mm, row.suspect = checks[k].value_mm, checks[k].suspect
        elif note:
            row.message = "; ".join(m for m in (row.message, note) if m)
        rows.append(row)
    return rows


def _stages_column(info: dict, sres: list[float]) -> str:
    """Per-stage SRE (and, for a chain, the stage's registrar, runtime and status) as one JSON cell."""
    per_stage = {"registrar": info.get("stages"), "runtime_s": info.get("stage_runtimes"),
                 "status": info.get("stage_status")}
    rows = []
    for k, e in enumerate(sres):
        cell = {"stage": k + 1, "sre": round(float(e), 6)}
        for key, values in per_stage.items():
            if values and values[k] is not None:
                cell[key] = round(float(values[k]), 6) if key == "runtime_s" else values[k]
        rows.append(cell)
    return json.dumps(rows, separators=(",", ":"))


def _add_measures(row: ResultRow, case, transform: RigidTransform) -> None:
    """TRUS-label Dice and landmark TRE (mm) of a result, where the case has TRUS labels or landmarks."""
    from regkit.evaluation.measures import label_dice, landmark_tre

    if (dice := label_dice(case, transform)) is not None:
        row.final_dice = dice
    if (tre := landmark_tre(case, transform)) is not None:
        row.landmark_tre_mm = tre


def setup_registrar(spec: MethodSpec) -> Registrar:
    """The spec's registrar; an :class:`InputError` naming it and its options when it cannot be constructed."""
    try:
        return _registrar_of(spec)
    except Exception as exc:
        raise InputError(f"registrar {spec.label!r} ({spec.registrar}) cannot be set up with options {spec.options}: "
                         f"{type(exc).__name__}: {exc}", fix="correct the options (-O) and run again: nothing was "
                         "recorded for it") from None


def _registrar_of(spec: MethodSpec) -> Registrar:
    """The spec's registrar, constructed once per process."""
    from regkit.registry import get_registrar

    if not isinstance(spec.registrar, str):
        return spec.registrar
    key = ("registrar", spec.label, spec.registrar, json.dumps(spec.options, sort_keys=True, default=str))
    return _cached(key, lambda: get_registrar(spec.registrar, **spec.options))


def in_process(spec: MethodSpec, scheduler) -> bool:
    """Run in this process: a registrar that uses a device (one model on it), one other processes cannot
    construct, or one that says it is cheap pure Python, unless a Dask scheduler takes every task."""
    return scheduler is None and (spec.capabilities.uses_device or not spec.portable or spec.capabilities.in_process)


def check_main_guard() -> None:
    """An :class:`InputError` when this process runs a script whose top level, outside ``if __name__ ==
    "__main__":``, is what calls regkit now: the worker processes a comparison starts (spawned, so that a crash in
    native code is contained) each import the script again, and would run it again, comparison and all."""
    where = unguarded_main_call()
    if where is not None:
        path, line = where
        raise InputError(
            f"{path}, line {line}, starts a comparison at the script's top level: regkit.compare starts worker "
            "processes, and each imports the script again (Python's spawn start method), so each would run the "
            "script, and the comparison, again",
            fix='put the script\'s work (all but its imports and definitions) under `if __name__ == "__main__":`, '
                "then run it again")


def unguarded_main_call() -> tuple[str, int] | None:
    """``(script, line)`` of the main script's top-level statement running now, when it lies outside every
    ``if __name__ == "__main__":`` block; None when it lies inside one, or when there is no script (``python -c``,
    a notebook, an interactive session)."""
    import ast
    from pathlib import Path

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    frame = sys._getframe()
    while frame is not None and not (frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)):
        frame = frame.f_back
    if frame is None or not path:
        return None
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(path).read_bytes(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    statement = next((n for n in tree.body if n.lineno <= line <= (n.end_lineno or n.lineno)), None)
    if statement is None:
        return None
    for node in ast.walk(statement):
        if isinstance(node, ast.If) and (test := _main_test(node.test)) is not None:
            guarded = node.body if test else node.orelse
            if any(b.lineno <= line <= (b.end_lineno or b.lineno) for b in guarded):
                return None
    return str(path), line


def _main_test(test) -> bool | None:
    """True for ``__name__ == "__main__"``, False for ``__name__ != "__main__"``, None for any other test."""
    import ast

    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq | ast.NotEq)):
        return None
    sides = [test.left, test.comparators[0]]
    names = [isinstance(s, ast.Name) and s.id == "__name__" for s in sides]
    values = [isinstance(s, ast.Constant) and s.value == "__main__" for s in sides]
    if (names[0] and values[1]) or (names[1] and values[0]):
        return isinstance(test.ops[0], ast.Eq)
    return None


class LocalPool:
    """Worker processes (spawned), one single-worker executor per slot: a crash (e.g. a segfault in native code)
    takes down only the task that caused it, which is retried once and then recorded as failed."""

    def __init__(self, workers: int, threads: int):
        import multiprocessing as mp

        self.threads = threads
        self.ctx = mp.get_context("spawn")
        self.slots = [self._new() for _ in range(workers)]

    def _new(self):
        return ProcessPoolExecutor(1, mp_context=self.ctx, initializer=_worker_setup,
                                   initargs=(self.threads, os.getpid()))

    def run(self, tasks: list[Task]) -> Iterator[list[ResultRow]]:
        from collections import deque

        queue, running, free = deque(tasks), {}, list(range(len(self.slots)))
        while queue or running:
            while queue and free:
                slot = free.pop()
                task = queue.popleft()
                running[self.slots[slot].submit(run_task, task)] = (slot, task)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                slot, task = running.pop(fut)
                free.append(slot)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    self.slots[slot].shutdown(wait=False, cancel_futures=True)
                    self.slots[slot] = self._new()
                    if task.attempt >= 1:
                        yield [crashed_row(task, s, "the worker process crashed twice") for s in task.starts]
                    else:
                        task.attempt += 1
                        queue.appendleft(task)

    def close(self, cancel: bool = False) -> None:
        for slot in self.slots:
            slot.shutdown(wait=not cancel, cancel_futures=cancel)


def crashed_row(task: Task, s: Start, message: str) -> ResultRow:
    """The row of a start whose registration took its process down: failed, the start stands as the result
    (its SREs are filled in by the runner, which has the case)."""
    return ResultRow.of_start(task.method.label, s, status="failed", message=message, transform=s.transform)


class DaskPool:
    def __init__(self, scheduler, threads: int):
        from distributed import Client

        try:
            self.client = scheduler if hasattr(scheduler, "submit") else Client(scheduler)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise InputError(f"cannot connect to the Dask scheduler {scheduler!r}: {type(exc).__name__}: {exc}",
                             fix="start the scheduler and its workers (`dask scheduler`, `dask worker ADDRESS`), or "
                                 "check the address") from None
        self.own = not hasattr(scheduler, "submit")
        self.client.run(_worker_setup, threads)

    def run(self, tasks: list[Task]) -> Iterator[list[ResultRow]]:
        from distributed import as_completed

        futures = {self.client.submit(run_task, t, pure=False): t for t in tasks}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except InputError:  # the registrar cannot be set up: a configuration error, not a sample's failure
                raise
            except Exception as exc:  # e.g. KilledWorker: the task crashed its workers
                task = futures[fut]
                yield [crashed_row(task, s, f"dask: {type(exc).__name__}: {exc}") for s in task.starts]

    def close(self, cancel: bool = False) -> None:
        if self.own:
            self.client.close()
