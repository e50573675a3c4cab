"""Per-sample measures beside SRE, where a case carries what they need.

* **TRUS-label Dice**: the TRUS prostate label (``trus_label``) resampled into MR space under the estimate
  (nearest neighbour; the estimate maps MR points to TRUS points) against the MR label. Even the ground truth
  scores below 1 when the gland is deformed between the images.
* **Landmark TRE**: the mean distance between the estimate's image of each MR landmark and its TRUS
  counterpart, for cases whose ``case.json`` holds ``"landmarks": {"fixed": [[x, y, z], ...],
  "moving": [[x, y, z], ...]}`` (paired rows, LPS millimetres).
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
