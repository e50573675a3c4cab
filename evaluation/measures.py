"""Per-sample measures beside SRE, where a case carries what they need.

* **TRUS-label Dice**: the TRUS prostate label (``trus_label``) resampled into MR space under the estimate
  (nearest neighbour; the estimate maps MR points to TRUS points) against the MR label. Even the ground truth
  scores below 1 when the gland is deformed between the images.
* **Landmark TRE** (``landmark_tre_mm``): the mean distance in millimetres between the estimate's image of each
  MR landmark and its TRUS counterpart, for cases whose ``case.json`` holds ``"landmarks": {"fixed": [[x, y, z],
  ...], "moving": [[x, y, z], ...]}`` (paired rows, LPS millimetres). It is not the voxel-index distance of label
  centroids that the µ-RegPro challenge's code calls "TRE".
"""

from __future__ import annotations

import numpy as np

from regkit.transform import RigidTransform


def label_dice(case, transform: RigidTransform) -> float | None:
    """Dice of the TRUS label mapped into MR space and the MR label; None without both labels."""
    import SimpleITK as sitk

    if case.moving_label is None or case.fixed_label is None:
        return None
    warped = sitk.Resample(case.moving_label, case.fixed_label, transform.to_sitk(), sitk.sitkNearestNeighbor, 0,
                           sitk.sitkUInt8)
    a = sitk.GetArrayViewFromImage(warped) > 0
    b = sitk.GetArrayViewFromImage(case.fixed_label) > 0
    total = int(a.sum()) + int(b.sum())
    return float(2 * np.logical_and(a, b).sum() / total) if total else None


def landmarks(case) -> tuple[np.ndarray, np.ndarray] | None:
    """The case's paired (MR, TRUS) landmarks in mm, or None."""
    lm = (case.metadata or {}).get("landmarks")
    if not lm:
        return None
    fixed, moving = (np.asarray(lm[k], float).reshape(-1, 3) for k in ("fixed", "moving"))
    if len(fixed) == 0 or fixed.shape != moving.shape:
        return None
    return fixed, moving


def landmark_tre(case, transform: RigidTransform) -> float | None:
    """Mean landmark TRE (mm) of an estimate; None when the case has no landmarks."""
    pts = landmarks(case)
    if pts is None:
        return None
    fixed, moving = pts
    return float(np.linalg.norm(transform.apply(fixed) - moving, axis=1).mean())


def backfill(samples, load_case) -> None:
    """Fill ``final_dice`` and ``landmark_tre_mm`` in place where they are missing (rows of a run made before these
    measures existed), from each row's stored result matrix, for cases that have TRUS labels or landmarks."""
    import pandas as pd

    from regkit.evaluation.store import MATRIX as cols

    if not set(cols) <= set(samples.columns):
        return
    for name in ("final_dice", "landmark_tre_mm"):
        if name not in samples:
            samples[name] = np.nan
        samples[name] = pd.to_numeric(samples[name], errors="coerce")
    todo = samples["final_dice"].isna() | samples["landmark_tre_mm"].isna()
    for case_id, rows in samples[todo].groupby("case", sort=False):
        case = load_case(case_id)
        if case.moving_label is None and landmarks(case) is None:
            continue
        for ix, row in rows.iterrows():
            m = row[cols].to_numpy(float).reshape(3, 4)
            if not np.isfinite(m).all():
                continue
            t = RigidTransform.from_matrix(m, orthonormalize=True, tolerance=1e-4)
            for name, f in (("final_dice", label_dice), ("landmark_tre_mm", landmark_tre)):
                if pd.isna(samples.at[ix, name]) and (v := f(case, t)) is not None:
                    samples.at[ix, name] = v
