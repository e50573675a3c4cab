"""Image I/O and geometry, physical space first.

Images are SimpleITK images: the voxel array plus origin, spacing and direction. NIfTI, MetaImage
(MHA/MHD), NRRD and every other format SimpleITK knows are read and written with their geometry.
Arrays taken from SimpleITK are indexed ``[z, y, x]``; physical points are ``(x, y, z)`` in LPS mm.

Bad files fail loudly, naming the file (as elastix, ANTs and SimpleITK do), never as a silent "ok":

* a NIfTI file cut short, or a gzip-compressed file whose stream is cut or corrupt, is an error on read
  (:func:`check_image_file`; ITK itself fills the missing part of a NIfTI volume with zeros and says nothing);
* NaN or infinite voxels are an error, never filled in silently: regkit does not guess what a NaN means
  (background? outside the field of view?), so replace them yourself, e.g. with ``numpy.nan_to_num``. They are
  looked for in NIfTI files as they are read (ITK reads them as 0) and in every case's images
  (:func:`check_voxels`), which also refuses a constant image (all zero, or one value everywhere).
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regkit.atomic import atomic_path
from regkit.errors import InputError, itk_message

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
GEOMETRY_TOLERANCE = 1e-4  # mm for origins and spacings, unitless for direction cosines


def image_suffix(path: str | Path) -> str:
    """The full suffix of an image path (``.nii.gz`` counts as one)."""
    name = Path(path).name.lower()
    for s in IMAGE_SUFFIXES:
        if name.endswith(s):
            return s
    return Path(path).suffix.lower()


def read_image(path: str | Path, what: str = "image") -> sitk.Image:
    """Read a 3-D scalar image with its geometry.

    Parameters
    ----------
    path : path-like
        NIfTI, MHA/MHD, NRRD or any format SimpleITK reads.
    what : str
        What the image is ("MR image", "TRUS label", ...), for error messages.

    Raises
    ------
    InputError
        The file is missing, unreadable, cut short or corrupt (see :func:`check_image_file`), not 3-D, or
        not scalar.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"the {what} file does not exist", path, "check the path and the dataset layout")
    if path.is_dir():
        raise InputError(f"the {what} is a folder, not an image file", path, "name the image file itself")
    check_image_file(path, what)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(
            f"cannot read the {what}: {_itk_reason(exc, path)}",
            path,
            "give a readable, complete NIfTI (.nii/.nii.gz), MetaImage (.mha/.mhd) or NRRD file (a file cut short "
            "by a copy or download cannot be read: get it again)",
        ) from None
    if img.GetDimension() == 4:
        raise InputError(
            f"the {what} is 4-D {img.GetSize()}; regkit expects a 3-D volume",
            path,
            "extract the channel you need (the importers take channel 0 of 4-D labels)",
        )
    if img.GetDimension() != 3:
        raise InputError(f"the {what} is {img.GetDimension()}-D; a 3-D volume is needed", path)
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"the {what} has {img.GetNumberOfComponentsPerPixel()} components per voxel; a scalar image is "
            "needed",
            path,
        )
    return img


def _itk_reason(exc: Exception, path: Path) -> str:
    reason = itk_message(exc)
    if image_suffix(path) in (".mha", ".mhd") and "No such file" in reason:
        reason = f"{reason.split(' Reason:')[0]} ({_metaimage_problem(path)})"  # ITK reports a stale errno here
    return reason


def _metaimage_problem(path: Path) -> str:
    """Why a MetaImage that exists cannot be read: its data file is missing, or its voxel data is cut short."""
    try:
        header = path.read_bytes()[:4096].decode("latin-1")
    except OSError as exc:
        return str(exc)
    m = re.search(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", header, re.MULTILINE)
    data = m.group(1) if m else "LOCAL"
    if data not in ("LOCAL", "LIST") and not data.startswith("%") and not (path.parent / data).exists():
        return f"its data file {data} does not exist"
    return "its voxel data is cut short or corrupt"


# sizeof_hdr → offsets and formats of dim, datatype, bitpix and vox_offset (NIfTI-1 and NIfTI-2 headers)
_NIFTI_HEADER = {348: (40, "8h", 70, "h", 72, "h", 108, "f"), 540: (16, "8q", 12, "h", 14, "h", 168, "q")}
_NIFTI_FLOATS = {16: "f4", 64: "f8", 32: "c8", 1792: "c16"}  # datatype codes whose voxels can be NaN or infinite


@dataclass(frozen=True)
class _NiftiLayout:
    offset: int  # first voxel byte
    end: int  # one past the last voxel byte
    dim: tuple[int, ...]  # x, y, z, ...
    dtype: np.dtype | None  # a floating voxel type, else None


def _nifti_layout(header: bytes) -> _NiftiLayout | None:
    """Where a single-file NIfTI-1/2 volume's voxels lie, from its header; None if it is not one."""
    for order in "<>":
        if len(header) < 4:
            return None
        size = struct.unpack(order + "i", header[:4])[0]
        if size not in _NIFTI_HEADER or len(header) < size:
            continue
        dim_at, dim_fmt, type_at, type_fmt, bitpix_at, bitpix_fmt, offset_at, offset_fmt = _NIFTI_HEADER[size]
        magic = header[344:348] if size == 348 else header[4:8]
        if not magic.startswith((b"n+1", b"n+2")):  # "ni1"/"ni2": header-only (.hdr/.img pair)
            return None
        dim = struct.unpack_from(order + dim_fmt, header, dim_at)
        datatype = struct.unpack_from(order + type_fmt, header, type_at)[0]
        bitpix = struct.unpack_from(order + bitpix_fmt, header, bitpix_at)[0]
        offset = int(struct.unpack_from(order + offset_fmt, header, offset_at)[0])
        if not 1 <= dim[0] <= 7 or bitpix <= 0 or any(d < 1 for d in dim[1:dim[0] + 1]):
            return None  # a malformed header: ITK's reader names it
        shape = tuple(int(d) for d in dim[1:dim[0] + 1])
        end = offset + int(np.prod(shape, dtype=np.int64)) * bitpix // 8
        dtype = np.dtype(order + _NIFTI_FLOATS[datatype]) if datatype in _NIFTI_FLOATS else None
        return _NiftiLayout(offset, end, shape, dtype)
    return None


def _chunks(path: Path, compressed: bool, what: str) -> Iterator[bytes]:
    fix = "the file was cut short or damaged (an interrupted copy or download?): get it again"
    if not compressed:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk
        return
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk
    except EOFError:
        raise InputError(f"the {what} file is cut short: its gzip stream ({path.stat().st_size} bytes) ends before "
                         "its end marker", path, fix) from None
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError: a bad header or checksum
        raise InputError(f"the {what} file is corrupt: its gzip stream cannot be decompressed ({exc})", path,
                         fix) from None


def check_image_file(path: str | Path, what: str = "image") -> None:
    """Raise :class:`InputError` for what ITK would read without a word: a file cut short, a corrupt gzip stream,
    or NaN and infinite voxels in a NIfTI file.

    A gzip-compressed file (``.gz``) must decompress to its end with a matching checksum, and a NIfTI file must
    hold as many voxel bytes as its header announces: ITK's NIfTI reader pads a short file with zeros, so a
    volume cut in half would read as half zeros. It also reads NaN and infinite voxels as 0, so they are looked
    for in the file itself (other formats keep them, and :func:`check_voxels` finds them). An uncompressed file
    whose voxels cannot be NaN (integers) is checked from its header and its size alone, without reading it.
    """
    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".gz", ".nii")):
        return
    with open(path, "rb") as fh:
        start = fh.read(540)  # the longest NIfTI header (NIfTI-2)
    compressed = start[:2] == b"\x1f\x8b"  # a gzip stream (ITK also reads a plain file named .gz)
    nifti = name.endswith((".nii", ".nii.gz"))
    if not compressed:
        layout = _nifti_layout(start) if nifti else None
        if layout is None or layout.dtype is None:  # no voxel can be NaN: the header and the file's size suffice
            _check_nifti_size(path, what, layout, path.stat().st_size)
            return
    head, size, layout = b"", 0, None
    carry, n_nan, n_inf, first = b"", 0, 0, None
    for chunk in _chunks(path, compressed, what):
        if nifti and layout is None and len(head) < 540:
            head += chunk[: 540 - len(head)]
            if len(head) >= 540 or len(chunk) < 1 << 20:
                layout = _nifti_layout(head)
                nifti = layout is not None
        if layout is not None and layout.dtype is not None:
            lo, hi = max(layout.offset - size, 0), min(layout.end - size, len(chunk))
            if hi > lo:
                data = carry + chunk[lo:hi]
                usable = len(data) - len(data) % layout.dtype.itemsize
                values = np.frombuffer(data[:usable], dtype=layout.dtype)
                bad = ~np.isfinite(values)
                if bad.any():
                    nan = np.isnan(values)
                    if first is None:
                        done = (size + lo - len(carry) - layout.offset) // layout.dtype.itemsize
                        first = done + int(np.argmax(bad))
                    n_nan += int(nan.sum())
                    n_inf += int(bad.sum() - nan.sum())
                carry = data[usable:]
        size += len(chunk)
    _check_nifti_size(path, what, layout, size)
    if first is not None:
        nx, ny = (layout.dim + (1, 1))[:2]
        where = [first % nx, first // nx % ny, first // (nx * ny)]
        raise InputError(
            f"the {what} file holds {n_nan} NaN and {n_inf} infinite voxels (the first at voxel [x, y, z] = {where}); "
            "ITK would read them as 0 without a word", path,
            "replace them with the background value (e.g. numpy.nan_to_num) before registering: regkit does not "
            "guess what a NaN means")


def _check_nifti_size(path: Path, what: str, layout: _NiftiLayout | None, size: int) -> None:
    """A NIfTI file of ``size`` bytes (decompressed) must hold every voxel its header announces."""
    if layout is not None and size < layout.end:
        raise InputError(f"the {what} file is cut short: it holds {size} bytes, but its NIfTI header announces "
                         f"{layout.end} (header and voxels)", path,
                         "the file was cut short or damaged (an interrupted copy or download?): get it again")


def check_voxels(image: sitk.Image, what: str = "image", path: str | Path | None = None,
                 allow_constant: bool = False) -> None:
    """Raise :class:`InputError` when an image holds NaN or infinite voxels, or (unless ``allow_constant``) holds
    one value everywhere.

    The policy: non-finite voxels are never replaced silently. elastix would sample them and its metric would
    turn NaN, and a network would see them as some number; the fix belongs to whoever knows what they mean
    (background, outside the field of view, ...), e.g. ``numpy.nan_to_num`` before writing the file.
    """
    a = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.complexfloating):
        finite = np.isfinite(a)
        if not finite.all():
            bad = np.argwhere(~finite)
            n_nan = int(np.isnan(a).sum())
            first = bad[0][::-1].tolist()  # x, y, z
            raise InputError(
                f"the {what} holds {n_nan} NaN and {len(bad) - n_nan} infinite voxels (of {a.size}; the first at "
                f"voxel [x, y, z] = {first})", path,
                "replace them with the background value (e.g. numpy.nan_to_num) before registering: regkit does "
                "not guess what a NaN means")
    if not allow_constant and a.size and a.min() == a.max():
        raise InputError(f"the {what} is constant: every voxel is {a.flat[0]!r}, so there is nothing to register",
                         path, "check that the file holds the image (not an empty export or a blank series)")


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write an image with its geometry, atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = image_suffix(path)
    if suffix in (".mhd", ".nhdr"):  # header + data file pairs name each other; write them in place
        sitk.WriteImage(image, str(path), compress)
        return path
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), compress)
    return path


@dataclass(frozen=True)
class ImageGeometry:
    """Size (x, y, z voxels), spacing (mm), origin (mm) and direction (3×3, columns = axes) of an image."""

    size: tuple[int, int, int]
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray

    @classmethod
    def of(cls, image: sitk.Image) -> ImageGeometry:
        return cls(
            size=tuple(int(s) for s in image.GetSize()),
            spacing=np.array(image.GetSpacing(), dtype=float),
            origin=np.array(image.GetOrigin(), dtype=float),
            direction=np.array(image.GetDirection(), dtype=float).reshape(3, 3),
        )

    @property
    def index_to_physical(self) -> np.ndarray:
        """4×4 matrix mapping continuous indices (x, y, z) to physical points."""
        m = np.eye(4)
        m[:3, :3] = self.direction @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    @property
    def physical_to_index(self) -> np.ndarray:
        """4×4 matrix mapping physical points to continuous indices (x, y, z)."""
        return np.linalg.inv(self.index_to_physical)

    def to_physical(self, index: np.ndarray) -> np.ndarray:
        """Continuous indices ``(..., 3)`` in (x, y, z) order to physical points."""
        m = self.index_to_physical
        return np.asarray(index, dtype=float) @ m[:3, :3].T + m[:3, 3]

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Physical points ``(..., 3)`` to continuous indices in (x, y, z) order."""
        m = self.physical_to_index
        return np.asarray(points, dtype=float) @ m[:3, :3].T + m[:3, 3]

    @property
    def extent(self) -> np.ndarray:
        """Physical size of the voxel grid along each axis, in mm."""
        return np.array(self.size) * self.spacing

    @property
    def center(self) -> np.ndarray:
        """Physical centre of the voxel grid."""
        return self.to_physical((np.array(self.size) - 1) / 2.0)

    def corners(self) -> np.ndarray:
        """The 8 corner voxel centres in physical space, shape (8, 3)."""
        s = np.array(self.size) - 1
        idx = np.array([[i, j, k] for i in (0, s[0]) for j in (0, s[1]) for k in (0, s[2])], dtype=float)
        return self.to_physical(idx)

    def matches(self, other: ImageGeometry, tolerance: float = GEOMETRY_TOLERANCE) -> str | None:
        """None when both grids are the same, else a sentence saying how they differ."""
        if self.size != other.size:
            return f"size {other.size} differs from {self.size}"
        if not np.allclose(self.spacing, other.spacing, atol=tolerance, rtol=tolerance):
            return f"spacing {tuple(other.spacing)} differs from {tuple(self.spacing)}"
        if not np.allclose(self.origin, other.origin, atol=max(tolerance, 1e-3 * self.spacing.min())):
            return f"origin {tuple(other.origin)} differs from {tuple(self.origin)}"
        if not np.allclose(self.direction, other.direction, atol=tolerance):
            return "direction cosines differ"
        return None


def make_image(
    array_zyx: np.ndarray,
    spacing: np.ndarray,
    origin: np.ndarray = (0.0, 0.0, 0.0),
    direction: np.ndarray = np.eye(3),
) -> sitk.Image:
    """A SimpleITK image from a ``[z, y, x]`` array and its geometry."""
    img = sitk.GetImageFromArray(np.asarray(array_zyx))
    img.SetSpacing([float(v) for v in spacing])
    img.SetOrigin([float(v) for v in origin])
    img.SetDirection([float(v) for v in np.asarray(direction, dtype=float).ravel()])
    return img


def intensity_window(image: sitk.Image, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Robust intensity range: the ``low`` and ``high`` percentiles of the non-zero voxels."""
    a = sitk.GetArrayViewFromImage(image)
    v = a[a != 0]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)
