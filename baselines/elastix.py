"""One safe way to run itk-elastix for rigid registration: ITK loaded once, elastix run, its log read.

* **Load once, and only what elastix needs.** :func:`itk_module` loads ITK once per process, and nothing in
  regkit imports ITK until a registration runs. ITK's own lazy load of elastix first loads the 29 ITK modules
  that elastix's wrapping declares (intensity filters, FFT, meshes, every image-IO plug-in, ...), then torch,
  IPython and dask's ``distributed`` for its array hooks: about 15 s and 1 GB, most of it for Python classes
  regkit never touches (the elastix library links the ITK code it runs). regkit loads ITK's core and elastix
  alone, through ITK's own loader (:func:`_load_elastix_alone`): about 2 s and 250 MB, and the same results bit
  for bit. Where the installed ITK is not laid out as expected, or with ``REGKIT_ITK_FULL_LOAD=1``, ITK loads
  elastix its usual way.
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

The parameter maps and recipes are in :mod:`regkit.baselines.recipes`, the masks and the moving image's modality
in :mod:`regkit.baselines.masks`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regkit.errors import ConfigurationError, RegkitError, itk_message
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
    """The ``itk`` module with elastix loaded and the Pool threader selected (loaded once per process).

    Only ITK's core and elastix are loaded (module docstring); ITK's other modules still load on first use, as
    usual. In a process that had not imported torch, ITK's array-like filters (``itk.median_image_filter(...)``)
    then take a torch tensor as a NumPy array and return NumPy arrays.
    """
    global _ITK
    if _ITK is None:
        os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
        with _without_optional_imports():
            import itk

            _skip_array_hooks()
            if os.environ.get("REGKIT_ITK_FULL_LOAD") or not _load_elastix_alone(itk):
                itk.ElastixRegistrationMethod  # noqa: B018 - ITK's lazy load of elastix and its 29 modules
            itk.GetImageFromArray(np.zeros((2, 2, 2), np.float32))  # and its NumPy bridge, not in a timing
        _ITK = itk
    return _ITK


#: What elastix's wrapping needs below it: ITK's core (images, points, matrices, the transforms' base classes).
ELASTIX_NEEDS = ("ITKPyBase", "ITKCommon")


def _load_elastix_alone(itk, base=None) -> bool:
    """Load elastix's wrapping with only :data:`ELASTIX_NEEDS` below it, through ITK's own loader.

    ITK's loader loads a module's declared dependencies first, then its wrapper, whose first lines import each
    dependency's wrapper. Here the dependency list is cut to :data:`ELASTIX_NEEDS` for this one load, and each
    other dependency's wrapper is left unexecuted in ``sys.modules``, as ITK's loader itself leaves a module
    before it loads it (it loads there, as usual, on first use). Returns False, with nothing changed, where
    the installed ITK is not laid out this way; the caller then loads elastix as ITK does.
    """
    try:
        if base is None:
            from itk.support import base
        info = base.itk_base_global_module_data["Elastix"]
        declared = tuple(info._depends)
        stand_in = base.create_itk_module
    except (ImportError, AttributeError, KeyError, TypeError):
        return False
    if not set(ELASTIX_NEEDS) <= set(declared):
        return False
    for dep in declared:
        if dep not in ELASTIX_NEEDS:
            sys.modules.setdefault(f"itk.{dep}Python", stand_in(dep))
    info._depends = ELASTIX_NEEDS
    try:
        itk.ElastixRegistrationMethod[itk.Image[itk.F, 3], itk.Image[itk.F, 3]]  # loads elastix's wrapping
    except Exception:  # it needs more than ITK's core in this version: ITK's usual load follows
        return False
    finally:
        info._depends = declared
    return True


@contextmanager
def _without_optional_imports():
    """While ITK loads: no IPython (ITK imports it to extend IPython's completer, useless outside IPython) and
    no dask ``distributed`` (its serialisers for ITK's array views; regkit never sends those) where they are
    not imported already."""
    blocked = [name for name in ("IPython", "distributed") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # an import of it raises ImportError, which ITK expects and skips
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def _skip_array_hooks() -> None:
    """ITK's array-like filter wrappers import torch and xarray (when installed) as each wrapper is defined,
    to accept their arrays: not where this process has not imported them already (torch alone is ~2 s)."""
    helpers = sys.modules.get("itk.support.helpers")
    for module, flag in (("torch", "_HAVE_TORCH"), ("xarray", "_HAVE_XARRAY")):
        if module not in sys.modules and getattr(helpers, flag, None) is True:
            setattr(helpers, flag, False)


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
        elastix threads (safe with the Pool threader); :func:`regkit.baselines.recipes.rigid_parameter_map`'s
        maps make the result independent of it.
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
    ConfigurationError
        elastix cannot read the parameter map (a value of the wrong type, an unknown component): no registration
        could run with it.
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
            if any(p in reason for p in _MAP_REFUSED):  # the map, not the images: every registration would fail
                raise ConfigurationError(f"elastix refuses the parameter map: {reason}", log,
                                         "correct the entry it names (the registrar's elastix option)") from None
            raise ElastixError(f"elastix failed: {reason}", log) from None
        logs = sorted(workdir.glob("*.log"))
        levels = parse_log(logs[0].read_text(errors="replace")) if logs else []
        return ElastixRun(total, levels)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


#: What elastix says when it cannot read its parameter map (a value of the wrong type, an unknown component).
_MAP_REFUSED = ("Casting entry number", "component could not be created")


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
