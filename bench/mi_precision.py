"""How close ``mi`` ends to the careful reference on the real dev pairs and on harder variants of them.

    nice -n 10 python bench/mi_precision.py [--configs mi-old,mi,careful,sitk] [--variants ...] [--starts 4]
                                            [--level 8] [--api register|registrar] [--out bench/out/mi_precision]

The dev pairs of ``../shared/data/real_multimodal_dev`` (their README: reference, evaluation points, seeded
starts ``ref ∘ P``) and harder variants made from them by resampling, which keeps every image in its physical
frame, so the pair's reference and points stay valid:

* ``orig``: the pair as shipped;
* ``fixed1.6``: the fixed image resampled to 1.6 mm isotropic (as a brain T1 at 1.6 mm);
* ``thick``: the moving image resampled to 6 mm slices (in-plane spacing kept), as a thick-slice series.

Resampling to a coarser spacing first smooths each axis by a Gaussian whose FWHM is ``sqrt(new² - old²)`` (what
a coarser acquisition would have blurred), then samples linearly on a grid of the new spacing over the same field
of view; the voxels go back to the image's pixel type.

Configurations (``--configs``, interleaved start by start so that the shared machine's load falls on all alike):

* ``mi``: regkit's default ``mi`` (``preset="auto"``: the general recipe for these MR moving images);
* ``mi-old``: the general recipe before this bench's change, pinned option by option (:data:`OLD`);
* ``careful``: the README's plain recipe through the same registrar, as the references were made (:data:`CAREFUL`:
  6000 samples, 1000 iterations per level, three levels each smoothed by half a voxel, no masks);
* ``sitk``: SimpleITK's Mattes MI as ``bench/classical_speed.py`` runs it, with the settings it used before this
  change (sigmas 4, 2, 1, 0 mm, 2000 samples, at most 100 iterations per level): the time yardstick;
* ``NAME=JSON``: ``mi`` with these registrar options (for tuning), e.g. ``'fine={"spatial_samples": 4000}'``.

``--api register`` (the default) runs every ``mi`` configuration through ``regkit.register`` as a user would: the
images and the start as files, ``transform.tfm`` read back and compared with ``reference.tfm`` over the pair's
points; ``--api registrar`` calls the registrar directly (the same registration, without the files; for tuning).
Seconds are the registration's own (``result.json``'s ``runtime_s``; ITK's start-up excluded) and SimpleITK's
``Execute``. Each finished registration is appended to ``OUT/rows.csv`` at once; a rerun skips the rows there.
The summary (per pair and variant: mean and max error, successes < 2 mm, median seconds and their ratio to
SimpleITK's in the same run) goes to stdout and, with ``--summary``, to a file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from devpairs import PAIRS, DevPair, load_pair, start, write_start

#: The general recipe before this bench's change, option by option.
OLD = dict(preset="general", smoothing_mm=[4.0, 2.0, 1.0, 0.0], iterations=[100, 100, 100, 150],
           spatial_samples=2000, coarse_samples=None, coarse_step=1.0, shrink=False)
#: The README's plain ("careful") recipe as its references were made, as ``mi`` options: three levels of 1000
#: iterations with 6000 samples, each smoothed by half a voxel along every axis (elastix's own smoothing pyramid,
#: which ignores a smoothing schedule in mm: see regkit/baselines/recipes.py), no masks. This reproduces the
#: README's figures (8 mm start k = 0: 0.105, 0.178 and 0.068 mm against its 0.109, 0.171 and 0.043 mm); the
#: schedule read literally (2, 1 and 0 mm, no smoothing at the finest level) ends 0.33, 0.25 and 0.4 mm away.
CAREFUL = dict(preset="general", smoothing_mm=[0.0, 0.0, 0.0], min_sigma_voxels=0.5, iterations=1000,
               spatial_samples=6000, coarse_samples=None, coarse_step=1.0, shrink=False, mask_mm=None,
               moving_mask="none")
#: SimpleITK's settings in ``bench/classical_speed.py`` before this change.
SITK = dict(sigmas=(4.0, 2.0, 1.0, 0.0), samples=2000, iterations=100)

VARIANTS = {"orig": None, "fixed1.6": ("fixed", (1.6, 1.6, 1.6)), "thick": ("moving", (None, None, 6.0))}
FIELDS = ["config", "pair", "variant", "level", "k", "error", "status", "seconds", "matrix"]


def coarsen(image: sitk.Image, spacing) -> sitk.Image:
    """``image`` resampled to ``spacing`` (None keeps an axis) over the same field of view, in its physical frame."""
    old = np.array(image.GetSpacing(), float)
    new = np.array([o if s is None else float(s) for o, s in zip(old, spacing, strict=True)])
    fwhm = np.sqrt(np.maximum(new ** 2 - old ** 2, 0.0))
    img = sitk.Cast(image, sitk.sitkFloat32)
    if (fwhm > 0).any():
        img = sitk.DiscreteGaussian(img, [float(v) for v in (fwhm / 2.3548) ** 2], 64, 0.001, True)
    extent = old * np.array(image.GetSize())
    size = np.maximum(1, np.floor(extent / new + 1e-6)).astype(int)  # inside the field of view, centred in it
    direction = np.array(image.GetDirection()).reshape(3, 3)
    corner = np.array(image.GetOrigin()) - direction @ (old / 2)
    origin = corner + direction @ ((extent - size * new) / 2 + new / 2)
    out = sitk.Resample(img, [int(v) for v in size], sitk.Transform(), sitk.sitkLinear, origin.tolist(),
                        new.tolist(), image.GetDirection(), 0.0, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(out)
    src = sitk.GetArrayViewFromImage(image)
    arr = np.clip(np.round(arr), src.min(), src.max()).astype(src.dtype)
    res = sitk.GetImageFromArray(arr)
    res.CopyInformation(out)
    return res


def variant_files(pair: DevPair, variant: str, root: Path) -> tuple[Path, Path]:
    """The fixed and moving files of ``pair``'s ``variant`` (made once, under ``root``)."""
    if VARIANTS[variant] is None:
        return pair.fixed, pair.moving
    which, spacing = VARIANTS[variant]
    folder = root / "variants" / f"{pair.name}-{variant}"
    files = {"fixed": folder / "fixed.nii.gz", "moving": folder / "moving.nii.gz"}
    if not all(f.exists() for f in files.values()):
        folder.mkdir(parents=True, exist_ok=True)
        for role, src in (("fixed", pair.fixed), ("moving", pair.moving)):
            image = sitk.ReadImage(str(src))
            sitk.WriteImage(coarsen(image, spacing) if role == which else image, str(files[role]))
    return files["fixed"], files["moving"]


def sitk_mi(fixed, moving, start_t):
    from classical_speed import sitk_mi as run

    return run(fixed, moving, start_t, SITK["sigmas"], SITK["samples"], SITK["iterations"])


class Runner:
    def __init__(self, configs: dict[str, dict | None], api: str, out: Path):
        from regkit import get_registrar

        self.configs, self.api, self.out = configs, api, out
        self.registrars = {c: get_registrar("mi", **o) for c, o in configs.items() if o is not None}
        self.images: dict[Path, sitk.Image] = {}

    def image(self, path: Path) -> sitk.Image:
        if path not in self.images:
            self.images[path] = sitk.ReadImage(str(path))
        return self.images[path]

    def run(self, config: str, pair: DevPair, variant: str, fixed: Path, moving: Path, level: float, k: int) -> dict:
        s = start(pair, level, 0, k)
        row = {"config": config, "pair": pair.name, "variant": variant, "level": level, "k": k}
        if config == "sitk":
            t0 = time.perf_counter()
            t = sitk_mi(self.image(fixed), self.image(moving), s)
            return {**row, "error": pair.error(t), "status": "ok", "seconds": time.perf_counter() - t0,
                    "matrix": _flat(t)}
        if self.api == "registrar":
            from regkit.case import Case

            case = Case(pair.name, self.image(fixed), self.image(moving), None)
            r = self.registrars[config].register(case, s)
            return {**row, "error": pair.error(r.transform), "status": r.status, "seconds": r.runtime,
                    "matrix": _flat(r.transform)}
        import regkit
        from regkit.transform import RigidTransform

        folder = self.out / "runs" / config / f"{pair.name}-{variant}-{level:g}mm-k{k}"
        tfm = write_start(s, pair.points.mean(axis=0), folder / "start.tfm")
        regkit.register(str(fixed), str(moving), method="mi", initial_transform=str(tfm), out=folder / "result",
                        method_options=self.configs[config])
        doc = json.loads((folder / "result" / "result.json").read_text())
        result = RigidTransform.from_sitk(sitk.ReadTransform(str(folder / "result" / "transform.tfm")))
        return {**row, "error": pair.error(result), "status": doc["status"], "seconds": doc["runtime_s"],
                "matrix": _flat(result)}


def _flat(t) -> str:
    return " ".join(f"{v:.9g}" for v in t.matrix[:3].reshape(-1))


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return [{**r, "level": float(r["level"]), "k": int(r["k"]), "error": float(r["error"]),
                 "seconds": float(r["seconds"])} for r in csv.DictReader(f)]


def to_careful(rows: list[dict], r: dict) -> float:
    """Mean distance (mm) over the pair's points between ``r``'s result and the careful recipe's from the same start."""
    c = next((x for x in rows if x["config"] == "careful" and (x["pair"], x["variant"], x["level"], x["k"])
              == (r["pair"], r["variant"], r["level"], r["k"])), None)
    if c is None or not r.get("matrix") or not c.get("matrix"):
        return float("nan")
    pts = _points(r["pair"])
    a, b = (np.array([float(v) for v in x["matrix"].split()]).reshape(3, 4) for x in (r, c))
    return float(np.linalg.norm((pts @ a[:, :3].T + a[:, 3]) - (pts @ b[:, :3].T + b[:, 3]), axis=1).mean())


_POINTS: dict[str, np.ndarray] = {}


def _points(name: str) -> np.ndarray:
    if name not in _POINTS:
        _POINTS[name] = load_pair(name).points
    return _POINTS[name]


def summary(rows: list[dict], configs: list[str]) -> str:
    def med(c, g):
        return float(np.median([r["seconds"] for r in g if r["config"] == c] or [np.nan]))

    lines = ["| pair | variant | configuration | final errors (mm) | mean | max | successes (< 2 mm) | "
             "to careful (mm) | median s | s / SimpleITK's |", "|---|---|---|---|---|---|---|---|---|---|"]
    groups = dict.fromkeys((r["pair"], r["variant"], r["level"]) for r in rows)
    for pair, variant, level in groups:
        g = [r for r in rows if (r["pair"], r["variant"], r["level"]) == (pair, variant, level)]
        for c in configs:
            gc = sorted((r for r in g if r["config"] == c), key=lambda r: r["k"])
            if not gc:
                continue
            e = np.array([r["error"] for r in gc])
            ratio = med(c, g) / med("sitk", g) if any(r["config"] == "sitk" for r in g) else np.nan
            near = np.array([to_careful(rows, r) for r in gc])
            lines.append(f"| {pair} | {variant} ({level:g} mm) | {c} | {', '.join(f'{v:.2f}' for v in e)} | "
                         f"{e.mean():.2f} | {e.max():.2f} | {int((e < 2).sum())}/{len(e)} | "
                         f"{np.nanmean(near) if np.isfinite(near).any() else np.nan:.2f} | {med(c, g):.2f} | "
                         f"{ratio:.2f} |")
    lines += ["", "| configuration | registrations | mean error (mm) | successes (< 2 mm) | median s | "
              "median s / SimpleITK's (same starts) | mean s / SimpleITK's |", "|---|---|---|---|---|---|---|"]
    for c in configs:
        gc = [r for r in rows if r["config"] == c]
        if not gc:
            continue
        e = np.array([r["error"] for r in gc])
        keys = {(r["pair"], r["variant"], r["level"], r["k"]) for r in gc}
        sitk_s = [r["seconds"] for r in rows if r["config"] == "sitk" and (r["pair"], r["variant"], r["level"], r["k"])
                  in keys]
        own = [r["seconds"] for r in gc if any(r2["config"] == "sitk" and (r2["pair"], r2["variant"], r2["level"],
                                                                           r2["k"]) == (r["pair"], r["variant"],
                                                                                        r["level"], r["k"])
                                               for r2 in rows)]
        ratio = np.median(own) / np.median(sitk_s) if sitk_s and own else np.nan
        mratio = np.mean(own) / np.mean(sitk_s) if sitk_s and own else np.nan
        lines.append(f"| {c} | {len(gc)} | {e.mean():.2f} | {int((e < 2).sum())}/{len(e)} | "
                     f"{np.median([r['seconds'] for r in gc]):.2f} | {ratio:.2f} | {mratio:.2f} |")
    return "\n".join(lines)


def parse_configs(spec: str) -> dict[str, dict | None]:
    out: dict[str, dict | None] = {}
    for item in filter(None, (s.strip() for s in spec.split(";" if "=" in spec else ","))):
        name, _, options = item.partition("=")
        if options:
            out[name] = json.loads(options)
        elif name in ("sitk",):
            out[name] = None
        else:
            out[name] = {"mi": {}, "mi-old": OLD, "careful": CAREFUL}[name]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="mi-old,mi,careful,sitk",
                    help="comma-separated names, or ';'-separated NAME or NAME=JSON items")
    ap.add_argument("--pairs", default=",".join(PAIRS))
    ap.add_argument("--variants", default="orig,fixed1.6,thick",
                    help="variants per pair (thick is skipped on the spine, whose moving slices are 7.5 mm)")
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--first-start", type=int, default=0)
    ap.add_argument("--level", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, help="the sampler seed of every mi configuration (default: the registrar's)")
    ap.add_argument("--api", choices=("register", "registrar"), default="register")
    ap.add_argument("--out", default="bench/out/mi_precision")
    ap.add_argument("--summary", help="also write the summary to this file")
    a = ap.parse_args()
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(a.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    configs = parse_configs(a.configs)
    for o in configs.values():
        if o is not None:
            o.setdefault("threads", a.threads)
            if a.seed is not None:
                o["seed"] = a.seed
    csv_path = out / "rows.csv"
    rows = read_rows(csv_path)
    done = {(r["config"], r["pair"], r["variant"], r["level"], r["k"]) for r in rows}
    runner = None
    for name in a.pairs.split(","):
        pair = load_pair(name)
        for variant in a.variants.split(","):
            if variant == "thick" and name == "spine_t2_t2s":
                continue
            fixed, moving = variant_files(pair, variant, out)
            for k in range(a.first_start, a.first_start + a.starts):
                for c in configs:
                    if (c, name, variant, a.level, k) in done:
                        continue
                    runner = runner or Runner(configs, a.api, out)
                    row = runner.run(c, pair, variant, fixed, moving, a.level, k)
                    new = not csv_path.exists()
                    with csv_path.open("a", newline="") as f:
                        w = csv.DictWriter(f, FIELDS)
                        if new:
                            w.writeheader()
                        w.writerow(row)
                    rows.append(row)
                    print(json.dumps({k_: (round(v, 3) if isinstance(v, float) else v) for k_, v in row.items()}),
                          flush=True)
    text = summary([r for r in rows if r["config"] in configs and r["level"] == a.level], list(configs))
    print(text)
    if a.summary:
        Path(a.summary).write_text(text + "\n")


if __name__ == "__main__":
    main()
