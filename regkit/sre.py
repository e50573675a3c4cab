"""Surface registration error (SRE).

``SRE(T) = mean_i ‖T(p_i) − T_gt(p_i)‖`` over the MR prostate surface points ``p_i`` (mm). Both transforms map
fixed (MR) points to moving (TRUS) points; since ``T_gt`` is rigid, this equals the mean distance between
``p_i`` and ``T_gt⁻¹ T (p_i)``, the form the original code uses.
"""

from __future__ import annotations

import numpy as np

from regkit.transform import RigidTransform

_CHUNK = 512


def sre(estimate: RigidTransform, ground_truth: RigidTransform, points: np.ndarray) -> np.ndarray | float:
    """SRE of one transform or a batch.

    Parameters
    ----------
    estimate : RigidTransform, batch shape B (or a single transform)
    ground_truth : RigidTransform (single)
    points : ndarray, shape (N, 3)
        MR prostate surface points, mm.

    Returns
    -------
    float for a single transform, else ndarray of shape B.
    """
    pts = np.asarray(points, dtype=float)
    # T(p) − G(p) = (R_T − R_G) p + (t_T − t_G), evaluated in chunks of transforms to bound memory
    dm = (estimate.matrix - ground_truth.matrix).reshape(-1, 4, 4)
    out = np.empty(len(dm))
    for i in range(0, len(dm), _CHUNK):
        d = dm[i:i + _CHUNK]
        diff = np.einsum("bij,nj->bni", d[:, :3, :3], pts) + d[:, None, :3, 3]
        out[i:i + _CHUNK] = np.linalg.norm(diff, axis=-1).mean(axis=-1)
    if not estimate.batch_shape:
        return float(out[0])
    return out.reshape(estimate.batch_shape)


def displacement_sre(perturbation: RigidTransform, points: np.ndarray) -> np.ndarray | float:
    """SRE of ``T_gt ∘ P`` against ``T_gt`` for a fixed-space perturbation ``P``: mean ‖P(p) − p‖."""
    return sre(perturbation, RigidTransform.identity(), points)
