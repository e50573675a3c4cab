"""What the networks predict: a rigid correction in the MR crop box, as six parameters.

A network sees the fixed crop and the moving TRUS resampled under the current estimate ``T`` (fixed →
moving) and predicts ``θ = [tx, ty, tz, ax, ay, az]`` (mm, degrees, R = Rz·Ry·Rx). The parameters describe a
correction ``C`` in the **crop-box frame** (axes = the MR's voxel axes, origin = the box centre), so the
rotation is about the **crop-box centre**: this keeps rotation and translation apart, where the original code
rotated about the MR frame origin. In physical space ``C_phys = F ∘ C_box ∘ F⁻¹`` (``F``: box → physical).

The correction is composed on the left of the current estimate in the moving → fixed direction of the
original code (``U_new = C · U`` with ``U = T⁻¹``); in regkit's fixed → moving convention that is

    ``T_new = T ∘ C_phys⁻¹``,

and the training target for an estimate ``T`` is ``C_phys = T_gt⁻¹ ∘ T``, so that ``T_new = T_gt`` exactly.
"""

from __future__ import annotations

import numpy as np

from regkit.deep.crop import CropBox
from regkit.transform import RigidTransform


def correction_target(box: CropBox, estimate: RigidTransform, ground_truth: RigidTransform) -> np.ndarray:
    """Six parameters the network should predict for ``estimate``, shape ``(*batch, 6)``."""
    c_phys = ground_truth.inverse() @ estimate
    f = box.frame
    return (f.inverse() @ c_phys @ f).to_params()


def apply_correction(box: CropBox, estimate: RigidTransform, params: np.ndarray) -> RigidTransform:
    """The new estimate ``T ∘ C_phys⁻¹`` for predicted ``params`` (batched like ``estimate``)."""
    f = box.frame
    c_phys = f @ RigidTransform.from_params(np.asarray(params, dtype=float)) @ f.inverse()
    return estimate @ c_phys.inverse()
