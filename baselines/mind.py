"""``mind``: rigid registration minimising the SSD of MIND-SSC descriptors, through itk-elastix.

1. Both images are resampled to isotropic grids of the same spacing (default 1.5 mm): the MR on a box around
   the prostate (the label's bounding box plus a margin), with the MR's axes; the TRUS over its whole field of
   view, with the MR's axes as the start maps them into TRUS space. MIND-SSC is not rotation invariant (its
   12 channels compare voxels along the grid axes), so the two grids must share their orientation up to the
   start's error, and share their spacing since the offsets are in voxels.
2. MIND-SSC descriptors (12 channels, :func:`regkit.baselines.mind_ssc.mind_ssc`) are computed on each with torch.
3. elastix registers the 12 channel pairs at once: ``MultiMetricMultiResolutionRegistration`` with 12
   ``AdvancedMeanSquares`` metrics of weight 1 (the sum of the channels' SSD), a rigid ``EulerTransform``,
   from the start. Samples are drawn in the MR prostate region (label dilated by ``mask_mm``) and kept only
   where they map inside the TRUS fan, eroded so that no descriptor sees the black outside of the fan.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from regkit.baselines.elastix import check_settings
from regkit.case import Case
from regkit.image import ImageGeometry
from regkit.registrar import RegistrarBase
from regkit.transform import RigidTransform


def isotropic_grid(image: sitk.Image, spacing: float, roi: sitk.Image | None = None, margin_mm: float = 0.0,
                   axes: np.ndarray | None = None) -> sitk.Image:
    """An empty float image with isotropic ``spacing`` and direction ``axes`` (default: ``image``'s), covering
    ``image`` or the bounding box of ``roi``'s non-zero voxels, grown by ``margin_mm``."""
    geo = ImageGeometry.of(image)
    axes = geo.direction if axes is None else np.asarray(axes, dtype=float)
    if roi is None:
        corners = geo.corners()
    else:
        a = sitk.GetArrayViewFromImage(roi) > 0
        nz = [np.nonzero(a.any(axis=ax))[0] for ax in ((0, 1), (0, 2), (1, 2))]
        lo, hi = [n.min() for n in nz], [n.max() for n in nz]
        corners = geo.to_physical(np.array([[i, j, k] for i in (lo[0], hi[0]) for j in (lo[1], hi[1])
                                            for k in (lo[2], hi[2])], dtype=float))
    local = corners @ axes  # coordinates along the new axes
    lo = local.min(axis=0) - margin_mm
    hi = local.max(axis=0) + margin_mm
    size = np.maximum(np.ceil((hi - lo) / spacing).astype(int) + 1, 8)
    ref = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    ref.SetSpacing([float(spacing)] * 3)
    ref.SetDirection(axes.ravel().tolist())
    ref.SetOrigin((axes @ lo).tolist())
    return ref


def resample_onto(image: sitk.Image, grid: sitk.Image, nearest: bool = False) -> sitk.Image:
    return sitk.Resample(image, grid, sitk.Transform(), sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
                         0.0, sitk.sitkUInt8 if nearest else sitk.sitkFloat32)


def mind_channels(image: sitk.Image, radius: int, dilation: int) -> list[sitk.Image]:
    """MIND-SSC of an (isotropic) image as 12 single-channel images with its geometry."""
    import torch

    from regkit.baselines.mind_ssc import mind_ssc

    vol = torch.from_numpy(sitk.GetArrayFromImage(image).astype(np.float32))
    with torch.no_grad():
        desc = mind_ssc(vol, radius=radius, dilation=dilation)[0].numpy()
    out = []
    for ch in desc:
        img = sitk.GetImageFromArray(ch)
        img.CopyInformation(image)
        out.append(img)
    return out


class MINDRegistrar(RegistrarBase):
    """SSD of MIND-SSC descriptors, rigid (elastix, 12 metrics).

    Parameters
    ----------
    fixed : {"image", "label"}
        Fixed input: the MR image or the MR prostate label.
    spacing : float
        Isotropic grid spacing (mm) on which descriptors are computed.
    radius, dilation : int
        MIND-SSC patch radius and pair dilation, in voxels of that grid.
    margin_mm : float
        Margin around the prostate's bounding box for the MR grid.
    mask_mm : float or None
        Fixed mask: MR prostate label dilated by this many mm (None: the whole MR grid).
    resolutions, iterations, spatial_samples, seed, threads, log_dir
        As for :class:`regkit.baselines.mi.MIRegistrar`.

    The defaults were chosen on the built-in benchmark's validation split. One resolution: elastix's pyramid
    smooths the *descriptors*, and smoothed MIND channels lose the local structure they encode, so the coarse
    levels pulled registrations away (from the ground truth itself by up to 26 mm); radius 1, dilation 2 are
    convexAdam's defaults.
    """

    name = "mind"

    def __init__(self, fixed: str = "image", spacing: float = 1.5, radius: int = 1, dilation: int = 2,
                 margin_mm: float = 20.0, mask_mm: float | None = 15.0, resolutions: int = 1, iterations: int = 300,
                 spatial_samples: int = 2048, seed: int = 121212, threads: int | None = None,
                 log_dir: str | None = None):
        check_settings(fixed, mask_mm, radius=radius, dilation=dilation, resolutions=resolutions,
                       iterations=iterations, spatial_samples=spatial_samples, seed=seed, threads=threads)
        self.fixed = fixed
        self.spacing = float(spacing)
        self.radius = int(radius)
        self.dilation = int(dilation)
        self.margin_mm = float(margin_mm)
        self.mask_mm = mask_mm
        self.settings = dict(resolutions=int(resolutions), iterations=int(iterations),
                             spatial_samples=int(spatial_samples), seed=int(seed))
        self.threads = threads
        self.log_dir = log_dir
        from regkit.baselines.elastix import itk_module

        itk_module()  # pay ITK's ~11 s start-up here, once per process, not inside a timed registration

    def descriptors(self, case: Case, initial: RigidTransform
                    ) -> tuple[list[sitk.Image], list[sitk.Image], sitk.Image | None, sitk.Image]:
        """Fixed and moving MIND channels, and the fixed and moving masks on their grids."""
        from regkit.baselines.elastix import dilated_mask, fan_mask

        fixed_grid = isotropic_grid(case.fixed, self.spacing, case.fixed_label, self.margin_mm)
        mr_axes = np.array(fixed_grid.GetDirection()).reshape(3, 3)
        moving_grid = isotropic_grid(case.moving, self.spacing, axes=initial.rotation @ mr_axes)
        fixed = resample_onto(case.fixed_input(self.fixed), fixed_grid)
        if self.fixed == "label":  # a binary label has no self-similarity structure inside; soften its edge
            fixed = sitk.SmoothingRecursiveGaussian(fixed, self.spacing)
        moving = resample_onto(case.moving, moving_grid)
        fixed_mask = None
        if self.mask_mm is not None and case.fixed_label is not None:
            fixed_mask = resample_onto(dilated_mask(case.fixed_label, self.mask_mm), fixed_grid, nearest=True)
        reach = (self.radius + self.dilation) * self.spacing + 1.0
        moving_mask = resample_onto(fan_mask(case.moving, reach), moving_grid, nearest=True)
        return (mind_channels(fixed, self.radius, self.dilation), mind_channels(moving, self.radius, self.dilation),
                fixed_mask, moving_mask)

    def _register(self, case: Case, initial: RigidTransform) -> tuple[RigidTransform, dict]:
        from regkit.baselines.elastix import rigid_parameter_map, run_elastix

        fixed, moving, fixed_mask, moving_mask = self.descriptors(case, initial)
        pm = rigid_parameter_map("AdvancedMeanSquares", n_metrics=len(fixed), **self.settings)
        total = run_elastix(fixed, moving, pm, initial, fixed_mask=fixed_mask, moving_mask=moving_mask,
                            threads=self.threads, keep_log_dir=self.log_dir)
        return total, {"fixed": self.fixed, "spacing": self.spacing, "radius": self.radius,
                       "dilation": self.dilation, **self.settings}
