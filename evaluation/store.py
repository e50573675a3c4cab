"""The per-sample results table, written row by row as samples finish, so nothing is lost on interruption.

``results.csv`` has one row per sample, keyed by (method, case, start id, init). ``stages`` holds, for cascades
and chains, the SRE of each stage (and a chain's per-stage registrar, runtime and status) as JSON. A row is
appended, flushed and fsync'ed as soon as its registration ends; a line cut short by a kill (no final newline)
is ignored and rewritten on the next run. Reading the file back tells a resumed run which samples are done.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

from regkit.errors import InputError, OutputError
from regkit.starts import MATRIX_COLUMNS

KEY = ["method", "case", "start_id", "init"]
REQUIRED = [*KEY, "final_sre"]  # what makes a table regkit's
COLUMNS = [*KEY, "target_sre", "initial_sre", "final_sre", "stage1_sre", "runtime_s", "status", "message",
           *(f"t_{c}" for c in MATRIX_COLUMNS[:12]), "final_dice", "final_tre", "stages"]


class ResultStore:
    """Append-only CSV of per-sample results."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
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
        if missing := [c for c in COLUMNS if c not in header]:  # a file of an earlier regkit: add the new columns
            frame = pd.read_csv(self.path, dtype=str, keep_default_na=False)
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

    def append(self, row: dict) -> None:
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
        if not self._started():
            return pd.DataFrame(columns=COLUMNS)
        # only an empty cell is missing: a method labelled "nan" or a case called "NA" stays what it is
        frame = pd.read_csv(self.path, dtype={"method": str, "case": str, "init": str, "status": str,
                                              "message": str}, keep_default_na=False, na_values=[""])
        return frame.drop_duplicates(subset=KEY, keep="first").reset_index(drop=True)
