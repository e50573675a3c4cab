"""CLI start-up and phantom rendering speed.

    python bench/startup_and_phantom.py

Prints the median wall time of `regkit --help` against `python -c pass` (the interpreter alone), and the
seconds per synthetic case (render only, and render + write).
"""

import statistics
import subprocess
import sys
import tempfile
import time

from _util import machine


def wall(cmd, n=7):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main():
    from regkit.dataset import write_case
    from regkit.synth.phantom import synth_case

    print(f"machine: {machine()}")
    py = wall([sys.executable, "-c", "pass"])
    cli = wall(["regkit", "--help"])
    print(f"regkit --help: {cli:.3f} s median of 7; python -c pass: {py:.3f} s; ratio {cli / py:.1f}x")
    render, total = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(10):
            t = time.perf_counter()
            case = synth_case(99, i)
            t1 = time.perf_counter()
            write_case(case, f"{tmp}/c{i}")
            render.append(t1 - t)
            total.append(time.perf_counter() - t)
    print(f"phantom case: render {statistics.median(render):.2f} s median (max {max(render):.2f}), "
          f"render + write {statistics.median(total):.2f} s median (max {max(total):.2f}), 10 cases")


if __name__ == "__main__":
    main()
