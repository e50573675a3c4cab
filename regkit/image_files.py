"""What an image file must be before ITK reads it: the checks of :func:`regkit.image_checks` that read the file
itself, because ITK would read it without a word (the rules are stated once, in :mod:`regkit.image_checks`).

* a NIfTI file cut short, or a gzip stream cut or corrupt (:func:`check_image_file`);
* NaN and infinite voxels in a NIfTI file, which ITK reads as 0;
* header geometry ITK would quietly replace (:func:`check_header_geometry`): a NIfTI ``pixdim`` that is zero,
  negative or NaN, a NIfTI ``sform`` with shear or with scales that disagree with ``pixdim``, a NaN origin or
  spacing in a MetaImage or NRRD header.
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

from regkit.errors import InputError

REWRITE = ("write the image again with its true geometry (e.g. with SimpleITK: image.SetSpacing(...), "
           "SetOrigin(...), SetDirection(...), then sitk.WriteImage)")


def numbers_text(v) -> str:
    """Numbers as an error message shows them: ``(0.8, 0.8, 1.5)``."""
    return "(" + ", ".join(f"{x:g}" for x in np.asarray(v, dtype=float).ravel()) + ")"



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
    raise InputError(f"the {what}'s header gives {key} {numbers_text(values)}: {problem}; ITK would {itk_does} "
                     "without a word", path, REWRITE)


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
            raise InputError(f"the {what}'s header gives two voxel spacings: pixdim[1..3] = {numbers_text(spatial)} "
                             f"mm, and its sform (direction × spacing) scales {numbers_text(scales)} mm; readers "
                             "differ on which to use", path, REWRITE)


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
