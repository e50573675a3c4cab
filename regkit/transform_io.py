"""Reading and writing rigid transforms: 4×4 text, ITK files (.tfm/.txt/.h5/.mat) and elastix maps.

Every file holds a transform in regkit's convention (fixed → moving points, LPS mm; see
:mod:`regkit.transform`). ITK and elastix files use the same convention, so no inversion happens here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from regkit.atomic import atomic_path
from regkit.errors import InputError, check_path, itk_message
from regkit.transform import RigidTransform

ITK_SUFFIXES = (".tfm", ".h5", ".hdf5", ".mat")
TEXT_HEADER = (
    "regkit rigid transform: 4x4 homogeneous matrix, maps fixed (MR) points to moving (TRUS) points,\n"
    "physical LPS millimetres, column-vector convention p' = M p"
)


# --------------------------------------------------------------------------- 4×4 text
def write_matrix_text(transform: RigidTransform, path: str | Path) -> Path:
    """Write a 4×4 matrix as plain text, with a comment header stating the convention."""
    if transform.batch_shape:
        raise InputError("a transform file holds one transform; index the batch first", path)
    path = Path(path)
    with atomic_path(path) as tmp:
        np.savetxt(tmp, transform.matrix, fmt="%.17g", header=TEXT_HEADER)
    return path


def matrix_from_text(text: str, source: str | Path | None = None) -> np.ndarray:
    """A 4×4 matrix from text holding 16 numbers (or 12: a 3×4 matrix); ``#`` starts a comment; commas,
    semicolons and white space separate numbers."""
    fix = "write 4 rows of 4 numbers (a 4×4 homogeneous matrix)"
    numbers = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            numbers.extend(float(v) for v in re.split(r"[\s,;]+", line) if v)
        except ValueError as exc:
            raise InputError(f"the transform text does not parse as numbers ({exc})", source, fix) from None
    if len(numbers) not in (12, 16):
        raise InputError(f"a 4×4 matrix needs 16 numbers (or 12 for 3×4), found {len(numbers)}", source, fix)
    m = np.eye(4)
    m[: len(numbers) // 4] = np.array(numbers).reshape(-1, 4)
    if not np.all(np.isfinite(m)):
        raise InputError("the transform matrix holds NaN or infinite values", source, fix)
    return m


def read_matrix(path: str | Path) -> np.ndarray:
    """A 4×4 matrix from a text file (see :func:`matrix_from_text`), not yet checked to be rigid."""
    path = check_path("the transform path", path)
    if not path.exists():
        raise InputError("the transform file does not exist", path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InputError("the transform file is not text", path, "give a 4×4 matrix as 4 rows of 4 numbers") from None
    return matrix_from_text(text, path)


def parse_matrix_text(text: str, source: str | None = None) -> RigidTransform:
    """A rigid transform from 4×4 (or 3×4) matrix text (see :func:`matrix_from_text`)."""
    m = matrix_from_text(text, source)
    return RigidTransform.from_matrix(m, orthonormalize=True, tolerance=1e-3, source=source)


# --------------------------------------------------------------------------- elastix maps
def _elementary(axis: int, angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i] = c
    r[j, j] = c
    r[i, j] = -s
    r[j, i] = s
    return r


def elastix_euler_rotation(angles_rad: np.ndarray, compute_zyx: bool = False) -> np.ndarray:
    """Rotation of elastix's ``EulerTransform``: ``Rz·Rx·Ry`` by default, ``Rz·Ry·Rx`` with ComputeZYX."""
    rx, ry, rz = (_elementary(a, float(v)) for a, v in enumerate(angles_rad))
    return rz @ ry @ rx if compute_zyx else rz @ rx @ ry


def _values(pmap: dict, key: str, source: str | None) -> list[str]:
    if key not in pmap:
        raise InputError(f"the elastix parameter map has no '{key}'", source)
    v = pmap[key]
    return [v] if isinstance(v, str) else [str(x) for x in v]


def _numbers(pmap: dict, key: str, source: str | None) -> np.ndarray:
    values = _values(pmap, key, source)
    try:
        numbers = np.array([float(v) for v in values])
    except ValueError:
        raise InputError(f"the elastix parameter ({key} ...) holds a value that is not a number: {values}", source,
                         "repair the parameter file (elastix writes numbers there)") from None
    if not np.all(np.isfinite(numbers)):
        raise InputError(f"the elastix parameter ({key} ...) holds NaN or infinite values: {values}", source,
                         "give a transform of finite numbers")
    return numbers


def transform_from_elastix_map(pmap: dict, source: str | None = None) -> RigidTransform:
    """The transform of one elastix parameter map (``EulerTransform``, ``AffineTransform`` or
    ``TranslationTransform``), ignoring any initial transform it names."""
    kind = _values(pmap, "Transform", source)[0]
    params = _numbers(pmap, "TransformParameters", source)
    center = _numbers(pmap, "CenterOfRotationPoint", source) if "CenterOfRotationPoint" in pmap else np.zeros(3)
    if center.size != 3:
        raise InputError(f"a 3-D CenterOfRotationPoint has 3 values, found {center.size}", source)
    if kind == "EulerTransform":
        if params.size != 6:
            raise InputError(f"a 3-D EulerTransform has 6 parameters, found {params.size}", source)
        zyx = "ComputeZYX" in pmap and _values(pmap, "ComputeZYX", source)[0].lower() == "true"
        r = elastix_euler_rotation(params[:3], zyx)
        t = params[3:]
    elif kind == "AffineTransform":
        if params.size != 12:
            raise InputError(f"a 3-D AffineTransform has 12 parameters, found {params.size}", source)
        r = params[:9].reshape(3, 3)
        t = params[9:]
    elif kind == "TranslationTransform":
        r, t = np.eye(3), params[:3]
    else:
        raise InputError(
            f"elastix transform '{kind}' is not rigid or not supported",
            source,
            "use an EulerTransform, AffineTransform (rigid matrix) or TranslationTransform map",
        )
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = t + center - r @ center
    return RigidTransform.from_matrix(m, orthonormalize=True, tolerance=1e-4, source=source)


def transform_from_elastix_maps(pmaps: list[dict], source: str | None = None) -> RigidTransform:
    """The total transform of a chain of elastix maps, first map = initial transform (applied first).

    elastix composes a map with its initial transform as ``new(initial(p))`` (``HowToCombineTransforms
    Compose``); a map list from a registration with an initial transform holds the initial maps first.
    """
    total = RigidTransform.identity()
    for pmap in pmaps:
        how = _values(pmap, "HowToCombineTransforms", source)[0] if "HowToCombineTransforms" in pmap else "Compose"
        if how != "Compose":
            raise InputError(f"HowToCombineTransforms '{how}' is not supported; only Compose is", source)
        total = transform_from_elastix_map(pmap, source) @ total
    return total


def elastix_map_from_transform(
    transform: RigidTransform, center: np.ndarray = (0.0, 0.0, 0.0)
) -> dict[str, list[str]]:
    """An elastix ``EulerTransform`` map (``ComputeZYX true``, so R = Rz·Ry·Rx) about ``center``.

    The map holds only the transform keys, which is enough for an initial transform of a registration;
    transformix would also need the fixed image's geometry keys (Size, Spacing, Origin, Direction).
    """
    p = transform.to_params(center)
    return {
        "Transform": ["EulerTransform"],
        "NumberOfParameters": ["6"],
        "TransformParameters": [repr(float(v)) for v in np.concatenate([np.deg2rad(p[3:]), p[:3]])],
        "CenterOfRotationPoint": [repr(float(v)) for v in center],
        "ComputeZYX": ["true"],
        "InitialTransformParameterFileName": ["NoInitialTransform"],
        "HowToCombineTransforms": ["Compose"],
    }


def parse_elastix_text(text: str, source: str | None = None) -> dict[str, list[str]]:
    """Parse an elastix parameter file ``(Key value ...)`` into a dict of string lists."""
    pmap: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("//", 1)[0].strip()
        m = re.match(r"^\((\w+)\s*(.*)\)$", line)
        if not m:
            continue
        pmap[m.group(1)] = [v.strip('"') for v in re.findall(r'"[^"]*"|\S+', m.group(2))]
    if "Transform" not in pmap:
        raise InputError("not an elastix transform parameter file (no '(Transform ...)' line)", source)
    return pmap


# --------------------------------------------------------------------------- files
def read_transform(path: str | Path) -> RigidTransform:
    """Read a rigid transform from any supported file.

    * ``.tfm``, ``.h5``, ``.hdf5``, ``.mat`` and ``.txt`` files that start with ``#Insight Transform File``:
      ITK transform files (read with SimpleITK; composite stacks are composed).
    * Text starting with ``(`` (``(Transform "EulerTransform")``...): an elastix TransformParameters file;
      a file it names in ``InitialTransformParameterFileName`` is read and composed too.
    * Any other text: a 4×4 (or 3×4) matrix.

    Every number is checked to be finite, and the transform to be rigid (:class:`RigidTransform`), before anything
    reaches ITK: ITK's own reader of a text transform crashes the process on a NaN.

    Parameters
    ----------
    path : str or Path
        The transform file.

    Returns
    -------
    RigidTransform
        Fixed → moving physical points (LPS, mm).
    """
    path = check_path("the transform path", path)
    if not path.exists():
        raise InputError("the transform file does not exist", path)
    if path.is_dir():
        raise InputError("the transform path is a folder, not a file", path, "name the transform file itself")
    suffix = path.suffix.lower()
    if suffix in ITK_SUFFIXES:
        return _read_itk(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InputError("the transform file is binary but not an ITK .h5/.mat file", path) from None
    stripped = text.lstrip()
    if stripped.startswith("#Insight Transform File"):
        return _read_itk(path)
    if stripped.startswith("(") or "(Transform " in text:
        pmap = parse_elastix_text(text, str(path))
        chain = [pmap]
        init = pmap.get("InitialTransformParameterFileName", ["NoInitialTransform"])[0]
        seen = {path.resolve()}
        while init != "NoInitialTransform":
            ipath = Path(init) if Path(init).is_absolute() else path.parent / init
            if not ipath.exists() and (path.parent / Path(init).name).exists():
                ipath = path.parent / Path(init).name
            if ipath.resolve() in seen:
                raise InputError("the elastix initial-transform chain loops", path)
            seen.add(ipath.resolve())
            ipmap = parse_elastix_text(read_text_or_fail(ipath, path), str(ipath))
            chain.insert(0, ipmap)
            init = ipmap.get("InitialTransformParameterFileName", ["NoInitialTransform"])[0]
        return transform_from_elastix_maps(chain, str(path))
    return parse_matrix_text(text, str(path))


def read_text_or_fail(path: Path, named_by: Path | None = None) -> str:
    """The text of an elastix parameter file that ``named_by`` names as its initial transform."""
    by = f" that {named_by.name} names as its InitialTransformParameterFileName" if named_by else ""
    if not path.exists():
        raise InputError(f"the transform file{by} does not exist", path)
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise InputError(f"the transform file{by} is not text (an elastix parameter file is)", path,
                         "name the elastix TransformParameters file of the initial transform") from None


def _read_itk(path: Path) -> RigidTransform:
    import SimpleITK as sitk

    if path.suffix.lower() not in (".h5", ".hdf5", ".mat"):
        _check_itk_text(path)
    try:
        tx = sitk.ReadTransform(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read the ITK transform: {itk_message(exc)}", path,
                         "give a rigid ITK transform file (Euler3DTransform, VersorRigid3DTransform, an "
                         "AffineTransform with a rotation matrix, TranslationTransform, or a CompositeTransform of "
                         "these), complete and in ITK's .tfm/.txt, .h5 or .mat format") from None
    if path.suffix.lower() not in (".h5", ".hdf5", ".mat"):
        _check_itk_text_parameters(path, tx)
    return RigidTransform.from_sitk(tx, source=str(path))


def _check_itk_text(path: Path) -> None:
    """A text ITK transform file holds a ``Transform:`` line and, on its ``Parameters:`` and ``FixedParameters:``
    lines, finite numbers only: ITK's reader crashes the process (a segmentation fault) on ``nan`` or ``inf``."""
    fix = "write the transform again (e.g. with SimpleITK.WriteTransform), with finite numbers"
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError("the ITK transform file is not text (a .tfm/.txt ITK transform is)", path,
                         "give a text .tfm, or an ITK .h5/.mat file with its own suffix") from None
    if not any(line.startswith("Transform:") for line in lines):
        raise InputError("not an ITK transform file: it has no 'Transform:' line", path, fix)
    for number, line in enumerate(lines, 1):
        key, _, values = line.partition(":")
        if key.strip() not in ("Parameters", "FixedParameters"):
            continue
        for token in values.split():
            try:
                value = float(token)
            except ValueError:
                raise InputError(f"line {number} of the ITK transform file ({key.strip()}) holds {token!r}, which is "
                                 "not a number", path, fix) from None
            if not math.isfinite(value):
                raise InputError(f"line {number} of the ITK transform file ({key.strip()}) holds {token!r}: a "
                                 "transform's parameters must be finite numbers", path, fix)


def _check_itk_text_parameters(path: Path, transform) -> None:
    """Each ``Parameters:`` line of a text ITK transform holds as many numbers as its transform takes: ITK reads
    a line cut short without complaint, as zeros."""
    import SimpleITK as sitk

    parts = [transform]
    if transform.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(transform)
        parts = [comp.GetNthTransform(i) for i in range(comp.GetNumberOfTransforms())]
    counts = [len(line.split(":", 1)[1].split()) for line in path.read_text(errors="replace").splitlines()
              if line.startswith("Parameters:")]
    for part, count in zip(parts, counts, strict=False):
        expected = len(part.GetParameters())
        if count != expected:
            raise InputError(f"the ITK transform file gives {count} parameters for its {part.GetName()}, which "
                             f"takes {expected}: it is cut short or edited", path,
                             "write the transform again (e.g. with SimpleITK.WriteTransform)")


def write_transform(transform: RigidTransform, path: str | Path, center: np.ndarray = (0.0, 0.0, 0.0)) -> Path:
    """Write a transform; the format follows the suffix.

    ``.tfm``, ``.h5``, ``.hdf5`` and ``.mat`` get an ITK ``Euler3DTransform`` (ComputeZYX on) about
    ``center``, which ITK, SimpleITK, 3D Slicer and ITK-SNAP read; anything else (``.txt``) gets 4×4 text.

    Parameters
    ----------
    transform : RigidTransform
        Fixed → moving physical points (LPS, mm).
    path : str or Path
        The file to write; its suffix chooses the format.
    center : array-like (3,)
        The Euler transform's centre of rotation in mm (ITK formats only).

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    if path.suffix.lower() in ITK_SUFFIXES:
        import SimpleITK as sitk

        with atomic_path(path) as tmp:
            sitk.WriteTransform(transform.to_sitk(center), str(tmp))
        return path
    return write_matrix_text(transform, path)
