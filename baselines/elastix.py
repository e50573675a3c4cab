"""One safe way to run itk-elastix for rigid registration.

* **Import once.** ``import itk`` plus elastix's lazy load costs ~11 s and ~1 GB; :func:`itk_module` pays it
  once per process, and nothing in regkit imports ITK until a registration runs.
* **Pool threader.** ITK's default TBB threader segfaults in multi-metric registrations when a thread count
  is set (ITKElastix#160), so the Pool threader is selected before ITK loads (unless the user chose one with
  ``ITK_GLOBAL_DEFAULT_THREADER``).
* **Start in memory.** The start is passed as an in-memory elastix ``EulerTransform`` map
  (:func:`regkit.transform_io.elastix_map_from_transform`).
* **Combined result.** With an initial transform, elastix's result map holds parameters *relative* to the
  start; the total transform is read from ``ConvertToItkTransform(GetCombinationTransform())`` by mapping
  four points, never from the last map's parameters.
* **No stray files.** Each run logs into a temporary folder that is deleted on success and kept on failure
  (its path is in the error message). The log is read before it is deleted: its per-iteration metric values
  say whether the optimiser converged (:func:`convergence`).
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
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regkit.errors import RegkitError, itk_message
from regkit.image import ImageGeometry
from regkit.transform import RigidTransform
from regkit.transform_io import elastix_map_from_transform

_ITK = None


class ElastixError(RegkitError):
    """elastix failed; ``log`` is the kept log file."""

    def __init__(self, message: str, log: Path | None):
        self.log = log
        super().__init__(f"{message}" + (f" (elastix log kept at {log})" if log else ""))


def itk_module():
    """The ``itk`` module with elastix loaded and the Pool threader selected (loaded once per process)."""
    global _ITK
    if _ITK is None:
        os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
        import itk

        itk.ElastixRegistrationMethod  # noqa: B018 - triggers ITK's lazy load of elastix now, once
        itk.GetImageFromArray(np.zeros((2, 2, 2), np.float32))  # and of its NumPy bridge (~1.5 s), not in a timing
        _ITK = itk
    return _ITK


def to_itk(image: sitk.Image, pixel: str = "F"):
    """A SimpleITK image as an ITK image (float32 by default, ``"UC"`` for masks), geometry kept."""
    itk = itk_module()
    arr = sitk.GetArrayFromImage(image)
    arr = arr.astype(np.float32 if pixel == "F" else np.uint8, copy=False)
    out = itk.GetImageFromArray(np.ascontiguousarray(arr))
    geo = ImageGeometry.of(image)
    out.SetOrigin([float(v) for v in geo.origin])
    out.SetSpacing([float(v) for v in geo.spacing])
    out.SetDirection(itk.matrix_from_array(np.ascontiguousarray(geo.direction)))
    return out


def itk_transform_to_rigid(transform) -> RigidTransform:
    """The 4×4 matrix of any (composite) ITK transform, read through four mapped points."""
    itk = itk_module()

    def tp(p):
        return np.array(transform.TransformPoint(itk.Point[itk.D, 3]([float(v) for v in p])))

    origin = tp((0.0, 0.0, 0.0))
    m = np.eye(4)
    m[:3, :3] = np.stack([tp(e) - origin for e in np.eye(3)], axis=1)
    m[:3, 3] = origin
    return RigidTransform.from_matrix(m, orthonormalize=True, tolerance=1e-4)


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


def initial_transform_map(initial: RigidTransform, center: np.ndarray) -> dict[str, list[str]]:
    """The start as an elastix EulerTransform map (about ``center``), for ``SetInitialTransformParameterObject``."""
    return elastix_map_from_transform(initial, center)


@dataclass
class LevelTrace:
    """One resolution level of an elastix run, read from its log."""

    metric: np.ndarray  # the metric value at each iteration (stochastic: new samples every iteration)
    stop: str = ""  # elastix's stopping condition
    seconds: float = float("nan")  # elastix's "time spent in resolution" (initialisation and iterating)

    @property
    def iterations(self) -> int:
        return len(self.metric)


@dataclass
class ElastixRun:
    """What :func:`run_elastix` returns: the total transform and the optimiser's trace per level."""

    transform: RigidTransform
    levels: list[LevelTrace] = field(default_factory=list)


_ROW = re.compile(r"^(\d+)\t")


def parse_log(text: str) -> list[LevelTrace]:
    """The per-iteration metric values and stopping condition of each level of an ``elastix.log``."""
    levels: list[LevelTrace] = []
    column = None
    values: list[float] = []
    seconds = float("nan")
    for line in text.splitlines():
        if line.startswith("1:ItNr"):
            names = line.split("\t")
            column = next(i for i, n in enumerate(names) if n.startswith("2:Metric"))
            values = []
        elif column is not None and _ROW.match(line):
            fields = line.split("\t")
            try:
                values.append(float(fields[column]))
            except (IndexError, ValueError):
                pass
        elif line.startswith("Time spent in resolution"):
            try:
                seconds = float(line.rpartition(":")[2])
            except ValueError:
                seconds = float("nan")
        elif line.startswith("Stopping condition:") and column is not None:
            levels.append(LevelTrace(np.asarray(values, float), line.partition(":")[2].strip(), seconds))
            column, seconds = None, float("nan")
    return levels


def still_improving(metric: np.ndarray, fraction: float = 0.25, min_window: int = 20, z: float = 3.0) -> bool:
    """Whether a (stochastic, lower-is-better) metric trace was still falling at its end.

    A least-squares line through the last ``fraction`` of the iterations (at least ``min_window``) whose slope
    is below zero by more than ``z`` standard errors: the optimiser stopped on its iteration limit while the
    metric still went down, far from convergence. At convergence the slope is noise around zero.
    """
    n = len(metric)
    w = max(min_window, round(fraction * n))
    if n < min_window or w < 3:
        return False
    y = np.asarray(metric[-w:], float)
    x = np.arange(w, dtype=float) - (w - 1) / 2
    slope = float(x @ (y - y.mean()) / (x @ x))
    resid = y - y.mean() - slope * x
    se = float(np.sqrt(resid @ resid / (w - 2) / (x @ x)))
    return bool(se > 0 and slope / se < -z) or bool(se == 0 and slope < 0)


def convergence(levels: list[LevelTrace], start_metric: float | None = None, final_metric: float | None = None
                ) -> tuple[str, str]:
    """``(status, message)`` of a registration from its elastix trace and its metric at the start and result.

    The status is ``"not converged"`` (:data:`regkit.registrar.NOT_CONVERGED`) when

    * the metric at the result, evaluated deterministically at full resolution, is no better than at the
      start (lower is better): the registration did not improve on its start; or
    * the final level stopped on its iteration limit while its metric was still falling
      (:func:`still_improving`): it stopped far from convergence.

    Otherwise it is ``"ok"``. A start that is already at the optimum can also fail the first test.
    """
    from regkit.registrar import NOT_CONVERGED, OK

    reasons = []
    if start_metric is not None and final_metric is not None and np.isfinite([start_metric, final_metric]).all() \
            and final_metric >= start_metric:
        reasons.append(f"the metric did not improve on the start ({start_metric:.5g} at the start, "
                       f"{final_metric:.5g} at the result)")
    if levels:
        last = levels[-1]
        limit = "maximum number of iterations" in last.stop.lower()
        if limit and still_improving(last.metric):
            reasons.append(f"the metric was still falling when the final level stopped at its iteration limit "
                           f"({last.iterations} iterations)")
    if reasons:
        return NOT_CONVERGED, "not converged: " + "; ".join(reasons)
    return OK, ""


def run_elastix(fixed: list[sitk.Image], moving: list[sitk.Image], parameter_map: dict[str, list[str]],
                initial: RigidTransform, fixed_mask: sitk.Image | None = None,
                moving_mask: sitk.Image | None = None, threads: int | None = None,
                keep_log_dir: str | Path | None = None) -> ElastixRun:
    """Register ``moving`` (one or more channels) to ``fixed`` from ``initial``.

    Parameters
    ----------
    fixed, moving : lists of SimpleITK images
        One image per metric (channel); the fixed images share a grid, as do the moving ones.
    parameter_map : dict
        An elastix parameter map (see :func:`rigid_parameter_map`).
    initial : RigidTransform
        The start, fixed → moving.
    fixed_mask, moving_mask : SimpleITK images, optional
        Binary masks: samples are drawn inside the fixed mask and kept only where they map inside the
        moving mask.
    threads : int, optional
        elastix threads (safe with the Pool threader); results depend on it (see the module docstring).
    keep_log_dir : path, optional
        Where to move the log of a failed run (default: the temporary folder is kept in place).

    Returns
    -------
    ElastixRun
        The total transform (fixed → moving, the start included) and the metric trace of each level.

    Raises
    ------
    ElastixError
        elastix failed; the log is kept and named.
    """
    itk = itk_module()
    workdir = Path(tempfile.mkdtemp(prefix="regkit-elastix-"))
    try:
        reg = itk.ElastixRegistrationMethod[itk.Image[itk.F, 3], itk.Image[itk.F, 3]].New()
        reg.SetFixedImage(to_itk(fixed[0]))
        reg.SetMovingImage(to_itk(moving[0]))
        for f, m in zip(fixed[1:], moving[1:], strict=True):
            reg.AddFixedImage(to_itk(f))
            reg.AddMovingImage(to_itk(m))
        po = itk.ParameterObject.New()
        po.AddParameterMap(parameter_map)
        reg.SetParameterObject(po)
        ipo = itk.ParameterObject.New()
        center = ImageGeometry.of(fixed[0]).center
        ipo.AddParameterMap(initial_transform_map(initial, center))
        reg.SetInitialTransformParameterObject(ipo)
        if fixed_mask is not None:
            reg.SetFixedMask(to_itk(fixed_mask, "UC"))
        if moving_mask is not None:
            reg.SetMovingMask(to_itk(moving_mask, "UC"))
        if threads:
            reg.SetNumberOfThreads(int(threads))
        reg.SetLogToConsole(False)
        reg.SetLogToFile(True)
        reg.SetOutputDirectory(str(workdir))
        try:
            reg.UpdateLargestPossibleRegion()
            total = itk_transform_to_rigid(reg.ConvertToItkTransform(reg.GetCombinationTransform()))
        except Exception as exc:  # ITK raises RuntimeError with "See elastix log"; the reason is in the log
            reason = _reason_in_log(workdir) or itk_message(exc)
            log = _keep_log(workdir, keep_log_dir)
            workdir = None
            raise ElastixError(f"elastix failed: {reason}", log) from None
        logs = sorted(workdir.glob("*.log"))
        levels = parse_log(logs[0].read_text(errors="replace")) if logs else []
        return ElastixRun(total, levels)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _reason_in_log(workdir: Path) -> str | None:
    """The last ITK exception description in an elastix log (e.g. "Too many samples map outside moving image
    buffer: 141 / 3000": the registration left the moving image)."""
    for log in sorted(workdir.glob("*.log")):
        lines = [ln.partition("Description:")[2].strip() for ln in log.read_text(errors="replace").splitlines()
                 if "Description:" in ln]
        if lines:
            return lines[-1].replace("ITK ERROR: ", "")
    return None


def _keep_log(workdir: Path, keep_dir: str | Path | None) -> Path | None:
    logs = sorted(workdir.glob("*.log"))
    if not logs:
        shutil.rmtree(workdir, ignore_errors=True)
        return None
    if keep_dir is None:
        return logs[0]
    keep = Path(keep_dir)
    keep.mkdir(parents=True, exist_ok=True)
    dst = keep / f"elastix-{workdir.name}.log"
    shutil.copy(logs[0], dst)
    shutil.rmtree(workdir, ignore_errors=True)
    return dst


def dilated_mask(label: sitk.Image, radius_mm: float) -> sitk.Image:
    """The label dilated by ``radius_mm`` (a ball, in physical units), as a 0/1 UInt8 image."""
    radius = [max(1, round(radius_mm / s)) for s in label.GetSpacing()]
    mask = sitk.BinaryDilate(sitk.Cast(label > 0, sitk.sitkUInt8), radius, sitk.sitkBall)
    return mask


def fan_mask(image: sitk.Image, erode_mm: float = 1.0) -> sitk.Image:
    """The field of view of an ultrasound volume (its fan), slightly eroded, as a 0/1 mask.

    The fan is the non-zero region with its holes filled, slice by slice: anechoic tissue inside the fan is
    stored as 0 too, and must stay inside the mask; only the zero region connected to a slice's border (the
    outside of the fan) is left out.
    """
    from scipy.ndimage import binary_fill_holes

    mask = sitk.Cast(image > 0, sitk.sitkUInt8)
    mask = sitk.BinaryMorphologicalClosing(mask, [2, 2, 2])
    arr = sitk.GetArrayFromImage(mask).astype(bool)
    filled = np.stack([binary_fill_holes(s) for s in arr]).astype(np.uint8)
    out = sitk.GetImageFromArray(filled)
    out.CopyInformation(image)
    radius = [max(1, round(erode_mm / s)) for s in image.GetSpacing()]
    return sitk.BinaryErode(out, radius)


#: ``preset="auto"`` chooses between these two recipes, case by case (:func:`recipe_for`).
AUTO_PRESETS = ("general", "ultrasound")


def recipe_of(presets: dict[str, dict], preset: str, defaults: dict, **given) -> dict:
    """A registrar's recipe: ``preset``'s value for every option of ``given`` still at its default.

    An option the caller set to something else than its default wins over the preset. ``moving_mask`` is
    checked here, with the preset's name, so a bad value fails when the registrar is built.
    """
    from regkit.errors import InputError

    if preset not in presets:
        raise InputError(f"unknown preset {preset!r}", fix=f"use one of: auto, {', '.join(presets)}")
    chosen = presets[preset]
    out = {k: (chosen[k] if k in chosen and _same(v, defaults.get(k)) else v) for k, v in given.items()}
    if "moving_mask" in out:
        out["moving_mask"] = check_moving_mask(out["moving_mask"])
    return out


def recipes_of(presets: dict[str, dict], preset: str, defaults: dict, levels, **given) -> dict[str, dict]:
    """The recipes a registrar may run, by preset name: ``preset``'s alone, or with ``"auto"`` both of
    :data:`AUTO_PRESETS`, to be chosen case by case (:func:`recipe_for`). Each is :func:`recipe_of`'s, with its
    ``iterations`` made one count per level (:func:`per_level_iterations`; ``levels(recipe)`` counts them)."""
    from regkit.errors import InputError

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
    ultrasound recipe when the moving image is ultrasound (:func:`moving_is_ultrasound`, or ``ultrasound``: its
    answer, when the caller has it already), the general one otherwise."""
    if len(recipes) == 1:
        name = next(iter(recipes))
        return name, recipes[name], f"preset={name}"
    us, why = ultrasound or moving_is_ultrasound(case)
    name = AUTO_PRESETS[1] if us else AUTO_PRESETS[0]
    return name, recipes[name], f"preset=auto, {why}"


def per_level_iterations(iterations, levels: int, default) -> tuple[int, ...]:
    """Iteration counts, one per level, from one count for every level or one per level.

    The default's per-level counts (each coarse level's, then the finest's) follow any number of levels; any
    other list must have one count per level. An :class:`InputError` names a bad count.
    """
    from regkit.errors import InputError

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


def check_moving_mask(mode) -> str:
    """``mode`` as one of ``"auto"``, ``"fan"`` or ``"none"``, or an :class:`InputError`."""
    from regkit.errors import InputError

    mode = str(mode).lower()
    if mode not in ("auto", "fan", "none"):
        raise InputError(f"unknown moving_mask {mode!r}", fix="use 'auto', 'fan' or 'none'")
    return mode


def _same(a, b) -> bool:
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return a is not None and b is not None and list(np.atleast_1d(a)) == list(np.atleast_1d(b))
    return a == b


ULTRASOUND = ("us", "ultrasound", "trus")


def looks_like_ultrasound(image: sitk.Image, min_zero_fraction: float = 0.05) -> bool:
    """A guess from the image alone: B-mode volumes are scan-converted to 8 bits with the outside of the fan
    set to 0, so an 8-bit image with at least ``min_zero_fraction`` of its voxels exactly 0 is taken for one.

    MR and CT are stored with 12 to 16 bits (or floats); an 8-bit MR with a zeroed background would be taken for
    ultrasound, so say what the moving image is when it matters (the case's ``moving_modality``, or the
    registrar's ``moving_mask`` option).
    """
    if image.GetPixelID() not in (sitk.sitkUInt8, sitk.sitkInt8):
        return False
    return float((sitk.GetArrayViewFromImage(image) == 0).mean()) >= min_zero_fraction


def moving_is_ultrasound(case) -> tuple[bool, str]:
    """Whether a case's moving image is ultrasound, and how that is known.

    The case's ``metadata["moving_modality"]`` decides when it is there ("US", "ultrasound" or "TRUS" mean
    ultrasound; regkit's dataset layout sets "US", since its moving image is ``trus.*``, and ``regkit register
    --moving-modality`` sets what the user says); otherwise :func:`looks_like_ultrasound` guesses from the image.
    """
    declared = (case.metadata or {}).get("moving_modality")
    if declared:
        return str(declared).strip().lower() in ULTRASOUND, f"moving_modality={declared}"
    guess = looks_like_ultrasound(case.moving)
    return guess, f"image test: {'8-bit with a zero-filled outside' if guess else 'not an 8-bit fan image'}"


def moving_mask_for(case, mode: str, erode_mm: float = 1.0,
                    ultrasound: tuple[bool, str] | None = None) -> tuple[sitk.Image | None, str]:
    """The moving mask a registrar uses: the fan of an ultrasound moving image, or none.

    ``mode``: ``"auto"`` (the fan only when :func:`moving_is_ultrasound`, or ``ultrasound``: its answer, when
    the caller has it already), ``"fan"`` (always) or ``"none"``.
    Returns the mask (or None) and a note saying why, for the registration's info.
    """
    mode = check_moving_mask(mode)
    if mode == "none":
        return None, "none (moving_mask=none)"
    if mode == "fan":
        return fan_mask(case.moving, erode_mm), "fan (moving_mask=fan)"
    us, why = ultrasound or moving_is_ultrasound(case)
    return (fan_mask(case.moving, erode_mm), f"fan ({why})") if us else (None, f"none ({why})")


def check_settings(fixed: str = "image", mask_mm: float | None = None, **counts) -> None:
    """Range checks of a classical registrar's settings, before ITK loads: an :class:`InputError` naming the first
    bad one (``counts`` are whole numbers of at least 1, e.g. ``iterations=500``; ``histogram_bins`` at least 2)."""
    from regkit.errors import InputError, check_whole

    if fixed not in ("image", "label"):
        raise InputError(f"unknown fixed input {fixed!r}", fix="use fixed='image' (the MR) or fixed='label'")
    if mask_mm is not None and not (isinstance(mask_mm, int | float) and np.isfinite(mask_mm) and mask_mm >= 0):
        raise InputError(f"mask_mm must be a distance of at least 0 mm, or None for no mask; got {mask_mm!r}")
    for name, value in counts.items():
        low = 2 if name == "histogram_bins" else (0 if name == "seed" else 1)
        check_whole(name, value, low, optional=True, types=(int, np.integer))
