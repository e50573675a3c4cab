"""The real multimodal dev pairs through ``regkit register``, as a user runs it, from the data's seeded starts.

    python bench/real_pairs.py [--methods mi,mind] [--levels 8,16] [--starts 4] [--pairs ...] [-j 1]
                               [--in-process] [--out bench/out/real_pairs]

For each pair of ``../shared/data/real_multimodal_dev`` (its README: layout, error, protocol), each start level
and start k (seed 0, ``numpy.random.default_rng([0, pair_index, k])``), the start ``ref ∘ P`` is written as an ITK
``Euler3DTransform`` file and registered with

    regkit register --fixed PAIR/fixed.nii.gz --moving PAIR/moving.nii.gz -m M --initial-transform start.tfm -o DIR

The final error is the mean distance between the result and the reference over the pair's evaluation points,
read from ``DIR/transform.tfm``; the status and the seconds per registration (registration only, ITK's start-up
excluded) from ``DIR/result.json``. A success is a final error under 2 mm. Each command runs in its own process
(as a user's would; ``--in-process`` runs the same command line through click in this process instead).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from devpairs import PAIRS, load_pair, start, write_start

from regkit.transform import RigidTransform


def register(args: list[str], in_process: bool) -> tuple[int, str]:
    if in_process:
        from click.testing import CliRunner

        from regkit.app.cli import main

        out = CliRunner().invoke(main, args)
        return out.exit_code, out.output
    env = {**os.environ, "REGKIT_NO_PROGRESS": "1"}
    out = subprocess.run([sys.executable, "-m", "regkit.app.cli", *args], capture_output=True, text=True, env=env)
    return out.returncode, out.stdout + out.stderr


def one(method: str, pair, level: float, k: int, out: Path, in_process: bool, options: list[str]) -> dict:
    folder = out / method / f"{pair.name}-{level:g}mm-k{k}"
    tfm = write_start(start(pair, level, 0, k), pair.points.mean(axis=0), folder / "start.tfm")
    args = ["register", "--fixed", str(pair.fixed), "--moving", str(pair.moving), "--method", method,
            "--initial-transform", str(tfm), "--out", str(folder / "result"), *options]
    t0 = time.perf_counter()
    code, text = register(args, in_process)
    wall = time.perf_counter() - t0
    if code != 0:
        return {"method": method, "pair": pair.name, "level": level, "k": k, "error": float("nan"),
                "status": "command failed", "message": text[-500:], "seconds": float("nan"), "wall": wall}
    doc = json.loads((folder / "result" / "result.json").read_text())
    result = RigidTransform.from_sitk(sitk.ReadTransform(str(folder / "result" / "transform.tfm")))
    return {"method": method, "pair": pair.name, "level": level, "k": k, "error": pair.error(result),
            "status": doc["status"], "message": doc["message"], "seconds": doc["runtime_s"], "wall": wall,
            "moving_mask": doc.get("info", {}).get("moving_mask")}


def table(rows: list[dict]) -> str:
    lines = ["| method | pair | start | final errors (mm) | mean | median | successes (< 2 mm) | not converged | "
             "seconds |", "|---|---|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((r["method"], r["pair"], r["level"]) for r in rows)
    for method, pair, level in keys:
        g = [r for r in rows if (r["method"], r["pair"], r["level"]) == (method, pair, level)]
        e = np.array([r["error"] for r in g], float)
        nc = sum(r["status"] != "ok" for r in g)
        lines.append(f"| {method} | {pair} | {level:g} mm | {', '.join(f'{v:.2f}' for v in e)} | {np.mean(e):.2f} | "
                     f"{np.median(e):.2f} | {int((e < 2).sum())}/{len(e)} | {nc}/{len(e)} | "
                     f"{np.median([r['seconds'] for r in g]):.1f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="mi,mind")
    ap.add_argument("--levels", default="8,16")
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--pairs", default=",".join(PAIRS))
    ap.add_argument("-j", "--jobs", type=int, default=1, help="commands at once")
    ap.add_argument("--in-process", action="store_true")
    ap.add_argument("--out", default="bench/out/real_pairs")
    ap.add_argument("-O", "--method-option", action="append", default=[], help="passed to regkit register")
    a = ap.parse_args()
    out = Path(a.out)
    pairs = [load_pair(p) for p in a.pairs.split(",")]
    levels = [float(v) for v in a.levels.split(",")]
    options = [x for o in a.method_option for x in ("-O", o)]
    jobs = [(m, p, lv, k) for m in a.methods.split(",") for p in pairs for lv in levels for k in range(a.starts)]
    rows = []
    with ThreadPoolExecutor(1 if a.in_process else a.jobs) as pool:
        for r in pool.map(lambda j: one(*j, out, a.in_process, options), jobs):
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
            rows.append(r)
    print()
    print(table(rows))
    (out / "rows.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
