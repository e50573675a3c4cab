"""DICOM series on disk, found by SeriesInstanceUID and read with SimpleITK's GDCM, with their geometry checked.

:func:`index_series` walks a folder tree (any layout: NBIA's descriptive or classic folders, IDC's
``<patient>/<study>/<modality>_<series>/``, a flat folder) and lists every series GDCM finds
(``ImageSeriesReader.GetGDCMSeriesIDs`` per folder, ``GetGDCMSeriesFileNames`` for its files, ordered by GDCM along
the slice normal). :func:`read_volume` reads one as a 3-D image in LPS mm: a series of single-frame files through
``ImageSeriesReader`` (origin from the first ImagePositionPatient, direction from ImageOrientationPatient, slice
spacing from the positions), after checking that its slices share one size, pixel spacing and orientation and are
evenly spaced; a multi-frame file through ``ImageFileReader`` as GDCM reads it (what its spacing and frame mean
is the layout's business: see :mod:`regkit.importers.tcia`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from regkit.errors import InputError, itk_message

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

MODALITY, PATIENT_ID, STUDY_DATE, SERIES_DESCRIPTION = "0008|0060", "0010|0020", "0008|0020", "0008|103e"
FRAMES, POSITION, ORIENTATION, PIXEL_SPACING = "0028|0008", "0020|0032", "0020|0037", "0028|0030"
ROWS, COLUMNS = "0028|0010", "0028|0011"
SPACING_TOLERANCE = 0.01  # relative: slice gaps (and pixel spacings) differing by more are "mixed spacings"


@dataclass
class DicomSeries:
    """One series on disk: its files in GDCM's order and a few tags of its first file."""

    uid: str
    folder: Path
    files: list[Path]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def modality(self) -> str:
        return self.tags.get(MODALITY, "").strip().upper()

    @property
    def patient_id(self) -> str:
        return self.tags.get(PATIENT_ID, "").strip()

    @property
    def study_date(self) -> str:
        return self.tags.get(STUDY_DATE, "").strip()

    @property
    def frames(self) -> int:
        try:
            return int(self.tags.get(FRAMES, "1").strip() or 1)
        except ValueError:
            return 1

    def describe(self) -> str:
        desc = self.tags.get(SERIES_DESCRIPTION, "").strip()
        return f"{self.modality or '?'} series {self.uid}" + (f" ({desc!r})" if desc else "")


def header(path: Path, private: bool = False) -> dict[str, str]:
    """The tags GDCM reads from one file's header (no pixel data)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO("GDCMImageIO")
    if private:
        reader.LoadPrivateTagsOn()
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"GDCM cannot read this DICOM file: {itk_message(exc)}", path,
                         "download the file again, or remove it") from None
    return {key: reader.GetMetaData(key) for key in reader.GetMetaDataKeys()}


def index_series(root: str | Path) -> dict[str, DicomSeries]:
    """Every DICOM series under ``root``, by SeriesInstanceUID; a series found in two folders is an error."""
    import SimpleITK as sitk

    root = Path(root)
    found: dict[str, DicomSeries] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if not any(not f.startswith(".") for f in files):
            continue
        warn = sitk.ProcessObject.GetGlobalWarningDisplay()
        sitk.ProcessObject.SetGlobalWarningDisplay(False)  # GDCM warns about every folder without DICOM files
        try:
            uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
        finally:
            sitk.ProcessObject.SetGlobalWarningDisplay(warn)
        for uid in uids:
            names = [Path(p) for p in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)]
            if uid in found:
                raise InputError(f"series {uid} is in two folders: {found[uid].folder} and here", folder,
                                 "keep one copy of each series (two downloads of the same series?)")
            found[uid] = DicomSeries(uid, Path(folder), names, header(names[0]))
    return found


def read_volume(series: DicomSeries, what: str) -> sitk.Image:
    """The series as a 3-D image (see the module docstring); ``what`` names it in errors."""
    import SimpleITK as sitk

    if len(series.files) == 1:
        if series.frames < 2:
            raise InputError(f"the {what} is a single 2-D image, not a volume ({series.describe()})",
                             series.files[0], "give the whole series (all its slices)")
        try:
            return sitk.ReadImage(str(series.files[0]), imageIO="GDCMImageIO")
        except RuntimeError as exc:
            raise InputError(f"cannot read the {what}: {itk_message(exc)}", series.files[0]) from None
    if series.frames > 1:
        raise InputError(f"the {what} mixes {len(series.files)} files of which some are multi-frame",
                         series.folder, "give one multi-frame file or one file per slice")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in series.files])
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"cannot read the {what}: {itk_message(exc)}", series.folder) from None
    check_slices(series, [{k: reader.GetMetaData(i, k) for k in reader.GetMetaDataKeys(i)}
                          for i in range(len(series.files))], what)
    return image


def _numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.replace(" ", "").split("\\") if v != ""])


def check_slices(series: DicomSeries, tags: list[dict[str, str]], what: str) -> None:
    """One size, pixel spacing and orientation for every slice, and evenly spaced slices (no gap, no repeat)."""
    for key, name in ((ROWS, "rows"), (COLUMNS, "columns"), (PIXEL_SPACING, "pixel spacings"),
                      (ORIENTATION, "orientations")):
        values = [t.get(key, "").strip() for t in tags]
        distinct = sorted(set(values))
        if len(distinct) > 1 and not (key in (PIXEL_SPACING, ORIENTATION) and _close(distinct)):
            raise InputError(f"the {what} mixes {name} ({', '.join(distinct[:4])}) across its {len(tags)} files",
                             series.folder, "give only the slices of one acquisition (one series per folder)")
    try:
        positions = np.array([_numbers(t[POSITION]) for t in tags])
        iop = _numbers(tags[0][ORIENTATION])
    except (KeyError, ValueError):
        raise InputError(f"the {what}'s slices lack ImagePositionPatient or ImageOrientationPatient",
                         series.folder, "give a series whose slices carry their position (not a secondary capture)") \
            from None
    normal = np.cross(iop[:3], iop[3:])
    depth = np.sort(positions @ normal)
    gaps = np.diff(depth)
    step = float(np.median(gaps))
    if step <= 1e-6 or np.any(np.abs(gaps - step) > SPACING_TOLERANCE * step + 1e-3):
        shown = ", ".join(f"{g:.3g}" for g in sorted(set(np.round(gaps, 3)))[:6])
        raise InputError(f"the {what} has mixed slice spacings (gaps of {shown} mm between its "
                         f"{len(tags)} slices): slices missing, repeated or from two acquisitions",
                         series.folder, "download the series again, or keep the slices of one acquisition only")


def _close(values: list[str]) -> bool:
    arrays = [_numbers(v) for v in values]
    return all(a.shape == arrays[0].shape and np.allclose(a, arrays[0], rtol=SPACING_TOLERANCE, atol=1e-4)
               for a in arrays)
