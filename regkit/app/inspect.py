"""See an imported dataset before trusting it: per case, an overlay of the MR with the TRUS gland contour under the
identity and under the reference, and a table of the reference's residuals with the flagged cases.

Used by ``regkit inspect DATASET`` and ``regkit import ... --check``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHECK_FOLDER = "check"


def _slices(mr, mr_gland, under_identity, under_reference):
    """Axial, coronal and sagittal planes through the MR gland's centre: (name, MR, contours, aspect)."""
    import SimpleITK as sitk

    from regkit.image import intensity_window

    lo, hi = intensity_window(mr)
    a = np.clip((sitk.GetArrayFromImage(mr).astype(float) - lo) / (hi - lo), 0, 1)
    labs = [sitk.GetArrayFromImage(x) > 0 if x is not None else None for x in (mr_gland, under_identity,
                                                                               under_reference)]
    nz = np.nonzero(labs[0])
    c = [int(np.round(np.mean(ix))) for ix in nz]
    sp = np.array(mr.GetSpacing())[::-1]
    cuts = (("axial", lambda v: v[c[0]], sp[1] / sp[2]), ("coronal", lambda v: v[:, c[1], :][::-1], sp[0] / sp[2]),
            ("sagittal", lambda v: v[:, :, c[2]][::-1], sp[0] / sp[1]))
    return [(name, cut(a), [None if lab is None else cut(lab) for lab in labs], aspect) for name, cut, aspect in cuts]


def case_overlay(case, path: str | Path, title: str = "") -> Path:
    """Two rows of three planes through the MR gland: the MR with its gland contour (red) and the TRUS gland
    contour mapped into MR space (yellow) under the identity (top) and under the reference (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    from regkit.atomic import atomic_path

    if case.moving_label is None:
        under = [None, None]
    else:
        under = [sitk.Resample(case.moving_label, case.fixed, t, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
                 for t in (sitk.Transform(), case.ground_truth.to_sitk())]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    for row, label in enumerate(("identity", "reference")):
        for col, (name, img, (mr_lab, *trus), aspect) in enumerate(_slices(case.fixed, case.fixed_label, *under)):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", aspect=aspect, vmin=0, vmax=1)
            ax.contour(mr_lab.astype(float), [0.5], colors="red", linewidths=1.2)
            if trus[row] is not None and trus[row].any():
                ax.contour(trus[row].astype(float), [0.5], colors="yellow", linewidths=1.2)
            ax.set_title(f"{name}: TRUS gland under the {label}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or f"{case.case_id}: MR gland (red), TRUS gland mapped into MR space (yellow)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def reference_table(rows: list[dict]) -> str:
    """A plain-text table of the reference's quality per case, flagged cases marked, and their reasons below."""
    head = ("case", "split", "reference", "lm", "lm mean", "lm max", "surf mean", "surf p95", "Dice", "id SRE",
            "flags")
    keys = ("case", "split", "reference", "landmarks", "landmark_residual_mean_mm", "landmark_residual_max_mm",
            "surface_distance_mean_mm", "surface_distance_p95_mm", "dice", "identity_sre_mm", "flags")

    def cell(v):
        if isinstance(v, float):
            return f"{v:.2f}"
        return "" if v is None else str(v)

    table = [head] + [tuple(cell(r.get(k)) for k in keys) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    flagged = [r for r in rows if r.get("flags")]
    lines.append(f"{len(flagged)} of {len(rows)} cases flagged (mm; id SRE: the identity's SRE against the reference)")
    lines += [f"  {r['case']}: {r['reasons']}" for r in flagged]
    return "\n".join(lines)


def inspect_dataset(path: str | Path, out: str | Path | None = None, cases: list[str] | None = None,
                    overlays: bool = True) -> tuple[list[dict], Path]:
    """Write an overlay per case into ``out`` (default ``DATASET/check/``) and return the report rows (from each
    case's ``case.json``) and the overlay folder. The import report ``import_report.csv`` is rewritten too."""
    from regkit.dataset import load_dataset, read_case_metadata
    from regkit.importers.writing import reference_row, write_import_report

    ds = load_dataset(path)
    out = Path(out) if out is not None else ds.root / CHECK_FOLDER
    write_import_report(ds.root, ds.splits)
    split_of = {cid: s for s, ids in ds.splits.items() for cid in ids}
    rows = []
    for cid in cases or ds.case_ids():
        meta_path = ds.root / cid / "case.json"
        meta = read_case_metadata(meta_path) if meta_path.exists() else {}
        rows.append(reference_row(cid, split_of.get(cid, ""), meta))
        if overlays:
            case = ds.load(cid)
            flags = rows[-1]["flags"]
            case_overlay(case, out / f"{cid}.png",
                         f"{cid}: MR gland (red), TRUS gland in MR space (yellow)" + (f"; FLAGGED: {flags}" if flags
                                                                                      else ""))
    return rows, out
