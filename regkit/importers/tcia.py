"""The TCIA Prostate-MRI-US-Biopsy importer (DICOM series and STL surfaces) — :func:`import_tcia`.

Layout as downloaded
--------------------
::

    manifest-<digits>/                         NBIA Data Retriever ("descriptive" folder names), or IDC's
      metadata.csv                             <collection>/<patient>/<StudyUID>/<Modality>_<SeriesUID>/, or
      Prostate-MRI-US-Biopsy/                  any other tree: only the DICOM headers are read, never the
        Prostate-MRI-US-Biopsy-0001/           folder names
          06-28-2009-NA-MRI PROSTATE W WO CONTRAST-51743/
            11.000000-t2spcrstaxial oblProstate-90221/1-01.dcm ... 1-60.dcm     T2 MR, one file per slice
          <date>-NA-<study>-<digits>/<n>.000000-<series>-<digits>/1-1.dcm       TRUS, one multi-frame file
    STLs/STLs/                                 the collection's separate STL archive (anywhere under SRC, or
      Prostate-MRI-US-Biopsy-0001-ProstateSurface-seriesUID-<SeriesInstanceUID>.STL   ``stl_dir=``)
      Prostate-MRI-US-Biopsy-0001-Target1-seriesUID-<SeriesInstanceUID>.STL

Conventions (sources in ``docs/your-own-data.md``; each is tested in ``tests/test_tcia.py``)
--------------------------------------------------------------------------------------------
* **Series** are found by SeriesInstanceUID with GDCM (:mod:`regkit.importers.dicom`); a series' Modality (MR or
  US) says which side it is. The T2 MR is one file per slice, read in LPS mm from ImagePositionPatient,
  ImageOrientationPatient and PixelSpacing; mixed spacings, sizes or orientations are an error.
* **STL names** carry the series the surface was drawn on: ``<patient>-ProstateSurface-seriesUID-<UID>.STL`` is
  the gland, ``<patient>-Target<K>-seriesUID-<UID>.STL`` lesion target K. Binary STL (MATLAB ``stlwrite``: an
  80-byte header ``Created by stlwrite.m <date>``, float32 vertices) in millimetres.
* **MR surfaces are in the MR series' LPS patient frame** (the DICOM frame, no RAS flip, no origin shift):
  confirmed on the collection's own files: voxelised onto the IDC team's independent label maps of the same
  series they give Dice ≥ 0.99, and < 0.01 with x and y negated.
* **The TRUS** is one multi-frame DICOM file (Ultrasound Multi-frame Image Storage) with no patient position or
  orientation. GDCM reads it as (column, row, frame) with spacing (PixelSpacing[1], PixelSpacing[0], 1): the frame
  spacing is taken from SliceThickness, and when PixelSpacing or SliceThickness is absent from the private tag
  (1129,1016) as an isotropic voxel size (``trus_spacing=`` overrides all three).
* **The TRUS surfaces' frame is not confirmed on real data**: it is an option, ``trus_frame``, recorded in every
  case's ``case.json``. ``"centred"`` (the default) is the only convention a public loader of the collection uses
  (a conversion script that voxelises the TRUS STL onto the TRUS): the pixel array (frame, row, column) is
  transposed to (column, frame, row), its first two axes flipped, and the volume centred on the origin, so that
  ``x = s_row·(row − R/2)``, ``y = s_frame·(F − 1 − frame − F/2)``, ``z = s_col·(C − 1 − column − C/2)``.
  ``"dicom"`` takes the image as GDCM reads it (origin from ImagePositionPatient or 0, direction from
  ImageOrientationPatient or the identity). The import stops with an error naming the option when less than
  90% of a TRUS surface lies inside its volume under the chosen frame.
* **Labels**: each prostate STL voxelised onto its own series' grid (:func:`regkit.surface.label_from_mesh`); the
  MR STL is kept as the case's ``mr_surface.stl``, so SRE is measured on the annotators' surface.
* **Reference** (MR physical → TRUS physical): from the two prostate surfaces
  (:func:`regkit.importers.reference.reference_from_surfaces`). The targets drawn on both series are corresponding
  landmarks (the centroids of the volumes their surfaces enclose), recorded in ``case.json`` for the landmark TRE;
  they enter the fit only when there are 3 or more (fewer do not fix a rotation, and a lesion outlined in TRUS is
  less certain than the gland). The reference's quality and flags go into ``case.json``. A near tie of two
  orientations is flagged, never broken by the headers: the MR scanner frame and the TRUS frame share none.
* **Cases**: one per TRUS series with a prostate surface, paired with the patient's MR series that has one (of
  several, the latest acquired on or before the TRUS, else the earliest). The case id is the patient id; a
  patient's second and later TRUS series (by date) get ``-us2``, ``-us3``.
* **Incomplete patients** (a patient with DICOM downloaded whose STL names a series not downloaded, a series with
  targets but no prostate STL, no MR or no TRUS series with a prostate STL) are errors naming the file and the fix;
  ``skip_incomplete=True`` leaves them out instead, with a warning. STLs of patients with no DICOM downloaded
  are ignored (the STL archive covers the whole collection).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from regkit.errors import InputError
from regkit.importers.dicom import PIXEL_SPACING
from regkit.importers.writing import ProgressCallback, check_source, run_import

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

    from regkit.dataset import Dataset
    from regkit.importers.dicom import DicomSeries
    from regkit.importers.reference import ReferenceThresholds

TrusFrame = Literal["centred", "dicom"]
TRUS_FRAMES = ("centred", "dicom")
STL_NAME = re.compile(r"^(?P<patient>.+?)-(?P<structure>ProstateSurface|Target\d+)-seriesUID-(?P<uid>[0-9.]+?)\.stl$",
                      re.IGNORECASE)
SLICE_THICKNESS, PRIVATE_VOXEL_SIZE = "0018|0050", "1129|1016"
INSIDE_MIN = 0.9  # the fraction of a surface's vertices that must lie inside its series' volume
CENTRED_AXES = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])  # columns: column, row, frame axes
FRAME_NOTES = {
    "centred": "TRUS surfaces in the volume-centred frame of the public conversion script (not confirmed on real "
               "data): x = s_row (row - R/2), y = s_frame (F - 1 - frame - F/2), z = s_col (C - 1 - col - C/2)",
    "dicom": "TRUS surfaces in the TRUS frame as GDCM reads it (origin from ImagePositionPatient or 0)",
}


@dataclass(frozen=True)
class StlFile:
    """A surface file and what its name says: patient, structure (``ProstateSurface`` or ``TargetK``), series."""

    path: Path
    patient: str
    structure: str
    series_uid: str

    @property
    def is_prostate(self) -> bool:
        return self.structure.lower() == "prostatesurface"


def parse_stl_name(path: str | Path) -> StlFile | None:
    """The patient, structure and series UID in a collection STL's name, or None for any other name."""
    path = Path(path)
    m = STL_NAME.match(path.name)
    if m is None:
        return None
    structure = "ProstateSurface" if m["structure"].lower() == "prostatesurface" else "Target" + m["structure"][6:]
    return StlFile(path, m["patient"], structure, m["uid"])


def find_stls(root: str | Path) -> tuple[list[StlFile], list[Path]]:
    """The collection's STL files under ``root``, and the ``.stl`` files whose names do not follow the pattern."""
    root, named, other = Path(root), [], []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() == ".stl" and p.is_file()):
        if not any(part.startswith(".") for part in path.relative_to(root).parts):
            stl = parse_stl_name(path)
            (named.append(stl) if stl else other.append(path))
    return named, other


def trus_spacing(tags: dict[str, str], path: Path, override=None) -> tuple[float, float, float]:
    """(column, row, frame) spacing of a multi-frame TRUS from its tags (see the module docstring)."""
    if override is not None:
        spacing = tuple(float(v) for v in override)
        if len(spacing) != 3 or min(spacing) <= 0:
            raise InputError(f"trus_spacing must be three positive numbers (mm), got {override!r}")
        return spacing
    pixel, thickness = tags.get(PIXEL_SPACING, "").strip(), tags.get(SLICE_THICKNESS, "").strip()
    try:
        if pixel and thickness:
            row, col = (float(v) for v in pixel.split("\\")[:2])
            return col, row, float(thickness)
        if tags.get(PRIVATE_VOXEL_SIZE, "").strip():
            size = float(tags[PRIVATE_VOXEL_SIZE].strip().split("\\")[0])
            return size, size, size
    except ValueError:
        pass
    raise InputError("the TRUS has no usable voxel size: no PixelSpacing with SliceThickness, nor the private "
                     f"voxel size (1129,1016) (tags: PixelSpacing {pixel!r}, SliceThickness {thickness!r})", path,
                     "give it with trus_spacing=(column, row, frame) mm (--trus-spacing X,Y,Z)")


def trus_geometry(size: tuple[int, int, int], spacing: tuple[float, float, float], frame: TrusFrame,
                  read_origin=(0.0, 0.0, 0.0), read_direction=tuple(np.eye(3).ravel())):
    """Origin and direction of a (column, row, frame) TRUS volume in the TRUS surfaces' frame ``frame``."""
    if frame == "dicom":
        return tuple(float(v) for v in read_origin), tuple(float(v) for v in read_direction)
    if frame != "centred":
        raise InputError(f"unknown TRUS frame {frame!r}", fix=f"use one of {TRUS_FRAMES}")
    (n_c, n_r, n_f), (s_c, s_r, s_f) = size, spacing
    origin = (-s_r * n_r / 2, s_f * (n_f - 1 - n_f / 2), s_c * (n_c - 1 - n_c / 2))
    return origin, tuple(CENTRED_AXES.ravel())


def read_trus(series: DicomSeries, frame: TrusFrame, spacing=None) -> tuple[sitk.Image, tuple]:
    """The TRUS volume with its spacing and its geometry in frame ``frame`` (see the module docstring), and the
    origin and direction GDCM read (what ``"dicom"`` keeps)."""
    from regkit.importers.dicom import header, read_volume

    if len(series.files) != 1 or series.frames < 2:
        raise InputError(f"the TRUS ({series.describe()}) is {len(series.files)} file(s), not one multi-frame "
                         "file as the collection ships it", series.folder,
                         "give the TRUS series as downloaded (one multi-frame DICOM file)")
    image = read_volume(series, "TRUS")
    read = (image.GetOrigin(), image.GetDirection())
    s = trus_spacing(header(series.files[0], private=True), series.files[0], spacing)
    origin, direction = trus_geometry(image.GetSize(), s, frame, *read)
    image.SetSpacing(s)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image, read


def inside_fraction(geometry, points: np.ndarray) -> float:
    """The fraction of ``points`` (physical mm) within an image's volume (half a voxel beyond the centres);
    ``geometry``: the image or its :class:`regkit.image.ImageGeometry`."""
    from regkit.image import ImageGeometry

    geo = geometry if isinstance(geometry, ImageGeometry) else ImageGeometry.of(geometry)
    idx = geo.to_index(np.asarray(points, float))
    return float(np.mean(np.all((idx >= -0.5) & (idx <= np.array(geo.size) - 0.5), axis=1)))


def _frame_fix(points: np.ndarray, us: sitk.Image, read: tuple, frame: TrusFrame) -> str:
    """What to do when a TRUS surface misses its volume: the other frame, if the surface lies inside it there."""
    from regkit.image import ImageGeometry

    other = TRUS_FRAMES[1 - TRUS_FRAMES.index(frame)]
    geo = ImageGeometry.of(us)
    origin, direction = trus_geometry(us.GetSize(), us.GetSpacing(), other, *read)
    alt = ImageGeometry(geo.size, geo.spacing, np.array(origin), np.array(direction).reshape(3, 3))
    if inside_fraction(alt, points) >= INSIDE_MIN:
        return f"under trus_frame={other!r} (--trus-frame {other}) it does: import with that frame"
    return "check that the STL belongs to this TRUS series and that its voxel size is right (trus_spacing)"


# =========================================================================== pairing
@dataclass
class TciaCase:
    """One MR–TRUS pair to import: its series and surfaces (``targets``: name → (MR STL, TRUS STL or None))."""

    case_id: str
    patient: str
    mr: DicomSeries
    us: DicomSeries
    mr_stl: StlFile
    us_stl: StlFile
    targets: dict[str, tuple[StlFile | None, StlFile | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _expected(patient: str, series: DicomSeries) -> str:
    return f"{patient}-ProstateSurface-seriesUID-{series.uid}.STL"


def plan_cases(series: dict[str, DicomSeries], stls: list[StlFile],
               skip_incomplete: bool = False) -> tuple[list[TciaCase], list[str]]:
    """The cases to import, and what was left out (see the module docstring's "Cases" and "Incomplete")."""
    by_patient: dict[str, list[DicomSeries]] = {}
    for s in series.values():
        by_patient.setdefault(s.patient_id, []).append(s)
    stls_of: dict[str, list[StlFile]] = {}
    for stl in stls:
        owner = series[stl.series_uid].patient_id if stl.series_uid in series else stl.patient
        stls_of.setdefault(owner, []).append(stl)
    cases, left_out = [], []
    for patient in sorted(by_patient):
        problems: list[tuple[str, Path, str]] = []  # (what, file, fix)
        on_series: dict[str, list[StlFile]] = {}
        for stl in stls_of.get(patient, []):
            if stl.series_uid not in series:
                problems.append((f"the STL names series {stl.series_uid}, which is not among the downloaded DICOM",
                                 stl.path, "download that series too (it is in the collection's manifest)"))
            else:
                on_series.setdefault(stl.series_uid, []).append(stl)
        sides: dict[str, list[tuple[DicomSeries, StlFile]]] = {"MR": [], "US": []}
        for uid, found in sorted(on_series.items()):
            s = series[uid]
            prostate = [f for f in found if f.is_prostate]
            if s.modality not in sides:
                problems.append((f"an STL was drawn on a {s.modality or 'modality-less'} series ({s.describe()}); "
                                 "MR and US are expected", found[0].path, "leave this STL out of SRC"))
            elif not prostate:
                problems.append((f"the {s.describe()} has target surfaces but no prostate surface", s.folder,
                                 f"add {_expected(patient, s)} (or remove its targets)"))
            else:
                sides[s.modality].append((s, prostate[0]))
        for side, word in (("MR", "MR"), ("US", "TRUS")):
            if not sides[side]:
                bare = [s for s in by_patient[patient] if s.modality == side]
                where = bare[0].folder if bare else (stls_of.get(patient) or [None])[0]
                fix = (f"add the STL archive (STLs/) to SRC or pass stl_dir; expected e.g. "
                       f"{_expected(patient, bare[0])}" if bare else f"download the patient's {word} series")
                problems.append((f"patient {patient} has no {word} series with a prostate surface (STL)"
                                 + ("" if bare else f": no {word} series was downloaded"), where or Path(patient), fix))
        complete = sides["MR"] and sides["US"]
        if problems and not skip_incomplete:
            what, path, fix = problems[0]
            more = f" ({len(problems) - 1} more problem(s) for this patient)" if len(problems) > 1 else ""
            raise InputError(what + more, path, fix + "; or pass skip_incomplete=True (--skip-incomplete) to "
                                                       "import the complete patients only")
        if problems:
            left_out += [f"{patient}: {what} ({path})" for what, path, _ in problems]
        if not complete:
            continue
        mrs = sorted(sides["MR"], key=lambda p: (p[0].study_date, p[0].uid))
        for k, (us, us_stl) in enumerate(sorted(sides["US"], key=lambda p: (p[0].study_date, p[0].uid))):
            before = [m for m in mrs if m[0].study_date <= us.study_date]
            mr, mr_stl = before[-1] if before else mrs[0]
            case = TciaCase(patient if k == 0 else f"{patient}-us{k + 1}", patient, mr, us, mr_stl, us_stl)
            if len(mrs) > 1:
                case.notes.append(f"{len(mrs)} MR series have a prostate surface; paired with {mr.uid} "
                                  f"(study date {mr.study_date or 'unknown'}, TRUS {us.study_date or 'unknown'})")
            for side, s in ((0, mr), (1, us)):
                for stl in on_series.get(s.uid, []):
                    if not stl.is_prostate:
                        pair = list(case.targets.get(stl.structure, (None, None)))
                        pair[side] = stl
                        case.targets[stl.structure] = tuple(pair)
            cases.append(case)
    return cases, left_out


# =========================================================================== import
def import_tcia(src: str | Path, dst: str | Path, *, stl_dir: str | Path | None = None, split: str = "test",
                trus_frame: TrusFrame = "centred", trus_spacing: tuple[float, float, float] | None = None,
                skip_incomplete: bool = False, prefix: str = "", thresholds: ReferenceThresholds | None = None,
                progress: ProgressCallback | None = None) -> Dataset:
    """Import a TCIA Prostate-MRI-US-Biopsy download (DICOM and STL) into regkit's layout.

    See the module docstring for the conventions.

    Parameters
    ----------
    src : path-like
        The download: DICOM series in any folder tree (NBIA's ``manifest-*/``, IDC's, ...), and the STL files
        unless ``stl_dir`` is given.
    dst : path-like
        Dataset folder to write (created; existing cases and manifest entries are kept, so a re-run resumes).
    stl_dir : path-like, optional
        Where the STL files are, when not under ``src``.
    split : str
        The split every case goes to.
    trus_frame : {"centred", "dicom"}
        The frame the TRUS surfaces are in (not confirmed on real data; see the module docstring).
    trus_spacing : (float, float, float), optional
        The TRUS voxel size (column, row, frame) in mm, overriding its tags.
    skip_incomplete : bool
        Leave out patients that lack a series or a prostate surface (with a warning) instead of stopping.
    prefix : str
        Prepended to every case id.
    thresholds : ReferenceThresholds, optional
        Where the reference's quality flags are raised (:mod:`regkit.importers.reference`).
    progress : callable, optional
        Called as ``progress(case_id, "imported" | "skipped")`` after each case.
    """
    from regkit.dataset import check_case_id
    from regkit.importers.dicom import index_series

    src, dst = check_source(src, dst, split)
    if trus_frame not in TRUS_FRAMES:
        raise InputError(f"unknown TRUS frame {trus_frame!r}", fix=f"use one of {TRUS_FRAMES}")
    stl_root = src if stl_dir is None else Path(stl_dir)
    if not stl_root.is_dir():
        raise InputError("the STL folder does not exist", stl_root)
    stls, others = find_stls(stl_root)
    if not stls:
        raise InputError("no STL surfaces named <patient>-{ProstateSurface|TargetK}-seriesUID-<UID>.STL"
                         + (f" (found {len(others)} other .stl files, e.g. {others[0].name})" if others else ""),
                         stl_root, "add the collection's STL archive (STLs/) to SRC, or give its folder as stl_dir")
    series = index_series(src)
    if not series:
        raise InputError("no DICOM series under the source folder", src,
                         "give the folder the NBIA Data Retriever or IDC downloaded into")
    cases, left_out = plan_cases(series, stls, skip_incomplete)
    if left_out:
        warnings.warn(f"{len(left_out)} problem(s) left out (skip_incomplete): " + "; ".join(left_out[:5])
                      + (" ..." if len(left_out) > 5 else ""), stacklevel=2)
    if not cases:
        raise InputError("no patient has both an MR and a TRUS series with prostate surfaces", src,
                         "check that SRC holds the DICOM series the STL file names point to")
    jobs = []
    for plan in cases:
        case_id = check_case_id(prefix + plan.case_id, plan.us.folder)
        key = f"{plan.mr.uid}+{plan.us.uid}"

        def build(plan=plan, case_id=case_id, key=key):
            return build_case(plan, case_id, split, trus_frame, trus_spacing, key, thresholds)

        jobs.append((case_id, split, key, build))
    return run_import(dst, "tcia", src, jobs, progress)


def _surface(stl: StlFile, image: sitk.Image, what: str, fix):
    """The STL's mesh and its label on ``image``'s grid; an error when the surface is not in the image (``fix``:
    the advice, or a function of the surface's points giving it)."""
    import SimpleITK as sitk

    from regkit.surface import label_from_mesh, read_mesh

    points, faces = read_mesh(stl.path)
    inside = inside_fraction(image, points)
    if inside < INSIDE_MIN:
        raise InputError(f"only {100 * inside:.0f}% of the {what} surface lies inside its series' volume", stl.path,
                         fix if isinstance(fix, str) else fix(points))
    label = label_from_mesh(points, faces, image)
    if int(np.count_nonzero(sitk.GetArrayViewFromImage(label))) < 8:
        raise InputError(f"the {what} surface encloses fewer than 8 voxels of its series (is it closed?)", stl.path,
                         "give a closed surface mesh")
    return points, faces, label


def build_case(plan: TciaCase, case_id: str, split: str, frame: TrusFrame, spacing, key: str,
               thresholds: ReferenceThresholds | None = None):
    """Read one pair's series and surfaces and derive its reference: ``(Case, extra files)``."""
    from regkit.case import Case
    from regkit.importers.dicom import read_volume
    from regkit.importers.labels import Landmarks
    from regkit.importers.reference import DEFAULT_THRESHOLDS, reference_from_surfaces
    from regkit.sre import sre
    from regkit.surface import mesh_centroid, read_mesh
    from regkit.transform import RigidTransform

    mr = read_volume(plan.mr, "MR")
    mr_points, mr_faces, mr_label = _surface(
        plan.mr_stl, mr, "MR prostate", "the STL must be the one drawn on this series, in its LPS patient "
        "coordinates (mm), as the collection ships it")
    us, read = read_trus(plan.us, frame, spacing)
    us_points, us_faces, us_label = _surface(plan.us_stl, us, f"TRUS prostate (trus_frame={frame!r})",
                                             lambda points: _frame_fix(points, us, read, frame))
    names, fixed, moving = [], [], []
    for name, (mr_stl, us_stl) in sorted(plan.targets.items()):
        if mr_stl is not None and us_stl is not None:
            names.append(name)
            fixed.append(mesh_centroid(*read_mesh(mr_stl.path)))
            moving.append(mesh_centroid(*read_mesh(us_stl.path)))
    landmarks = Landmarks(names, np.reshape(fixed, (-1, 3)), np.reshape(moving, (-1, 3)),
                          skipped={n: "drawn on one series only" for n, p in plan.targets.items() if None in p})
    # the MR scanner frame and the TRUS frame share no orientation: the headers cannot break a near tie
    reference = reference_from_surfaces((mr_points, mr_faces), (us_points, us_faces),
                                        landmarks if len(landmarks) >= 3 else None, mr_label=mr_label,
                                        us_label=us_label,
                                        thresholds=replace(thresholds or DEFAULT_THRESHOLDS, header_degrees=0.0))
    stl_paths = {"mr_prostate": plan.mr_stl.path, "trus_prostate": plan.us_stl.path}
    stl_paths.update({f"{side}_{name.lower()}": stl.path for name, pair in plan.targets.items()
                      for side, stl in zip(("mr", "trus"), pair, strict=True) if stl is not None})
    metadata = {
        "importer": "tcia",
        "layout": "tcia-prostate-mri-us-biopsy",
        "split": split,
        "patient": plan.patient,
        "source": {"key": key, "mr_series": plan.mr.uid, "trus_series": plan.us.uid, "mr": str(plan.mr.folder),
                   "trus": str(plan.us.files[0]), **{k: str(v) for k, v in stl_paths.items()}},
        "trus_frame": frame,
        "trus_frame_convention": FRAME_NOTES[frame],
        "trus_spacing_mm": [round(float(v), 6) for v in us.GetSpacing()],
        "mr_label": "voxelised from the MR prostate STL", "trus_label": "voxelised from the TRUS prostate STL",
        "ground_truth_convention": "reference derived from the MR and TRUS prostate surfaces (and the targets drawn "
                                   "on both as landmarks); MR physical -> TRUS physical",
        "reference": {**reference.to_json(), "identity_sre_mm": round(float(
            sre(RigidTransform.identity(), reference.transform, mr_points)), 4)},
    }
    if len(landmarks):
        metadata["landmarks"] = landmarks.to_json(note="centroids of the volumes the target surfaces enclose")
    elif landmarks.skipped:
        metadata["landmarks_skipped"] = landmarks.skipped
    if plan.notes:
        metadata["notes"] = list(plan.notes)
    files = {"fixed": plan.mr.folder, "moving": plan.us.files[0], "fixed_label": plan.mr_stl.path,
             "surface": plan.mr_stl.path, "moving_label": plan.us_stl.path}
    case = Case(case_id=case_id, fixed=mr, moving=us, fixed_label=mr_label, ground_truth=reference.transform,
                surface_points=mr_points, moving_label=us_label, metadata=metadata, files=files)
    return case, {"mr_surface.stl": plan.mr_stl.path}
