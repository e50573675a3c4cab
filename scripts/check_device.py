"""Check trained networks on a CUDA device: the same outputs as on the CPU, and inference time per stage.

    python scripts/check_device.py --weights DIR [--data DATASET] [--out DIR] [--repeats 20] [--starts 8]

Run by ``scripts/train_all.sh`` after training. For every checkpoint ``<method>-stage<k>`` in DIR (as
``scripts/training_record.py --export`` writes them):

* **CUDA against CPU.** The same weights, loaded on both devices in float32 with TF32 off, predict the six
  correction parameters for the same inputs (8 starts at 0-20 mm of one validation case, built once on the
  CPU); the largest difference must stay below ``TOLERANCE`` (mm and degrees). Without CUDA the CPU is compared
  with itself through a second load, so that the script runs, and says so, everywhere.
* **Time.** Forward time per stage at batch 1 (per-sample latency, the paper's 3 ms per stage on an RTX 2080
  Ti) and at the network's training batch size (throughput), median of ``--repeats`` runs after warm-up, timed
  with CUDA events on a GPU; and the whole registration per sample (resampling and every stage) through
  ``register_many``, the figure to set beside the paper's 6 ms for a two-stage cascade.

Writes ``device_check.json`` and ``device_check.md`` to ``--out`` and exits 1 if any difference is too large.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

TOLERANCE = 1e-3  # mm and degrees, float32 with TF32 off; a network's output is O(1-10)
BATCH_STARTS = 8


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` after two warm-up calls (CUDA events on a GPU)."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def checkpoints(weights: Path) -> dict[str, list[Path]]:
    """Stage checkpoints per method, in stage order: ``{"attreg": [attreg-stage1, attreg-stage2], ...}``."""
    out: dict[str, list[Path]] = {}
    for p in sorted(weights.glob("*-stage*.safetensors")):
        method, _, stage = p.stem.rpartition("-stage")
        out.setdefault(method, []).append((int(stage), p.with_suffix("")))
    return {m: [p for _, p in sorted(v)] for m, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    from regkit.benchmark import open_dataset
    from regkit.deep.crop import CaseInput
    from regkit.deep.networks import architecture
    from regkit.registry import get_registrar
    from regkit.starts import make_starts
    from regkit.transform import RigidTransform

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", type=Path, required=True, help="folder of <method>-stage<k> checkpoints")
    ap.add_argument("--data", default=None, help="dataset with a val split [the built-in benchmark]")
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--starts", type=int, default=BATCH_STARTS, help="starts compared and registered [8]")
    args = ap.parse_args(argv)

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    ds = open_dataset(args.data, ("val",), show_progress=False)
    case = ds.load(ds.case_ids("val")[0])
    starts = [s.transform for s in make_starts([case], "0-20mm", args.starts, seed=0)]
    report = {"device": torch.cuda.get_device_name(0) if cuda else "cpu (no CUDA: CPU compared with CPU)",
              "torch": torch.__version__, "tolerance": TOLERANCE, "case": case.case_id, "methods": {}}
    failed = False
    for method, stems in checkpoints(args.weights).items():
        options = {"checkpoint": stems[0], **({"stage2": stems[1]} if len(stems) > 1 else {})}
        on_cpu = get_registrar(method, device="cpu", **options)
        on_dev = get_registrar(method, device=str(device), **options)
        batch = architecture(on_cpu.architecture).batch_size
        rows = []
        for k, (net_cpu, net_dev, cfg) in enumerate(zip(on_cpu.networks, on_dev.networks, on_cpu.configs,
                                                        strict=True), start=1):
            x = CaseInput(case, on_cpu.variant, "cpu", **cfg.input_options).inputs(
                RigidTransform.from_matrix(np.stack([s.matrix for s in starts])))
            with torch.no_grad():
                diff = float((net_cpu(x) - net_dev(x.to(device)).cpu()).abs().max())
                one = x[:1].to(device)
                many = x[:1].expand(batch, *x.shape[1:]).contiguous().to(device)
                t1 = timed(lambda n=net_dev, i=one: n(i), device, args.repeats)
                tb = timed(lambda n=net_dev, i=many: n(i), device, args.repeats)
            failed |= not diff < TOLERANCE
            rows.append({"stage": k, "max_abs_difference": diff, "ms_batch1": 1000 * t1, "batch": batch,
                         "ms_per_sample_at_batch": 1000 * tb / batch})
        pairs = [(case, s) for s in starts]
        per_sample = timed(lambda r=on_dev, p=pairs: r.register_many(p), device, max(1, args.repeats // 4)) / len(pairs)
        report["methods"][method] = {"stages": rows, "ms_per_sample_registration": 1000 * per_sample}
        print(f"{method}: " + "; ".join(f"stage {r['stage']}: |device-cpu| {r['max_abs_difference']:.2e}, "
                                       f"{r['ms_batch1']:.1f} ms at batch 1, {r['ms_per_sample_at_batch']:.2f} "
                                       f"ms/sample at batch {r['batch']}" for r in rows)
              + f"; registration {1000 * per_sample:.1f} ms/sample", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "device_check.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"device: {report['device']}; torch {report['torch']}; tolerance {TOLERANCE} (mm, degrees)", "",
             "| method | stage | max |device − CPU| | ms, batch 1 | ms/sample at training batch "
             "| registration ms/sample |",
             "|---|---|---|---|---|---|"]
    for method, m in report["methods"].items():
        for r in m["stages"]:
            lines.append(f"| {method} | {r['stage']} | {r['max_abs_difference']:.2e} | {r['ms_batch1']:.2f} | "
                         f"{r['ms_per_sample_at_batch']:.2f} (batch {r['batch']}) | "
                         f"{m['ms_per_sample_registration']:.2f} |")
    (args.out / "device_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
