"""Bundled weights stored in half precision: how far does that move the mean SRE on each validation set?

    bash scripts/make_training_data.sh      # once (only its validation sets are needed: runs/data/val-*)
    nice -n 10 python bench/half_precision_weights.py > bench/results/half_precision_weights.txt

For every bundled weights file (``deep/weights/*.safetensors``: each network and stage), the mean SRE on each
validation set the training rounds chose on: the built-in benchmark's validation split, the 5 held-out PROMISE12
MRs (``val-promise12``) and the 3 MRs of ``prostate_mr`` (``val-prostate-mr``), both with simulated TRUS as
``scripts/make_training_data.sh`` renders them. Each file runs alone, one pass, from its own stage's starts
(its JSON's ``init_range``: 0–20 mm for stage 1, 0–8 mm for stage 2), as the training's validation measures it;
inference in float32. The float16 file (loaded, as always, as its float32 upcast) and float32 weights run on the
same starts, and the differences of the means are printed.

The bundled files have been float16 since the first ones (``scripts/training_record.py --export`` writes a
run's best checkpoint with :func:`~regkit.deep.checkpoint.export_checkpoint`, float16 by default), and the float32
weights each was exported from (a run's ``best.safetensors`` under ``runs/bundled``) are not kept. With
``--originals DIR`` (holding ``<method>-stage<k>.safetensors`` in float32) they are the float32 side. Without
it, the float32 side is a float32 network that rounds to the stored file: every
stored value moved by a uniform draw within its float16 rounding cell (up to half-way to its float16 neighbours),
so that it rounds back to exactly the stored value, as the unknown original did. ``--draws`` such networks are
measured; the largest difference is the verdict. A control row per file rounds the stored values to bfloat16
instead (8× coarser), to show that the measurement responds. A file passes when every set's mean moves by less than
``--tolerance`` (0.01 mm).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SETS = ("builtin:val", "val-promise12", "val-prostate-mr")


def validation_sets(data: Path) -> dict[str, list]:
    """The validation cases of each set, by the set's name."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _util import cases_of

    out = {}
    for spec in SETS:
        if spec.startswith("builtin:"):
            out["builtin-val"] = cases_of(spec)
            continue
        folder = data / spec
        if not (folder / "dataset.json").exists():
            raise SystemExit(f"{folder} is missing: render it with scripts/make_training_data.sh (DATA={data})")
        out[spec] = cases_of(str(folder))
    return out


def float32_that_rounds_to(stored: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A float32 tensor whose float16 rounding is exactly ``stored`` (float16): each value drawn uniformly within
    its rounding cell, strictly inside it."""
    v = stored.numpy()
    x = v.astype(np.float32)
    up = np.nextafter(v, np.float16(np.inf)).astype(np.float32)
    down = np.nextafter(v, np.float16(-np.inf)).astype(np.float32)
    u = rng.uniform(-0.999, 0.999, size=v.shape).astype(np.float32)
    w = np.where(u >= 0, x + u * (up - x) / 2, x + u * (x - down) / 2)
    w = torch.from_numpy(np.where(np.isfinite(w), w, x).astype(np.float32))
    assert torch.equal(w.half(), stored), "a drawn value does not round back to the stored one"
    return w


def float32_checkpoint(path: Path, rng: np.random.Generator | None, originals: Path | None, out: Path,
                       control: bool = False) -> Path:
    """The float32 side of a bundled file: its original from ``originals``, or a draw that rounds to it; with
    ``control``, the stored values rounded to bfloat16 instead (8× coarser than float16: what a coarser storage
    would move, so that the measurement is seen to respond)."""
    from regkit.deep.checkpoint import load_checkpoint, read_tensors, save_checkpoint

    if originals is not None and not control:
        return originals / path.name
    model, config = load_checkpoint(path)
    stored = read_tensors(path)
    state = model.state_dict()
    for k, t in stored.items():
        if t.dtype == torch.float16:
            state[k] = t.to(torch.bfloat16).float() if control else float32_that_rounds_to(t, rng)
    model.load_state_dict(state)
    name = f"{path.stem}-bf16" if control else path.stem
    return save_checkpoint(model, config, out / name, dtype=torch.float32, skip_unused=True)


def mean_sres(weights: Path, cases_by_set: dict[str, list], starts_by_set: dict[str, list],
              inputs: dict) -> dict[str, np.ndarray]:
    """Per set, the SRE of every start after one pass of the network in ``weights`` (float32 inference).
    ``inputs`` caches each case's network input (by set, case, variant and input grid) across calls."""
    from regkit.deep.checkpoint import read_config
    from regkit.deep.correction import apply_correction
    from regkit.deep.crop import CaseInput
    from regkit.deep.registrar import DeepRegistrar
    from regkit.sre import sre
    from regkit.transform import RigidTransform

    cfg = read_config(weights)
    reg = DeepRegistrar(cfg.architecture, cfg.variant, checkpoint=weights, precision="float32", device="cpu")
    net = reg.networks[0]
    out = {}
    for name, cases in cases_by_set.items():
        sres = []
        for case in cases:
            starts = [s for s in starts_by_set[name] if s.case == case.case_id]
            t = RigidTransform.from_matrix(np.stack([s.transform.matrix for s in starts]))
            key = (name, case.case_id, cfg.variant, tuple(cfg.input_options.values()))
            if key not in inputs:
                inputs[key] = CaseInput(case, cfg.variant, reg.device, **cfg.input_options)
            ci = inputs[key]
            est = apply_correction(ci.box, t, reg.predict(net, ci.inputs(t), ci.fixed))
            sres.append(np.atleast_1d(sre(est, case.ground_truth, case.surface_points)))
        out[name] = np.concatenate(sres)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "runs" / "data", help="where make_training_data.sh renders")
    ap.add_argument("--weights", type=Path, default=ROOT / "deep" / "weights")
    ap.add_argument("--only", nargs="*", help="file stems to measure (default: every bundled file)")
    ap.add_argument("--starts", type=int, default=3, help="starts per validation case (the rounds' 3)")
    ap.add_argument("--draws", type=int, default=2, help="float32 networks drawn per file (without --originals)")
    ap.add_argument("--originals", type=Path, help="the float32 files the bundled ones were exported from")
    ap.add_argument("--tolerance", type=float, default=0.01, help="mm")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).parent))
    from _util import machine

    from regkit.deep.checkpoint import read_config
    from regkit.starts import make_starts, parse_init

    files = sorted(p for p in args.weights.glob("*.safetensors") if not args.only or p.stem in args.only)
    cases_by_set = validation_sets(args.data)
    print(f"machine: {machine()}, {args.threads} torch threads; inference float32 on the CPU")
    print("sets: " + ", ".join(f"{k} ({len(v)} cases × {args.starts} starts)" for k, v in cases_by_set.items()))
    side = f"the originals in {args.originals}" if args.originals else \
        f"{args.draws} float32 networks that round to the stored file (per file)"
    print(f"float32 side: {side}; tolerance {args.tolerance} mm on every set's mean\n")
    print("each row: the stored float16 file against another network on the same starts (fp32 k: float32 weights;"
          " bf16 control: the stored values rounded to bfloat16, not part of the verdict)")
    print(f"{'file':<22} {'against':<12} {'set':<16} {'starts':>6} {'SRE fp16':>9} {'SRE other':>9} "
          f"{'Δ mean':>8} {'max |Δ| sample':>14}")
    verdicts, inputs = {}, {}
    for path in files:
        cfg = read_config(path)
        init = parse_init(cfg.init_range)[0]
        starts_by_set = {name: make_starts(cases, init, args.starts, seed=2024)
                         for name, cases in cases_by_set.items()}
        t0 = time.perf_counter()
        stored = mean_sres(path, cases_by_set, starts_by_set, inputs)
        worst = 0.0
        with tempfile.TemporaryDirectory() as tmp:
            sides = [(f"fp32 {d + 1}", d, False) for d in range(1 if args.originals else args.draws)]
            for label, d, control in [*sides, ("bf16 control", 0, True)]:
                f32 = float32_checkpoint(path, np.random.default_rng([7, d]), args.originals, Path(tmp), control)
                assert read_config(f32).dtype == "float32"
                other = mean_sres(f32, cases_by_set, starts_by_set, inputs)
                for name in cases_by_set:
                    delta = float(other[name].mean() - stored[name].mean())
                    if not control:
                        worst = max(worst, abs(delta))
                    print(f"{path.stem:<22} {label:<12} {name:<16} {len(stored[name]):>6} "
                          f"{stored[name].mean():>9.4f} {other[name].mean():>9.4f} {delta:>+8.4f} "
                          f"{np.abs(other[name] - stored[name]).max():>14.4f}", flush=True)
        verdicts[path.stem] = worst
        print(f"{path.stem:<22} largest |Δ mean| {worst:.4f} mm: "
              f"{'float16 keeps it' if worst < args.tolerance else 'KEEP FLOAT32'} "
              f"({time.perf_counter() - t0:.0f} s)\n", flush=True)
    stored_mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"{sum(v < args.tolerance for v in verdicts.values())} of {len(verdicts)} files within "
          f"{args.tolerance} mm; the files measured take {stored_mb:.1f} MB as stored")


if __name__ == "__main__":
    main()
