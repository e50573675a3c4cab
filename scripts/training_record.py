"""The bundled weights' runs: print their training record as a Markdown table (for BENCHMARKS.md), or export
each run's best checkpoint to deep/weights/<method>-stage<k> (fp16).

    python scripts/training_record.py [runs/bundled]
    python scripts/training_record.py --export [runs/bundled]      # the last step of train_bundled_weights.sh
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


def export(root: Path, dest: Path = Path("deep/weights")) -> None:
    from regkit.deep.checkpoint import export_checkpoint

    for run, method, stage in RUNS:
        if (root / run / "best.safetensors").exists():
            print("export", export_checkpoint(root / run / "best", dest / f"{method}-stage{stage}",
                                              note="bundled: built-in benchmark, scripts/train_bundled_weights.sh"))


if __name__ == "__main__":
    args = sys.argv[1:]
    do_export = "--export" in args
    root = Path(next((a for a in args if a != "--export"), "runs/bundled"))
    if do_export:
        export(root)
    else:
        main(root)
