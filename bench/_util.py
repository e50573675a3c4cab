"""Shared helpers of the benchmarks: medians of repeats, peak memory of a child process, machine facts."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time


def machine() -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"python {platform.python_version()}")


def run_child(code: str, env: dict | None = None) -> tuple[dict, float]:
    """Run Python code in a fresh process; it must print one JSON line last. Returns (that dict, the child's
    own peak RSS in MB)."""
    probe = ("\nimport json as _j, resource as _r\n"
             "print(_j.dumps({'peak_mb': _r.getrusage(_r.RUSAGE_SELF).ru_maxrss / 1024.0}))\n")
    out = subprocess.run([sys.executable, "-c", code + probe], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-2]), json.loads(lines[-1])["peak_mb"]


def timed(fn, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def cases_of(spec: str) -> list:
    """The cases of a folder's first non-empty split, or of a split of the built-in benchmark (``builtin:val``)."""
    from regkit.benchmark import open_dataset

    if spec.startswith("builtin:"):
        split = spec.split(":", 1)[1]
        ds = open_dataset(None, [split], show_progress=False)
        ids = ds.case_ids(split)
    else:
        ds = open_dataset(spec, show_progress=False)
        ids = next((ids for ids in ds.splits.values() if ids), [])
    return [ds.load(c) for c in ids]
