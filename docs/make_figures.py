"""Make the README's figures and the phantom-versus-real statistics.

    python docs/make_figures.py            # docs/phantom.png and docs/realism.md
    python docs/make_figures.py --all      # also docs/register_overlay.png and docs/explain.png (bundled weights)

Uses the built-in benchmark and, when present, the real images in ../shared/data (never copied).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"


def stats(a: np.ndarray) -> dict:
    v = a[a > 0].astype(float)
    return {"median": np.median(v), "p5": np.percentile(v, 5), "p95": np.percentile(v, 95),
            "cv": v.std() / v.mean(), "zero_fraction": float((a == 0).mean())}


def speckle_snr(a: np.ndarray, size: int = 9) -> float:
    """Median of local mean/std over small windows inside the field of view (fully developed speckle: 1.91)."""
    from scipy.ndimage import uniform_filter

    f = a.astype(float)
    m = uniform_filter(f, size)
    s = np.sqrt(np.maximum(uniform_filter(f * f, size) - m * m, 1e-9))
    inside = uniform_filter((a > 0).astype(float), size) > 0.999
    return float(np.median(m[inside] / s[inside]))


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from regkit.benchmark import builtin_benchmark
    from regkit.synth.phantom import synth_case_from_mr

    ds = builtin_benchmark(("test",))
    cases = [ds.load(c) for c in ds.case_ids("test")[:3]]
    real_trus = sorted((SHARED / "prostate_trus").glob("*.nii.gz")) if SHARED.is_dir() else []
    real_mr = sorted((SHARED / "prostate_mr").glob("*_t2.nii.gz")) if SHARED.is_dir() else []

    # figure 1: phantom case (MR, TRUS, TRUS in MR space under the ground truth) + real images
    fig, axes = plt.subplots(2, 4, figsize=(18, 8.6))
    c = cases[0]
    mr = sitk.GetArrayFromImage(c.fixed)
    lab = sitk.GetArrayFromImage(c.fixed_label)
    z = int(np.argmax(lab.sum((1, 2))))
    us = sitk.GetArrayFromImage(c.moving)
    ul = sitk.GetArrayFromImage(c.moving_label)
    zu = int(np.argmax(ul.sum((1, 2))))
    warped = sitk.GetArrayFromImage(sitk.Resample(c.moving, c.fixed, c.ground_truth.to_sitk(), sitk.sitkLinear, 0.0))
    axes[0, 0].imshow(mr[z], cmap="gray")
    axes[0, 0].contour(lab[z], [0.5], colors="r")
    axes[0, 0].set_title(f"phantom MR (T2), {c.case_id}")
    axes[0, 1].imshow(us[zu], cmap="gray", vmin=0, vmax=255)
    axes[0, 1].contour(ul[zu], [0.5], colors="r")
    axes[0, 1].set_title("phantom TRUS (its own frame)")
    axes[0, 2].imshow(warped[z], cmap="gray", vmin=0, vmax=255)
    axes[0, 2].contour(lab[z], [0.5], colors="r")
    axes[0, 2].set_title("TRUS in MR space, ground truth")
    x = int(np.argmax(lab.sum((0, 1))))
    axes[0, 3].imshow(warped[:, :, x][::-1], cmap="gray", vmin=0, vmax=255,
                      aspect=c.fixed.GetSpacing()[2] / c.fixed.GetSpacing()[1])
    axes[0, 3].contour(lab[:, :, x][::-1], [0.5], colors="r")
    axes[0, 3].set_title("same, sagittal")
    if real_mr:
        rm = sitk.GetArrayFromImage(sitk.ReadImage(str(real_mr[0])))
        rl = sitk.GetArrayFromImage(sitk.ReadImage(str(real_mr[0]).replace("_t2", "_gland")))
        zr = int(np.argmax(rl.sum((1, 2))))
        axes[1, 0].imshow(rm[zr], cmap="gray", vmax=np.percentile(rm, 99.5))
        axes[1, 0].contour(rl[zr], [0.5], colors="r")
        axes[1, 0].set_title(f"real MR ({real_mr[0].name})")
    for k, p in enumerate(real_trus[:2]):
        ra = sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
        axes[1, 1 + k].imshow(ra[ra.shape[0] // 2], cmap="gray", vmin=0, vmax=255)
        axes[1, 1 + k].set_title(f"real TRUS ({p.name})")
    if real_mr:
        from regkit.image import read_image

        rc = synth_case_from_mr(read_image(real_mr[1]), read_image(str(real_mr[1]).replace("_t2", "_gland")), 0)
        ra = sitk.GetArrayFromImage(rc.moving)
        rl = sitk.GetArrayFromImage(rc.moving_label)
        zz = int(np.argmax(rl.sum((1, 2))))
        axes[1, 3].imshow(ra[zz], cmap="gray", vmin=0, vmax=255)
        axes[1, 3].contour(rl[zz], [0.5], colors="r")
        axes[1, 3].set_title(f"TRUS simulated from real MR ({real_mr[1].name})")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(HERE / "phantom.png", dpi=70)

    # realism table: intensity statistics, phantom against real
    rows = []
    for p in real_trus:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(p)))
        rows.append((f"real TRUS {p.name}", stats(a), speckle_snr(a)))
    for c in cases:
        a = sitk.GetArrayFromImage(c.moving)
        rows.append((f"phantom TRUS {c.case_id}", stats(a), speckle_snr(a)))
    lines = ["# Realism against real images", "",
             "Intensity statistics of the phantom against real images from `../shared/data` (written by "
             "`python docs/make_figures.py`; speckle SNR of the log-compressed TRUS; CV: coefficient of variation).",
             "",
             "| image | median | 5th pct | 95th pct | CV | zero fraction | speckle SNR |",
             "|---|---|---|---|---|---|---|"]
    for name, s, snr in rows:
        lines.append(f"| {name} | {s['median']:.0f} | {s['p5']:.0f} | {s['p95']:.0f} | {s['cv']:.2f} | "
                     f"{s['zero_fraction']:.2f} | {snr:.2f} |")
    lines += ["", "| MR image | gland/surroundings median ratio | CV inside gland | 99th pct / median |",
              "|---|---|---|---|"]
    mr_items = [(p.name, sitk.ReadImage(str(p)), sitk.ReadImage(str(p).replace("_t2", "_gland"))) for p in real_mr]
    mr_items += [(f"phantom {c.case_id}", c.fixed, c.fixed_label) for c in cases]
    for name, img, labimg in mr_items:
        a = sitk.GetArrayFromImage(img).astype(float)
        g = sitk.GetArrayFromImage(labimg) > 0
        ring = sitk.GetArrayFromImage(sitk.BinaryDilate(labimg, [10, 10, 3])) > 0
        ratio = np.median(a[g]) / np.median(a[ring & ~g])
        lines.append(f"| {name} | {ratio:.2f} | {a[g].std() / a[g].mean():.2f} | "
                     f"{np.percentile(a, 99) / np.median(a[a > 0]):.2f} |")
    (HERE / "realism.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def register_and_explain() -> None:
    """The overlay of `regkit register` (mind, from an 8 mm start) and the Grad-CAM figure of `regkit explain`."""
    import shutil
    import tempfile

    import regkit
    from regkit.benchmark import builtin_benchmark
    from regkit.deep.gradcam import explain
    from regkit.starts import make_starts

    ds = builtin_benchmark(("test",))
    cid = ds.case_ids("test")[0]
    case = ds.load(cid)
    start = make_starts([case], "8mm", 1, seed=0)[0].transform
    files = ds.case_files(cid)
    with tempfile.TemporaryDirectory() as tmp:
        out = regkit.register(files["fixed"], files["moving"], files["fixed_label"], method="mind",
                              initial_transform=start, out=tmp)
        shutil.copy(out.files["overlay"], HERE / "register_overlay.png")
        ex = explain(("attreg", "featreg"), case=cid, out=tmp)
        shutil.copy(ex["figure"], HERE / "explain.png")


if __name__ == "__main__":
    main()
    if "--all" in sys.argv:
        register_and_explain()
