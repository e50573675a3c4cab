"""Print the training record of the bundled weights as a Markdown table (for BENCHMARKS.md).

    python scripts/training_record.py [runs/bundled]
"""

import csv
import json
import sys
from pathlib import Path

RUNS = [("attreg-s1", "attreg", 1), ("attreg-label-s1", "attreg-label", 1), ("attreg-s2", "attreg", 2),
        ("attreg-label-s2", "attreg-label", 2), ("featreg-s1", "featreg", 1)]


def main(root: Path) -> None:
    print("| run | method, stage | epochs (steps, samples) | training time | validation SRE (mm): start → best "
          "(epoch) → last | stop |")
    print("|---|---|---|---|---|---|")
    for run, method, stage in RUNS:
        d = root / run
        if not (d / "summary.json").exists():
            print(f"| {run} | {method}, {stage} | not trained | | | |")
            continue
        s = json.loads((d / "summary.json").read_text())
        hist = list(csv.DictReader(open(d / "history.csv")))
        start, last = float(hist[0]["val_sre_mean"]), float(hist[-1]["val_sre_mean"])
        print(f"| {run} | {method}, {stage} | {s['epochs']} ({s['steps']}, {s['samples']}) | "
              f"{float(hist[-1]['elapsed_s']) / 60:.0f} min | {start:.2f} → {s['best_val_sre']:.2f} "
              f"({s['best_epoch']}) → {last:.2f} | {s['stop_reason']} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/bundled"))
