"""elastix parameter maps and the classical registrars' recipes (presets, one per kind of moving image).

* **A smoothing pyramid in millimetres.** :func:`rigid_parameter_map` uses elastix's *generic* pyramid with a
  smoothing schedule of physical Gaussian sigmas and no down-sampling. elastix's ``FixedSmoothingImagePyramid``
  (the ``"rigid"`` default map's) ignores ``FixedImagePyramidSmoothingSchedule`` altogether: it smooths with
  ``0.5 × factor × spacing`` per axis from the rescale schedule, so a schedule written in millimetres silently
  becomes half a voxel at every level, or 7.5 mm across a 15 mm slice (checked with elastix 5.3.1 in
  itk-elastix 0.25.4: the metric at the start does not change with that key).
* **Results that do not depend on the thread count.** elastix's metrics sum their samples per thread, so the
  rounding, and after a few hundred stochastic iterations the result, follows the number of threads (and so
  ``regkit compare -j``). :func:`rigid_parameter_map` turns the metrics' threading off
  (``UseMultiThreadingForMetrics false``); the pyramid and everything else still use every thread given, and
  the result is bit for bit the same with 1 or 2 threads (``bench/determinism.py``).
* **Recipes.** A registrar's named presets fill the options the caller leaves at their defaults
  (:func:`recipe_of`); ``preset="auto"`` keeps two of them and chooses one case by case, by the moving image's
  modality (:func:`recipe_for`). Settings are checked when the registrar is built (:func:`check_settings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from regkit.baselines import masks
from regkit.baselines.elastix import itk_module
from regkit.errors import InputError, check_whole


def rigid_parameter_map(metric: str = "AdvancedMattesMutualInformation", *,
                        smoothing_mm: Sequence[float] | None = (2.0, 1.0, 0.0), iterations: int | Sequence[int] = 300,
                        spatial_samples: int = 3000, histogram_bins: int = 32, seed: int = 121212,
                        n_metrics: int = 1, fixed_spacing: Sequence[float] | None = None,
                        moving_spacing: Sequence[float] | None = None, min_sigma_voxels: float = 0.0
                        ) -> dict[str, list[str]]:
    """elastix's rigid map (EulerTransform, ASGD, random-coordinate sampler) with a physical smoothing pyramid.

    Parameters
    ----------
    metric : str
        The elastix metric; with ``n_metrics > 1`` it is repeated, one per image pair, with weight 1 each
        (``MultiMetricMultiResolutionRegistration``: the sum of the metrics).
    smoothing_mm : sequence of float, or None
        One Gaussian sigma (mm, the same along every axis) per resolution level, coarse to fine; 0 leaves the
        level unsmoothed. Images are never down-sampled. ``None`` keeps elastix's own one-level smoothing
        pyramid (sigma = half a voxel per axis), the behaviour of regkit's phantom preset.
    iterations : int or sequence of int
        ASGD iterations per level (one value for every level, or one per level).
    spatial_samples, histogram_bins, seed : int
        Random samples per iteration (new ones every iteration), Mattes MI bins, sampler seed.
    fixed_spacing, moving_spacing, min_sigma_voxels :
        With the images' voxel spacings, no axis of an image is smoothed by less than ``min_sigma_voxels`` of
        its voxels at any level (e.g. 0.5: elastix's own finest level, half a voxel, which keeps linear
        interpolation's artefacts out of MI on thick slices).
    """
    itk = itk_module()
    levels = 1 if smoothing_mm is None else len(smoothing_mm)
    if levels < 1:
        raise ValueError("smoothing_mm needs at least one level")
    pm = {k: list(v) for k, v in dict(itk.ParameterObject.GetDefaultParameterMap("rigid", levels)).items()}
    its = [iterations] * levels if isinstance(iterations, int | np.integer) else list(iterations)
    if len(its) != levels:
        raise ValueError(f"{len(its)} iteration counts for {levels} levels")
    pm.update({
        "MaximumNumberOfIterations": [str(int(i)) for i in its],
        "NumberOfSpatialSamples": [str(spatial_samples)],
        "NumberOfHistogramBins": [str(histogram_bins)],
        "RandomSeed": [str(seed)],
        "WriteResultImage": ["false"],
        "ResultImageFormat": ["nii"],
        "AutomaticTransformInitialization": ["false"],
        "ComputeZYX": ["true"],
        "ErodeMask": ["false"],
        # keep going when part of the samples map outside the moving field of view (a cut TRUS fan)
        "RequiredRatioOfValidSamples": ["0.05"],
        "MaximumNumberOfSamplingAttempts": ["8"],
        # the metric's per-thread sums would make the result depend on the thread count (module docstring)
        "UseMultiThreadingForMetrics": ["false"],
    })
    pyramids = ("FixedSmoothingImagePyramid", "MovingSmoothingImagePyramid")
    if smoothing_mm is not None:
        pyramids = ("FixedGenericImagePyramid", "MovingGenericImagePyramid")

        def schedule(spacing):
            floor = np.zeros(3) if spacing is None else min_sigma_voxels * np.asarray(spacing, float)
            return [repr(float(max(s, f))) for s in smoothing_mm for f in floor]

        pm.update({
            "FixedImagePyramidSmoothingSchedule": schedule(fixed_spacing),
            "MovingImagePyramidSmoothingSchedule": schedule(moving_spacing),
            "FixedImagePyramidRescaleSchedule": ["1"] * (3 * levels),
            "MovingImagePyramidRescaleSchedule": ["1"] * (3 * levels),
        })
    pm.update({"FixedImagePyramid": [pyramids[0]] * n_metrics, "MovingImagePyramid": [pyramids[1]] * n_metrics,
               "Metric": [metric] * n_metrics})
    if n_metrics > 1:
        pm.update({
            "Registration": ["MultiMetricMultiResolutionRegistration"],
            "Interpolator": ["LinearInterpolator"] * n_metrics,
            "ImageSampler": ["RandomCoordinate"] * n_metrics,
        })
        for i in range(n_metrics):
            pm[f"Metric{i}Weight"] = ["1.0"]
    return pm


#: ``preset="auto"`` chooses between these two recipes, case by case (:func:`recipe_for`).
AUTO_PRESETS = ("general", "ultrasound")
#: A classical registrar's recipe: chosen per case from the moving image (``"auto"``), the ``"general"`` or the
#: ``"ultrasound"`` one, or ``"phantom"`` (the settings once tuned on the phantom alone).
Preset = Literal["auto", "general", "ultrasound", "phantom"]


def recipe_of(presets: dict[str, dict], preset: str, defaults: dict, **given) -> dict:
    """A registrar's recipe: ``preset``'s value for every option of ``given`` still at its default.

    An option the caller set to something else than its default wins over the preset. ``moving_mask`` is
    checked here, with the preset's name, so a bad value fails when the registrar is built.
    """
    if preset not in presets:
        raise InputError(f"unknown preset {preset!r}", fix=f"use one of: auto, {', '.join(presets)}")
    chosen = presets[preset]
    out = {k: (chosen[k] if k in chosen and _same(v, defaults.get(k)) else v) for k, v in given.items()}
    if "moving_mask" in out:
        out["moving_mask"] = masks.check_moving_mask(out["moving_mask"])
    return out


def recipes_of(presets: dict[str, dict], preset: str, defaults: dict, levels, **given) -> dict[str, dict]:
    """The recipes a registrar may run, by preset name: ``preset``'s alone, or with ``"auto"`` both of
    :data:`AUTO_PRESETS`, to be chosen case by case (:func:`recipe_for`). Each is :func:`recipe_of`'s, with its
    ``iterations`` made one count per level (:func:`per_level_iterations`; ``levels(recipe)`` counts them)."""
    out = {}
    for name in (AUTO_PRESETS if preset == "auto" else (preset,)):
        recipe = recipe_of(presets, name, defaults, **given)
        try:
            recipe["iterations"] = per_level_iterations(recipe["iterations"], levels(recipe), defaults["iterations"])
        except InputError as exc:
            if preset != "auto":
                raise
            both = " and ".join(AUTO_PRESETS)
            raise InputError(f"{exc.what} in the {name!r} recipe (preset='auto' may run both {both})",
                             fix="give one count for every level, give the levels too (smoothing_mm or spacing_mm), "
                                 "or choose one recipe (e.g. preset='general')") from None
        out[name] = recipe
    return out


def recipe_for(recipes: dict[str, dict], case, ultrasound: tuple[bool, str] | None = None) -> tuple[str, dict, str]:
    """The recipe a case runs, its name, and why: the one recipe of a named preset, or, for ``"auto"``, the
    ultrasound recipe when the moving image is ultrasound (:func:`regkit.baselines.masks.moving_is_ultrasound`,
    or ``ultrasound``: its answer, when the caller has it already), the general one otherwise."""
    if len(recipes) == 1:
        name = next(iter(recipes))
        return name, recipes[name], f"preset={name}"
    us, why = ultrasound or masks.moving_is_ultrasound(case)
    name = AUTO_PRESETS[1] if us else AUTO_PRESETS[0]
    return name, recipes[name], f"preset=auto, {why}"


def per_level_iterations(iterations, levels: int, default) -> tuple[int, ...]:
    """Iteration counts, one per level, from one count for every level or one per level.

    The default's per-level counts (each coarse level's, then the finest's) follow any number of levels; any
    other list must have one count per level. An :class:`InputError` names a bad count.
    """
    its = [iterations] if np.ndim(iterations) == 0 else list(iterations)
    check_settings(**({"iterations": its[0]} if len(its) == 1 else
                      {f"iterations[{i}]": n for i, n in enumerate(its)}))
    if len(its) != levels and tuple(its) == tuple(np.atleast_1d(default).tolist()):
        its = [its[0]] * (levels - 1) + [its[-1]]
    if len(its) == 1:
        its = its * levels
    if len(its) != levels:
        raise InputError(f"{len(its)} iteration counts for {levels} levels",
                         fix="give one count, or one per level (per smoothing_mm level, or per spacing_mm scale)")
    return tuple(int(n) for n in its)


def _same(a, b) -> bool:
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return a is not None and b is not None and list(np.atleast_1d(a)) == list(np.atleast_1d(b))
    return a == b


def check_settings(fixed: str = "image", mask_mm: float | None = None, **counts) -> None:
    """Range checks of a classical registrar's settings, before ITK loads: an :class:`InputError` naming the first
    bad one (``counts`` are whole numbers of at least 1, e.g. ``iterations=500``; ``histogram_bins`` at least 2)."""
    if fixed not in ("image", "label"):
        raise InputError(f"unknown fixed input {fixed!r}", fix="use fixed='image' (the MR) or fixed='label'")
    if mask_mm is not None and not (isinstance(mask_mm, int | float) and np.isfinite(mask_mm) and mask_mm >= 0):
        raise InputError(f"mask_mm must be a distance of at least 0 mm, or None for no mask; got {mask_mm!r}")
    for name, value in counts.items():
        low = 2 if name == "histogram_bins" else (0 if name == "seed" else 1)
        check_whole(name, value, low, optional=True, types=(int, np.integer))
