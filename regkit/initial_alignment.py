"""Where a registration of a pair without a ground truth starts: an initial alignment from the images alone.

A registration converges only from a start inside its capture range (a centimetre or two for ``mi`` and
``mind``). Clinical MR and TRUS volumes do not share a physical frame: the TRUS origin is set by the scanner
or the export, so the two headers can place the gland many centimetres apart. ``regkit register`` therefore
starts, by default, from the images' centres, as elastix users do with ``AutomaticTransformInitialization``
and ANTs users with ``--initial-moving-transform``:

* ``"centres"`` (the default): the translation that takes the MR prostate centre (the centroid of the MR label;
  without a label, the centre of the MR volume) to the centre of the TRUS volume, in which the probe puts the
  gland (elastix's ``GeometricalCenter``, on the gland where it is known);
* ``"moments"``: the translation that takes the fixed image's intensity centre of mass to the moving image's
  (elastix's ``CenterOfGravity``, ANTs' ``[fixed,moving,1]``);
* ``"identity"``: the headers as they are, right when both images come from one session in one frame (two MR
  series, say).

Each is a translation: rotations are left to the registration.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import SimpleITK as sitk

from regkit.errors import InputError
from regkit.image import ImageGeometry
from regkit.transform import RigidTransform

Alignment = Literal["centres", "moments", "identity"]
ALIGNMENTS: tuple[str, ...] = ("centres", "moments", "identity")
SPELLINGS = {"centers": "centres"}


def initial_alignment(fixed: sitk.Image, moving: sitk.Image, how: Alignment = "centres",
                      fixed_label: sitk.Image | None = None) -> RigidTransform:
    """The start (fixed → moving physical points) that ``how`` gives (see the module docstring).

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        The MR (fixed) and the TRUS (moving) image.
    how : {"centres", "moments", "identity"}
        Which alignment.
    fixed_label : SimpleITK.Image, optional
        The MR prostate label: ``"centres"`` starts from its centroid.

    Returns
    -------
    RigidTransform
        A translation (the identity for ``"identity"``).
    """
    how = SPELLINGS.get(how, how)
    if how == "identity":
        return RigidTransform.identity()
    if how == "centres":
        source = _label_centroid(fixed_label) if fixed_label is not None else None
        shift = ImageGeometry.of(moving).center - (ImageGeometry.of(fixed).center if source is None else source)
    elif how == "moments":
        shift = centre_of_mass(moving) - centre_of_mass(fixed)
    else:
        raise InputError(f"unknown initial alignment {how!r}", fix=f"use one of {', '.join(ALIGNMENTS)}, or give a "
                         "transform file")
    m = np.eye(4)
    m[:3, 3] = shift
    return RigidTransform.from_matrix(m)


def centre_of_mass(image: sitk.Image) -> np.ndarray:
    """The intensity-weighted centre of an image in physical mm (negative values count as 0); its volume centre
    when it holds no positive value."""
    weights = np.clip(sitk.GetArrayViewFromImage(image).astype(np.float64), 0, None)
    total = weights.sum()
    if not np.isfinite(total) or total <= 0:
        return ImageGeometry.of(image).center
    idx = np.array([(weights.sum(axis=tuple(a for a in range(3) if a != axis)) * np.arange(n)).sum() / total
                    for axis, n in enumerate(weights.shape)])[::-1]  # (z, y, x) sums → (x, y, z) index
    return ImageGeometry.of(image).to_physical(idx)


def _label_centroid(label: sitk.Image) -> np.ndarray | None:
    inside = sitk.GetArrayViewFromImage(label) > 0
    if not inside.any():
        return None
    idx = np.array(np.nonzero(inside), float).mean(axis=1)[::-1]
    return ImageGeometry.of(label).to_physical(idx)
