"""``mind``: rigid registration minimising the SSD of MIND-SSC descriptors, through itk-elastix.

MIND-SSC (Heinrich et al., MICCAI 2013) describes each voxel by its self-similarity to six neighbours a few
voxels away, so a local, modality-independent similarity (the SSD of the 12 channels) replaces mutual
information. Its reach is a few voxels, so, like the descriptor-based methods that use it (deeds, convexAdam),
the registration runs over scales of the descriptor itself, coarse to fine, each scale starting where the
previous one ended (default 3 mm, then 1.5 mm):

1. Both images are smoothed (Gaussian, sigma = half the scale's spacing, against aliasing) and resampled to
   isotropic grids of the scale's spacing: the MR over the prostate's bounding box plus ``margin_mm`` when there
   is a label, over the whole image otherwise, with the MR's axes; the moving image with the MR's axes as the
   current estimate maps them. Each grid is cut to where the other image lies under the estimate (plus
   ``margin_mm``): MIND costs per voxel. MIND-SSC is not rotation invariant (its channels compare voxels along
   the grid axes), so both grids share their orientation up to the estimate's error, and their spacing, since
   its offsets are in voxels.
2. MIND-SSC descriptors (12 channels, :func:`regkit.baselines.mind_ssc.mind_ssc`, radius 1 and dilation 2:
   convexAdam's) are computed on each with torch. At 3 mm a descriptor compares structures 6 mm apart over 9 mm
   patches and sees a misalignment of a centimetre; at 1.5 mm it is precise to the millimetre.
3. elastix registers the 12 channel pairs at once (``MultiMetricMultiResolutionRegistration``, 12
   ``AdvancedMeanSquares`` metrics of weight 1: the sum of the channels' SSD), a rigid ``EulerTransform``, one
   level per scale, random samples at continuous positions (voxel-centre sampling on these isotropic grids
   biases the optimum by millimetres). Samples are drawn in the MR (in the prostate region, the label dilated
   by ``mask_mm``, when there is a label) and kept only where they map inside the moving image, eroded by the
   descriptor's reach so that no descriptor sees what lies outside it; for an ultrasound moving image, inside
   its fan (masks as for ``mi``: :func:`regkit.baselines.masks.moving_mask_for`).

Whether the last scale converged is judged as for ``mi``: its deterministic SSD at the result against the start,
and its trend at the iteration limit (:func:`regkit.baselines.elastix.convergence`).

Two recipes, chosen case by case as for ``mi`` (``preset="auto"``, the default): ``"general"``, the scales
above, and ``"ultrasound"`` when the moving image is ultrasound: one scale of 1.5 mm, 300 iterations, 2048
samples per channel, the fan mask. At 3 mm a descriptor of B-mode speckle and shadows is mostly noise against
the MR's, and the coarse scale pulls a good start away (BENCHMARKS.md, issue 12: on the phantom and on real
prostate anatomy with simulated TRUS). The ultrasound recipe was first tuned on the phantom; ``"phantom"`` still
names it.

The fixed image's descriptors depend only on the fixed image and its grid, so a registrar keeps the last few
(per scale): the other starts of the same case reuse them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from regkit.baselines.masks import MovingMask
from regkit.baselines.recipes import Preset
from regkit.case import Case
from regkit.image import ImageGeometry
from regkit.registrar import RegistrarBase, Variant
from regkit.transform import RigidTransform


def isotropic_grid(image: sitk.Image, spacing: float, roi: sitk.Image | None = None, margin_mm: float = 0.0,
                   axes: np.ndarray | None = None, within: np.ndarray | None = None,
                   within_margin_mm: float = 0.0) -> sitk.Image:
    """An empty float image with isotropic ``spacing`` and direction ``axes`` (default: ``image``'s), covering
    ``image`` or the bounding box of ``roi``'s non-zero voxels, grown by ``margin_mm``, and no more than the
    bounding box of the physical points ``within`` grown by ``within_margin_mm`` (when given)."""
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
    if within is not None:
        other = np.asarray(within, float) @ axes
        lo = np.maximum(lo, other.min(axis=0) - within_margin_mm)
        hi = np.minimum(hi, other.max(axis=0) + within_margin_mm)
        hi = np.maximum(hi, lo)  # no overlap at all: a minimal grid, whose mask is then empty
    size = np.maximum(np.ceil((hi - lo) / spacing).astype(int) + 1, 8)
    ref = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    ref.SetSpacing([float(spacing)] * 3)
    ref.SetDirection(axes.ravel().tolist())
    ref.SetOrigin((axes @ lo).tolist())
    return ref


def resample_onto(image: sitk.Image, grid: sitk.Image, nearest: bool = False) -> sitk.Image:
    return sitk.Resample(image, grid, sitk.Transform(), sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
                         0.0, sitk.sitkUInt8 if nearest else sitk.sitkFloat32)


def domain_mask(image: sitk.Image, grid: sitk.Image, erode_mm: float = 0.0) -> sitk.Image:
    """Where ``grid``'s voxels lie inside ``image``'s field of view, at least ``erode_mm`` from its faces, as a 0/1
    image on ``grid`` (computed from the two geometries, not by resampling and eroding)."""
    m = ImageGeometry.of(image).physical_to_index @ ImageGeometry.of(grid).index_to_physical  # grid → image index
    nx, ny, nz = grid.GetSize()
    x = np.arange(nx, dtype=np.float32)[None, None, :]
    y = np.arange(ny, dtype=np.float32)[None, :, None]
    z = np.arange(nz, dtype=np.float32)[:, None, None]
    margin = erode_mm / np.asarray(image.GetSpacing())
    inside = np.ones((nz, ny, nx), bool)
    for a in range(3):  # image index along axis a, over the whole grid
        ci = m[a, 0] * x + m[a, 1] * y + m[a, 2] * z + m[a, 3]
        inside &= (ci >= margin[a]) & (ci <= image.GetSize()[a] - 1 - margin[a])
    out = sitk.GetImageFromArray(inside.astype(np.uint8))
    out.CopyInformation(grid)
    return out


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


def descriptor_ssd(fixed: list[sitk.Image], moving: list[sitk.Image],
                   transform: RigidTransform | Sequence[RigidTransform], fixed_mask: sitk.Image | None,
                   moving_mask: sitk.Image | None, samples: int = 20000, seed: int = 1) -> float | list[float]:
    """The sum over channels of the mean squared difference of the descriptors at a fixed random set of fixed
    grid points (those in ``fixed_mask`` that map inside ``moving_mask``), moving read through ``transform`` with
    linear interpolation: the metric elastix minimises, evaluated deterministically (lower is better). Give the
    start and the result in one call (a list in, a list out): the same points for both."""
    from scipy.ndimage import map_coordinates

    grid = ImageGeometry.of(fixed[0])
    inside = np.ones(fixed[0].GetSize()[::-1], bool) if fixed_mask is None else \
        sitk.GetArrayViewFromImage(fixed_mask) > 0
    idx = np.argwhere(inside)  # (z, y, x)
    rng = np.random.default_rng(seed)
    if len(idx) > samples:
        idx = idx[np.sort(rng.choice(len(idx), samples, replace=False))]
    points = grid.to_physical(idx[:, ::-1].astype(float))
    mgeo = ImageGeometry.of(moving[0])
    mm = None if moving_mask is None else sitk.GetArrayViewFromImage(moving_mask).astype(np.float32)
    fvs = [sitk.GetArrayViewFromImage(f)[tuple(idx.T)] for f in fixed]

    def one(t: RigidTransform) -> float:
        where = mgeo.to_index(t.apply(points))[:, ::-1].T  # (z, y, x) continuous indices
        keep = np.ones(len(points), bool)
        if mm is not None:
            keep &= map_coordinates(mm, where, order=0, cval=0.0) > 0
        if not keep.any():
            return float("inf")
        total = 0.0
        for fv, mv in zip(fvs, moving, strict=True):
            mvv = map_coordinates(sitk.GetArrayViewFromImage(mv), where[:, keep], order=1, mode="nearest")
            total += float(np.mean((fv[keep] - mvv) ** 2))
        return total

    if isinstance(transform, RigidTransform):
        return one(transform)
    return [one(t) for t in transform]


PRESETS: dict[str, dict] = {
    "general": dict(spacing_mm=(3.0, 1.5), iterations=(100, 150), spatial_samples=500, mask_mm=15.0,
                    moving_mask="auto"),
    "ultrasound": dict(spacing_mm=(1.5,), iterations=300, spatial_samples=2048, mask_mm=15.0, moving_mask="fan"),
}
PRESETS["phantom"] = PRESETS["ultrasound"]  # the ultrasound recipe's first name: tuned on the phantom
_DEFAULTS = PRESETS["general"]
_CACHED = 4  # fixed descriptors kept per registrar: two scales of two cases


#: The finest grid spacing (mm): the 12 descriptor channels of a grid cost memory by the cube of 1/spacing (at
#: 0.5 mm, about 2 GB for a 90 mm cube).
MIN_SPACING_MM = 0.5
#: At most this margin (mm) around the prostate: the grids grow by the cube of it, and a TRUS volume is smaller.
MAX_MARGIN_MM = 200.0
#: At most this many voxels of patch radius, and of dilation: the grids are padded by them.
MAX_REACH = 10


def _check_spacing(value) -> tuple[float, ...]:
    """``spacing_mm`` as one isotropic grid spacing (mm, at least :data:`MIN_SPACING_MM`) per scale."""
    from regkit.options import check_numbers

    return check_numbers("spacing_mm", value, low=MIN_SPACING_MM,
                         fix=f"one grid spacing in mm (at least {MIN_SPACING_MM}) per scale, coarse to fine, e.g. "
                             "spacing_mm=[3, 1.5]")


class MINDRegistrar(RegistrarBase):
    """SSD of MIND-SSC descriptors, rigid (elastix, 12 metrics), coarse to fine over descriptor scales.

    Parameters
    ----------
    fixed : {"image", "label"}
        Fixed input: the MR image or the MR prostate label.
    preset : {"auto", "general", "ultrasound", "phantom"}
        The recipe whose values fill the options left at their defaults; ``"auto"`` chooses the ultrasound
        recipe (one scale of 1.5 mm, 300 iterations, 2048 samples, the fan mask) when the moving image is
        ultrasound and the general one otherwise, case by case. ``"phantom"`` is the ultrasound recipe's old
        name.
    spacing_mm : sequence of float
        The isotropic grid spacing (mm) of each scale, coarse to fine.
    radius, dilation : int
        MIND-SSC patch radius and pair dilation, in voxels of each scale's grid.
    margin_mm : float
        Margin around the prostate's bounding box for the MR grid (when there is a label).
    mask_mm : float or None
        Fixed mask: MR prostate label dilated by this many mm, when the case has a label (None: no mask).
    moving_mask : {"auto", "fan", "none"}
        As for :class:`regkit.baselines.mi.MIRegistrar`.
    iterations : int or sequence of int
        ASGD iterations at each scale (one count for all, or one per scale; the default's 100 at each coarse
        scale and 150 at the finest follow any number of scales).
    spatial_samples : int
        Random samples per iteration and channel (the general recipe's 500 make 6,000 squared differences per
        iteration over the 12 channels, three times ``mi``'s samples; a smooth SSD needs no more).
    seed, threads, elastix, log_dir
        As for :class:`regkit.baselines.mi.MIRegistrar`: the result depends on neither elastix's nor torch's
        thread count.
    """

    name = "mind"
    presets = PRESETS  # the recipes ``preset`` chooses from (resolved settings include them)

    def __init__(self, fixed: Variant = "image", preset: Preset = "auto",
                 spacing_mm: float | Sequence[float] = (3.0, 1.5), radius: int = 1, dilation: int = 2,
                 margin_mm: float = 20.0, mask_mm: float | None = 15.0, moving_mask: MovingMask = "auto",
                 iterations: int | Sequence[int] = (100, 150), spatial_samples: int = 500, seed: int = 121212,
                 threads: int | None = None, elastix: dict | None = None, log_dir: str | None = None):
        settings = self.check_options(
            fixed=fixed, preset=preset, spacing_mm=spacing_mm, radius=radius, dilation=dilation, margin_mm=margin_mm,
            mask_mm=mask_mm, moving_mask=moving_mask, iterations=iterations, spatial_samples=spatial_samples,
            seed=seed, threads=threads, elastix=elastix, log_dir=log_dir)
        self.preset = preset
        vars(self).update(settings)  # recipes, fixed, seed, threads, elastix, log_dir, radius, dilation, margin_mm
        self._fixed_cache: dict[tuple, list[sitk.Image]] = {}
        import scipy.ndimage  # noqa: F401 - imported here, not inside the first timed registration
        import torch  # noqa: F401

        from regkit.baselines.elastix import itk_module

        itk_module()  # pay ITK's start-up (~2 s) here, once per process, not inside a timed registration

    @staticmethod
    def check_options(*, fixed, preset, spacing_mm, radius, dilation, margin_mm, mask_mm, moving_mask, iterations,
                      spatial_samples, seed, threads, elastix, log_dir) -> dict:
        """Every option's value checked before anything loads (the registry calls this before constructing, the
        constructor too): the settings, normalised (``recipes``: the recipes ``preset`` may run), or an
        :class:`~regkit.errors.InputError` naming the first bad option."""
        from regkit.baselines.recipes import check_common_options, recipes_of
        from regkit.options import check_number

        recipes = recipes_of(PRESETS, preset, _DEFAULTS, ("spacing_mm", _check_spacing), spacing_mm=spacing_mm,
                             iterations=iterations, spatial_samples=spatial_samples, mask_mm=mask_mm,
                             moving_mask=moving_mask)
        reach = "the descriptor's reach in voxels of each scale's grid"
        return {"recipes": recipes, **check_common_options(fixed, seed, threads, elastix, log_dir),
                "radius": check_number("radius", radius, whole=True, low=1, high=MAX_REACH,
                                       fix=f"e.g. radius=1 (convexAdam's); radius + dilation is {reach}"),
                "dilation": check_number("dilation", dilation, whole=True, low=1, high=MAX_REACH,
                                         fix=f"e.g. dilation=2 (convexAdam's); radius + dilation is {reach}"),
                "margin_mm": check_number("margin_mm", margin_mm, low=0, high=MAX_MARGIN_MM,
                                          fix="e.g. margin_mm=20 (mm around the prostate's bounding box)")}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fixed_cache": {}}  # a registrar sent to a worker leaves its cache behind

    def descriptors(self, case: Case, estimate: RigidTransform, spacing: float,
                    mask_mm: float | None = _DEFAULTS["mask_mm"], fan: sitk.Image | None = None,
                    fixed_digest: str | None = None
                    ) -> tuple[list[sitk.Image], list[sitk.Image], sitk.Image | None, sitk.Image]:
        """Fixed and moving MIND channels at one scale, and the masks on their grids.

        ``mask_mm``: the fixed mask's dilation of the label (None: no label mask); ``fan``: the moving image's
        field of view as a mask (:func:`regkit.baselines.masks.moving_mask_for`), or None; ``fixed_digest``:
        :meth:`fixed_digest` of the case, when the caller has it already (a registration asks once, not per
        scale).
        """
        from regkit.baselines.masks import dilated_mask

        spacing = float(spacing)
        # each grid covers its image only where the other image lies under the estimate (grown by margin_mm):
        # MIND costs per voxel, and descriptors outside the overlap are never sampled
        moving_fov = estimate.inverse().apply(ImageGeometry.of(case.moving).corners())
        fixed_grid = isotropic_grid(case.fixed, spacing, case.fixed_label, self.margin_mm, within=moving_fov,
                                    within_margin_mm=self.margin_mm)
        mr_axes = np.array(fixed_grid.GetDirection()).reshape(3, 3)
        moving_grid = isotropic_grid(case.moving, spacing, axes=estimate.rotation @ mr_axes,
                                     within=estimate.apply(ImageGeometry.of(fixed_grid).corners()),
                                     within_margin_mm=self.margin_mm)
        moving = resample_onto(_antialiased(sitk.Cast(case.moving, sitk.sitkFloat32), spacing), moving_grid)
        reach = (self.radius + self.dilation) * spacing
        fixed_mask = domain_mask(case.fixed, fixed_grid, reach)
        if mask_mm is not None and case.fixed_label is not None:
            fixed_mask = fixed_mask * resample_onto(dilated_mask(case.fixed_label, mask_mm), fixed_grid,
                                                    nearest=True)
        moving_mask = domain_mask(case.moving, moving_grid, reach)
        if fan is not None:  # eroded on the grid by the descriptor's reach, whole voxels of the isotropic grid
            on_grid = sitk.BinaryErode(resample_onto(fan, moving_grid, nearest=True), [self.radius + self.dilation] * 3)
            moving_mask = moving_mask * on_grid
        return (self._fixed_descriptors(case, fixed_grid, spacing, fixed_digest),
                mind_channels(moving, self.radius, self.dilation), fixed_mask, moving_mask)

    def fixed_digest(self, case: Case) -> str:
        """A digest of the case's fixed input's voxels: with its geometry, the key of the descriptor cache."""
        import hashlib

        voxels = sitk.GetArrayViewFromImage(case.fixed_input(self.fixed))
        return hashlib.blake2b(np.ascontiguousarray(voxels).tobytes(), digest_size=16).hexdigest()

    def _fixed_descriptors(self, case: Case, grid: sitk.Image, spacing: float,
                           digest: str | None = None) -> list[sitk.Image]:
        """The fixed input's MIND channels on ``grid``, computed once per fixed image and grid."""
        fixed_in = case.fixed_input(self.fixed)
        key = (digest or self.fixed_digest(case), self.fixed, self.radius, self.dilation,
               *((im.GetSize(), im.GetOrigin(), im.GetSpacing(), im.GetDirection()) for im in (fixed_in, grid)))
        if key not in self._fixed_cache:
            image = sitk.Cast(fixed_in, sitk.sitkFloat32)
            if self.fixed == "label":  # a binary label has no self-similarity structure inside; soften its edge
                image = sitk.SmoothingRecursiveGaussian(image, spacing)
            channels = mind_channels(resample_onto(_antialiased(image, spacing), grid), self.radius, self.dilation)
            while len(self._fixed_cache) >= _CACHED:
                self._fixed_cache.pop(next(iter(self._fixed_cache)))
            self._fixed_cache[key] = channels
        return self._fixed_cache[key]

    def _register(self, case: Case, initial: RigidTransform) -> tuple[RigidTransform, dict]:
        from regkit.baselines import elastix as ex
        from regkit.baselines import masks, recipes

        ultrasound = masks.moving_is_ultrasound(case)  # asked once: the recipe and the moving mask both depend on it
        name, recipe, why = recipes.recipe_for(self.recipes, case, ultrasound)
        fan, fan_note = masks.moving_mask_for(case, recipe["moving_mask"], ultrasound=ultrasound)
        estimate, scales, digest = initial, [], self.fixed_digest(case)
        for spacing, iterations in zip(recipe["spacing_mm"], recipe["iterations"], strict=True):
            fixed, moving, fixed_mask, moving_mask = self.descriptors(case, estimate, spacing, recipe["mask_mm"], fan,
                                                                      digest)
            pm = recipes.rigid_parameter_map("AdvancedMeanSquares", n_metrics=len(fixed), smoothing_mm=(0.0,),
                                        iterations=int(iterations), spatial_samples=recipe["spatial_samples"],
                                        seed=self.seed)
            pm.update(self.elastix)
            run = ex.run_elastix(fixed, moving, pm, estimate, fixed_mask=fixed_mask, moving_mask=moving_mask,
                                 threads=self.threads, keep_log_dir=self.log_dir)
            estimate = run.transform
            scales.append(run)
        before, after = descriptor_ssd(fixed, moving, [initial, estimate], fixed_mask, moving_mask)
        status, message = ex.convergence(scales[-1].levels, before, after)
        return estimate, {"status": status, "message": message, "fixed": self.fixed, "recipe": name,
                          "recipe_why": why, "spacing_mm": recipe["spacing_mm"], "radius": self.radius,
                          "dilation": self.dilation, "moving_mask": fan_note, "metric_start": before,
                          "metric_result": after, "scale_transforms": [r.transform for r in scales],
                          "iterations": recipe["iterations"], "spatial_samples": recipe["spatial_samples"],
                          "seed": self.seed}


def _antialiased(image: sitk.Image, spacing: float) -> sitk.Image:
    """Smoothed with sigma = half of ``spacing`` along each axis whose voxels are finer than half of it."""
    for axis, s in enumerate(image.GetSpacing()):
        if s < 0.5 * spacing and image.GetSize()[axis] >= 4:
            image = sitk.RecursiveGaussian(image, 0.5 * spacing, False, sitk.RecursiveGaussianImageFilter.ZeroOrder,
                                           axis)
    return image
