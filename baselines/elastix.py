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
  (its path is in the error message).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regkit.errors import RegkitError
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


def rigid_parameter_map(metric: str | list[str] = "AdvancedMattesMutualInformation", *, resolutions: int = 3,
                        iterations: int = 256, spatial_samples: int = 2048, histogram_bins: int = 32,
                        seed: int = 121212, n_metrics: int = 1) -> dict[str, list[str]]:
    """elastix's default rigid map (EulerTransform, ASGD, random-coordinate sampler) with our options."""
    itk = itk_module()
    pm = dict(itk.ParameterObject.GetDefaultParameterMap("rigid", resolutions))
    pm = {k: list(v) for k, v in pm.items()}
    pm.update({
        "MaximumNumberOfIterations": [str(iterations)],
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
    })
    if n_metrics > 1:
        pm.update({
            "Registration": ["MultiMetricMultiResolutionRegistration"],
            "Metric": [metric if isinstance(metric, str) else metric[0]] * n_metrics,
            "FixedImagePyramid": ["FixedSmoothingImagePyramid"] * n_metrics,
            "MovingImagePyramid": ["MovingSmoothingImagePyramid"] * n_metrics,
            "Interpolator": ["LinearInterpolator"] * n_metrics,
            "ImageSampler": ["RandomCoordinate"] * n_metrics,
        })
        for i in range(n_metrics):
            pm[f"Metric{i}Weight"] = ["1.0"]
    else:
        pm["Metric"] = [metric if isinstance(metric, str) else metric[0]]
    return pm


def initial_transform_map(initial: RigidTransform, center: np.ndarray) -> dict[str, list[str]]:
    """The start as an elastix EulerTransform map (about ``center``), for ``SetInitialTransformParameterObject``."""
    return elastix_map_from_transform(initial, center)


def run_elastix(fixed: list[sitk.Image], moving: list[sitk.Image], parameter_map: dict[str, list[str]],
                initial: RigidTransform, fixed_mask: sitk.Image | None = None,
                moving_mask: sitk.Image | None = None, threads: int | None = None,
                keep_log_dir: str | Path | None = None) -> RigidTransform:
    """Register ``moving`` (one or more channels) to ``fixed`` from ``initial``; return the total transform.

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
        elastix threads (safe with the Pool threader).
    keep_log_dir : path, optional
        Where to move the log of a failed run (default: the temporary folder is kept in place).

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
        except Exception as exc:  # ITK raises RuntimeError with "See elastix log"
            log = _keep_log(workdir, keep_log_dir)
            workdir = None
            raise ElastixError(f"elastix failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}",
                               log) from None
        return total
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


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
    """The non-zero region of an ultrasound volume (its field of view), slightly eroded, as a 0/1 mask."""
    mask = sitk.Cast(image > 0, sitk.sitkUInt8)
    mask = sitk.BinaryMorphologicalClosing(mask, [2, 2, 2])
    radius = [max(1, round(erode_mm / s)) for s in image.GetSpacing()]
    return sitk.BinaryErode(mask, radius)


def check_settings(fixed: str = "image", mask_mm: float | None = None, **counts) -> None:
    """Range checks of a classical registrar's settings, before ITK loads: an :class:`InputError` naming the first
    bad one (``counts`` are whole numbers of at least 1, e.g. ``iterations=500``; ``histogram_bins`` at least 2)."""
    from regkit.errors import InputError

    if fixed not in ("image", "label"):
        raise InputError(f"unknown fixed input {fixed!r}", fix="use fixed='image' (the MR) or fixed='label'")
    if mask_mm is not None and not (isinstance(mask_mm, int | float) and np.isfinite(mask_mm) and mask_mm >= 0):
        raise InputError(f"mask_mm must be a distance of at least 0 mm, or None for no mask; got {mask_mm!r}")
    for name, value in counts.items():
        low = 2 if name == "histogram_bins" else (0 if name == "seed" else 1)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low):
            raise InputError(f"{name} must be a whole number of at least {low}, got {value!r}")
