"""A comparison's results do not depend on its worker count: ``regkit compare -j 1`` against ``-j 2``.

    python bench/determinism.py [--cases 2] [--starts 2] [--methods mi,mind] [--out bench/out/determinism]

Runs the same comparison (the built-in benchmark's first test cases, 8 mm starts) with one worker (which
``regkit compare`` gives 2 ITK threads on this 2-core machine) and with two (1 thread each), and compares every
final transform bit for bit; then the one-worker comparison again with ``threads=1`` given to each method, so
that one worker count is run with 1 and with 2 threads. elastix's metrics sum their samples per thread, so before
the fix the result followed the thread count;
``regkit.baselines.recipes.rigid_parameter_map`` now turns the metrics' threading off
(``UseMultiThreadingForMetrics false``), while the pyramid and the rest of elastix keep every thread. The speed
of a registration with 1 and with 2 threads is measured in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def run(out: Path, methods: str, cases: int, starts: int, workers: int, options: list[str]
        ) -> tuple[pd.DataFrame, float]:
    cmd = [sys.executable, "-m", "regkit.app.cli", "compare", "--methods", methods, "--init", "8mm", "--cases",
           str(cases), "-k", str(starts), "-j", str(workers), "--out", str(out), *options]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return pd.read_csv(out / "results.csv"), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=2)
    ap.add_argument("--starts", type=int, default=2)
    ap.add_argument("--methods", default="mi,mind")
    ap.add_argument("--out", default="bench/out/determinism")
    a = ap.parse_args()
    out = Path(a.out)
    matrix = [f"t_m{i}{j}" for i in range(3) for j in range(4)]
    key = ["method", "case", "start_id"]
    runs = {}
    for name, workers, options in (
        ("j1", 1, []),
        ("j2", 2, []),
        ("j1-threads1", 1, [x for m in a.methods.split(",") for x in ("-O", f"{m}.threads=1")]),
    ):
        folder = out / name
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        runs[name] = run(folder, a.methods, a.cases, a.starts, workers, options)
        frame, wall = runs[name]
        print(f"{name}: {len(frame)} samples, wall {wall:.0f} s, median runtime per sample "
              + ", ".join(f"{m} {g['runtime_s'].median():.2f} s" for m, g in frame.groupby("method")), flush=True)
    base = runs["j1"][0].set_index(key).sort_index()
    for name in ("j2", "j1-threads1"):
        other = runs[name][0].set_index(key).sort_index()
        for m in a.methods.split(","):
            x, y = base.loc[m, matrix].to_numpy(float), other.loc[m, matrix].to_numpy(float)
            same = np.array_equal(x, y)
            print(f"{m}: j1 vs {name}: {'bit-identical' if same else 'DIFFERENT'} "
                  f"(max |difference| {np.abs(x - y).max():.3g}; final SRE {base.loc[m, 'final_sre'].mean():.3f} "
                  f"vs {other.loc[m, 'final_sre'].mean():.3f} mm)")
    for m in a.methods.split(","):
        t2 = runs["j1"][0].query("method == @m")["runtime_s"].median()  # one worker: regkit gives it every core
        t1 = runs["j1-threads1"][0].query("method == @m")["runtime_s"].median()
        print(f"{m}: a registration with 1 thread takes {t1 / t2:.2f}x the time of one with 2 threads "
              f"({t1:.2f} against {t2:.2f} s, medians)")


if __name__ == "__main__":
    main()
