"""The bundled weights' runs: print their training record as a Markdown table (for BENCHMARKS.md), or export
each run's best checkpoint to deep/weights/<method>-stage<k> (fp16) with a model card beside it.

    python scripts/training_record.py [runs/bundled]
    python scripts/training_record.py --export [runs/bundled]      # the last step of train_bundled_weights.sh
    python scripts/training_record.py --export --dest DIR --host TEXT [runs/bundled] [run ...]

``--dest`` exports elsewhere than deep/weights (a GPU run's output); ``--host`` describes the machine in the
model card (default: this project's shared 2-core VM).

A model card (``<method>-stage<k>.md``) states the data and its seed, the stage and its starting-error range,
epochs, samples seen, wall time, device, the validation SRE (overall and per validation dataset) and the
validation curve (``<method>-stage<k>.png``).
"""

import csv
import json
import sys
from pathlib import Path

# (run folder, method, stage), in training order
RUNS = [("attreg-s1", "attreg", 1), ("featreg-s1", "featreg", 1), ("attreg-s2", "attreg", 2),
        ("featreg-s2", "featreg", 2), ("attreg-label-s1", "attreg-label", 1),
        ("featreg-label-s1", "featreg-label", 1), ("attreg-label-s2", "attreg-label", 2),
        ("featreg-label-s2", "featreg-label", 2), ("dvnet-s1", "dvnet", 1), ("msreg-s1", "msreg", 1),
        ("msreg-s2", "msreg", 2)]


def _history(d: Path) -> list[dict]:
    with open(d / "history.csv") as fh:
        return list(csv.DictReader(fh))


def validation_groups(row: dict) -> list[str]:
    """The validation datasets that have their own column (``val_sre_<dataset>``) in a history row."""
    return [k.removeprefix("val_sre_") for k in row if k.startswith("val_sre_")
            and k not in ("val_sre_mean", "val_sre_median")]


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
        hist = _history(d)
        start, last = float(hist[0]["val_sre_mean"]), float(hist[-1]["val_sre_mean"])
        print(f"| {run} | {method}, {stage} | {s['epochs']} ({s['steps']}, {s['samples']}) | "
              f"{float(hist[-1]['elapsed_s']) / 60:.0f} min | {start:.2f} → {s['best_val_sre']:.2f} "
              f"({s['best_epoch']}) → {last:.2f} | {s['stop_reason']} |")


def curve_png(hist: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [int(h["samples"]) for h in hist]
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=80)
    groups = validation_groups(hist[0])
    ax.plot(samples, [float(h["val_sre_mean"]) for h in hist], "k-o", ms=3, label="all validation starts")
    for g in groups:
        ax.plot(samples, [float(h[f"val_sre_{g}"]) for h in hist], "-", lw=1, label=g)
    ax.set_xlabel("training samples seen")
    ax.set_ylabel("validation SRE (mm)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _data_text(data) -> str:
    """The datasets a run trained on, by folder name."""
    return ", ".join(Path(d).name for d in data) if isinstance(data, list) else str(data)


def _initial_weights(init: str | None) -> str:
    """The weights a run started from, with what they had seen (a fine-tune's budget is on top of theirs)."""
    from regkit.deep.checkpoint import CheckpointError, read_config

    if not init:
        return "random (seed above)"
    try:
        tr = read_config(init).training
    except CheckpointError:
        return str(init)
    if "samples" not in tr:
        return str(init)
    return (f"{init} (trained on {_data_text(tr.get('data'))}: {tr['samples']:,} samples, "
            f"{float(tr.get('train_seconds', 0)) / 60:.0f} min)")


def _starts_text(tr: dict) -> str:
    """Where training starts come from: fresh draws, or (--rollout) partly where a network's passes leave them."""
    if not tr.get("rollout"):
        return "fresh draws each sample"
    who = (f"one pass of {tr['rollout_from']} from its own starting range" if tr.get("rollout_from")
           else "1-3 passes of the network being trained")
    return f"fresh draws; a fraction {tr['rollout']} of them first moved by {who} (--rollout)"


CPU_HOST = "on the CPU, a 2-core VM shared with other jobs"

# a new weights file replaces a bundled one only when its mean validation SRE is lower by more than this (MARGIN of
# scripts/bundle_if_better.sh): twice the spread (√2 σ) of the difference of two validation readings of one converged
# run, σ ≈ 0.025 mm, rounded up (bench/results/training_validation_noise.txt)
REPLACE_MARGIN_MM = 0.1


def storage_text(dtype: str) -> str:
    """The model card's sentence on how the weights are stored (bench/half_precision_weights.py measures it)."""
    if dtype == "float16":
        return ("Stored in float16 (half of float32's size) and loaded as its float32 upcast: against float32 "
                "weights, the mean SRE on every validation set moves by less than 0.01 mm "
                "(`bench/half_precision_weights.py`).")
    return (f"Stored in {dtype}: float16 storage would move the mean SRE on a validation set by 0.01 mm or more "
            "(`bench/half_precision_weights.py`).")


def replacement_text() -> str:
    """The model card's sentence on when a new file replaces this one."""
    return (f"A new file replaces this one only when its mean validation SRE is lower by more than {REPLACE_MARGIN_MM} "
            "mm (about twice the spread of two validation readings of one converged training run; "
            "`bench/results/training_validation_noise.txt`).")


def model_card(run_dir: Path, weights: Path, method: str, stage: int, host: str = CPU_HOST) -> Path:
    cfg = json.loads(weights.with_suffix(".json").read_text())
    tr = cfg["training"]
    opts = json.loads((run_dir / "options.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    hist = _history(run_dir)
    best = min(hist, key=lambda h: float(h["val_sre_mean"]))
    groups = {g: float(best[f"val_sre_{g}"]) for g in validation_groups(best) if best[f"val_sre_{g}"] != ""}
    png = weights.with_suffix(".png")
    curve_png(hist, png, f"{method}, stage {stage}: validation SRE")
    data = _data_text(tr.get("data"))
    secs = float(summary["train_seconds"])
    lines = [
        f"# {weights.stem}: {method}, stage {stage}",
        "",
        f"Weights: `{weights.name}` ({cfg['dtype']}, {weights.stat().st_size / 1e6:.1f} MB), architecture "
        f"`{cfg['architecture']}`, fixed input: MR {cfg['variant']}, {cfg['parameter_count']:,} parameters.",
        "",
        "| | |",
        "|---|---|",
        f"| data | {data} (rendered by `scripts/make_training_data.sh`, or by `scripts/train_all.sh`; training "
        f"splits pooled) |",
        f"| data seed, training seed | see the datasets' `dataset.json`; training seed {tr['seed']} |",
        f"| stage, starting SRE of training starts | {stage}, {cfg['init_range']} (uniform) |",
        f"| initial weights | {_initial_weights(tr.get('init_weights'))} |",
        f"| epochs (planned), samples per epoch | {tr['epochs_done']} ({tr['epochs_planned']}"
        f"{', --fit-epochs to the time budget' if opts.get('fit_epochs') else ''}), "
        f"{opts.get('samples_per_epoch') or 'one per training case'} |",
        f"| samples seen, batch size | {tr['samples']:,}, {tr['batch_size']} |",
        f"| starts | {_starts_text(tr)} |",
        f"| optimiser | Adam, lr {tr['lr']}, schedule {tr['schedule']}; bf16 autocast {tr['bf16']}; "
        f"augmentation {tr.get('augment', False)} |",
        f"| wall time | {f'{secs / 60:.0f} min' if secs >= 600 else f'{secs:.0f} s'} of training (data loading "
        f"and the first validation not counted), summed over resumed invocations |",
        f"| device | {tr.get('device') or opts.get('device') or 'cpu'}"
        f"{' (' + tr['device_name'] + ')' if tr.get('device_name') else ''}, torch {tr['torch']}, "
        f"{opts.get('threads') or 'all'} torch thread(s); {host} |",
        f"| time budget per invocation | "
        f"{str(round(opts['time_budget'])) + ' s' if opts.get('time_budget') else 'none'}; stopped by: "
        f"{summary['stop_reason']} |",
        f"| validation | {opts.get('val_starts')} fixed starts per validation case, {cfg['init_range']} |",
        f"| validation SRE of these weights (epoch {best['epoch']}, {int(best['samples']):,} samples) | "
        f"{float(best['val_sre_mean']):.2f} mm mean over all starts"
        + "".join(f"; {g} {v:.2f}" for g, v in groups.items()) + " |",
        "",
        f"![validation curve]({png.name})",
        "",
        "Retrain with `bash scripts/train_bundled_weights.sh` (resumable).",
        "",
        storage_text(cfg["dtype"]),
        replacement_text(),
        "",
    ]
    card = weights.with_suffix(".md")
    card.write_text("\n".join(lines))
    return card


def export(root: Path, dest: Path = Path("deep/weights"), only: list[str] | None = None,
           host: str = CPU_HOST) -> None:
    from regkit.deep.checkpoint import export_checkpoint

    for run, method, stage in RUNS:
        if only and run not in only:
            continue
        d = root / run
        if not (d / "best.safetensors").exists() or not (d / "summary.json").exists():
            continue
        w = export_checkpoint(d / "best", dest / f"{method}-stage{stage}",
                              note="bundled: scripts/train_bundled_weights.sh (see the model card beside it)")
        print("export", w, model_card(d, w, method, stage, host))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", nargs="?", type=Path, default=Path("runs/bundled"))
    ap.add_argument("runs", nargs="*", help="only these run folders (with --export)")
    ap.add_argument("--export", action="store_true")
    ap.add_argument("--dest", type=Path, default=Path("deep/weights"))
    ap.add_argument("--host", default=CPU_HOST)
    a = ap.parse_args(sys.argv[1:])
    if a.export:
        a.dest.mkdir(parents=True, exist_ok=True)
        export(a.root, a.dest, only=a.runs or None, host=a.host)
    else:
        main(a.root)
