"""``regkit compare``: every method on every (case, start), paired statistics, tables and plots.

:func:`compare` reads top to bottom as the run goes: check the arguments and methods (:mod:`.arguments`,
:mod:`.method_specs`), open the data and draw or read the starts (:mod:`regkit.starts`), resume what
``OUT/results.csv`` already holds (:mod:`.store`), run the remaining samples (:mod:`.execution`: worker processes
for classical methods, the runner's process for deep ones, or a Dask cluster with ``scheduler=``), then the
statistics, tables, plots, ``metrics.json`` and ``report.html``.

The run is resumable: per-sample results are appended to ``OUT/results.csv`` as they finish, and running the
same command again skips what is done. One run holds ``OUT`` at a time (a lock that names its holder to a second
run); a full disk stops the run with a named error, keeping every row written.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from regkit.atomic import write_text
from regkit.errors import InputError
from regkit.evaluation.arguments import one_run_per_folder
from regkit.evaluation.execution import DaskPool, LocalPool, Task, crashed_row, in_process, run_task, setup_registrar
from regkit.evaluation.faults import JOURNAL_NAME, CrashJournal
from regkit.evaluation.method_specs import MethodSpec, parse_methods
from regkit.evaluation.provenance import read_record
from regkit.evaluation.store import ResultStore
from regkit.sre import sre
from regkit.starts import InitSpec, Start, make_starts, parse_init, read_starts, write_starts

DEFAULT_STARTS_PER_CASE = 3
OUTPUT_FILES = ("report.html, results.csv, summary.csv, metrics.json, table1/table2/tests/ranks .csv .tex .md, "
                "tests_raw.csv, boxplot.png, scatter.png, differences.png, starts.csv, run.json")


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


@one_run_per_folder
def compare(methods: str | Sequence = "mi,mind,attreg", init: str = "8mm", data: str | Path | None = None,
            split: Literal["train", "val", "test", "all"] = "test", cases: int | None = None,
            starts_per_case: int = DEFAULT_STARTS_PER_CASE,
            seed: int = 0, out: str | Path = "regkit-compare", workers: int | None = None,
            reference: str | None = None, scheduler=None, method_options: dict[str, dict] | None = None,
            starts_file: str | Path | None = None, show_progress: bool = True, echo=print,
            compare: str | Sequence | None = None, qa: bool = False) -> CompareResult:
    """Run a comparison (see the module docstring) and return its results.

    Parameters
    ----------
    methods : str or sequence
        Registry names (``"mi,mind,attreg"``), aliases (``"milabel=mi"``) or Registrar objects.
    init : str
        Starting errors: ``8mm``, ``0-20mm`` or a list ``8mm,16mm``.
    data : path, optional
        Dataset folder; default the built-in benchmark.
    split : {"test", "train", "val", "all"}
        The split of the dataset to evaluate, or ``all`` for every case of it.
    cases : int, optional
        Evaluate only the first ``cases`` cases of the split.
    starts_per_case : int
        Starts drawn per case and starting error.
    seed : int
        The seed of the starts.
    out : path
        Output folder; running again with the same folder resumes.
    workers : int, optional
        Processes for classical methods (default: the number of cores). A method runs in worker processes, even with
        one worker, so that a crash in its native code ends a worker, not the run (the sample is retried once,
        then recorded as failed). Methods run in the caller's own process instead when they use a device (the deep
        methods), when they are Registrar objects or were registered in this process (``register_registrar``,
        ``register_method``), or when their capabilities say ``in_process``: a crash in one of those (a segfault,
        ``os._exit``) ends the caller's process; package a registrar as an entry point to have it run in worker
        processes. Workers are spawned, and each imports the caller's script again: a script that calls
        ``compare`` must do so under ``if __name__ == "__main__":`` (else an error says so, before any work).
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
    show_progress : bool
        Progress bars on stderr.
    echo : callable
        Where the tables and messages are printed [``print``].
    qa : bool
        Also measure each result's consistency without the ground truth and flag the suspect ones
        (:mod:`regkit.consistency`; it restarts each registration a few times, so it costs that much more time):
        ``results.csv`` gains ``consistency_mm`` and ``suspect``, Table 1 a "Suspect" column, ``metrics.json`` and
        ``report.html`` the suspect samples. The statistics are the same with or without it: the flag drops nothing.

    Returns
    -------
    CompareResult
        The samples, summary and tests as DataFrames, and the output folder.
    """
    from regkit.evaluation import provenance
    from regkit.evaluation.comparisons import comparisons
    from regkit.evaluation.execution import check_main_guard
    from regkit.importers.writing import reference_summary
    from regkit.registry import resolved_settings

    out = Path(out)  # made by @one_run_per_folder
    specs = parse_methods(methods, method_options)
    if scheduler is None and not all(in_process(s, scheduler) for s in specs):
        check_main_guard()  # worker processes would run the caller's script again: refused before any work
    comparisons(compare, [s.label for s in specs], None, reference)  # a bad --compare fails before any work
    inits = parse_init(init)
    ds, ids = _open_cases(data, split, cases, show_progress)
    case_objs = [ds.load(c) for c in ids]
    # methods that run in this process are constructed once, here, before anything is written: a missing checkpoint
    # is an error before any work, and does not bind the folder to the bad option
    ran_with = {}  # what an in-process registrar resolved its "auto" settings to (its precision, its device)
    for s in specs:
        if isinstance(s.registrar, str) and in_process(s, scheduler):
            ran_with[s.label] = getattr(setup_registrar(s), "ran_with", None)
    store = ResultStore(out / "results.csv")  # refuses a results table of another layout before anything is written
    settings = {s.label: resolved_settings(s.registrar, s.options) if isinstance(s.registrar, str) else None
                for s in specs}
    _check_same_methods(out / "run.json", specs, settings, {key[0] for key in store.done})
    starts = _load_or_make_starts(out, case_objs, inits, starts_per_case, seed, starts_file)
    workers, threads = _workers_and_threads(workers)
    record = provenance.record(
        seeds={"starts": seed, "dataset": ds.info.get("source", {}).get("seed")}, dataset=str(ds.root),
        split=split, cases=ids, init=init, starts_per_case=starts_per_case, workers=workers,
        starts_file=str(starts_file) if starts_file else None,
        threads_per_worker=threads, scheduler=str(scheduler) if scheduler else None, qa=_qa_record(qa),
        ground_truth=reference_summary(ds, ids),
        methods=[{"label": s.label, "registrar": s.registrar if isinstance(s.registrar, str) else repr(s.registrar),
                  "options": s.options, "settings": settings[s.label], "ran_with": ran_with.get(s.label)}
                 for s in specs])
    write_text(out / "run.json", json.dumps(record, indent=2, default=str) + "\n")

    t0 = time.perf_counter()
    _run_samples(specs, starts, store, {c.case_id: c for c in case_objs}, str(ds.root), out, scheduler, workers,
                 threads, show_progress, qa)
    # the starting errors in the order asked for, or, from a starts file, in the order they appear there
    init_labels = [i.label for i in inits] if starts_file is None else [s.init for s in starts]
    samples = _samples_of_run(store, specs, starts, list(dict.fromkeys(init_labels)))
    return _write_outputs(samples, specs, ds, out, record, compare, reference, echo, t0)


def _open_cases(data, split: str, cases: int | None, show_progress: bool):
    """The dataset and the ids of the cases to use: the first ``cases`` of ``split`` (or of every split)."""
    from regkit.benchmark import open_dataset

    ds = open_dataset(data, None if split == "all" else (split,), show_progress=show_progress,
                      cases=None if split == "all" else cases)
    ids = ds.case_ids(None if split == "all" else split)
    if cases is not None:
        if cases > len(ids):
            raise InputError(f"--cases {cases} asked for, but split {split!r} has {len(ids)} cases",
                             ds.root / "dataset.json", f"give at most {len(ids)}, or leave --cases out to use all")
        ids = ids[:cases]
    if not ids:
        raise InputError(f"split {split!r} has no cases", ds.root / "dataset.json")
    return ds, ids


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


def _load_or_make_starts(out: Path, cases, inits: list[InitSpec], per_case: int, seed: int, starts_file
                         ) -> list[Start]:
    """The run's starts, drawn (or read from ``starts_file``) and saved as ``OUT/starts.csv``."""
    if starts_file is not None:
        ids = {c.case_id for c in cases}
        starts = [s for s in read_starts(starts_file, cases) if s.case in ids]
        if not starts:
            raise InputError("the starts file has no start for the chosen cases", starts_file)
    else:
        starts = make_starts(cases, inits, per_case, seed)
    write_starts(_check_same_starts(out / "starts.csv", starts), out / "starts.csv")
    return starts


def _check_same_methods(path: Path, specs: list[MethodSpec], settings: dict[str, dict | None],
                        with_rows: set[str]) -> None:
    """A resumed folder must run a label that has rows (``with_rows``) with the same registrar, options and
    resolved ``settings`` as before; settings that recorded nothing spoil nothing."""
    if not path.exists():
        return
    before = {m["label"]: m for m in read_record(path).get("methods", [])}
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


def _workers_and_threads(workers: int | None) -> tuple[int, int]:
    """Worker processes for the classical methods (at most the cores) and threads per worker."""
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, cores))
    return workers, max(1, cores // workers)


def _qa_record(qa: bool) -> dict | None:
    """The consistency measure's settings, for ``run.json`` (None without ``qa``)."""
    if not qa:
        return None
    from regkit.consistency import MEASURE, RADIUS_MM, RESTARTS, THRESHOLD_MM

    return {"measure": MEASURE, "threshold_mm": THRESHOLD_MM, "restarts": RESTARTS, "radius_mm": RADIUS_MM}


def _run_samples(specs: list[MethodSpec], starts: list[Start], store: ResultStore, cases: dict, dataset: str,
                 out: Path, scheduler, workers: int, threads: int, show_progress: bool, qa: bool = False) -> None:
    """Register every sample not yet in ``store``, method by method, appending each row as it finishes."""
    from regkit.progress import progress

    journal = CrashJournal(out / JOURNAL_NAME)
    journal.prune(store.is_done)
    by_case: dict[str, list[Start]] = {}
    for s in starts:
        by_case.setdefault(s.case, []).append(s)
    start_of = {(s.case, s.start_id, s.init): s for s in starts}
    pool = None
    try:
        for spec in specs:
            todo = {c: [s for s in ss if not store.is_done(spec.label, s.case, s.start_id, s.init)]
                    for c, ss in by_case.items()}
            n = sum(len(v) for v in todo.values())
            if n == 0:
                continue
            if spec.capabilities.batched or not spec.portable:  # one task per case
                tasks = [Task(spec, dataset, c, ss, qa=qa) for c, ss in todo.items() if ss]
            else:
                tasks = [Task(spec, dataset, c, [s], qa=qa) for c, ss in todo.items() for s in ss]
            if spec.capabilities.in_process and scheduler is None:  # pure Python: nothing to isolate or journal
                runner = (run_task(t) for t in tasks)
            elif in_process(spec, scheduler):  # a crash here ends the run: the journal keeps it from recurring forever
                runner = journal.run(tasks, run_task, lambda t, msg: [crashed_row(t, s, msg) for s in t.starts])
            else:  # worker processes, even with one worker: a native crash takes down a worker, not the run
                if pool is None:
                    pool = DaskPool(scheduler, threads) if scheduler else LocalPool(workers, threads)
                runner = pool.run(tasks)
            with progress(total=n, desc=f"{spec.label}", unit="sample", disable=not show_progress) as bar:
                for rows in runner:
                    for row in rows:
                        case = cases[row.case]
                        if math.isnan(row.final_sre) and case.ground_truth is not None:  # a crashed worker
                            start = start_of[(row.case, row.start_id, row.init)]
                            row.initial_sre = row.final_sre = sre(start.transform, case.ground_truth,
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


def _samples_of_run(store: ResultStore, specs: list[MethodSpec], starts: list[Start], inits: list[str]
                    ) -> pd.DataFrame:
    """This run's rows of the results table (a folder may hold more), in the order of its starting errors and
    methods."""
    samples = store.read()
    keep = {(s.label, c.case, str(c.start_id), c.init) for s in specs for c in starts}
    samples = samples[[k in keep for k in samples[["method", "case", "start_id", "init"]].astype(str)
                       .itertuples(index=False, name=None)]].reset_index(drop=True)
    order = {"method": {s.label: i for i, s in enumerate(specs)}, "init": {label: i for i, label in enumerate(inits)}}
    return samples.sort_values(["init", "method", "case", "start_id"],
                               key=lambda c: c.map(order[c.name]) if c.name in order else c).reset_index(drop=True)


def _write_outputs(samples: pd.DataFrame, specs: list[MethodSpec], ds, out: Path, record: dict, compare, reference,
                   echo, t0: float) -> CompareResult:
    """Statistics, tables, plots, ``metrics.json``, ``run.json`` and ``report.html`` (see :mod:`.stats`)."""
    from regkit.evaluation import plots, stats, tables
    from regkit.evaluation.measures import backfill
    from regkit.evaluation.metrics import write_metrics
    from regkit.evaluation.report import write_report
    from regkit.importers.writing import reference_note
    from regkit.registry import declaration, parameter_count

    backfill(samples, ds.load)  # Dice / TRE of rows from a run made before regkit measured them
    registrars = {s.label: s.registrar for s in specs if isinstance(s.registrar, str)}
    summary = stats.summary(samples)
    tests = stats.paired_tests(samples, compare, reference, registrars)
    ranks = stats.significance_ranks(samples)
    counts = {s.label: parameter_count(declaration(s.registrar)) for s in specs if isinstance(s.registrar, str)}
    titles = {s.label: s.title for s in specs}
    md = tables.write_tables(out, summary, tests, titles, {k: v for k, v in counts.items() if v}, write_text,
                             ranks, reference_note(record.get("ground_truth")))
    plots.boxplot(samples, out / "boxplot.png", titles)
    plots.scatter(samples, out / "scatter.png", titles)
    plots.differences(samples, tests, out / "differences.png", titles)
    write_metrics(samples, out / "metrics.json", titles, ground_truth=record.get("ground_truth"))
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
        echo(f"results in {out}/ ({OUTPUT_FILES})")
    return CompareResult(samples, summary, tests, out, md, record, ranks)
