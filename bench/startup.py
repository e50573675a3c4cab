"""Start-up: `regkit register --method mi` on a small pair, start-up included, and `import regkit`/`regkit --help`.

    python bench/startup.py [--repeats 3] [--python PYTHON] [--out bench/results/startup.txt]

Each figure is the median of ``--repeats`` fresh processes, in wall seconds and in CPU seconds (user + system
of the process): on a shared machine the wall time follows the load, the CPU time much less. The pair is the
phantom's case (seed 0, index 0: a 128×128×36 MR and a 164×100×72 TRUS), written to a temporary folder;
`regkit register --method mi --init centres` registers it

* as regkit loads ITK (ITK's core and elastix alone), with its consistency check (the default: two restarts
  near the result, regkit.consistency) and without it (``--no-qa``), and
* with ITK's full load of elastix (``REGKIT_ITK_FULL_LOAD=1``), the same transform bit for bit (checked);

then one more run says where the CPU time goes. ``--python`` times another install's regkit (e.g.
an older checkout's venv) with the same pair; one that knows no ``REGKIT_ITK_FULL_LOAD`` runs the full load twice.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import machine


def run(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_of(cmd: list[str], repeats: int, env: dict | None = None) -> str:
    times = [run(cmd, env) for _ in range(repeats)]
    walls, cpus = zip(*times, strict=True)
    return (f"{statistics.median(walls):6.2f} s wall ({min(walls):.2f}-{max(walls):.2f}), "
            f"{statistics.median(cpus):5.2f} s CPU, median of {repeats}")


def small_pair(folder: Path) -> list[str]:
    """The phantom's first case as files; the `regkit register` arguments that register it."""
    from regkit.dataset import write_case
    from regkit.synth.phantom import synth_case

    write_case(synth_case(0, 0), folder)
    return ["--fixed", str(folder / "mr.nii.gz"), "--moving", str(folder / "trus.nii.gz"),
            "--fixed-label", str(folder / "mr_label.nii.gz"), "--method", "mi", "--init", "centres"]


#: `regkit register` with its main steps timed in CPU seconds of the process (elastix's threads included): the two
#: three imports first, then the CLI with three functions wrapped in a clock. Printed as JSON on the last line.
STEPS = """
import json, runpy, sys, time
clock, spent, sys.argv = time.process_time, {}, ["regkit", *sys.argv[1:]]
start = clock()
import regkit.app.register_pair
spent["import regkit.app.register_pair (numpy, SimpleITK, regkit's core)"] = clock() - start
import scipy.ndimage
spent["import scipy.ndimage (mi's metric check and fan mask)"] = clock() - start - sum(spent.values())
import regkit.app.overlays
spent["import regkit.app.overlays (the overlay's module)"] = clock() - start - sum(spent.values())
import regkit.baselines.elastix, regkit.registrar

def timed(label, function):
    def wrapper(*args, **kwargs):
        t = clock()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + clock() - t
    return wrapper

for owner, name, label in ((regkit.baselines.elastix, "itk_module", "load ITK and elastix (itk_module)"),
                           (regkit.registrar.RegistrarBase, "register", "registration + 2 restarts (elastix, masks)"),
                           (regkit.app.overlays, "overlay", "overlay.png (matplotlib, skimage's canny)")):
    setattr(owner, name, timed(label, getattr(owner, name)))
try:
    runpy.run_module("regkit.app.cli", run_name="__main__")
except SystemExit as exc:
    if exc.code:
        raise
spent["all else (click, registry, reading, resampling, writing)"] = clock() - start - sum(spent.values())
print(json.dumps({"total": clock() - start, **spent}))
"""


def where_time_goes(python: str, args: list[str], out: Path) -> list[str]:
    done = subprocess.run([python, "-c", STEPS, "register", *args, "--out", str(out / "timed")], check=True,
                          capture_output=True, text=True)
    spent = json.loads(done.stdout.strip().splitlines()[-1])
    total = spent.pop("total")
    return [f"one more run, its steps in CPU seconds ({total:.2f} s after the interpreter started):",
            *(f"  {seconds:6.2f} s  {label}" for label, seconds in spent.items())]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--python", default=sys.executable, help="the interpreter whose regkit is timed")
    ap.add_argument("--out", default=None, help="also write the lines here")
    a = ap.parse_args()
    py = a.python
    lines = [f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start",
             f"python: {py}"]

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    for line in lines:
        print(line)
    out = Path(a.out).resolve() if a.out else None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.chdir(tmp)  # `python -m regkit...` then finds --python's regkit, not a checkout in the working folder
        say(f"python -c pass           {median_of([py, '-c', 'pass'], a.repeats)}")
        say(f"python -c 'import regkit' {median_of([py, '-c', 'import regkit'], a.repeats)}")
        say(f"regkit --help            {median_of([py, '-m', 'regkit.app.cli', '--help'], a.repeats)}")
        args = small_pair(tmp / "pair")
        register = [py, "-m", "regkit.app.cli", "register", *args]
        lean = [*register, "--out", str(tmp / "lean")]
        full = [*register, "--out", str(tmp / "full")]
        say(f"regkit register -m mi, ITK core + elastix     {median_of(lean, a.repeats)}")
        say(f"  the same with --no-qa (no consistency check) {median_of([*lean, '--no-qa'], a.repeats)}")
        say(f"regkit register -m mi, ITK's full load        "
            f"{median_of(full, a.repeats, {'REGKIT_ITK_FULL_LOAD': '1'})}")
        same = all((tmp / "lean" / f).read_bytes() == (tmp / "full" / f).read_bytes()
                   for f in ("transform.txt", "transform.tfm", "moving_resampled.nii.gz"))
        say(f"same transform.txt, transform.tfm and moving_resampled.nii.gz bit for bit: {same}")
        for line in where_time_goes(py, args, tmp):
            say(line)
    say(f"load average {os.getloadavg()[0]:.1f} at the end")
    if out:
        out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
