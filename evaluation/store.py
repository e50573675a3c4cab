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

from regkit.starts import MATRIX_COLUMNS

KEY = ["method", "case", "start_id", "init"]
COLUMNS = [*KEY, "target_sre", "initial_sre", "final_sre", "stage1_sre", "runtime_s", "status", "message",
           *(f"t_{c}" for c in MATRIX_COLUMNS[:12]), "stages"]


class ResultStore:
    """Append-only CSV of per-sample results."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        with open(self.path, newline="") as fh:  # a file begun by an older regkit keeps its own columns
            self.columns = next(csv.reader(fh), None) or COLUMNS
        self.done: set[tuple] = set()
        if self.path.exists():
            frame = self.read()
            self.done = {tuple(r) for r in frame[KEY].astype(str).itertuples(index=False)}

    def _repair(self) -> None:
        """Drop a trailing partial line (a kill while writing); (re)write the header of an empty file."""
        if self.path.exists() and self.path.stat().st_size > 0:
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                with open(self.path, "r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(COLUMNS)

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
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh).writerow(values)
            fh.flush()
            os.fsync(fh.fileno())
        self.done.add(k)

    def read(self) -> pd.DataFrame:
        frame = pd.read_csv(self.path, dtype={"method": str, "case": str, "init": str, "status": str,
                                              "message": str})
        return frame.drop_duplicates(subset=KEY, keep="first").reset_index(drop=True)
