"""``regkit compare``: every method on every (case, start), paired statistics, tables and plots.

The run is resumable: per-sample results are appended to ``OUT/results.csv`` as they finish, and running the
same command again skips what is done. Classical methods run over samples in worker processes (ITK and torch
threads per worker = cores / workers, so the cores are not oversubscribed); deep methods run batched in the
main process, all starts of a case in one batch. With ``scheduler="tcp://host:port"`` the same tasks go to a
Dask distributed cluster instead (the dataset folder must be readable by the workers).

Faults (see :mod:`regkit.evaluation.faults` and :mod:`regkit.evaluation.arguments`): the arguments, the registrars'
options (by their types) and the data are checked before any work; one run holds ``OUT`` at a time (a lock that
names its holder to a second run); classical methods run in worker processes even with one worker, which end with
their parent, so a native crash takes down a worker, not the run; a registrar's result that is not a finite rigid
``RegistrationResult`` becomes a failed row naming it; a full disk stops the run with a named error, keeping every
row written.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from regkit.atomic import write_text
from regkit.errors import InputError
from regkit.evaluation.arguments import one_run_per_folder
from regkit.evaluation.faults import JOURNAL_NAME, CrashJournal, die_with_parent
from regkit.evaluation.store import ResultStore
from regkit.registrar import Capabilities, Registrar
from regkit.sre import sre
from regkit.starts import Start, make_starts, parse_init, read_starts, write_starts
from regkit.transform import RigidTransform

DEFAULT_STARTS_PER_CASE = 3


@dataclass
class MethodSpec:
    """A method of a comparison: its label in the tables, the registrar (name or object) and its options."""

    label: str
    registrar: str | Registrar
    options: dict = field(default_factory=dict)
    title: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)
    local: bool = False  # declared in this process only (register_registrar), not through an entry point

    @property
    def portable(self) -> bool:
        """Can run in another process: an entry-point registrar, not an object or an in-process registration."""
        return isinstance(self.registrar, str) and not self.local


def parse_methods(methods: str | Sequence, options: dict[str, dict] | None = None) -> list[MethodSpec]:
    """Methods from ``"mi,mind,attreg"``, aliases ``"milabel=mi"``, or a list of names and Registrar objects.

    Options are checked against each registrar's signature here, before any work.
    """
    from regkit.registry import check_options, declaration

    options = options or {}
    items = [m.strip() for m in methods.split(",") if m.strip()] if isinstance(methods, str) else list(methods)
    if not items:
        raise InputError("no methods given", fix="e.g. --methods mi,mind,attreg")
    specs, labels = [], set()
    for item in items:
        if isinstance(item, str):
            label, _, name = item.partition("=")
            label, name = label.strip(), (name or label).strip()
            if not label or not name:
                raise InputError(f"method {item!r} has an empty name or alias", fix="write NAME or ALIAS=NAME, e.g. "
                                 "milabel=mi")
            decl = declaration(name)
            check_options(decl, options.get(label, {}), label)
            title = decl.display_title if label == name else label
            spec = MethodSpec(label, name, dict(options.get(label, {})), title, decl.capabilities,
                              local=decl.source == "local")
        elif isinstance(item, Registrar):
            spec = MethodSpec(item.name, item, {}, item.name, item.capabilities)
        else:
            raise InputError(f"a method must be a registrar name or a Registrar object, got {item!r}",
                             fix="a registrar needs name, capabilities, register() and register_many(): subclass "
                                 "regkit.RegistrarBase")
        if spec.label in labels:
            raise InputError(f"method {spec.label!r} is listed twice", fix="give one an alias: other=name")
        labels.add(spec.label)
        specs.append(spec)
    unknown = set(options) - labels
    if unknown:
        raise InputError(f"options given for methods not in --methods: {sorted(unknown)}")
    return specs


def parse_method_options(items: Iterable[str]) -> dict[str, dict]:
    """``["mi.iterations=300", "attreg.checkpoint=runs/x/best"]`` → ``{"mi": {"iterations": 300}, ...}``."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, opt = key.partition(".")
        if not sep or not dot or not method or not opt:
            raise InputError(f"cannot read method option {item!r}",
                             fix="write METHOD.OPTION=VALUE, e.g. mi.iterations=300")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if opt in out.get(method, {}):
            raise InputError(f"method option {method}.{opt} is given twice", fix="give each option once")
        out.setdefault(method, {})[opt] = parsed
    return out


# ---------------------------------------------------------------------------------------------- tasks
@dataclass
class Task:
    method: MethodSpec
    dataset: str
    case: str
    starts: list[Start]
    attempt: int = 0


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


def run_task(task: Task) -> list[dict]:
    """Register one case's starts with one method and return the result rows.

    A failure of a method or a case is recorded in its rows, and so is a result that is not a sound
    ``RegistrationResult`` (see :func:`regkit.registrar.check_results`). Only a registrar that cannot be constructed
    at all raises (:class:`InputError`): that is a configuration error, the same for every sample.
    """
    from regkit.dataset import load_dataset
    from regkit.registrar import RegistrationResult, check_results

    spec = task.method
    case, results, error = None, None, ""
    reg = _setup_registrar(spec)
    try:
        ds = _cached(("dataset", task.dataset), lambda: load_dataset(task.dataset))
        case = ds.load(task.case)
        pairs = [(case, s.transform) for s in task.starts]
        results = check_results(reg.register_many(pairs), pairs, spec.label)
    except (Exception, SystemExit) as exc:  # a broken method or case is recorded, never fatal (even sys.exit())
        error = f"{type(exc).__name__}: {exc}"
    rows = []
    for k, s in enumerate(task.starts):
        r = results[k] if results is not None else RegistrationResult.failure(s.transform, float("nan"), error)
        row = {"method": spec.label, "case": s.case, "start_id": s.start_id, "init": s.init,
               "target_sre": s.target_sre, "status": r.status, "message": r.message, "runtime_s": float(r.runtime)}
        if case is not None and case.ground_truth is not None:
            gt, pts = case.ground_truth, case.surface_points
            row["initial_sre"] = sre(s.transform, gt, pts)
            row["final_sre"] = sre(r.transform, gt, pts)
            stages = r.info.get("stage_transforms") or []
            if len(stages) > 1:
                row["stage1_sre"] = sre(stages[0], gt, pts)
                row["stages"] = _stages_column(r.info, [sre(t, gt, pts) for t in stages])
        if case is not None:
            row.update(_extra_measures(case, r.transform))
        row.update(_matrix_columns(r.transform))
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


def _extra_measures(case, transform: RigidTransform) -> dict[str, float]:
    """TRUS-label Dice and landmark TRE of a result, where the case has TRUS labels or landmarks."""
    from regkit.evaluation.measures import label_dice, landmark_tre

    out = {"final_dice": label_dice(case, transform), "final_tre": landmark_tre(case, transform)}
    return {k: v for k, v in out.items() if v is not None}


def _setup_registrar(spec: MethodSpec) -> Registrar:
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


def _in_process(spec: MethodSpec, scheduler) -> bool:
    """Run in this process: a registrar that uses a device (one model on it), one other processes cannot
    construct, or one that says it is cheap pure Python, unless a Dask scheduler takes every task."""
    return scheduler is None and (spec.capabilities.uses_device or not spec.portable or spec.capabilities.in_process)


def _matrix_columns(t: RigidTransform) -> dict[str, float]:
    return {f"t_m{i // 4}{i % 4}": float(v) for i, v in enumerate(t.matrix[:3].ravel())}


class _LocalPool:
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

    def run(self, tasks: list[Task]) -> Iterator[list[dict]]:
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
                        yield [_crashed_row(task, s, "the worker process crashed twice") for s in task.starts]
                    else:
                        task.attempt += 1
                        queue.appendleft(task)

    def close(self, cancel: bool = False) -> None:
        for slot in self.slots:
            slot.shutdown(wait=not cancel, cancel_futures=cancel)


def _crashed_row(task: Task, s: Start, message: str) -> dict:
    return {"method": task.method.label, "case": s.case, "start_id": s.start_id, "init": s.init,
            "target_sre": s.target_sre, "status": "failed", "message": message,
            "runtime_s": float("nan"), **_matrix_columns(s.transform)}


class _DaskPool:
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

    def run(self, tasks: list[Task]) -> Iterator[list[dict]]:
        from distributed import as_completed

        futures = {self.client.submit(run_task, t, pure=False): t for t in tasks}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except InputError:  # the registrar cannot be set up: a configuration error, not a sample's failure
                raise
            except Exception as exc:  # e.g. KilledWorker: the task crashed its workers
                task = futures[fut]
                yield [_crashed_row(task, s, f"dask: {type(exc).__name__}: {exc}") for s in task.starts]

    def close(self, cancel: bool = False) -> None:
        if self.own:
            self.client.close()


# ---------------------------------------------------------------------------------------------- results
@dataclass
class CompareResult:
    """What a comparison returns: the per-sample table, the summaries, the paired tests and the files."""

    samples: pd.DataFrame
    summary: pd.DataFrame
    tests: pd.DataFrame
    out: Path
    tables: dict[str, str]
    provenance: dict
    ranks: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return f"CompareResult({len(self.samples)} samples, {self.samples['method'].nunique()} methods, out={self.out})"


def _check_same_starts(path: Path, starts: list[Start]) -> list[Start]:
    """Starts already in ``path`` merged with ``starts``; an error if any key holds another transform."""
    old = {(s.case, s.start_id, s.init): s for s in read_starts(path)} if path.exists() else {}
    for s in starts:
        o = old.get((s.case, s.start_id, s.init))
        if o is not None and not np.allclose(o.transform.matrix, s.transform.matrix, atol=1e-9):
            raise InputError(
                f"{path} holds different starts for {s.case} #{s.start_id} ({s.init}): this folder was made with "
                "another seed, dataset or starts file", path, "use a new --out folder, or the same inputs")
    return list({**old, **{(s.case, s.start_id, s.init): s for s in starts}}.values())


def _load_or_make_starts(out: Path, cases, init: str, per_case: int, seed: int, starts_file) -> list[Start]:
    if starts_file is not None:
        ids = {c.case_id for c in cases}
        starts = [s for s in read_starts(starts_file) if s.case in ids]
        if not starts:
            raise InputError("the starts file has no start for the chosen cases", starts_file)
    else:
        starts = make_starts(cases, init, per_case, seed)
    write_starts(_check_same_starts(out / "starts.csv", starts), out / "starts.csv")
    return starts


def _check_same_methods(path: Path, specs: list[MethodSpec], settings: dict[str, dict | None],
                        with_rows: set[str]) -> None:
    """A resumed folder must run a label that has rows (``with_rows``) with the same registrar, options and
    resolved ``settings`` as before; settings that recorded nothing spoil nothing."""
    if not path.exists():
        return
    try:
        before = {m["label"]: m for m in json.loads(path.read_text()).get("methods", [])}
    except (json.JSONDecodeError, AttributeError):
        return
    for s in specs:
        m = before.get(s.label)
        if m is None or not isinstance(s.registrar, str) or s.label not in with_rows:
            continue
        if m["registrar"] != s.registrar or m["options"] != s.options:
            raise InputError(
                f"this folder holds results of {s.label!r} run as {m['registrar']} with options {m['options']}; "
                f"now it is {s.registrar} with {s.options}", path,
                "use a new --out folder, or an alias (NEW=REGISTRAR) for the new settings")
        now = settings[s.label]
        if m.get("settings") is not None and m["settings"] != now:
            raise InputError(
                f"this folder holds results of {s.label!r} run with the settings {m['settings']}; this regkit would "
                f"run it with {now} (its defaults changed), so the results would mix", path,
                "use a new --out folder, or pass the old settings as options (-O) to resume with them")


@one_run_per_folder
def compare(methods: str | Sequence = "mi,mind,attreg", init: str = "8mm", data: str | Path | None = None,
            split: str = "test", cases: int | None = None, starts_per_case: int = DEFAULT_STARTS_PER_CASE,
            seed: int = 0, out: str | Path = "regkit-compare", workers: int | None = None,
            reference: str | None = None, scheduler=None, method_options: dict[str, dict] | None = None,
            starts_file: str | Path | None = None, show_progress: bool = True, echo=print,
            compare: str | Sequence | None = None) -> CompareResult:
    """Run a comparison (see the module docstring) and return its results.

    Parameters
    ----------
    methods : str or sequence
        Registry names (``"mi,mind,attreg"``), aliases (``"milabel=mi"``) or Registrar objects.
    init : str
        Starting errors: ``8mm``, ``0-20mm`` or a list ``8mm,16mm``.
    data : path, optional
        Dataset folder; default the built-in benchmark.
    split, cases, starts_per_case, seed
        Which cases (the first ``cases`` of ``split``) and how many starts per case, drawn with ``seed``.
    out : path
        Output folder; running again with the same folder resumes.
    workers : int, optional
        Processes for classical methods (default: the number of cores).
    reference : str, optional
        The reference method of the default comparisons [``identity`` if listed, else the first method].
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (or client) to run the tasks on.
    method_options : dict, optional
        ``{label: {option: value}}`` passed to the registrars.
    starts_file : path, optional
        Use these starts (a file written by :func:`regkit.starts.write_starts`) instead of drawing them.
    compare : str or sequence, optional
        The comparisons to test, which are also the Holm family: ``"A:B"`` pairs (``METHOD@K`` for stage ``K`` of
        a cascade), ``reference``, ``all`` or ``paper`` (see :func:`regkit.evaluation.stats.comparisons`);
        default ``"reference,paper"``: every method against the reference, and the paper's claims whose methods
        are present. A cascade compared by its final result brings the comparison of its first stage.
    split : str
        A split of the dataset, or ``all`` for every case of it.
    """
    from regkit.evaluation import plots, provenance, stats, tables
    from regkit.progress import progress
    from regkit.registry import declaration, parameter_count, resolved_settings

    out = Path(out)  # made by @one_run_per_folder
    specs = parse_methods(methods, method_options)
    stats.comparisons(compare, [s.label for s in specs], None, reference)  # a bad --compare fails before any work
    init_order = {spec.label: i for i, spec in enumerate(parse_init(init))}  # also fails early on a bad --init
    from regkit.benchmark import open_dataset

    ds = open_dataset(data, None if split == "all" else (split,), show_progress=show_progress)
    ids = ds.case_ids(None if split == "all" else split)
    if cases is not None:
        if cases > len(ids):
            raise InputError(f"--cases {cases} asked for, but split {split!r} has {len(ids)} cases",
                             ds.root / "dataset.json", f"give at most {len(ids)}, or leave --cases out to use all")
        ids = ids[:cases]
    if not ids:
        raise InputError(f"split {split!r} has no cases", ds.root / "dataset.json")
    case_objs = [ds.load(c) for c in ids]
    # methods that run in this process are constructed once, here, before anything is written: a missing checkpoint
    # is an error before any work, and does not bind the folder to the bad option
    for s in specs:
        if isinstance(s.registrar, str) and _in_process(s, scheduler):
            _setup_registrar(s)
    store = ResultStore(out / "results.csv")  # refuses a results table of another layout before anything is written
    settings = {s.label: resolved_settings(s.registrar, s.options) if isinstance(s.registrar, str) else None
                for s in specs}
    _check_same_methods(out / "run.json", specs, settings, {key[0] for key in store.done})
    starts = _load_or_make_starts(out, case_objs, init, starts_per_case, seed, starts_file)
    if starts_file is not None:  # the file's starting errors, in the order they appear
        init_order = {label: i for i, label in enumerate(dict.fromkeys(s.init for s in starts))}
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, cores))
    threads = max(1, cores // workers)
    record = provenance.record(
        seeds={"starts": seed, "dataset": ds.info.get("source", {}).get("seed")}, dataset=str(ds.root),
        split=split, cases=ids, init=init, starts_per_case=starts_per_case, workers=workers,
        starts_file=str(starts_file) if starts_file else None,
        threads_per_worker=threads, scheduler=str(scheduler) if scheduler else None,
        methods=[{"label": s.label, "registrar": s.registrar if isinstance(s.registrar, str) else repr(s.registrar),
                  "options": s.options, "settings": settings[s.label]} for s in specs])
    write_text(out / "run.json", json.dumps(record, indent=2, default=str) + "\n")

    journal = CrashJournal(out / JOURNAL_NAME)
    journal.prune(store.is_done)
    by_case: dict[str, list[Start]] = {}
    for s in starts:
        by_case.setdefault(s.case, []).append(s)
    start_of = {(s.case, s.start_id, s.init): s for s in starts}
    pool = None
    t0 = time.perf_counter()
    try:
        for spec in specs:
            todo = {c: [s for s in ss if not store.is_done(spec.label, s.case, s.start_id, s.init)]
                    for c, ss in by_case.items()}
            n = sum(len(v) for v in todo.values())
            if n == 0:
                continue
            if spec.capabilities.batched or not spec.portable:  # one task per case
                tasks = [Task(spec, str(ds.root), c, ss) for c, ss in todo.items() if ss]
            else:
                tasks = [Task(spec, str(ds.root), c, [s]) for c, ss in todo.items() for s in ss]
            if spec.capabilities.in_process and scheduler is None:  # pure Python: nothing to isolate or journal
                runner = (run_task(t) for t in tasks)
            elif _in_process(spec, scheduler):  # a crash here ends the run: the journal keeps it from recurring forever
                runner = journal.run(tasks, run_task, lambda t, msg: [_crashed_row(t, s, msg) for s in t.starts])
            else:  # worker processes, even with one worker: a native crash takes down a worker, not the run
                if pool is None:
                    pool = _DaskPool(scheduler, threads) if scheduler else _LocalPool(workers, threads)
                runner = pool.run(tasks)
            with progress(total=n, desc=f"{spec.label}", unit="sample", disable=not show_progress) as bar:
                for rows in runner:
                    for row in rows:
                        if "final_sre" not in row:  # a crashed worker: the start stands as the result
                            case = case_objs[ids.index(row["case"])]
                            start = start_of[(row["case"], row["start_id"], row["init"])]
                            row["initial_sre"] = row["final_sre"] = sre(start.transform, case.ground_truth,
                                                                        case.surface_points)
                        store.append(row)
                    bar.update(len(rows))
    except BaseException:  # Ctrl-C, a full disk, a registrar that cannot be set up: stop the workers at once
        if pool is not None:
            pool.close(cancel=True)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.close()

    samples = store.read()
    keep = {(s.label, c.case, str(c.start_id), c.init) for s in specs for c in starts}
    samples = samples[[k in keep for k in samples[["method", "case", "start_id", "init"]].astype(str)
                       .itertuples(index=False, name=None)]].reset_index(drop=True)
    order = {"method": {s.label: i for i, s in enumerate(specs)}, "init": init_order}
    samples = samples.sort_values(["init", "method", "case", "start_id"],
                                  key=lambda c: c.map(order[c.name]) if c.name in order else c).reset_index(drop=True)
    # ---- statistics, tables, plots, metrics.json and report.html (see regkit.evaluation.stats)
    from regkit.evaluation.measures import backfill
    from regkit.evaluation.metrics import write_metrics
    from regkit.evaluation.report import write_report

    backfill(samples, ds.load)  # Dice / TRE of rows from a run made before regkit measured them
    registrars = {s.label: s.registrar for s in specs if isinstance(s.registrar, str)}
    summary = stats.summary(samples)
    tests = stats.paired_tests(samples, compare, reference, registrars)
    ranks = stats.significance_ranks(samples)
    counts = {s.label: parameter_count(declaration(s.registrar)) for s in specs if isinstance(s.registrar, str)}
    titles = {s.label: s.title for s in specs}
    md = tables.write_tables(out, summary, tests, titles, {k: v for k, v in counts.items() if v}, write_text,
                             ranks)
    plots.boxplot(samples, out / "boxplot.png", titles)
    plots.scatter(samples, out / "scatter.png", titles)
    plots.differences(samples, tests, out / "differences.png", titles)
    write_metrics(samples, out / "metrics.json", titles)
    record["wall_time_s"] = round(time.perf_counter() - t0, 1)
    record["statistics"] = {
        "compare": compare if compare is None or isinstance(compare, str) else [str(c) for c in compare],
        "reference": reference,
        "comparisons": [f"{a}:{b}" for a, b in dict.fromkeys(zip(tests["a"], tests["b"], strict=True))],
        "holm_family_size": len(tests), "bootstrap": {"resamples": stats.BOOTSTRAP_RESAMPLES,
                                                      "seed": stats.BOOTSTRAP_SEED}}
    write_text(out / "run.json", json.dumps(record, indent=2, default=str) + "\n")
    write_report(out)
    if echo is not None:
        echo(md["table1"])
        echo(md["tests"])
        echo(md["ranks"])
        echo(f"results in {out}/ (report.html, results.csv, summary.csv, metrics.json, table1/table2/tests/ranks "
             ".csv .tex .md, tests_raw.csv, boxplot.png, scatter.png, differences.png, starts.csv, run.json)")
    return CompareResult(samples, summary, tests, out, md, record, ranks)
