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
  modality (:func:`recipe_for`). Settings are checked when the registrar is built, before ITK loads
  (:func:`recipes_of`, :func:`check_common_options`, :func:`check_elastix_entries`).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from regkit.baselines import masks
from regkit.baselines.elastix import itk_module
from regkit.errors import InputError
from regkit.options import check_number, check_numbers


def rigid_parameter_map(metric: str = "AdvancedMattesMutualInformation", *,
                        smoothing_mm: Sequence[float] | None = (2.0, 1.0, 0.0), iterations: int | Sequence[int] = 300,
                        spatial_samples: int | Sequence[int] = 3000, histogram_bins: int = 32, seed: int = 121212,
                        step_ratio: float | Sequence[float] = 1.0, max_step_mm: float | None = None,
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
    spatial_samples : int or sequence of int
        Random samples per iteration (new ones every iteration): one value for every level, or one per level.
    histogram_bins, seed : int
        Mattes MI bins, sampler seed.
    step_ratio : float or sequence of float
        elastix's ``MaximumStepLengthRatio`` (one for every level, or one per level): the longest ASGD step, as a
        multiple of the automatic one (elastix: the mean voxel spacing of the fixed and moving images).
    max_step_mm : float, optional
        The length the ratio multiplies instead of elastix's automatic one: written as ``MaximumStepLength``
        (``step_ratio × max_step_mm`` per level), which elastix reads in place of the ratio. For images binned
        for a level, whose automatic step would follow the coarse grid.
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
    samples, steps = (np.broadcast_to(np.asarray(v), (levels,)) for v in (spatial_samples, step_ratio))
    if len(its) != levels:
        raise ValueError(f"{len(its)} iteration counts for {levels} levels")
    pm.update({
        "MaximumNumberOfIterations": [str(int(i)) for i in its],
        "NumberOfSpatialSamples": [str(int(n)) for n in samples],
        "MaximumStepLengthRatio": [repr(float(r)) for r in steps],
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
    if max_step_mm is not None:
        pm["MaximumStepLength"] = [repr(float(r) * max_step_mm) for r in steps]
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

    An option the caller set to something else than its default wins over the preset (the caller's values are
    checked by :func:`recipes_of`, the presets' are regkit's own).
    """
    if not isinstance(preset, str) or preset not in presets:
        raise InputError(f"unknown preset {preset!r}", fix=f"use one of: auto, {', '.join(presets)}")
    chosen = presets[preset]
    return {k: (chosen[k] if k in chosen and _same(v, defaults.get(k)) else v) for k, v in given.items()}


def recipes_of(presets: dict[str, dict], preset: str, defaults: dict, levels: tuple[str, Callable],
               **given) -> dict[str, dict]:
    """The recipes a registrar may run, by preset name: ``preset``'s alone, or with ``"auto"`` both of
    :data:`AUTO_PRESETS`, to be chosen case by case (:func:`recipe_for`). Each is :func:`recipe_of`'s, its values
    checked (:func:`check_recipe_options`) and its ``iterations`` made one count per level
    (:func:`per_level_iterations`).

    ``levels`` is ``(option, check)``: the option that sets the levels (``smoothing_mm``, ``spacing_mm``) and the
    check that returns its value as a tuple, one value per level (or None: one level). The caller's own values are
    checked first, so that an error names the option the caller gave; a preset's counts of iterations follow the
    caller's levels as the default's do.
    """
    level_option, check_levels = levels
    if preset != "auto":
        recipe_of(presets, preset, defaults)  # an unknown preset is named before any option
    asked = given["iterations"]
    given = {**given, level_option: check_levels(given[level_option]), **check_recipe_options(given)}
    own_counts = not _same(given["iterations"], defaults["iterations"])
    own_levels = not _same(given[level_option], defaults[level_option])
    out = {}
    for name in (AUTO_PRESETS if preset == "auto" else (preset,)):
        recipe = recipe_of(presets, name, defaults, **given)
        recipe[level_option] = check_levels(recipe[level_option])
        n = 1 if recipe[level_option] is None else len(recipe[level_option])
        try:
            recipe["iterations"] = per_level_iterations(
                recipe["iterations"], n, defaults["iterations"] if own_counts else recipe["iterations"])
        except InputError:
            value = None if recipe[level_option] is None else list(recipe[level_option])
            counts = f"iterations={asked!r} gives {len(given['iterations'])} counts"
            levels_text = f"{n} level{'s' if n > 1 else ''} ({level_option}={value!r})"
            if own_levels:
                raise InputError(f"{counts}, but {level_option} makes {levels_text}",
                                 fix="give one count for every level, or one per level") from None
            both = f"; preset='auto' may run both {' and '.join(AUTO_PRESETS)}" if preset == "auto" else ""
            raise InputError(f"{counts}, but the {name!r} recipe has {levels_text}{both}",
                             fix=f"give one count for every level, give the levels too ({level_option}), or choose "
                                 "one recipe (e.g. preset='general')") from None
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
    its = list(check_iterations(iterations))
    if len(its) != levels and tuple(its) == tuple(np.atleast_1d(default).tolist()):
        its = [its[0]] * (levels - 1) + [its[-1]]
    if len(its) == 1:
        its = its * levels
    if len(its) != levels:
        raise InputError(f"{len(its)} iteration counts for {levels} levels",
                         fix="give one count, or one per level (per smoothing_mm level, or per spacing_mm scale)")
    return tuple(its)


def _plain(value):
    """A value as nested tuples of Python scalars (a list, a tuple and a NumPy array of the same numbers compare
    equal), for telling whether an option was left at its default."""
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(_plain(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def _same(a, b) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, tuple) != isinstance(b, tuple):  # one number stands for a list of one
        a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    try:
        return bool(a == b)
    except Exception:  # values that cannot be compared (e.g. arrays inside a dict) are not the default
        return False


# ---------------------------------------------------------------------------------------------- option checks
#: At most these many random samples per iteration (elastix keeps them all in memory; its default is 2048).
MAX_SAMPLES = 10_000_000
#: At most this fixed-mask dilation (mm): beyond it the mask covers the images (use None for no mask), and the
#: dilation's cost grows with the cube of its radius.
MAX_MASK_MM = 50.0


def check_iterations(iterations) -> tuple[int, ...]:
    """Iteration counts (one count, or one per level) as a tuple of whole numbers of at least 1."""
    if np.ndim(iterations) == 0 and not isinstance(iterations, str | bytes):
        return (check_number("iterations", iterations, whole=True, low=1, fix="e.g. iterations=300"),)
    return check_numbers("iterations", iterations, whole=True, low=1, scalar=False,
                         fix="give one count, or one per level, e.g. iterations=[100, 150]")


def check_recipe_options(given: dict) -> dict:
    """The recipe options of ``given`` (those it holds of ``iterations``, ``spatial_samples``, ``coarse_samples``,
    ``coarse_step``, ``shrink``, ``mask_mm`` and ``moving_mask``), checked and normalised."""
    checks = {
        "iterations": check_iterations,
        "spatial_samples": lambda v: check_number("spatial_samples", v, whole=True, low=1, high=MAX_SAMPLES,
                                                  fix="e.g. spatial_samples=2000 (elastix's default is 2048)"),
        "coarse_samples": lambda v: check_number("coarse_samples", v, whole=True, low=1, high=MAX_SAMPLES,
                                                 optional=True, fix="e.g. coarse_samples=1000, or null for "
                                                                    "spatial_samples at every level"),
        "coarse_step": lambda v: check_number("coarse_step", v, low=0.1, high=10,
                                              fix="a multiple of elastix's automatic step length, e.g. coarse_step=2 "
                                                  "(1: elastix's own)"),
        "mask_mm": lambda v: check_number("mask_mm", v, low=0, high=MAX_MASK_MM, optional=True,
                                          fix="a distance in mm (e.g. mask_mm=15), or null for no fixed mask"),
        "moving_mask": masks.check_moving_mask,
        "shrink": lambda v: _check_flag("shrink", v),
    }
    return {k: checks[k](v) for k, v in given.items() if k in checks}


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise InputError(f"{name} must be true or false, got {value!r}", fix=f"e.g. {name}=true")
    return bool(value)


def check_common_options(fixed, seed, threads, elastix, log_dir) -> dict:
    """The options every elastix registrar of regkit takes besides its recipe, checked and normalised: ``fixed``
    (``"image"`` or ``"label"``), ``seed`` (elastix's ``RandomSeed``, an unsigned 32-bit number), ``threads``,
    ``elastix`` (:func:`check_elastix_entries`) and ``log_dir``."""
    if fixed not in ("image", "label"):
        raise InputError(f"unknown fixed input {fixed!r}", fix="use fixed='image' (the MR) or fixed='label'")
    if log_dir is not None and not isinstance(log_dir, str | os.PathLike):
        raise InputError(f"log_dir must be a folder's path, got {log_dir!r}", fix="e.g. log_dir=elastix-logs")
    return {"fixed": fixed,
            "seed": check_number("seed", seed, whole=True, low=0, high=2**32 - 1,
                                 fix="elastix's RandomSeed is an unsigned 32-bit number, e.g. seed=121212"),
            "threads": check_number("threads", threads, whole=True, low=1, optional=True,
                                    fix="e.g. threads=2, or leave it out for ITK's default"),
            "elastix": check_elastix_entries(elastix), "log_dir": log_dir}


#: Entries of regkit's rigid maps (elastix's default rigid map and :func:`rigid_parameter_map`'s) whose values are
#: numbers: whole (``True``) or real (``False``); an override must be a number too.
NUMBER_ENTRIES = {
    "MaximumNumberOfIterations": True, "NumberOfSpatialSamples": True, "NumberOfHistogramBins": True,
    "RandomSeed": True, "MaximumNumberOfSamplingAttempts": True, "NumberOfSamplesForExactGradient": True,
    "FinalBSplineInterpolationOrder": True, "BSplineInterpolationOrder": True,
    "FixedImagePyramidRescaleSchedule": True, "MovingImagePyramidRescaleSchedule": True,
    "FixedImagePyramidSmoothingSchedule": False, "MovingImagePyramidSmoothingSchedule": False,
    "RequiredRatioOfValidSamples": False, "DefaultPixelValue": False, "MaximumStepLength": False,
    "MaximumStepLengthRatio": False,
    "SP_a": False, "SP_A": False, "SP_alpha": False,
}
#: Entries whose values are ``true`` or ``false``.
BOOLEAN_ENTRIES = {
    "AutomaticParameterEstimation", "AutomaticScalesEstimation", "AutomaticTransformInitialization",
    "CheckNumberOfSamples", "NewSamplesEveryIteration", "WriteIterationInfo", "WriteResultImage", "ComputeZYX",
    "ErodeMask", "UseMultiThreadingForMetrics", "UseRandomSampleRegion",
}
#: Entries regkit sets from its own options, which an override would put at odds with the rest of the map.
OWNED_ENTRIES = {
    "NumberOfResolutions": "the levels come from smoothing_mm (mi) or spacing_mm (mind): set those instead",
    "Transform": "regkit's registrations are rigid (EulerTransform): give another method for other transforms",
}


def check_elastix_entries(entries) -> dict[str, list[str]]:
    """Extra elastix parameter-map entries as elastix reads them (each a list of strings), checked: a dict whose keys
    are entry names and whose values are text, finite numbers, true/false or non-empty lists of them; the entries
    of :data:`NUMBER_ENTRIES` numbers (whole where elastix reads whole numbers, and at least 0), those of
    :data:`BOOLEAN_ENTRIES` true/false; none of :data:`OWNED_ENTRIES`. None is no entry."""
    if entries is None:
        return {}
    fix = 'e.g. elastix={"NumberOfHistogramBins": 64} (an entry name, and its value or a list of values)'
    if not isinstance(entries, dict):
        raise InputError(f"elastix must be a dict of parameter-map entries, got {entries!r}", fix=fix)
    out = {}
    for key, value in entries.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise InputError(f"elastix entry name {key!r} is not a parameter name", fix=fix)
        if key in OWNED_ENTRIES:
            raise InputError(f"elastix entry {key} cannot be overridden", fix=OWNED_ENTRIES[key])
        values = list(value) if isinstance(value, list | tuple) else [value]
        if not values:
            raise InputError(f"elastix entry {key} is an empty list", fix=fix)
        out[key] = [_elastix_value(key, i if len(values) > 1 else None, v, fix) for i, v in enumerate(values)]
    return out


def _elastix_value(key: str, index: int | None, value, fix: str) -> str:
    where = f"elastix entry {key}" + ("" if index is None else f"[{index}]")
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, numbers.Real):
        if key in BOOLEAN_ENTRIES:
            raise InputError(f"{where} must be true or false, got {value!r}", fix=f'e.g. elastix={{"{key}": true}}')
        whole = NUMBER_ENTRIES.get(key, False)
        check_number(where, value, whole=whole, low=0 if whole else None,
                     high=2**32 - 1 if whole else None, fix=f'e.g. elastix={{"{key}": 64}}' if whole else fix)
        return str(int(value)) if whole or float(value).is_integer() else repr(float(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text or any(c in text for c in '()"\n'):
            raise InputError(f"{where} is {value!r}, not a value elastix can read", fix=fix)
    else:
        raise InputError(f"{where} is {type(value).__name__} {value!r}, not text, a number or true/false", fix=fix)
    if key in BOOLEAN_ENTRIES and text.lower() not in ("true", "false"):
        raise InputError(f"{where} must be true or false, got {value!r}", fix=f'e.g. elastix={{"{key}": true}}')
    if key in NUMBER_ENTRIES:
        try:
            number = float(text)
        except ValueError:
            raise InputError(f"{where} must be a number, got {value!r}", fix=f'e.g. elastix={{"{key}": 64}}') from None
        return _elastix_value(key, index, int(number) if number.is_integer() else number, fix)
    return text.lower() if key in BOOLEAN_ENTRIES else text
