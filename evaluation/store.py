"""The per-sample results table, written row by row as samples finish, so nothing is lost on interruption.

``results.csv`` has one row per sample (:class:`ResultRow`, the one home of its layout), keyed by (method, case,
start id, init). ``stages`` holds, for cascades and chains, the SRE of each stage (and a chain's per-stage
registrar, runtime and status) as JSON. ``consistency_mm`` and ``suspect`` are the result's consistency measured
without the ground truth (:mod:`regkit.consistency`; ``regkit compare --qa``), empty when it was not measured.
``landmark_tre_mm`` is the mean distance in millimetres between mapped
MR landmarks and their TRUS counterparts (not the voxel-index centroid distance some challenges call "TRE").
A row is appended, flushed and fsync'ed as soon as its registration ends; a line cut short by a kill (no final
newline) is ignored and rewritten on the next run. Reading the file back tells a resumed run which samples are
done.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from regkit.errors import InputError, OutputError
from regkit.records import read_table, read_text
from regkit.starts import MATRIX_COLUMNS, Start
from regkit.transform import RigidTransform

NAN = math.nan
MATRIX = [f"t_{c}" for c in MATRIX_COLUMNS[:12]]  # the top 3×4 of the result's matrix, row by row


@dataclass
class ResultRow:
    """One sample's result: a row of ``results.csv``.

    ``transform`` (the result's) is stored as the 12 columns ``t_m00`` ... ``t_m23``; every other field is a
    column of its own name. Errors are in mm, ``runtime_s`` in seconds; NaN is an empty cell.
    """

    method: str
    case: str
    start_id: int
    init: str
    target_sre: float = NAN
    initial_sre: float = NAN
    final_sre: float = NAN
    stage1_sre: float = NAN
    runtime_s: float = NAN
    status: str = ""
    message: str = ""
    transform: RigidTransform | None = None
    final_dice: float = NAN
    landmark_tre_mm: float = NAN
    stages: str = ""
    consistency_mm: float = NAN
    suspect: bool | None = None

    @classmethod
    def of_start(cls, method: str, start: Start, **values) -> ResultRow:
        """A row keyed by ``start`` (its case, id, starting error and target SRE)."""
        return cls(method, start.case, start.start_id, start.init, target_sre=start.target_sre, **values)

    def record(self) -> dict:
        """The row as ``{column: value}``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        transform = out.pop("transform")
        values = transform.matrix[:3].ravel() if transform is not None else [NAN] * len(MATRIX)
        out.update({c: float(v) for c, v in zip(MATRIX, values, strict=True)})
        return {c: out[c] for c in COLUMNS}


KEY = ["method", "case", "start_id", "init"]
REQUIRED = [*KEY, "final_sre"]  # what makes a table regkit's
COLUMNS = [f.name for f in fields(ResultRow) if f.name != "transform"]
COLUMNS[COLUMNS.index("final_dice"):COLUMNS.index("final_dice")] = MATRIX
RENAMED = {"final_tre": "landmark_tre_mm"}  # columns of an earlier regkit, and their names today
TEXT = ("method", "case", "init", "status", "message", "stages")
KINDS = {c: "whole" if c == "start_id" else "text" if c in TEXT else "flag" if c == "suspect" else "number"
         for c in COLUMNS}
FIX = ("repair the line named, or move results.csv away (its rows stay there) and run again to redo the samples")


class ResultStore:
    """Append-only CSV of per-sample results."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self._started():  # before _repair cuts anything: a binary file is refused whole
            read_text(self.path, "results table", FIX, allow_empty=True)
        self._repair()
        self._check_header()
        self.done: set[tuple] = set()
        if self._started():
            frame = self.read()
            self.done = {tuple(r) for r in frame[KEY].astype(str).itertuples(index=False)}

    def _started(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def _repair(self) -> None:
        """Drop a trailing partial line (a kill while writing); the header is written with the first row."""
        if self._started():
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                with open(self.path, "r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)

    def _check_header(self) -> None:
        """Refuse another tool's table; give an earlier regkit's table the columns added since (empty)."""
        self.columns = list(COLUMNS)
        if not self._started():
            return
        with open(self.path, newline="") as fh:
            header = next(csv.reader(fh), [])
        if [c for c in REQUIRED if c not in header]:
            raise InputError(f"this results table has the columns {header}, not regkit's: it was written by another "
                             "tool", self.path, "use a new output folder (or move this results.csv away)")
        renamed = {o: n for o, n in RENAMED.items() if o in header and n not in header}
        missing = [c for c in COLUMNS if c not in header and c not in renamed.values()]
        if renamed or missing:  # a file of an earlier regkit: today's names, and the new columns (empty)
            frame = pd.read_csv(self.path, dtype=str, keep_default_na=False).rename(columns=renamed)
            header = [renamed.get(c, c) for c in header]
            for c in missing:
                frame[c] = ""
            from regkit.atomic import atomic_path

            with atomic_path(self.path) as tmp:
                frame[[*header, *missing]].to_csv(tmp, index=False)
            header = [*header, *missing]
        self.columns = header

    def key(self, method: str, case: str, start_id: int, init: str) -> tuple:
        return (str(method), str(case), str(start_id), str(init))

    def is_done(self, method: str, case: str, start_id: int, init: str) -> bool:
        return self.key(method, case, start_id, init) in self.done

    def append(self, row: ResultRow | Mapping) -> None:
        """Write one row (a :class:`ResultRow`, or a mapping of some of :data:`COLUMNS`) and make it durable."""
        if isinstance(row, ResultRow):
            row = row.record()
        elif unknown := set(row) - set(self.columns):
            raise ValueError(f"not columns of results.csv: {sorted(unknown)}")
        k = self.key(row["method"], row["case"], row["start_id"], row["init"])
        if k in self.done:
            return
        values = []
        for c in self.columns:
            v = row.get(c, "")
            if isinstance(v, float):
                v = repr(v) if np.isfinite(v) else ""
            elif isinstance(v, str):
                v = " ".join(v.split())  # one physical line per row, so a cut row is always the last line
            values.append(v)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", newline="") as fh:
                if fh.tell() == 0:
                    csv.writer(fh).writerow(self.columns)
                csv.writer(fh).writerow(values)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            err = OutputError(f"{self.path}: cannot write a result row: {exc.strerror}. The {len(self.done)} rows "
                              "written before are kept (a row cut short is dropped when the run resumes). Fix: free "
                              "space (or lift the limit), then run the same command again to resume")
            err.errno = exc.errno
            raise err from exc
        self.done.add(k)

    def read(self) -> pd.DataFrame:
        """The rows (the first of any repeated key), ``suspect`` as True, False or missing."""
        if not self._started():
            return pd.DataFrame(columns=COLUMNS)
        checked = read_table(self.path, "results table", {c: KINDS[c] for c in REQUIRED}, optional=KINDS, fix=FIX)
        # only an empty cell is missing: a method labelled "nan" or a case called "NA" stays what it is
        frame = pd.read_csv(self.path, dtype={"method": str, "case": str, "init": str, "status": str,
                                              "message": str}, keep_default_na=False, na_values=[""])
        if "suspect" in frame:
            frame["suspect"] = pd.Series(checked["suspect"].tolist(), index=frame.index, dtype=object)
        return frame.drop_duplicates(subset=KEY, keep="first").reset_index(drop=True)
