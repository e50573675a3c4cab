"""``mi``: rigid registration maximising Mattes mutual information, through itk-elastix.

The default recipe is elastix's rigid recipe as the field uses it (Klein et al. 2010; elastix's default rigid
map and model zoo; ANTs' ``3x2x1x0`` smoothing): ``EulerTransform`` + ``AdvancedMattesMutualInformation`` (32
bins) + adaptive stochastic gradient descent with automatic step sizes, random samples drawn anew at every
iteration, 100 iterations at each coarse level and 150 at the finest, and a four-level smoothing pyramid of 4,
2, 1 and 0 mm Gaussian sigmas, in millimetres (thick slices and fine in-plane voxels are smoothed alike), never
less than half a voxel along any axis (elastix's own finest level: it keeps linear interpolation's artefacts out
of MI on thick slices). The coarse levels give the capture range (the 4 mm level sees structures the size of the
gland's zones and of vertebrae), the finest the precision, and each gets what its job needs:

* a coarse level only has to bring the estimate into the next level's reach: 1000 samples, and images binned to
  voxels no larger than its sigma (``shrink``: smoothing a 0.5 mm T2 by 4 mm at full resolution was most of a
  registration's time), whose longest step stays the full fixed grid's mean spacing (elastix's automatic one
  would follow the coarse grid); a coarse level that runs at full resolution takes steps up to twice elastix's
  automatic longest step (``coarse_step``);
* the finest level sets the precision: 4000 samples (more samples there, not more iterations, is what brought
  the earlier 2000-sample recipe, 0.3-0.7 mm from the careful reference, closer to it).

The same samples × iterations as the earlier recipe (2000 at every level), moved to the finest level, and the
binning pays for the rest: on the real dev pairs and their harder variants (fixed image at 1.6 mm, moving image
in 6 mm slices) this ends closer to the careful reference in less time than SimpleITK's Mattes MI
(``bench/mi_precision.py``, BENCHMARKS.md); the "not converged" check below would flag a final level cut short.

Masks, only where they are right:

* **fixed**: the MR prostate label dilated by ``mask_mm`` when the case has a label (the gland and its
  surroundings: capsule, periprostatic fat, rectal wall); the whole image otherwise;
* **moving**: the ultrasound fan (:func:`regkit.baselines.masks.fan_mask`) only when the moving image is
  ultrasound, as the case declares it (``metadata["moving_modality"]``; regkit datasets say "US") or, when it
  does not, as an image test guesses (:func:`regkit.baselines.masks.moving_is_ultrasound`). On an MR the
  zero background is anatomy's edge, not a field-of-view border, and masking it biases the optimum.

Two recipes, chosen case by case (``preset="auto"``, the default):

* ``"general"``, the recipe above, for MR, CT and other moving images whose intensities follow anatomy at
  every scale (chosen on the real multimodal MR pairs of ``real_multimodal_dev``);
* ``"ultrasound"``, when the moving image is ultrasound (known as for the moving mask, below): sigmas of 1 and
  0 mm only (100 and 150 iterations), at full resolution with 2000 samples a level, and the fan mask. B-mode
  speckle, shadows and depth attenuation do not follow the MR's structures at the scale of centimetres: MI
  between an MR and a TRUS both smoothed by 2-4 mm has false optima, which the general pyramid's coarse levels
  walk into (jumps of 30-50 mm reported as converged). Of the pyramids tried (4-2-1-0, 2-1-0, 1-0 mm and
  elastix's one half-voxel level), 1-0 mm gave the lowest mean error from 8 mm starts both on real prostate
  anatomy with simulated TRUS and on the phantom, and beat the one-level recipe from 16 mm too
  (BENCHMARKS.md, issue 12). There are no real MR-TRUS pairs with a reference here to confirm it.

``preset="general"`` or ``"ultrasound"`` forces one recipe for every case. ``preset="phantom"`` keeps the
settings once tuned on the built-in phantom alone (one level of elastix's half-voxel smoothing, 500 iterations,
2048 samples, the fan mask always), for comparison with earlier results.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from regkit.baselines.masks import MovingMask
from regkit.baselines.recipes import Preset
from regkit.case import Case
from regkit.registrar import RegistrarBase, Variant
from regkit.transform import RigidTransform

#: Named recipes; a preset sets every recipe option the caller leaves at its default.
PRESETS: dict[str, dict] = {
    "general": dict(smoothing_mm=(4.0, 2.0, 1.0, 0.0), iterations=(100, 100, 100, 150), spatial_samples=4000,
                    coarse_samples=1000, coarse_step=2.0, shrink=True, mask_mm=15.0, moving_mask="auto"),
    "ultrasound": dict(smoothing_mm=(1.0, 0.0), iterations=(100, 150), spatial_samples=2000, coarse_samples=None,
                       coarse_step=1.0, shrink=False, mask_mm=15.0, moving_mask="fan"),
    "phantom": dict(smoothing_mm=None, iterations=500, spatial_samples=2048, coarse_samples=None, coarse_step=1.0,
                    shrink=False, mask_mm=15.0, moving_mask="fan"),
}
_DEFAULTS = PRESETS["general"]


#: At most this many Mattes histogram bins (the joint histogram holds their square, per thread).
MAX_BINS = 1024


def _check_smoothing(value) -> tuple[float, ...] | None:
    """``smoothing_mm`` as one Gaussian sigma (mm, at least 0) per level, or None (elastix's one-level pyramid)."""
    from regkit.options import check_numbers

    return check_numbers("smoothing_mm", value, low=0, optional=True,
                         fix="one Gaussian sigma in mm (at least 0) per level, coarse to fine, e.g. "
                             "smoothing_mm=[2, 1, 0], or null for elastix's one-level pyramid")


def mutual_information(fixed: sitk.Image, moving: sitk.Image, transform: RigidTransform | Sequence[RigidTransform],
                       fixed_mask: sitk.Image | None = None, moving_mask: sitk.Image | None = None, bins: int = 32,
                       samples: int = 50000, seed: int = 1) -> float | list[float]:
    """Negative mutual information of ``moving`` read through ``transform`` (lower is better), deterministic.

    A fixed random set of ``samples`` fixed voxels (in ``fixed_mask``), the moving image read at their mapped
    positions with linear interpolation (points outside the moving image or ``moving_mask`` are left out), and
    a ``bins × bins`` joint histogram over each image's 0.5–99.5 % intensity range. Used to tell whether a
    registration improved on its start: the same points and bins at the start and at the result, so give both
    transforms in one call (a list in, a list out). (SimpleITK's ``MetricEvaluate`` would take every voxel,
    over a second per call.)
    """
    from scipy.ndimage import map_coordinates

    from regkit.image import ImageGeometry

    f = sitk.GetArrayViewFromImage(fixed)
    inside = np.ones(f.shape, bool) if fixed_mask is None else sitk.GetArrayViewFromImage(fixed_mask) > 0
    flat = np.flatnonzero(inside)
    rng = np.random.default_rng(seed)
    if len(flat) > samples:
        flat = flat[np.sort(rng.integers(0, len(flat), samples))]
    idx = np.stack(np.unravel_index(flat, f.shape), axis=1)  # (z, y, x)
    fv = f.reshape(-1)[flat].astype(float)
    points = ImageGeometry.of(fixed).to_physical(idx[:, ::-1].astype(float))
    m = sitk.GetArrayViewFromImage(moving)
    mf = m.astype(np.float32)
    mm = None if moving_mask is None else sitk.GetArrayViewFromImage(moving_mask).astype(np.float32)
    size = np.array(m.shape)[:, None]
    franges = np.percentile(f.reshape(-1)[::7], [0.5, 99.5]).astype(float)  # a subsample: the same ranges
    mranges = np.percentile(m.reshape(-1)[::7], [0.5, 99.5]).astype(float)
    to_index = ImageGeometry.of(moving).to_index

    def one(t: RigidTransform) -> float:
        where = to_index(t.apply(points))[:, ::-1].T
        keep = np.all((where >= 0) & (where <= size - 1), axis=0)
        if mm is not None:
            keep &= map_coordinates(mm, where, order=0) > 0
        if keep.sum() < 100:
            return 0.0
        mv = map_coordinates(mf, where[:, keep], order=1)
        joint, _, _ = np.histogram2d(np.clip(fv[keep], *franges), np.clip(mv, *mranges), bins=bins,
                                     range=[franges + [0, 1e-9], mranges + [0, 1e-9]])
        pxy = joint / joint.sum()
        px, py = pxy.sum(axis=1, keepdims=True), pxy.sum(axis=0, keepdims=True)
        nz = pxy > 0
        return -float(np.sum(pxy[nz] * np.log(pxy[nz] / (px @ py)[nz])))

    if isinstance(transform, RigidTransform):
        return one(transform)
    return [one(t) for t in transform]


class MIRegistrar(RegistrarBase):
    """Mattes mutual information, rigid (elastix); see the module docstring for the recipe.

    Parameters
    ----------
    fixed : {"image", "label"}
        Fixed input: the MR image or the MR prostate label.
    preset : {"auto", "general", "ultrasound", "phantom"}
        The recipe whose values fill the options left at their defaults: ``"auto"`` chooses the ultrasound
        recipe when the moving image is ultrasound and the general one otherwise, case by case (module
        docstring); ``"phantom"``: the settings once tuned on the phantom alone.
    smoothing_mm : sequence of float, or None
        Gaussian sigma (mm) of each pyramid level, coarse to fine (``None``: elastix's one-level half-voxel
        smoothing, the phantom preset's).
    iterations : int or sequence of int
        ASGD iterations per level (one for all levels, or one per level; the default's 100 at each coarse level
        and 150 at the finest follow any number of levels).
    spatial_samples : int
        Random samples per iteration at the finest level (and at every level when ``coarse_samples`` is None).
    coarse_samples : int or None
        Random samples per iteration at every level but the finest (None: ``spatial_samples``).
    coarse_step : float
        The longest ASGD step at every level but the finest that runs on the full images, as a multiple of
        elastix's automatic one (elastix's ``MaximumStepLengthRatio``). A level on binned images (``shrink``)
        takes the full fixed grid's mean voxel spacing instead, and the finest level elastix's own.
    shrink : bool
        Run each level on the images binned (averaged) to voxels no larger than its sigma along any axis, one
        elastix call per grid (the start of each the result of the one before): a coarse level then smooths and
        samples a small image instead of the full one. Off, every level runs on the full images in one call.
    histogram_bins : int
        Mattes histogram bins.
    mask_mm : float or None
        Fixed mask: the MR prostate label dilated by this many mm, when the case has a label (None: no mask).
    moving_mask : {"auto", "fan", "none"}
        Moving mask: the ultrasound fan when the moving image is ultrasound (``auto``), always, or never.
    seed : int
        The random sampler's seed (elastix's ``RandomSeed``).
    threads : int, optional
        elastix threads (default: ITK's, which ``regkit compare`` sets to its cores per worker). The result does
        not depend on it: the metric's sums run on one thread (see :mod:`regkit.baselines.recipes`).
    elastix : dict, optional
        Extra elastix parameter-map entries, which win over the recipe's (e.g. ``{"NumberOfHistogramBins": 64}``).
    log_dir : path, optional
        Where to keep the logs of failed runs.
    """

    name = "mi"
    presets = PRESETS  # the recipes ``preset`` chooses from (resolved settings include them)

    def __init__(self, fixed: Variant = "image", preset: Preset = "auto",
                 smoothing_mm: float | Sequence[float] | None = (4.0, 2.0, 1.0, 0.0),
                 iterations: int | tuple[int, ...] = (100, 100, 100, 150), spatial_samples: int = 4000,
                 coarse_samples: int | None = 1000, coarse_step: float = 2.0, shrink: bool = True,
                 histogram_bins: int = 32,
                 mask_mm: float | None = 15.0, moving_mask: MovingMask = "auto", min_sigma_voxels: float = 0.5,
                 seed: int = 121212, threads: int | None = None, elastix: dict | None = None,
                 log_dir: str | None = None):
        settings = self.check_options(
            fixed=fixed, preset=preset, smoothing_mm=smoothing_mm, iterations=iterations,
            spatial_samples=spatial_samples, coarse_samples=coarse_samples, coarse_step=coarse_step, shrink=shrink,
            histogram_bins=histogram_bins, mask_mm=mask_mm, moving_mask=moving_mask, min_sigma_voxels=min_sigma_voxels,
            seed=seed, threads=threads, elastix=elastix, log_dir=log_dir)
        self.preset = preset
        vars(self).update(settings)  # recipes, fixed, seed, threads, elastix, log_dir, histogram_bins, min_sigma_voxels
        import scipy.ndimage  # noqa: F401 - imported here, not inside the first timed registration

        from regkit.baselines.elastix import itk_module

        itk_module()  # pay ITK's start-up (~2 s) here, once per process, not inside a timed registration

    @staticmethod
    def check_options(*, fixed, preset, smoothing_mm, iterations, spatial_samples, coarse_samples, coarse_step,
                      shrink, histogram_bins, mask_mm, moving_mask, min_sigma_voxels, seed, threads, elastix,
                      log_dir) -> dict:
        """Every option's value checked before anything loads (the registry calls this before constructing, the
        constructor too): the settings, normalised (``recipes``: the recipes ``preset`` may run), or an
        :class:`~regkit.errors.InputError` naming the first bad option."""
        from regkit.baselines.recipes import check_common_options, recipes_of
        from regkit.options import check_number

        recipes = recipes_of(PRESETS, preset, _DEFAULTS, ("smoothing_mm", _check_smoothing), smoothing_mm=smoothing_mm,
                             iterations=iterations, spatial_samples=spatial_samples, coarse_samples=coarse_samples,
                             coarse_step=coarse_step, shrink=shrink, mask_mm=mask_mm, moving_mask=moving_mask)
        return {"recipes": recipes, **check_common_options(fixed, seed, threads, elastix, log_dir),
                "histogram_bins": check_number("histogram_bins", histogram_bins, whole=True, low=2, high=MAX_BINS,
                                               fix="e.g. histogram_bins=32 (Mattes' usual 32 to 64)"),
                "min_sigma_voxels": check_number("min_sigma_voxels", min_sigma_voxels, low=0,
                                                 fix="e.g. min_sigma_voxels=0.5 (elastix's half a voxel), or 0")}

    def _register(self, case: Case, initial: RigidTransform) -> tuple[RigidTransform, dict]:
        from regkit.baselines import elastix as ex
        from regkit.baselines import masks, recipes

        ultrasound = masks.moving_is_ultrasound(case)  # asked once: the recipe and the moving mask both depend on it
        name, recipe, why = recipes.recipe_for(self.recipes, case, ultrasound)
        its = recipe["iterations"]
        coarse = len(its) - 1  # the levels before the finest
        fixed = case.fixed_input(self.fixed)
        grids = level_grids(recipe, fixed.GetSpacing(), case.moving.GetSpacing())
        # coarse_step scales elastix's automatic step at full-resolution levels; a level on binned fixed images
        # keeps the full fixed grid's mean spacing as its longest step (max_step_mm below), unscaled
        ratios = [recipe["coarse_step"]] * coarse + [1.0]
        for first, last, f_bins, _ in grids:
            if f_bins != (1, 1, 1):
                ratios[first:last] = [1.0] * (last - first)
        settings = dict(smoothing_mm=recipe["smoothing_mm"], iterations=its,
                        spatial_samples=(recipe["coarse_samples"] or recipe["spatial_samples"],) * coarse
                        + (recipe["spatial_samples"],), step_ratio=tuple(ratios))
        mask_mm = recipe["mask_mm"]
        use_mask = mask_mm is not None and case.fixed_label is not None
        fmask = masks.dilated_mask(case.fixed_label, mask_mm) if use_mask else None
        mmask, mmask_note = masks.moving_mask_for(case, recipe["moving_mask"], ultrasound=ultrasound)
        step_mm = float(np.mean(fixed.GetSpacing()))  # the full fixed grid's mean spacing
        t, levels = initial, []
        for first, last, f_bins, m_bins in grids:
            f, m = binned(fixed, f_bins), binned(case.moving, m_bins)
            pm = recipes.rigid_parameter_map(
                "AdvancedMattesMutualInformation", **{k: (v if k == "smoothing_mm" and v is None else v[first:last])
                                                      for k, v in settings.items()},
                histogram_bins=self.histogram_bins, seed=self.seed, fixed_spacing=f.GetSpacing(),
                moving_spacing=m.GetSpacing(), min_sigma_voxels=self.min_sigma_voxels,
                max_step_mm=step_mm if f_bins != (1, 1, 1) else None)
            pm.update({k: v[first:last] if len(v) == len(its) > 1 else v for k, v in self.elastix.items()})
            run = ex.run_elastix([f], [m], pm, t, fixed_mask=binned(fmask, f_bins, f), threads=self.threads,
                                 moving_mask=binned(mmask, m_bins, m), keep_log_dir=self.log_dir)
            t, levels = run.transform, levels + run.levels
        before, after = mutual_information(fixed, case.moving, [initial, t], fmask, mmask, self.histogram_bins)
        status, message = ex.convergence(levels, before, after)
        return t, {"status": status, "message": message, "fixed": self.fixed, "recipe": name,
                   "recipe_why": why, "mask_mm": mask_mm if use_mask else None,
                   "moving_mask": mmask_note, "metric_start": before, "metric_result": after,
                   "iterations_run": [lv.iterations for lv in levels],
                   "level_seconds": [lv.seconds for lv in levels], **settings, "histogram_bins": self.histogram_bins,
                   "seed": self.seed, "shrink": recipe["shrink"]}


def level_grids(recipe: dict, fixed_spacing, moving_spacing) -> list[tuple[int, int, tuple, tuple]]:
    """The elastix calls of a recipe: ``(first, last, fixed_bins, moving_bins)``, levels ``first:last`` on the
    images binned by these factors (x, y, z). With ``shrink``, each level's voxels are made no larger than its
    sigma along any axis (never finer than the image's own), and consecutive levels on the same grids share a
    call; without it, one call on the full images."""
    sigmas, n = recipe["smoothing_mm"], len(recipe["iterations"])
    if not recipe["shrink"] or sigmas is None:
        return [(0, n, (1, 1, 1), (1, 1, 1))]

    def bins(sigma, spacing):
        return tuple(max(1, int(np.floor(sigma / s + 1e-6))) for s in spacing)

    grids = [(bins(s, fixed_spacing), bins(s, moving_spacing)) for s in sigmas]
    out = []
    for i, g in enumerate(grids):
        if out and grids[out[-1][0]] == g:
            out[-1] = (out[-1][0], i + 1, *g)
        else:
            out.append((i, i + 1, *g))
    return out


def binned(image: sitk.Image | None, bins: tuple, like: sitk.Image | None = None) -> sitk.Image | None:
    """``image`` averaged over blocks of ``bins`` voxels (x, y, z), in its physical frame; a mask (``like``: the
    binned image whose grid it takes) is resampled by nearest neighbour instead."""
    if image is None or all(b == 1 for b in bins):
        return image
    if like is not None:
        return sitk.Resample(image, like, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID())
    return sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), [int(b) for b in bins])
