"""What an image must be to enter regkit: the rules, stated once, and the checks that apply them.

Every image enters through :func:`regkit.image.read_image` (a file) or a :class:`~regkit.case.Case` (a file or a
SimpleITK image handed to the Python API), and both apply the same checks, which fail loudly, naming the image
and the fix (as elastix, ANTs and SimpleITK do), never as a silent "ok":

* **the file** (:func:`check_image_file`): a NIfTI file cut short, or a gzip-compressed file whose stream is cut or
  corrupt, is an error (ITK fills the missing part of a NIfTI volume with zeros and says nothing); so is a header
  whose geometry ITK would quietly replace: a NIfTI voxel size (``pixdim``) that is zero, negative or NaN (read as
  1 mm), a NaN origin or spacing in a MetaImage (read as 0), a NIfTI ``sform`` with shear, or a NIfTI ``sform``
  whose scales disagree with its voxel size (readers differ on which to use);
* **the image** (:func:`check_image`): a SimpleITK image, 3-D, scalar (one component per voxel), at least
  :data:`MIN_SIZE` voxels along each axis (a single slice is not a volume), with a **geometry** a patient image can
  have: a finite spacing within :data:`SPACING_RANGE_MM` (outside it, the header is wrong or not in millimetres), a
  finite origin within :data:`ORIGIN_LIMIT_MM` of the scanner's origin, and a direction matrix that is a rotation
  or a reflection (orthonormal within :data:`DIRECTION_TOLERANCE`: scaling belongs in the spacing, and shear in
  nothing regkit reads);
* **the voxels** (:func:`check_voxels`): NaN or infinite voxels are an error, never filled in silently: regkit
  does not guess what a NaN means (background? outside the field of view?), so replace them yourself, e.g. with
  ``numpy.nan_to_num``. They are looked for in NIfTI files as they are read (ITK reads them as 0) and in every
  case's images. A constant image (all zero, or one value everywhere) is an error too;
* **a label** (:func:`check_label`) is a binary mask: every voxel 0 (outside) or 1 (inside), in any integer or
  float type. A label with other values is refused, never binarised by a guess: several values (1, 2, 3, ...: a
  multi-label segmentation) need the prostate's value chosen (``label == K``), 0/255 needs ``label > 0``, fractions
  (a probability map, or a label resampled with linear interpolation) need a threshold. A label must also look
  like one organ: not empty, not every voxel, and not scattered (its largest connected piece holds at least
  :data:`LABEL_LARGEST_PIECE` of its voxels).
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

from regkit.errors import InputError

MIN_SIZE = 2  # voxels along each axis of a volume
SPACING_RANGE_MM = (1e-3, 100.0)  # a voxel edge of a patient image, in mm (1 µm to 10 cm)
ORIGIN_LIMIT_MM = 1e5  # 100 m from the scanner's origin: no patient is there
DIRECTION_TOLERANCE = 1e-3  # largest |DᵀD − I| entry of a direction matrix
LABEL_LARGEST_PIECE = 0.5  # the smallest share of a label's voxels its largest connected piece may hold
REWRITE = ("write the image again with its true geometry (e.g. with SimpleITK: image.SetSpacing(...), "
           "SetOrigin(...), SetDirection(...), then sitk.WriteImage)")


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
    check_header_geometry(path, what)
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




# ------------------------------------------------------------------------------------------- header geometry
# NIfTI-1/2 (by sizeof_hdr): offsets and formats of pixdim, qform_code + sform_code, quatern b..qoffset z, srow_x..z
_NIFTI_GEOMETRY = {348: (76, "8f", 252, "2h", 256, "6f", 280, "12f"),
                   540: (104, "8d", 344, "2i", 352, "6d", 400, "12d")}
_SFORM_TOLERANCE = 1e-3  # relative: shear between the sform's columns, and its scales against pixdim


def check_header_geometry(path: str | Path, what: str = "image") -> None:
    """Raise :class:`InputError` for a header whose geometry ITK would replace without a word (see the module
    docstring): NIfTI ``pixdim``/``qform``/``sform``, MetaImage ``ElementSpacing``/``Offset``/``TransformMatrix``,
    NRRD ``spacings``/``space directions``/``space origin``."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            with (gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")) as fh:
                _check_nifti_geometry(fh.read(540), path, what)
        elif name.endswith((".mha", ".mhd")):
            _check_metaimage_geometry(_text_header(path, "ElementDataFile"), path, what)
        elif name.endswith((".nrrd", ".nhdr")):
            _check_nrrd_geometry(_text_header(path, None), path, what)
    except (OSError, EOFError, zlib.error):  # a damaged file: the reader (or check_image_file) names it
        return


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _text_header(path: Path, last_key: str | None) -> list[tuple[str, str]]:
    """``(key, value)`` lines of a MetaImage (``key = value``, up to ``last_key``) or NRRD (``key: value``, up to
    the first empty line) header."""
    with open(path, "rb") as fh:
        text = fh.read(1 << 16).decode("latin-1")
    pairs = []
    for line in text.splitlines():
        if last_key is None and not line.strip():
            break
        m = re.match(r"^\s*([\w ]+?)\s*(=|:=|:)\s*(.*?)\s*$", line)
        if m:
            pairs.append((m.group(1).strip(), m.group(3)))
            if last_key is not None and m.group(1).strip().lower() == last_key.lower():
                break
    return pairs


def _header_numbers(text: str, key: str, path: Path, what: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in re.split(r"[\s,()]+", text) if v], dtype=float)
    except ValueError:
        raise InputError(f"the {what}'s header gives {key} = {text!r}, which is not numbers", path, REWRITE) from None


def _refuse_header(what: str, path: Path, key: str, values, problem: str, itk_does: str) -> None:
    raise InputError(f"the {what}'s header gives {key} {_vec(values)}: {problem}; ITK would {itk_does} without a word",
                     path, REWRITE)


def _check_nifti_geometry(header: bytes, path: Path, what: str) -> None:
    for order in "<>":
        if len(header) < 348:
            return
        size = struct.unpack(order + "i", header[:4])[0]
        if size in _NIFTI_GEOMETRY and len(header) >= size:
            break
    else:
        return
    layout = _nifti_layout(header)
    if layout is None:
        return
    pix_at, pix_fmt, code_at, code_fmt, quat_at, quat_fmt, srow_at, srow_fmt = _NIFTI_GEOMETRY[size]
    pixdim = np.array(struct.unpack_from(order + pix_fmt, header, pix_at), dtype=float)
    qform_code, sform_code = struct.unpack_from(order + code_fmt, header, code_at)
    spatial = pixdim[1:1 + min(len(layout.dim), 3)]
    if not np.all(np.isfinite(spatial)) or np.any(spatial <= 0):
        _refuse_header(what, path, "the voxel spacing pixdim[1..3] =", spatial, "a voxel size is positive and finite",
                       "read it as 1 mm")
    quatern = np.array(struct.unpack_from(order + quat_fmt, header, quat_at), dtype=float)
    if qform_code > 0 and not np.all(np.isfinite(quatern)):
        _refuse_header(what, path, "the qform (quatern_b, c, d, qoffset_x, y, z) =", quatern,
                       "it holds NaN or infinite values", "read a wrong orientation or origin")
    if sform_code > 0:
        srow = np.array(struct.unpack_from(order + srow_fmt, header, srow_at), dtype=float).reshape(3, 4)
        if not np.all(np.isfinite(srow)):
            _refuse_header(what, path, "the sform (srow_x, y, z) =", srow, "it holds NaN or infinite values",
                           "read a wrong orientation or origin")
        scales = np.linalg.norm(srow[:, :3], axis=0)
        if np.any(scales == 0):
            _refuse_header(what, path, "the sform (srow_x, y, z) =", srow, "it is singular (a column of zeros)",
                           "read another geometry")
        axes = srow[:, :3] / scales
        if np.abs(axes.T @ axes - np.eye(3)).max() > _SFORM_TOLERANCE:
            _refuse_header(what, path, "the sform (srow_x, y, z) =", srow, "its axes are not perpendicular (shear)",
                           "replace it by the qform's orientation")
        if len(spatial) == 3 and np.abs(scales / spatial - 1).max() > _SFORM_TOLERANCE:
            raise InputError(f"the {what}'s header gives two voxel spacings: pixdim[1..3] = {_vec(spatial)} mm, and "
                             f"its sform (direction × spacing) scales {_vec(scales)} mm; readers differ on which to "
                             "use", path, REWRITE)


_METAIMAGE_GEOMETRY = ("elementspacing", "elementsize", "offset", "origin", "position", "transformmatrix", "rotation",
                       "orientation")  # in the order they are checked: spacing, origin, direction


def _check_metaimage_geometry(pairs: list[tuple[str, str]], path: Path, what: str) -> None:
    for key, text in sorted(pairs, key=lambda kv: (_METAIMAGE_GEOMETRY + (kv[0].lower(),)).index(kv[0].lower())):
        if key.lower() in _METAIMAGE_GEOMETRY:
            values = _header_numbers(text, key, path, what)
            if not np.all(np.isfinite(values)):
                _refuse_header(what, path, f"{key} =", values, "it holds NaN or infinite values",
                               "read them as 0 (or refuse the file)")
            if key.lower() in ("elementspacing", "elementsize") and np.any(values <= 0):
                _refuse_header(what, path, f"the voxel spacing {key} =", values, "a voxel size is positive",
                               "read another size")


def _check_nrrd_geometry(pairs: list[tuple[str, str]], path: Path, what: str) -> None:
    fields = {key.lower(): value for key, value in pairs}
    if fields.get("dimension", "").strip() != "3":  # a vector or 4-D image: the reader's checks name it
        return
    if "spacings" in fields:
        values = _header_numbers(fields["spacings"], "spacings", path, what)
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            _refuse_header(what, path, "the voxel spacing", values, "a voxel size is positive and finite",
                           "read it as 1 mm")
    if "space directions" in fields:
        text = fields["space directions"]
        if "none" in text.lower():
            raise InputError(f"the {what}'s header gives space directions {text!r}: a 3-D volume has a direction "
                             "and a voxel spacing for each axis; ITK would read 1 mm without a word", path, REWRITE)
        values = _header_numbers(text, "space directions", path, what)
        if not np.all(np.isfinite(values)):
            _refuse_header(what, path, "space directions", values, "they hold NaN or infinite values",
                           "read another geometry")
    if "space origin" in fields:
        values = _header_numbers(fields["space origin"], "space origin", path, what)
        if not np.all(np.isfinite(values)):
            _refuse_header(what, path, "space origin", values, "it holds NaN or infinite values", "read another origin")


def check_image(image, what: str = "image", path: str | Path | None = None) -> sitk.Image:
    """``image`` if it is a 3-D scalar SimpleITK image with a sane geometry (see the module docstring), else an
    :class:`InputError` naming ``what`` (and ``path``)."""
    if not isinstance(image, sitk.Image):
        raise InputError(f"the {what} must be a SimpleITK image (or, where a file is read, a path), got "
                         f"{type(image).__name__}", path, "read it with regkit.image.read_image or SimpleITK.ReadImage")
    dim = image.GetDimension()
    if dim == 4:
        raise InputError(f"the {what} is 4-D {image.GetSize()}; regkit expects a 3-D volume", path,
                         "extract the channel you need (the importers take channel 0 of 4-D labels)")
    if dim != 3:
        raise InputError(f"the {what} is {dim}-D {image.GetSize()}; a 3-D volume is needed", path,
                         "give the 3-D volume (a 2-D slice cannot be registered in 3-D)")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"the {what} has {image.GetNumberOfComponentsPerPixel()} components per voxel; a scalar "
                         "image is needed", path,
                         "keep one component (e.g. SimpleITK.VectorIndexSelectionCast(image, 0)) or convert colour "
                         "to grey")
    check_geometry(image, what, path)
    return image


def check_geometry(image: sitk.Image, what: str = "image", path: str | Path | None = None) -> None:
    """The size, spacing, origin and direction of a 3-D image are those a patient image can have (see the module
    docstring); an :class:`InputError` names the first that is not."""
    size = image.GetSize()
    spacing = np.array(image.GetSpacing(), dtype=float)
    origin = np.array(image.GetOrigin(), dtype=float)
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    if min(size) < MIN_SIZE:
        axis = "xyz"[int(np.argmin(size))]
        raise InputError(f"the {what} is a single slice along {axis} (size {size}): a volume needs at least "
                         f"{MIN_SIZE} voxels along each axis", path,
                         "give the whole 3-D volume (all its slices), not one slice of it")
    low, high = SPACING_RANGE_MM
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"the {what}'s voxel spacing {_vec(spacing)} mm is not a positive, finite size", path, REWRITE)
    if np.any(spacing > high):
        raise InputError(f"the {what}'s voxel spacing {_vec(spacing)} mm is enormous: no patient image has voxels over "
                         f"{high:g} mm", path, f"check the header's voxel size (in mm); {REWRITE}")
    if np.any(spacing < low):
        raise InputError(f"the {what}'s voxel spacing {_vec(spacing)} mm is below {low:g} mm (metres written as "
                         "millimetres?)", path, f"give the voxel size in millimetres; {REWRITE}")
    if not np.all(np.isfinite(origin)):
        raise InputError(f"the {what}'s origin {_vec(origin)} holds NaN or infinite coordinates", path, REWRITE)
    if np.any(np.abs(origin) > ORIGIN_LIMIT_MM):
        raise InputError(f"the {what}'s origin {_vec(origin)} mm lies over {ORIGIN_LIMIT_MM / 1000:g} m from the "
                         "scanner's origin: the header is wrong (or not in millimetres)", path, REWRITE)
    if not np.all(np.isfinite(direction)):
        raise InputError(f"the {what}'s direction matrix holds NaN or infinite values", path, REWRITE)
    error = np.abs(direction.T @ direction - np.eye(3)).max()
    if error > DIRECTION_TOLERANCE:
        norms = np.linalg.norm(direction, axis=0)
        axes = direction / np.where(norms > 0, norms, 1)
        kind = "scaling" if np.abs(axes.T @ axes - np.eye(3)).max() <= DIRECTION_TOLERANCE else "shear"
        raise InputError(f"the {what}'s direction matrix is not a rotation: it holds {kind} (DᵀD differs from I by "
                         f"{error:.3g}; its columns have lengths {_vec(norms)})", path,
                         "give an orthonormal direction (a voxel's size belongs in the spacing, and regkit reads no "
                         f"sheared grids); {REWRITE}")


def _vec(v) -> str:
    return "(" + ", ".join(f"{x:g}" for x in np.asarray(v, dtype=float).ravel()) + ")"


def check_label(label: sitk.Image, what: str = "label", path: str | Path | None = None) -> None:
    """A label is a binary mask of one organ (see the module docstring): an :class:`InputError` names what it is
    instead, and how to make the mask."""
    from scipy import ndimage

    a = sitk.GetArrayViewFromImage(label)
    if np.issubdtype(a.dtype, np.complexfloating):
        raise InputError(f"the {what} holds complex values; a label is 0/1", path, "write the label as 0/1 integers")
    fractions = np.issubdtype(a.dtype, np.floating) and not np.all((a == 0) | (a == 1))
    if a.size and (a.min() < 0 or a.max() > 1 or fractions):
        raise InputError(*_not_binary(a, what, path))
    count = int(np.count_nonzero(a))
    if count == 0:
        raise InputError(f"the {what} is empty", path, "give the prostate label of this image (voxels of value 1)")
    if count == a.size:
        raise InputError(f"every voxel of the {what} is 1: it marks the whole image, not the prostate", path,
                         "give the prostate label of this image (1 inside the gland, 0 elsewhere)")
    box = tuple(slice(int(k[0]), int(k[-1]) + 1) for k in (np.flatnonzero(a.any(axis=other))
                                                            for other in ((1, 2), (0, 2), (0, 1))))
    pieces, n = ndimage.label(a[box] != 0, structure=np.ones((3, 3, 3), bool))  # in its bounding box
    if n > 1:
        largest = int(np.bincount(pieces.ravel())[1:].max())
        if largest < LABEL_LARGEST_PIECE * count:
            raise InputError(f"the {what} is scattered: its {count} voxels fall in {n} separate pieces, the largest "
                             f"holding {largest}; a prostate label is one region", path,
                             "give the prostate label of this image (one connected region of 1s)")


def _not_binary(a: np.ndarray, what: str, path) -> tuple[str, str | Path | None, str]:
    """The message, path and fix for a label whose values are not all 0 or 1."""
    values = np.unique(a)
    shown = ", ".join(f"{v:g}" for v in values[:8]) + (f", ... ({len(values)} values)" if len(values) > 8 else "")
    fractional = values[(values % 1 != 0)]
    if len(fractional):
        return (f"the {what} holds values between the whole numbers ({shown}): a probability map, or a label "
                "resampled with linear interpolation, not a 0/1 mask", path,
                "threshold it (e.g. SimpleITK.Cast(label >= 0.5, sitk.sitkUInt8)), and resample labels with "
                "nearest-neighbour interpolation")
    if values.min() < 0:
        return (f"the {what} holds negative values ({shown}); a label is 0 outside and 1 inside", path,
                "write the label as 0/1 (e.g. SimpleITK.Cast(label > 0, sitk.sitkUInt8) if every non-zero voxel is "
                "the prostate)")
    positive = values[values > 0]
    if len(positive) == 1:
        return (f"the {what} holds the values 0 and {positive[0]:g}, not 0 and 1", path,
                f"write it as 0/1: SimpleITK.Cast(label == {positive[0]:g}, sitk.sitkUInt8)")
    return (f"the {what} holds the values {shown}: a multi-label segmentation, not a 0/1 mask", path,
            "keep the prostate's value K as a 0/1 label (SimpleITK.Cast(label == K, sitk.sitkUInt8); "
            f"label > 0 for every non-zero value), and give that file; this one's values are {shown}")
